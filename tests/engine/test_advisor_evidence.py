"""Evidence for the advisor: per-step facts from trace events, hardware samples and the run
config, and the whole chain on real CPU captures of tiny runs."""

import math

import pytest

from engine.advisor.evidence import build_evidence, config_facts, gpu_utilization, read_capture
from engine.advisor.rules import advise
from engine.advisor.trace_facts import facts_from_events
from engine.profiling.capture import ProfilerCapture
from engine.profiling.options import LOG_ANNOTATION, CaptureOptions, profiling_config
from engine.training import Trainer
from tests.conftest import tiny


def op(name, ts, dur, cat="cpu_op", tid=1):
    return {"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": tid, "ts": ts, "dur": dur}


def step(n, ts, dur=100):
    return op(f"ProfilerStep#{n}", ts, dur, "user_annotation")


def item(ts):
    """``.item()`` as torch records it: the op, the dense read inside, a runtime wait."""
    return [op("aten::item", ts, 5), op("aten::_local_scalar_dense", ts + 1, 3),
            op("cudaStreamSynchronize", ts + 2, 1, "cuda_runtime")]


def test_each_sync_counts_once_in_its_step():
    events = [step(1, 0), step(2, 100), step(3, 200), *item(10), *item(50), *item(110),
              *item(220)]
    facts = facts_from_events(events)
    assert facts.syncs_per_step == (2, 1, 1)
    assert facts.median_syncs == 1
    assert facts.sync_ops == {"aten::item": 4}
    # a runtime wait alone (a blocking copy to the host) is a sync point too
    assert facts_from_events([step(1, 0), op("cudaStreamSynchronize", 5, 2,
                                             "cuda_runtime")]).syncs_per_step == (1,)


def test_one_logging_step_does_not_make_every_step_sync():
    events = [step(1, 0), step(2, 100), step(3, 200), *item(10), *item(20), *item(30)]
    assert facts_from_events(events).median_syncs == 0


def test_syncs_of_the_optimizer_and_the_trainers_log_are_left_out():
    events = [step(1, 0), op("Optimizer.step#Adam.step", 10, 40, "user_annotation"),
              *item(15), op(LOG_ANNOTATION, 60, 30, "user_annotation"), *item(65)]
    facts = facts_from_events(events)
    assert facts.syncs_per_step == (0,)
    assert facts.log_syncs_per_step == (1,)  # counted on their own
    assert facts.optimizer_impl == "for-loop"
    assert facts.optimizer_share == pytest.approx(0.4)


@pytest.mark.parametrize("inner, impl", [("aten::_fused_adam_", "fused"),
                                         ("aten::_foreach_add_", "foreach"),
                                         ("aten::add_", "for-loop")])
def test_optimizer_implementation_from_its_ops(inner, impl):
    events = [step(1, 0), op("Optimizer.step#Adam.step", 10, 40, "user_annotation"),
              op(inner, 12, 5), op("aten::_foreach_norm", 60, 5)]  # clipping, outside
    assert facts_from_events(events).optimizer_impl == impl
    assert facts_from_events([step(1, 0)]).optimizer_impl is None


def test_sync_source_is_the_innermost_frame_outside_torch():
    frames = [op("engine/training/trainer.py(300): _train_epoch", 0, 100, "python_function"),
              op("/home/me/net.py(12): forward", 5, 50, "python_function"),
              op("torch/nn/modules/module.py(1782): _call_impl", 8, 40, "python_function"),
              op("/home/me/net.py(40): helper", 60, 5, "python_function")]  # not around it
    facts = facts_from_events([step(1, 0), *frames, *item(10)])
    assert facts.sync_sources == ("/home/me/net.py:12 (forward)",)
    assert facts.has_stacks


def test_gpu_utilization_over_training_samples_only():
    hardware = {"host": {}, "gpus": {0: {"utilization": [0.0, 80.0, math.nan, 60.0, 5.0],
                                         "step": [-1, 3, 4, 5, -1]}}}
    assert gpu_utilization(hardware) == pytest.approx(70.0)
    assert gpu_utilization({"host": {}, "gpus": {}}) is None
    assert gpu_utilization(None) is None


def test_config_facts():
    cnn = tiny(**{"data.dataset": "digits", "model.arch": "cnn", "data.num_workers": 2,
                  "train.grad_accum_steps": 3})
    facts = config_facts(cnn)
    assert facts["conv_model"] and facts["channels_last"] is False
    assert facts["num_workers"] == 2 and facts["grad_accum_steps"] == 3
    mlp = config_facts(tiny())
    assert not mlp["conv_model"] and mlp["channels_last"] is None
    assert mlp["image_loading"] is None and mlp["optimizer"] == "adam"


def capture(tmp_path, config):
    options = CaptureOptions(wait=1, warmup=1, active=4, with_stack=True)
    trainer = Trainer(profiling_config(config, options))
    cap = ProfilerCapture(worker="w").attach(trainer, tmp_path)
    cap.request(options, "c")
    assert trainer.run().status == "completed"
    return cap.results[0].trace


@pytest.mark.slow
def test_a_model_that_reads_a_value_every_step_is_found(tmp_path, faulty_model):
    arch = faulty_model("self.seen = out.abs().mean().item()", "syncing_net.py")
    config = tiny(**{"model.arch": arch})
    report, facts = read_capture(capture(tmp_path / "sync", config))
    e = build_evidence(config, report=report, facts=facts)
    assert e.device == "cpu" and e.steps == 4
    assert e.capability is None and e.kernels_per_step is None and e.mean_kernel_us is None
    assert e.gpu_utilization is None
    found = {f.id: f for f in advise(e)}
    assert "host-sync" in found
    assert found["host-sync"].numbers["syncs_per_step"] >= 1
    assert "syncing_net.py:" in found["host-sync"].hint


@pytest.mark.slow
def test_an_efficient_run_has_no_sync_finding(tmp_path):
    config = tiny(**{"train.log_every": 1})  # the trainer's own read, every step
    e = build_evidence(config, report=None, facts=None)
    assert e.steps == 0  # nothing captured: the capture's rules stay silent
    report, facts = read_capture(capture(tmp_path / "plain", config))
    e = build_evidence(config, report=report, facts=facts)
    assert e.steps == 4 and e.ops_per_step > 0 and e.mean_op_us > 0
    assert e.syncs_per_step == 0 and e.log_syncs_per_step >= 1 and e.log_every == 1
    assert "host-sync" not in [f.id for f in advise(e)]


def test_evidence_from_a_gpu_trace(tmp_path):
    """No GPU here: a trace shaped as torch writes one on an H100, and the machine's facts
    as ``machine_facts`` reads them there."""
    from tests.engine.test_profiling import cuda_shaped_trace

    report, facts = read_capture(cuda_shaped_trace(tmp_path / "gpu.1.pt.trace.json"))
    machine = {"device": "cuda", "torch_threads": 8, "physical_cores": 8, "logical_cores": 16,
               "capability": (9, 0)}
    e = build_evidence(tiny(**{"train.device": "cpu"}), report=report, facts=facts,
                       machine=machine,
                       hardware={"gpus": {0: {"utilization": [40.0], "step": [1]}}})
    assert e.on_gpu and e.steps == 2
    assert e.kernels_per_step == 1 and e.mean_kernel_us == pytest.approx(40.0)
    assert e.share("Kernel") == pytest.approx(0.4) and e.gpu_busy_share == pytest.approx(0.4)
    assert e.gpu_utilization == 40.0
    found = {f.id: f for f in advise(e)}
    assert found["precision"].changes == {"precision.amp": "bf16"}
    assert found["tf32"].changes == {"precision.tf32": "on"}
    assert e.as_dict()["capability"] == [9, 0]
    # with TF32 on, the run's own setting is what the rule reads: no finding
    e = build_evidence(tiny(**{"precision.tf32": "on"}), report=report, facts=facts,
                       machine=machine)
    assert "tf32" not in {f.id for f in advise(e)}


def test_the_run_thread_count_is_what_the_threads_rule_reads():
    machine = {"device": "cpu", "torch_threads": 1, "physical_cores": 4, "logical_cores": 4}
    e = build_evidence(tiny(), machine=machine)
    assert e.torch_threads == 1
    assert {f.id: f.changes for f in advise(e)}["cpu-threads"] == {"train.threads": 4}
    # once the run sets train.threads = 4, that is what it runs with: nothing to advise
    e = build_evidence(tiny(**{"train.threads": 4}), machine=machine)
    assert e.torch_threads == 4 and "cpu-threads" not in {f.id for f in advise(e)}


def test_the_memory_forecast_feeds_the_batch_rules():
    from engine.experiments.memory import MemoryForecast

    forecast = MemoryForecast("cpu", 8, 1 << 20, largest_batch=4096, train_samples=10_000)
    config = tiny(**{"data.batch_size": 8, "train.grad_accum_steps": 4})
    e = build_evidence(config, forecast=forecast, machine={"device": "cpu"})
    assert e.largest_batch == 4096 and e.train_samples == 10_000
    changes = [f.changes for f in advise(e)]
    assert {"data.batch_size": 64} in changes  # small-batch: 8x
    assert {"data.batch_size": 32, "train.grad_accum_steps": 1} in changes


@pytest.mark.parametrize("content, words", [(None, "does not exist"), (b"{", "truncated")])
def test_a_bad_trace_is_one_error_naming_the_file(tmp_path, content, words):
    from engine.profiling.report import TraceReadError

    path = tmp_path / "bad.pt.trace.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TraceReadError) as err:
        read_capture(path)
    assert str(path) in str(err.value) and words in str(err.value)
