"""The advisor's measured A/B: real Trainers side by side, nothing written to the workspace,
a change that helps confirmed and one that does not reported as no measurable gain."""

import pytest

from engine.advisor.ab import ABError, _result, bootstrap_median, measure, mode_for
from engine.workspace import Workspace
from tests.conftest import tiny


def small_mlp(**overrides):
    base = {"data.dataset": "synthetic", "data.n_samples": 3000, "data.n_features": 8,
            "data.batch_size": 4, "model.hidden": [16], "train.log_every": 10}
    base.update(overrides)
    return tiny(**base)


@pytest.mark.slow
def test_a_much_larger_batch_is_confirmed_and_leaves_no_run(tmp_path):
    ws = Workspace(tmp_path / "ws")
    seen = []
    result = measure(small_mlp(), {"data.batch_size": 256}, pairs=5, workspace=ws,
                     on_progress=lambda done, total: seen.append((done, total)))
    assert result.mode == "turns" and result.pairs == 5
    assert result.confirmed and result.low > 1.0
    assert result.speedup > 2  # 64x the samples per step
    assert result.changed_samples_per_s > result.current_samples_per_s
    assert seen == [(i, 5) for i in range(1, 6)]
    assert ws._query("SELECT COUNT(*) FROM runs")[0][0] == 0  # trials are not runs
    assert "measured speed-up" in result.summary()


@pytest.mark.slow
def test_a_change_that_does_nothing_is_not_confirmed():
    result = measure(small_mlp(), {"train.seed": 1}, pairs=8, window=20)
    assert not result.confirmed
    assert result.low <= 1.0 <= result.high or result.high < 1.0
    assert result.summary().startswith("no ")


def test_the_rule_is_the_lower_end_of_the_interval():
    rows = [((10.0, 100.0), (10.0, 100.0 * r)) for r in (1.3, 1.25, 1.4, 1.35, 1.3, 1.28)]
    assert _result({"k": 1}, "turns", 5, 5, rows, 0).confirmed
    mixed = [((10.0, 100.0), (10.0, 100.0 * r)) for r in (1.3, 0.8, 1.1, 0.9, 1.2, 0.95)]
    result = _result({"k": 1}, "turns", 5, 5, mixed, 0)
    assert not result.confirmed and result.summary().startswith("no measurable gain")
    low, high = bootstrap_median([0.9, 1.0, 1.1, 1.2, 0.95])
    assert low <= 1.0 <= high
    # all ahead, but by less than the 3% a change must surely give: not confirmed
    small = [((10.0, 100.0), (10.0, 100.0 * r)) for r in (1.02, 1.03, 1.02, 1.04, 1.03, 1.025)]
    result = _result({"k": 1}, "turns", 5, 5, small, 0)
    assert result.low > 1.0 and not result.confirmed
    assert "under the 3%" in result.summary()


def test_a_bad_change_names_its_key():
    with pytest.raises(ABError, match="data.batch_size"):
        measure(small_mlp(), {"data.batch_size": -3}, pairs=2)


@pytest.mark.slow
def test_loader_workers_alternate_whole_runs():
    assert mode_for({"data.num_workers": 2}) == "runs"
    assert mode_for({"data.batch_size": 64}) == "turns"
    result = measure(small_mlp(), {"data.num_workers": 1}, pairs=2, window=5)
    assert result.mode == "runs" and result.pairs == 2 and len(result.ratios) == 2
    assert "whole short runs" in result.summary()


def test_each_side_trains_with_its_own_threads_and_optimizer(monkeypatch):
    """Both sides take turns in one process: each turn runs with its own side's settings
    (train.threads is set at each run() and put back), and the process keeps its own."""
    import torch

    from engine.advisor import ab

    before = torch.get_num_threads()
    want = 1 if before > 1 else 2
    seen: dict[int, set] = {0: set(), want: set()}
    step_ended = ab._Side._step_ended

    def spy(self, e):
        group = self.trainer.optimizer.param_groups[0]
        seen[self.trainer.config.train.threads].add(
            (torch.get_num_threads(), group["fused"], group["foreach"]))
        step_ended(self, e)

    monkeypatch.setattr(ab._Side, "_step_ended", spy)
    result = measure(small_mlp(), {"train.threads": want, "optim.implementation": "foreach"},
                     pairs=2, window=3)
    assert result.mode == "turns"
    assert seen == {0: {(before, True, None)}, want: {(want, None, True)}}
    assert torch.get_num_threads() == before
