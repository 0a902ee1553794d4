"""Training: the Trainer event loop, its events and the handlers that attach to it."""

from . import events
from .checkpoint import CheckpointError
from .trainer import RunResult, Trainer

__all__ = ["Trainer", "RunResult", "CheckpointError", "events"]
