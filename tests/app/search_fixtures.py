"""A study built directly with Optuna, and a stand-in for `torchwork search` (a script
printing the CLI's JSON lines), for the Search dock's tests."""

from __future__ import annotations

import datetime
import sys
import textwrap

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

SPACE = {"optim.lr": FloatDistribution(1e-4, 1e-1, log=True),
         "train.epochs": IntDistribution(2, 8),
         "optim.name": CategoricalDistribution(["adam", "sgd"])}
# (lr, epochs, optimizer, state, value): trial 1 is the best
TRIALS = [(0.01, 4, "adam", TrialState.COMPLETE, 0.90),
          (0.001, 6, "sgd", TrialState.COMPLETE, 0.95),
          (0.05, 3, "adam", TrialState.PRUNED, None),
          (0.0005, 5, "sgd", TrialState.FAIL, None),
          (0.02, 8, "adam", TrialState.COMPLETE, 0.93)]


def intermediate(number: int, state) -> dict[int, float]:
    """Epoch -> objective; a pruned trial stops after two epochs, a failed one reports none."""
    epochs = {TrialState.COMPLETE: 4, TrialState.PRUNED: 2}.get(state, 0)
    return {e: round(0.5 + 0.1 * e + 0.01 * number, 4) for e in range(epochs)}


def make_study(storage: str, name: str = "digits-cnn", run_ids=None):
    """The TRIALS in a new study; trial i's user_attrs["run_id"] is run_ids[i] (10 + i)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    start = datetime.datetime(2026, 1, 1)
    for i, (lr, epochs, opt, state, value) in enumerate(TRIALS):
        trial = create_trial(
            params={"optim.lr": lr, "train.epochs": epochs, "optim.name": opt},
            distributions=SPACE, value=value, state=state,
            intermediate_values=intermediate(i, state),
            user_attrs={"run_id": (run_ids or {}).get(i, 10 + i)})
        trial.datetime_start = start + datetime.timedelta(minutes=i)
        trial.datetime_complete = trial.datetime_start + datetime.timedelta(seconds=30 + i)
        study.add_trial(trial)
    return study


FAKE_SEARCH = textwrap.dedent('''\
    """Stands in for `python -m app`: records its argv and the TOML it was given, then acts
    as the test asks (env FAKE_MODE): print the JSON lines of a finished search, fail with a
    message, or wait for Ctrl+C."""
    import json, os, pathlib, sys, time
    out = pathlib.Path(os.environ["FAKE_OUT"])
    (out / "argv.json").write_text(json.dumps(sys.argv[1:]))
    (out / "config.toml").write_text(pathlib.Path(sys.argv[2]).read_text())
    mode = os.environ.get("FAKE_MODE", "finish")
    if mode == "finish":
        for n, state, value in ((0, "COMPLETE", 0.9), (1, "COMPLETE", 0.95), (2, "PRUNED", None)):
            print(json.dumps({"event": "trial_finished", "number": n, "state": state,
                              "value": value, "run_id": 10 + n}), flush=True)
        print("a line that is not JSON", flush=True)
        print(json.dumps({"event": "search_finished", "best_trial": 1, "best_value": 0.95,
                          "best_run_id": 11}), flush=True)
    elif mode == "fail":
        print("Traceback (most recent call last):", file=sys.stderr)
        print("  File x", file=sys.stderr)
        print('torchwork: search.space."optim.lr": low must be below high', file=sys.stderr)
        sys.exit(2)
    elif mode == "stubborn":  # ignores Ctrl+C
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(json.dumps({"event": "trial_finished", "number": 0, "state": "COMPLETE",
                          "value": 0.5, "run_id": 1}), flush=True)
        time.sleep(60)
    else:
        import signal  # Ctrl+C as `torchwork search` takes it, even where a background
        signal.signal(signal.SIGINT, signal.default_int_handler)  # shell ignores it
        try:
            print(json.dumps({"event": "trial_finished", "number": 0, "state": "COMPLETE",
                              "value": 0.5, "run_id": 1}), flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            (out / "interrupted").write_text("yes")
            sys.exit(130)
''')


def fake_launcher(tmp_path) -> list[str]:
    script = tmp_path / "fake_search.py"
    script.write_text(FAKE_SEARCH)
    return [sys.executable, str(script)]
