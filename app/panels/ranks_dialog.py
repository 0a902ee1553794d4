"""Run ▸ Start on N processes: how many local processes train the form's configuration.

N is chosen from the devices found: one process per CUDA device when the run
trains on GPUs (NCCL), else CPU processes up to the core count (gloo). The run
itself is `torchwork run CONFIG --nproc-per-node N` (app/rank_launch.py).
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
)

from engine.distributed.launch import local_slots

from ..widgets.buttons import ok_cancel


def describe(kind: str, count: int, backend: str) -> str:
    """The devices found, in one sentence for the dialog."""
    if kind == "cuda":
        return (f"{count} CUDA device{'s' if count != 1 else ''} found: one process per GPU, "
                f"gradients averaged over {backend.upper()} (DistributedDataParallel).")
    return (f"No GPU for this run: CPU processes, up to the {count} core{'s' if count != 1 else ''}"
            f" found, one thread each, gradients averaged over {backend} "
            f"(DistributedDataParallel).")


class RanksDialog(QDialog):
    """Asks for N; ``processes`` is the answer once accepted."""

    def __init__(self, device: str, batch_size: int, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Start on N processes")
        self.setMinimumWidth(520)  # the command line on one line, the sentences on two
        self.kind, self.count, self.backend = local_slots(device)
        layout = QVBoxLayout(self)
        self.found = QLabel(describe(self.kind, self.count, self.backend))
        self.found.setWordWrap(True)
        layout.addWidget(self.found)
        form = QFormLayout()
        self.spin = QSpinBox()
        self.spin.setRange(1, max(1, self.count))
        self.spin.setValue(min(2, self.count) if self.kind == "cpu" else self.count)
        self.spin.setAccessibleName("Processes")
        self.spin.valueChanged.connect(self._update_batch)
        form.addRow("Processes:", self.spin)
        self.batch = QLabel()
        self.batch.setWordWrap(True)
        form.addRow("Batch:", self.batch)
        layout.addLayout(form)
        self._batch_size = batch_size
        self._update_batch(self.spin.value())
        command = QLabel("The same as <code>torchwork run CONFIG --nproc-per-node N</code> "
                         "from a terminal; the window follows rank 0.")
        command.setWordWrap(True)
        layout.addWidget(command)
        buttons, _ = ok_cancel(self, "Start")
        layout.addWidget(buttons)

    @property
    def processes(self) -> int:
        return self.spin.value()

    def _update_batch(self, n: int) -> None:
        b = self._batch_size
        self.batch.setText(f"data.batch_size={b} per process: {b * n} samples per step")
