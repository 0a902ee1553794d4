"""Read an Optuna study into plain data for the Search dock's views, off the GUI thread.

``read_study`` opens the study with Optuna (``optuna.load_study``) and copies
what the views draw into frozen dataclasses: no Optuna object reaches the
GUI thread, and a study that another process (the search, or a worker on
another machine) is writing is only ever read. Parameter importances use
Optuna's own evaluator (``optuna.importance.get_param_importances``); it fits a
model over the trials, so it runs here, in the reader's thread, and only when
the number of finished trials has changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QThread, Signal

COMPLETE, PRUNED, FAIL, RUNNING = "COMPLETE", "PRUNED", "FAIL", "RUNNING"


class StudyReadError(RuntimeError):
    """A study that cannot be read; the message names the storage or study and the fix."""


@dataclass(frozen=True)
class ParamInfo:
    """How a parameter was sampled: the views place log ranges and choices accordingly."""
    name: str
    log: bool = False
    choices: tuple | None = None  # a categorical parameter's choices, in order


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    value: float | None
    params: dict[str, Any]
    duration_s: float | None
    run_id: int | None
    intermediate: dict[int, float] = field(default_factory=dict)  # step (epoch) -> value


@dataclass(frozen=True)
class StudySnapshot:
    name: str
    storage: str
    direction: str  # maximize | minimize
    trials: tuple[TrialRow, ...]
    params: tuple[ParamInfo, ...]
    best: TrialRow | None
    importances: dict[str, float] | None = None  # None: not computed (see importance_note)
    importance_note: str = ""

    def finished(self) -> int:
        return sum(t.state in (COMPLETE, PRUNED, FAIL) for t in self.trials)

    def complete(self) -> list[TrialRow]:
        return [t for t in self.trials if t.state == COMPLETE and t.value is not None]


def default_storage(workspace_dir) -> str:
    """Where `torchwork search` keeps its studies unless told otherwise."""
    from engine.workspace.store import default_workspace_dir

    folder = Path(workspace_dir) if workspace_dir else default_workspace_dir()
    return f"sqlite:///{folder.resolve() / 'search.sqlite'}"


def read_study(storage: str, name: str, *, importances: bool = True,
               previous: StudySnapshot | None = None) -> StudySnapshot:
    """The study ``name`` in ``storage`` as plain data. Importances are computed again only
    when ``importances`` and the finished trials differ from ``previous``'s."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage.startswith("sqlite:///"):
        path = Path(storage[len("sqlite:///"):])
        if not path.is_file():  # Optuna would create an empty database there
            raise StudyReadError(f"no study database at {path}: start a search first, or "
                                 f"open the storage URL the search used")
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
    except KeyError:
        names = _study_names(storage)
        raise StudyReadError(f"no study {name!r} in {storage}" + (
            f"; it holds {', '.join(names)}" if names else "; it holds no study yet")) from None
    except Exception as exc:  # SQLAlchemy, a driver, a schema newer than this Optuna
        raise StudyReadError(f"cannot read study {name!r} from {storage}: "
                             f"{type(exc).__name__}: {exc}") from None
    direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE \
        else "minimize"
    rows = tuple(_row(t) for t in trials)
    params = _params(trials)
    complete = [t for t in rows if t.state == COMPLETE and t.value is not None]
    best = None
    if complete:
        pick = max if direction == "maximize" else min
        best = pick(complete, key=lambda t: t.value)
    snapshot = StudySnapshot(name, storage, direction, rows, params, best)
    if not importances:
        return snapshot
    if previous is not None and previous.importances is not None \
            and previous.finished() == snapshot.finished():
        values, note = previous.importances, previous.importance_note
    else:
        values, note = _importances(study, len(complete))
    return StudySnapshot(name, storage, direction, rows, params, best, values, note)


def study_names(storage: str) -> list[str]:
    """The studies in ``storage`` (the Open study dialog's list)."""
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).is_file():
        return []
    return _study_names(storage)


def _study_names(storage: str) -> list[str]:
    import optuna

    try:
        return sorted(optuna.get_all_study_names(storage=storage))
    except Exception:  # the caller reports the first error; a list is a bonus
        return []


def _row(trial) -> TrialRow:
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    run_id = trial.user_attrs.get("run_id")
    value = trial.value if trial.values is not None and len(trial.values) == 1 else None
    return TrialRow(trial.number, trial.state.name, value, dict(trial.params), duration,
                    int(run_id) if isinstance(run_id, int | float) else None,
                    {int(k): float(v) for k, v in sorted(trial.intermediate_values.items())})


def _params(trials) -> tuple[ParamInfo, ...]:
    """Every parameter any trial sampled, in the order they first appeared."""
    from optuna.distributions import CategoricalDistribution

    found: dict[str, ParamInfo] = {}
    for trial in trials:
        for name, dist in trial.distributions.items():
            if name in found:
                continue
            if isinstance(dist, CategoricalDistribution):
                found[name] = ParamInfo(name, choices=tuple(dist.choices))
            else:
                found[name] = ParamInfo(name, log=bool(getattr(dist, "log", False)))
    return tuple(found.values())


def _importances(study, complete: int) -> tuple[dict[str, float] | None, str]:
    import optuna

    if complete < 2:
        return None, "Importances need at least two completed trials."
    try:
        values = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as exc:
        return None, f"Importances cannot be computed yet: {exc}"
    clean = {k: float(v) for k, v in values.items() if math.isfinite(v)}
    return clean, "fANOVA (Optuna's default evaluator) over the completed trials."


class StudyReader(QThread):
    """One read of a study on a thread of its own; ``read`` or ``failed`` when done."""

    read = Signal(object)  # StudySnapshot
    failed = Signal(str)

    def __init__(self, storage: str, name: str, previous: StudySnapshot | None = None,
                 parent=None):
        super().__init__(parent)
        self.storage, self.name, self.previous = storage, name, previous

    def run(self) -> None:
        try:
            snapshot = read_study(self.storage, self.name, previous=self.previous)
        except StudyReadError as exc:
            self.failed.emit(str(exc))
            return
        self.read.emit(snapshot)
