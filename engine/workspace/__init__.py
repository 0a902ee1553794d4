"""The workspace: a SQLite store of runs and their metrics, and one folder per run."""

from engine.workspace.records import RunRecord, Series
from engine.workspace.store import Workspace, WorkspaceError, default_workspace_dir

__all__ = ["RunRecord", "Series", "Workspace", "WorkspaceError", "WorkspaceWriter",
           "default_workspace_dir"]


def __getattr__(name: str):
    # WorkspaceWriter needs engine.training, which loads torch (seconds): listing
    # runs or following one from another process must not wait for that.
    if name == "WorkspaceWriter":
        from engine.workspace.writer import WorkspaceWriter
        return WorkspaceWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
