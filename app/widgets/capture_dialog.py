"""Profile ▸ Capture: the schedule and options of a torch.profiler capture, and what to profile."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFormLayout,
    QLabel,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
)

from engine.profiling.options import CaptureOptions

from .buttons import ok_cancel

CURRENT_RUN, DEDICATED_RUN = "current", "dedicated"


class CaptureDialog(QDialog):
    """Chooses wait/warmup/active steps, the profiler's options and the run to profile.

    ``running``: a run is training, so its next steps can be profiled;
    ``can_start``: the configuration is valid and nothing runs, so a short
    dedicated run of it can start.
    """

    def __init__(self, running: bool, can_start: bool, parent=None,
                 options: CaptureOptions | None = None):
        super().__init__(parent)
        self.setWindowTitle("Capture a profile")
        o = options or CaptureOptions()
        self.wait = self._spin(o.wait, 0, "Steps to skip before the profiler starts")
        self.warmup = self._spin(o.warmup, 0, "Steps profiled but discarded: start-up costs "
                                              "stay out of the figures")
        self.active = self._spin(o.active, 1, "Steps recorded in the trace")
        self.record_shapes = QCheckBox("Record input shapes")
        self.record_shapes.setChecked(o.record_shapes)
        self.profile_memory = QCheckBox("Profile memory (allocations, the memory curve)")
        self.profile_memory.setChecked(o.profile_memory)
        self.with_stack = QCheckBox("Record Python call stacks (larger traces)")
        self.with_stack.setChecked(o.with_stack)
        self.current = QRadioButton("Profile the next steps of the current run")
        self.dedicated = QRadioButton("Start a short dedicated run of the current configuration")
        self.current.setEnabled(running)
        self.dedicated.setEnabled(can_start)
        (self.current if running else self.dedicated).setChecked(True)
        form = QFormLayout()
        form.addRow("Wait steps", self.wait)
        form.addRow("Warmup steps", self.warmup)
        form.addRow("Active steps", self.active)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for widget in (self.record_shapes, self.profile_memory, self.with_stack):
            layout.addWidget(widget)
        layout.addSpacing(6)
        layout.addWidget(self.current)
        layout.addWidget(self.dedicated)
        if not (running or can_start):
            note = QLabel("Nothing to profile: start a run, or fix the configuration to "
                          "profile a short run of it.")
            note.setWordWrap(True)
            layout.addWidget(note)
        buttons, capture = ok_cancel(self, "Capture")
        capture.setEnabled(running or can_start)
        layout.addWidget(buttons)

    @staticmethod
    def _spin(value: int, low: int, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(low, 1000)
        spin.setValue(value)
        spin.setToolTip(tip)
        return spin

    def options(self) -> CaptureOptions:
        return CaptureOptions(wait=self.wait.value(), warmup=self.warmup.value(),
                              active=self.active.value(),
                              record_shapes=self.record_shapes.isChecked(),
                              profile_memory=self.profile_memory.isChecked(),
                              with_stack=self.with_stack.isChecked())

    def mode(self) -> str:
        return CURRENT_RUN if self.current.isChecked() else DEDICATED_RUN
