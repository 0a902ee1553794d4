"""File ▸ Export trained model…: choose a run, a format and a file; export in the background.

The dialog only collects the choice (and asks before overwriting). The export
itself (rebuild the run's model, write, reload and verify) is torch work of
seconds, so it runs in a process of its own, waited for by an Exporter's worker
thread, and its report or error comes back as a signal for the window's message
bar. Its own process, not a thread of the window's: torch.export and the ONNX
exporter running beside the GUI thread crashed the window (a segfault while the
GUI thread collected garbage), and the window keeps its cores for drawing.
Same engine call as `torchwork export RUN --format F --out PATH`.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt, QThread, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStatusBar,
    QVBoxLayout,
    QWidget,
)

from engine.export import (
    FORMATS,
    SUFFIXES,
    ExportError,
    export_model,
    load_run_model,
    run_checkpoint,
)
from engine.workspace import RunRecord, Workspace, WorkspaceError

from ..widgets.buttons import ok_cancel
from ..widgets.message_bar import MessageBar

DESCRIPTIONS = {
    "safetensors": "Weights with the config and preprocessing to rebuild the model in "
                   "PyTorch (no code is unpickled when loading).",
    "pt2": "A torch.export program: the model's graph and weights, loaded with "
           "torch.export.load without its Python code. The successor of TorchScript.",
    "onnx": "ONNX with a dynamic batch dimension, for ONNX Runtime and other runtimes. "
            "Very large models keep their weights in a .data file beside it.",
}
EXPORT_SOURCE = "File ▸ Export trained model"
FILTERS = {"safetensors": "safetensors (*.safetensors)", "pt2": "torch.export program (*.pt2)",
           "onnx": "ONNX (*.onnx)"}


@dataclass(frozen=True)
class ExportRequest:
    run_id: int
    run_label: str
    format: str
    path: Path
    overwrite: bool


def exportable_runs(workspace_dir) -> list[RunRecord]:
    """Trained runs of the workspace that have a checkpoint to export, newest first
    (not profile captures: a few steps recorded for a trace make no model to use)."""
    try:
        with Workspace(workspace_dir) as ws:
            runs = ws.list_runs(kind="train")
    except (WorkspaceError, OSError):
        return []
    return [r for r in runs if run_checkpoint(r) is not None]


class ExportDialog(QDialog):
    """The run (defaulting to ``current``), the format and the file of an export.

    ``confirm(title, text) -> bool`` asks before an existing file is replaced
    (the window's own confirm, so tests can answer it).
    """

    def __init__(self, runs: list[RunRecord], current: int | None, folder: str,
                 confirm: Callable[[str, str], bool], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Export trained model")
        self.setAttribute(Qt.WA_DeleteOnClose)  # read ``request`` right after exec()
        self.setMinimumWidth(560)
        self._confirm = confirm
        self._folder = Path(folder) if folder else Path.home()
        self.request: ExportRequest | None = None
        self.runs = QComboBox()
        for run in runs:
            best = f", {run.best_metric} {run.best_val:.4g}" if run.best_val is not None else ""
            self.runs.addItem(f"{run.id}  {run.name} ({run.status}{best})", run)
        ids = [r.id for r in runs]
        self.runs.setCurrentIndex(ids.index(current) if current in ids else 0)
        self.format = QComboBox()
        for fmt in FORMATS:
            self.format.addItem(fmt, fmt)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.path = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Run", self.runs)
        form.addRow("Format", self.format)
        form.addRow("", self.description)
        form.addRow("File", row)
        note = QLabel("The file is reloaded after writing and checked against the model on "
                      "held-out validation rows; a file that does not match is not kept.")
        note.setWordWrap(True)
        buttons, self.export_button = ok_cancel(self, "Export")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.runs.currentIndexChanged.connect(self._default_path)
        self.format.currentIndexChanged.connect(self._format_changed)
        self.path.textChanged.connect(self._path_changed)
        self._format_changed()
        self._default_path()
        self._path_changed(self.path.text())

    def chosen_format(self) -> str:
        return self.format.currentData()

    def set_format(self, fmt: str) -> None:
        self.format.setCurrentIndex(FORMATS.index(fmt))

    def _format_changed(self) -> None:
        fmt = self.chosen_format()
        self.description.setText(DESCRIPTIONS[fmt])
        text = self.path.text().strip()
        if text:  # keep the name, follow the format's suffix
            self.path.setText(str(Path(text).with_suffix(SUFFIXES[fmt])))

    def _default_path(self) -> None:
        run: RunRecord | None = self.runs.currentData()
        if run is not None:
            name = run.dir.name + SUFFIXES[self.chosen_format()]
            self.path.setText(str(self._folder / name))

    def _path_changed(self, text: str) -> None:
        self.export_button.setEnabled(bool(text.strip()) and self.runs.count() > 0)

    def browse(self) -> None:
        fmt = self.chosen_format()
        path, _ = QFileDialog.getSaveFileName(self, "Export trained model", self.path.text(),
                                              FILTERS[fmt],
                                              options=QFileDialog.DontConfirmOverwrite)
        if path:  # overwriting is asked on Export, once
            self.path.setText(path if path.endswith(SUFFIXES[fmt]) else path + SUFFIXES[fmt])

    def accept(self) -> None:
        run: RunRecord | None = self.runs.currentData()
        text = self.path.text().strip()
        if run is None or not text:
            return
        path = Path(text).expanduser()
        overwrite = path.exists()
        if path.is_dir() or (overwrite and not self._confirm(
                "Replace the file?", f"{path} already exists. Replace it with this export?")):
            return
        self.request = ExportRequest(run.id, f"run {run.id} ({run.name})", self.chosen_format(),
                                     path, overwrite)
        super().accept()


def export_run(workspace_dir, run_id: int, fmt: str, path: Path, overwrite: bool):
    """In the export's own process: rebuild the run's model, export and verify it."""
    loaded = load_run_model(workspace_dir, run_id)
    return export_model(loaded.model, loaded.example, fmt, path, meta=loaded.meta,
                        overwrite=overwrite)


class _ExportJob(QThread):
    succeeded = Signal(object)  # ExportReport
    failed = Signal(str)

    def __init__(self, workspace_dir, request: ExportRequest, parent=None):
        super().__init__(parent)
        self.workspace_dir, self.request = workspace_dir, request

    def run(self) -> None:
        r = self.request
        workspace = None if self.workspace_dir is None else str(self.workspace_dir)
        try:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                report = pool.submit(export_run, workspace, r.run_id, r.format, r.path,
                                     r.overwrite).result()
        except ExportError as exc:
            self.failed.emit(f"Export of {r.run_label} as {r.format} failed: {exc}")
        except Exception as exc:  # a bug must reach the window, not end the thread silently
            self.failed.emit(f"Export of {r.run_label} as {r.format} failed unexpectedly: "
                             f"{type(exc).__name__}: {exc}")
        else:
            self.succeeded.emit(report)


class Exporter(QObject):
    """Runs one export at a time on a worker thread; the report or error comes as a signal."""

    succeeded = Signal(object)  # ExportReport
    failed = Signal(str)

    def __init__(self, workspace_dir, parent=None):
        super().__init__(parent)
        self.workspace_dir = workspace_dir
        self._job: _ExportJob | None = None

    @property
    def busy(self) -> bool:
        # Until the job's last signal has been handled, not merely until its thread
        # returned: once this is False its report is on screen.
        return self._job is not None

    def start(self, request: ExportRequest) -> None:
        if self.busy:
            raise RuntimeError("an export is already running")
        job = _ExportJob(self.workspace_dir, request, self)
        job.succeeded.connect(self.succeeded)
        job.failed.connect(self.failed)
        job.finished.connect(self._on_job_finished)
        self._job = job
        job.start()

    def _on_job_finished(self) -> None:
        self._job.deleteLater()
        self._job = None

    def wait(self) -> None:
        """Block until the running export ends (on closing the window: a thread is never
        killed mid-write)."""
        if self._job is not None:
            self._job.wait()


class ExportActions(QObject):
    """File ▸ Export trained model…, as `torchwork export`, for the window.

    The window sets ``current_run`` to the run it last showed or trained: the
    dialog's default. ``confirm`` should look the window's up at each call, as
    tests replace it after the window is built.
    """

    def __init__(self, *, exporter: Exporter, action: QAction, messages: MessageBar,
                 status_bar: QStatusBar, settings: QSettings,
                 confirm: Callable[[str, str], bool], parent: QWidget):
        super().__init__(parent)
        self.exporter, self.action, self.messages = exporter, action, messages
        self.status_bar, self.settings = status_bar, settings
        self._confirm, self._window = confirm, parent
        self.current_run: int | None = None
        action.triggered.connect(self.export_model_dialog)
        exporter.succeeded.connect(self._on_export_done)
        exporter.failed.connect(self._on_export_failed)
        self.refresh()

    def export_model_dialog(self) -> None:
        if self.exporter.busy:
            self.messages.show_message("An export is already running: its report shows here "
                                       "when it is verified.", "info", EXPORT_SOURCE,
                                       everywhere=True)
            return
        runs = exportable_runs(self.exporter.workspace_dir)
        self.refresh(runs)
        if not runs:
            return
        dialog = ExportDialog(runs, self.current_run, self.settings.value("export_dir", ""),
                              self._confirm, self._window)
        if not dialog.exec():
            return
        request = dialog.request
        self.settings.setValue("export_dir", str(request.path.parent))
        self.exporter.start(request)
        self.status_bar.showMessage(f"Exporting {request.run_label} as {request.format} and "
                                    f"verifying it…")

    def _on_export_done(self, report) -> None:
        """The verification shows in every dock (the window's log), wherever the user is."""
        self.status_bar.clearMessage()
        self.messages.show_message(report.summary(), "info", EXPORT_SOURCE, everywhere=True)

    def _on_export_failed(self, text: str) -> None:
        self.status_bar.clearMessage()
        self.messages.show_message(text, "error", EXPORT_SOURCE, everywhere=True)

    def refresh(self, runs=None) -> None:
        """Export is offered once some run has a checkpoint (after a run ends, or on demand)."""
        if not isinstance(runs, list):
            runs = exportable_runs(self.exporter.workspace_dir)
        self.action.setEnabled(bool(runs))
        self.action.setToolTip(
            "Export a run's trained model (safetensors, .pt2, ONNX), verified" if runs else
            "No trained run to export yet: train one first (Run ▸ Start)")
