"""A hyperparameter search: Optuna's study, and the workers that run its trials.

Each trial is an ordinary workspace run whose stored config holds the sampled
values (without [search]); its record carries the study and trial number, and
the trial's user attribute ``run_id`` names the run, so a view of the study can
open, resume or export any trial. Workers are processes (spawned, one CPU thread
each) that load the study from its storage and take trials until the study has
``n_trials`` of them (counted and created under a lock the storage holds, so
never more) or their time is up; workers on other machines join the
same study through the same storage (``torchwork search --join``), reading the
config from the study itself.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from engine.config import ConfigError, RunConfig

from .space import params, trial_config
from .storage import SearchError, TrialLock, open_storage, shown_url

CONFIG_ATTR = "torchwork.config"  # the study's run config with its [search], as TOML
WORKSPACE_ATTR = "torchwork.workspace"  # the starting machine's workspace (informative)
STATES = {"COMPLETE", "PRUNED", "FAIL"}


@dataclass(frozen=True)
class Plan:
    """What a worker needs, as plain data (it crosses into spawned processes)."""

    config_toml: str
    storage: str
    study: str
    workspace: str
    n_trials: int
    timeout: float
    seed: int | None  # the sampler's seed of worker 0; None: unseeded (joined workers)


class TrialStopped(Exception):
    """The search was stopped (Ctrl-C) while this trial trained: its run is resumable."""


# --- the study ---------------------------------------------------------------

def make_sampler(search, seed: int | None):
    import optuna

    with warnings.catch_warnings():  # qmc and gp are "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _sampler(optuna, search, seed)


def _sampler(optuna, search, seed: int | None):
    name = search.sampler
    if name == "tpe":
        # constant_liar: parallel workers do not all sample around the same running best
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler({p.key: p.grid() for p in params(search)}, seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.QMCSampler(seed=seed)


def make_pruner(search):
    import optuna

    return {"median": optuna.pruners.MedianPruner,
            "hyperband": optuna.pruners.HyperbandPruner,
            "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
            "none": optuna.pruners.NopPruner}[search.pruner]()


def grid_size(search) -> int:
    return math.prod(len(p.grid()) for p in params(search))


def start_study(cfg: RunConfig, storage: str, study: str, workspace: str):
    """Create the study (or continue the one of that name) and store the config in it."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = open_storage(storage, cfg.search.heartbeat)
    try:
        created = optuna.create_study(storage=rdb, study_name=study, load_if_exists=True,
                                      direction=cfg.search.direction)
    except ValueError as exc:  # a study of that name with another direction
        raise SearchError(f"study {study!r} in {shown_url(storage)}: {exc}") from None
    if created.direction.name.lower() != cfg.search.direction:
        raise SearchError(f"study {study!r} in {shown_url(storage)} already exists and "
                          f"{created.direction.name.lower()}s: set search.direction to match, "
                          f"or name another study with --study")
    created.set_user_attr(CONFIG_ATTR, cfg.to_toml())
    created.set_user_attr(WORKSPACE_ATTR, workspace)
    return created


def joined_config(storage: str, study: str, heartbeat: int = 10) -> RunConfig:
    """The config of an existing study (``--join``): stored in it by the first worker."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = open_storage(storage, heartbeat)
    names = [s.study_name for s in optuna.get_all_study_summaries(rdb, include_best_trial=False)]
    if study not in names:
        have = f"studies there: {', '.join(names)}" if names else "it holds no study yet"
        raise SearchError(f"no study {study!r} in {shown_url(storage)} ({have}): start it "
                          f"with `torchwork search CONFIG.toml --storage URL`")
    toml = optuna.load_study(study_name=study, storage=rdb).user_attrs.get(CONFIG_ATTR)
    if not toml:
        raise SearchError(f"study {study!r} was not started by `torchwork search` (it holds "
                          f"no torchwork config): join it with the tool that made it")
    try:
        return RunConfig.from_toml(toml)
    except ConfigError as exc:
        raise SearchError(f"the config stored in study {study!r} is not valid here: "
                          f"{exc}") from None


def summary(storage: str, study: str, heartbeat: int) -> dict:
    """The study's end: trials by state and its best trial (None before one completes)."""
    import optuna

    loaded = optuna.load_study(study_name=study, storage=open_storage(storage, heartbeat))
    with warnings.catch_warnings():  # "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(loaded)
    trials = loaded.get_trials(deepcopy=False)
    counts = {state: sum(t.state.name == state for t in trials) for state in STATES}
    done = [t for t in trials if t.state.name == "COMPLETE"]
    best = loaded.best_trial if done else None
    return {"event": "search_finished", "study": study, "trials": len(trials),
            "complete": counts["COMPLETE"], "pruned": counts["PRUNED"], "failed": counts["FAIL"],
            "best_trial": best.number if best else None,
            "best_value": best.value if best else None,
            "best_run_id": best.user_attrs.get("run_id") if best else None}


# --- a worker ---------------------------------------------------------------

class Worker:
    """Takes trials of the study until it has enough, the time is up or ``stop`` is set."""

    def __init__(self, plan: Plan, report: Callable[[dict], None], stop):
        import optuna

        self.plan = plan
        self.report = report
        self.stop = stop
        self.config = RunConfig.from_toml(plan.config_toml)
        self.search = self.config.search
        self.params = params(self.search)
        self._trainer = None
        self._lock = threading.Lock()
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own line per trial instead
        storage = open_storage(plan.storage, self.search.heartbeat)
        self.study = optuna.load_study(
            study_name=plan.study, storage=storage,
            sampler=make_sampler(self.search, plan.seed), pruner=make_pruner(self.search))
        self._claim = TrialLock(plan.storage, plan.study, storage)

    def run(self) -> None:
        import torch

        from engine.workspace import Workspace

        torch.set_num_threads(1)  # workers share the machine's cores, one each
        watcher = threading.Thread(target=self._watch_stop, daemon=True)
        watcher.start()
        started = time.monotonic()
        limit = self.plan.n_trials
        if self.search.sampler == "grid":
            limit = min(limit, grid_size(self.search))
        with Workspace(self.plan.workspace) as ws:
            try:
                while not self.stop.is_set():
                    if self.plan.timeout and time.monotonic() - started >= self.plan.timeout:
                        break
                    # Counted and created under the study's lock (released as the trial
                    # starts): workers asking at once cannot both take the last trial.
                    self._claim.acquire()
                    try:
                        if self._trials_so_far() >= limit:
                            break
                        self.study.optimize(lambda trial: self._objective(trial, ws),
                                            n_trials=1, catch=(Exception,),
                                            callbacks=[self._finished])
                    finally:
                        self._claim.release()
            finally:
                self._claim.close()

    def _trials_so_far(self) -> int:
        """The study's trials in any state: running and waiting ones count."""
        return len(self.study.get_trials(deepcopy=False))

    def _watch_stop(self) -> None:
        # Polled, not waited on: a process that exits while waiting on a multiprocessing
        # Event leaves a sleeper behind, and the parent's set() would wait for it forever.
        while not self.stop.is_set():
            time.sleep(0.2)
        with self._lock:
            if self._trainer is not None:
                self._trainer.stop("user")

    def _objective(self, trial, ws) -> float:
        import optuna

        from engine.monitor.recorder import record_run
        from engine.run_builder import build_trainer

        from .pruning import PruningHandler

        self._claim.release()  # the trial exists: the next worker may count
        try:
            cfg = trial_config(self.config, {p.key: p.suggest(trial) for p in self.params})
            trainer = build_trainer(cfg, ws)
        except Exception as exc:
            trial.set_user_attr("error", str(exc))
            raise
        run = ws.create_run(trainer.config, f"{self.plan.study}-trial{trial.number}")
        ws.update_run(run.id, study=self.plan.study, trial=trial.number)
        trial.set_user_attr("run_id", run.id)
        trial.set_user_attr("run_dir", str(run.dir))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        handler = PruningHandler(trial, self.search.objective).attach(trainer)
        recorder = record_run(trainer, ws, run)
        with self._lock:
            self._trainer = trainer
        if self.stop.is_set():
            trainer.stop("user")
        try:
            result = trainer.run()
        finally:
            with self._lock:
                self._trainer = None
            recorder.stop()
        if handler.pruned:
            ws.finish_run(run.id, "pruned")
            raise optuna.TrialPruned(f"pruned at epoch {result.epochs_completed}")
        if result.status == "failed":
            trial.set_user_attr("error", result.error)
            raise RuntimeError(result.error)
        if result.status == "stopped":
            message = f"stopped with the search: `torchwork resume {run.id}` continues its run"
            trial.set_user_attr("error", message)
            raise TrialStopped(message)
        if handler.value is None:
            message = f"no finite {self.search.objective} was measured"
            trial.set_user_attr("error", message)
            raise RuntimeError(message)
        return handler.value

    def _finished(self, study, trial) -> None:
        self.report({"event": "trial_finished", "number": trial.number,
                     "state": trial.state.name, "value": trial.value,
                     "run_id": trial.user_attrs.get("run_id"),
                     "params": trial.params, "error": trial.user_attrs.get("error")})


def work(plan: Plan, events, stop) -> None:
    """A spawned worker process: its trial events go to the parent through ``events``.

    Ctrl-C in a terminal reaches every process of the group: the parent alone handles
    it and sets ``stop``, so a trial is never cut inside Optuna's bookkeeping."""
    from sqlalchemy.exc import SQLAlchemyError

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        Worker(plan, events.put, stop).run()
    except (SearchError, ConfigError) as exc:
        events.put({"event": "worker_error", "error": str(exc)})
    except SQLAlchemyError as exc:  # the database went away mid-search
        events.put({"event": "worker_error",
                    "error": f"the study's storage failed: {str(exc).strip().splitlines()[0]}"})


# --- the search -------------------------------------------------------------

def run_search(plan: Plan, workers: int, report: Callable[[dict], None], stop, abort) -> None:
    """Run ``workers`` trial processes on this machine until the study is done; ``report``
    sees each trial's end. ``stop`` (a threading.Event, the first Ctrl-C) ends the running
    trials at their next step, as resumable stopped runs; ``abort`` (the second) kills the
    workers, whose trials the next worker marks failed after their heartbeat."""
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    shared_stop = context.Event()
    processes = []
    for index in range(workers):
        seed = None if plan.seed is None else plan.seed + index
        worker_plan = Plan(plan.config_toml, plan.storage, plan.study, plan.workspace,
                           plan.n_trials, plan.timeout, seed)
        process = context.Process(target=work, args=(worker_plan, events, shared_stop),
                                  name=f"torchwork-search-{index}")
        process.start()
        processes.append(process)
    try:
        while not abort.is_set() and (any(p.is_alive() for p in processes)
                                      or not events.empty()):
            if stop.is_set():
                shared_stop.set()
            try:
                report(events.get(timeout=0.2))
            except queue.Empty:
                pass
    finally:
        shared_stop.set()
        for process in processes:
            while process.is_alive() and not abort.is_set():
                process.join(0.2)
            if process.is_alive():
                process.kill()
                process.join()
        while True:  # what the last trials reported as the workers ended
            try:
                report(events.get_nowait())
            except (queue.Empty, OSError, ValueError):
                break
