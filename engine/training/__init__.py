"""Training: the Trainer event loop, its events and the handlers that attach to it.

The Trainer (and torch) load on first use: the window imports engine.training.events
and engine.training.relay before its first frame, when torch must not be imported yet
(tests/app/test_startup.py)."""

from . import events

__all__ = ["Trainer", "RunResult", "CheckpointError", "events"]


def __getattr__(name: str):
    if name in ("Trainer", "RunResult"):
        from . import trainer

        return getattr(trainer, name)
    if name == "CheckpointError":
        from .checkpoint import CheckpointError

        return CheckpointError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
