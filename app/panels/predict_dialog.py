"""File ▸ Predict…: a run's model on a new table or images, with a progress bar.

The dialog collects the run (through the window's RunPicker), the input (a table
file, an image folder or list) and the output CSV. The prediction is
engine.predict.predict_file, the same as `torchwork predict`, in a process of its
own (spawned: torch work stays out of the window's process) whose progress and
result come back over a queue read by a worker thread, as signals. The dialog is
not modal, so the window stays usable; the result or the error shows in the
window's message bar, in every dock.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt, QThread, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.workspace import RunRecord

from ..dialogs import RunPicker
from ..widgets.message_bar import MessageBar

PREDICT_SOURCE = "File ▸ Predict"
DATA_FILTER = "Tables and image lists (*.csv *.tsv *.parquet *.txt);;All files (*)"


@dataclass(frozen=True)
class PredictRequest:
    run_id: int
    run_label: str
    data: Path
    out: Path


class _PredictJob(QThread):
    progressed = Signal(int, int)  # inputs done, inputs in all
    succeeded = Signal(object, object)  # report dict, notes (list of str)
    failed = Signal(str)
    cancelled = Signal()  # the process was ended and what it had begun to write removed

    def __init__(self, workspace_dir, request: PredictRequest, parent=None):
        super().__init__(parent)
        self.workspace_dir, self.request = workspace_dir, request
        self._cancel = threading.Event()
        self._child = None
        self._done = False  # the CSV is written

    def cancel(self) -> None:
        """End the prediction's process now (from the GUI thread): SIGTERM, no cleanup of
        its own, so this thread then removes the temporary CSV it was writing. The output
        file is only ever replaced whole (engine.files.atomic_path): it stays as it was."""
        self._cancel.set()
        child = self._child
        if child is not None and child.is_alive():
            child.terminate()

    def run(self) -> None:
        from engine.predict import DEFAULT_BATCH, predict_to_queue

        r = self.request
        workspace = None if self.workspace_dir is None else str(self.workspace_dir)
        context = multiprocessing.get_context("spawn")
        messages = context.Queue()
        partial_before = set(_partial_files(r.out))
        try:
            child = context.Process(target=predict_to_queue, daemon=True,
                                    args=(workspace, r.run_id, str(r.data), str(r.out),
                                          DEFAULT_BATCH, messages))
            child.start()
        except Exception as exc:  # must reach the window, not end the thread silently
            self.failed.emit(f"cannot start the prediction's process: "
                             f"{type(exc).__name__}: {exc}")
            messages.close()
            return
        self._child = child
        if self._cancel.is_set():  # cancelled while the process was starting
            child.terminate()
        try:
            self._follow(child, messages)
        finally:
            child.join(5)
            if child.is_alive():  # stuck where SIGTERM does not reach it
                child.kill()
                child.join()
            if self._cancel.is_set() and not self._done:
                self._cancelled(messages, partial_before)
            messages.close()
            messages.join_thread()

    def _cancelled(self, messages, partial_before: set[Path]) -> None:
        """The process has ended; unless it had finished first, remove what it began."""
        while True:  # a "done" sent just before Cancel was pressed: the CSV is complete
            try:
                message = messages.get(timeout=0.1)
            except Exception:  # empty, or a message the kill cut short
                break
            if message[0] == "done":
                self._done = True
                self.succeeded.emit(message[1], message[2])
                return
        for path in set(_partial_files(self.request.out)) - partial_before:
            path.unlink(missing_ok=True)
        self.cancelled.emit()

    def _follow(self, child, messages) -> None:
        while True:
            if self._cancel.is_set():
                return
            try:
                message = messages.get(timeout=0.2)
            except queue.Empty:
                if self._cancel.is_set():
                    return
                if not child.is_alive():
                    self.failed.emit(f"the prediction's process ended unexpectedly (exit code "
                                     f"{child.exitcode})")
                    return
                continue
            if message[0] == "progress":
                self.progressed.emit(message[1], message[2])
            elif message[0] == "done":
                self._done = True  # the CSV is in place: too late to cancel
                self.succeeded.emit(message[1], message[2])
                return
            else:
                self.failed.emit(message[1])
                return


def _partial_files(out: Path) -> list[Path]:
    """The temporary files engine.files.atomic_path writes beside ``out`` before it
    replaces it."""
    return list(out.parent.glob(f".{out.name}.*.tmp"))


class PredictDialog(QDialog):
    """Run (chosen in a RunPicker), input and output of a prediction; shows its progress
    while it runs. ``confirm(title, text) -> bool`` asks before an existing CSV is replaced.
    """

    requested = Signal(object)  # PredictRequest
    cancelRequested = Signal()

    def __init__(self, runs: list[RunRecord], current: int | None, folder: str,
                 confirm: Callable[[str, str], bool], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Predict with a trained run")
        self.setMinimumWidth(600)
        self._runs = {r.id: r for r in runs}
        self._confirm = confirm
        self._folder = Path(folder) if folder else Path.home()
        self.run_id: int | None = current if current in self._runs else next(iter(self._runs),
                                                                               None)
        self.run_label = QLabel()
        choose = QPushButton("Choose…")
        choose.clicked.connect(self.choose_run)
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_label, 1)
        run_row.addWidget(choose)
        self.data = QLineEdit()
        self.data.setPlaceholderText("a table (.csv, .tsv, .parquet), an image folder or list")
        data_file, data_folder = QPushButton("File…"), QPushButton("Folder…")
        data_file.clicked.connect(self.browse_data_file)
        data_folder.clicked.connect(self.browse_data_folder)
        data_row = QHBoxLayout()
        data_row.addWidget(self.data, 1)
        data_row.addWidget(data_file)
        data_row.addWidget(data_folder)
        self.out = QLineEdit()
        out_browse = QPushButton("Browse…")
        out_browse.clicked.connect(self.browse_out)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(out_browse)
        form = QFormLayout()
        form.addRow("Run", run_row)
        form.addRow("Input", data_row)
        form.addRow("Output CSV", out_row)
        note = QLabel("The input goes through the preprocessing fitted on the run's training "
                      "rows. The CSV gets one row per input: its row number or path, the "
                      "predicted class and one probability column per class (or the value).")
        note.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m inputs")
        self.progress.hide()
        self.status = QLabel()  # how the last prediction ended, when the dialog stays
        self.status.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Close)
        self.predict_button = buttons.button(QDialogButtonBox.Ok)
        self.predict_button.setText("Predict")
        self.cancel_button = buttons.addButton("Cancel", QDialogButtonBox.ActionRole)
        self.cancel_button.setToolTip("Stop the prediction; no output file is written")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel)
        buttons.accepted.connect(self.submit)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.data.textChanged.connect(self._changed)
        self.out.textChanged.connect(self._changed)
        self._show_run()

    # --- choices -------------------------------------------------------------
    def choose_run(self) -> None:
        picker = RunPicker(list(self._runs.values()), "Predict with run", "Choose", self)
        if picker.exec() and picker.chosen is not None:
            self.set_run(picker.chosen)

    def set_run(self, run_id: int) -> None:
        self.run_id = run_id
        self._show_run()

    def _show_run(self) -> None:
        run = self._runs.get(self.run_id)
        self.run_label.setText("(no trained run)" if run is None else
                               f"{run.id}  {run.name} ({run.status})")
        if run is not None and not self.out.text().strip():
            self.out.setText(str(self._folder / f"{run.dir.name}-predictions.csv"))
        self._changed()

    def browse_data_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Input table or image list",
                                              self.data.text(), DATA_FILTER)
        if path:
            self.data.setText(path)

    def browse_data_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Image folder", self.data.text())
        if path:
            self.data.setText(path)

    def browse_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Predictions CSV", self.out.text(),
                                              "CSV (*.csv)",
                                              options=QFileDialog.DontConfirmOverwrite)
        if path:
            self.out.setText(path if path.endswith(".csv") else path + ".csv")

    def _changed(self) -> None:
        ready = (self.run_id is not None and bool(self.data.text().strip())
                 and bool(self.out.text().strip()) and not self.progress.isVisible())
        self.predict_button.setEnabled(ready)

    # --- running -------------------------------------------------------------
    def submit(self) -> None:
        run = self._runs.get(self.run_id)
        data, out = self.data.text().strip(), self.out.text().strip()
        if run is None or not data or not out:
            return
        out_path = Path(out).expanduser()
        if out_path.is_dir() or (out_path.exists() and not self._confirm(
                "Replace the file?", f"{out_path} already exists. Replace it with these "
                                     f"predictions?")):
            return
        self.set_running(True)
        self.requested.emit(PredictRequest(run.id, f"run {run.id} ({run.name})",
                                           Path(data).expanduser(), out_path))

    def set_running(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setRange(0, 0)  # busy until the first batch reports its total
            self.status.hide()
        self._changed()

    def cancel(self) -> None:
        self.cancel_button.setEnabled(False)  # once; the process ends in a moment
        self.cancelRequested.emit()

    def show_cancelled(self, out: Path) -> None:
        self.set_running(False)
        self.status.setText(f"Prediction cancelled: {out.name} was not written."
                            if not out.exists() else
                            f"Prediction cancelled: {out.name} was left as it was.")
        self.status.show()

    def on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)


class PredictActions(QObject):
    """File ▸ Predict…, as `torchwork predict`, for the window: one prediction at a time.

    The dialog's default run is ``follows.current_run`` (the window's ExportActions:
    the run it last showed or trained). Replacing a file is asked through the
    window's ``confirm``, looked up at each call, as tests replace it.
    """

    finished = Signal()

    def __init__(self, *, workspace_dir, action: QAction, messages: MessageBar,
                 settings: QSettings, follows: QObject, parent: QWidget):
        super().__init__(parent)
        self.workspace_dir, self.action, self.messages = workspace_dir, action, messages
        self.settings, self._window = settings, parent
        self._follows = follows
        self.dialog: PredictDialog | None = None
        self._job: _PredictJob | None = None
        action.triggered.connect(self.open_dialog)

    @property
    def busy(self) -> bool:
        # Until the job's last signal has been handled, not merely until its thread
        # returned: once this is False its outcome is on screen.
        return self._job is not None

    def open_dialog(self) -> None:
        if self.dialog is not None:  # one at a time: bring it back
            self.dialog.show()
            self.dialog.raise_()
            return
        from app.panels.export_dialog import exportable_runs

        runs = exportable_runs(self.workspace_dir)
        if not runs:
            self.messages.show_message("No trained run to predict with yet: train one first "
                                       "(Run ▸ Start).", "info", PREDICT_SOURCE,
                                       everywhere=True)
            return
        dialog = PredictDialog(runs, self._follows.current_run,
                               self.settings.value("predict_dir", ""), self._ask,
                               self._window)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.requested.connect(self.start)
        dialog.cancelRequested.connect(self.cancel)
        dialog.destroyed.connect(self._dialog_gone)
        self.dialog = dialog
        dialog.show()

    def _ask(self, title: str, text: str) -> bool:
        return self._window.confirm(title, text)  # looked up now: tests replace it

    def _dialog_gone(self) -> None:
        self.dialog = None

    def start(self, request: PredictRequest) -> None:
        if self.busy:
            return
        self.settings.setValue("predict_dir", str(request.out.parent))
        job = _PredictJob(self.workspace_dir, request, self)
        job.progressed.connect(self._on_progress)
        job.succeeded.connect(self._on_done)
        job.failed.connect(self._on_failed)
        job.cancelled.connect(self._on_cancelled)
        job.finished.connect(self._on_job_finished)
        self._job, self._request = job, request
        job.start()

    def _on_job_finished(self) -> None:
        self._job.deleteLater()
        self._job = None
        self.finished.emit()  # after its outcome (done, failed or cancelled) is shown

    def _on_progress(self, done: int, total: int) -> None:
        if self.dialog is not None:
            self.dialog.on_progress(done, total)

    def _on_done(self, report: dict, notes: list) -> None:
        r = self._request
        text = (f"Predicted {report['rows']} input(s) of {r.data.name} with {r.run_label}: "
                f"{report['out']}" + "".join(f"; {n}" for n in notes))
        self.messages.show_message(text, "info", PREDICT_SOURCE, everywhere=True)
        if self.dialog is not None:
            self.dialog.close()

    def _on_failed(self, text: str) -> None:
        self.messages.show_message(f"Prediction with {self._request.run_label} failed: {text}",
                                   "error", PREDICT_SOURCE, everywhere=True)
        if self.dialog is not None:
            self.dialog.set_running(False)

    def cancel(self) -> None:
        """Stop the running prediction; the dialog then says it was cancelled."""
        if self.busy:
            self._job.cancel()

    def _on_cancelled(self) -> None:
        r = self._request
        self.messages.show_message(f"Prediction with {r.run_label} cancelled: no "
                                   f"predictions written to {r.out}", "info", PREDICT_SOURCE,
                                   everywhere=True)
        if self.dialog is not None:
            self.dialog.show_cancelled(r.out)

    def wait(self) -> None:
        """Block until a running prediction ends (on closing the window)."""
        if self._job is not None:
            self._job.wait()
