"""What an export hands back, and the errors it raises.

Errors come in two kinds because the command line treats them differently:
bad input (an unknown format, a file that exists, a run with no weights) is
the caller's to fix before trying again (exit 2); a failed write or a failed
verification means the artefact could not be trusted (exit 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class ExportError(Exception):
    """An export that did not produce a trusted file; the message says why and what to do."""


class ExportInputError(ExportError):
    """The export cannot start from what it was given (format, path, run, checkpoint)."""


class VerificationError(ExportError):
    """The written file could not be reloaded, or its outputs differ from the model's."""


@dataclass(frozen=True)
class ExportReport:
    """A verified export: where it lies, how big it is and how closely it matches the model."""

    path: Path
    format: str
    size_bytes: int  # the main file plus every extra file
    extra_files: list[Path]  # written beside ``path`` and needed with it (ONNX external data)
    max_abs_diff: float  # reloaded artefact vs the original model on the held-out batch
    batch: int  # rows in the held-out batch
    tolerance: float  # the largest difference verification accepted
    notes: list[str] = field(default_factory=list)  # what a user should know about the file

    def to_dict(self) -> dict:
        """JSON-ready values (paths as strings)."""
        return {"path": str(self.path), "format": self.format, "size_bytes": self.size_bytes,
                "extra_files": [str(p) for p in self.extra_files],
                "max_abs_diff": self.max_abs_diff, "batch": self.batch,
                "tolerance": self.tolerance, "notes": list(self.notes)}

    def summary(self) -> str:
        """One paragraph for a person: what was written and how it was checked."""
        extra = "".join(f" + {p.name}" for p in self.extra_files)
        text = (f"Exported {self.format} to {self.path}{extra} ({human_size(self.size_bytes)}); "
                f"verified on a held-out batch of {self.batch}: max abs difference "
                f"{self.max_abs_diff:.3g} (tolerance {self.tolerance:.1g}).")
        return " ".join([text, *self.notes])


def human_size(n: float) -> str:
    """1234 -> '1.2 kB' (decimal units, as file managers show them)."""
    if n < 1000:
        return f"{int(n)} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000 or unit == "GB":
            break
    return f"{n:.1f} {unit}"
