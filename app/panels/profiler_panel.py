"""The Profiler dock: the captures of a run, and each one's overview, tables and memory.

A trace is read in a worker thread (never on the GUI thread) through the
engine's one adapter over torch-tb-profiler; the panel shows the progress
and a Cancel, and shows only the newest load's result, so a slow old load
never overwrites the capture a person picked since. A file that cannot be
read becomes a message naming it, in the panel's own message bar.
"""

from __future__ import annotations

import html
import re
import socket
import sys
import threading
from pathlib import Path

import qtawesome as qta
from PySide6.QtCore import QObject, QProcess, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import gc_guard
from engine.profiling.report import CATEGORIES, Cancelled, ProfileReport, TraceReadError
from engine.profiling.traces import export_trace, list_captures

from ..widgets.message_bar import MessageBar, MessageLog
from ..widgets.profile_plots import CATEGORY_COLOURS, MemoryCurvePlot, StepBreakdownPlot
from ..widgets.profile_tables import KernelTable, OperatorTable
from ..widgets.timeline_view import TimelineView

EXPORT_SOURCE = "Profile ▸ Export trace"


class _LoadSignals(QObject):
    """Lives on the GUI thread: emitted from the worker, delivered queued."""
    progress = Signal(int, float, str)  # load id, fraction, stage
    loaded = Signal(int, object, object, str)  # load id, ProfileReport, TraceIndex, problems
    failed = Signal(int, str)  # load id, message
    exported = Signal(str, str)  # written file, error


class ProfilerPanel(QWidget):
    """Shows the profile of one trace file; lists the captures of the current run."""

    traceShown = Signal(str)  # path of the trace now on show; "" when none is

    def __init__(self, parent=None, log: MessageLog | None = None):
        """Messages go to ``log`` (the window's) through the dock's own bar."""
        super().__init__(parent)
        self.run_folder: Path | None = None
        self.report: ProfileReport | None = None
        self.timeline_index = None  # engine.profiling.timeline.TraceIndex of the trace shown
        self.trace: Path | None = None
        self._load_id = 0
        self._cancel: threading.Event | None = None
        self._loading_path: Path | None = None
        self._signals = _LoadSignals(self)
        self._signals.progress.connect(self._on_progress)
        self._signals.loaded.connect(self._on_loaded)
        self._signals.failed.connect(self._on_failed)
        self._signals.exported.connect(self._on_exported)
        self.tensorboard = TensorBoard(self)
        self.tensorboard.failed.connect(self._tensorboard_failed)

        self.captures = QComboBox()
        self.captures.setMinimumContentsLength(28)
        self.captures.setToolTip("Captures of the current run, newest first")
        self.captures.activated.connect(self._capture_chosen)
        self.refresh_button = QToolButton()
        self.refresh_button.setToolTip("Look for new captures of the run")
        self.refresh_button.clicked.connect(self.refresh)
        self.open_button = QPushButton("Open trace…")
        self.open_button.setToolTip("Show any *.pt.trace.json file")
        self.open_button.clicked.connect(self.open_trace_dialog)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QLabel("Capture"))
        top.addWidget(self.captures, 1)
        top.addWidget(self.refresh_button)
        top.addWidget(self.open_button)

        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.loading = QWidget()
        row = QHBoxLayout(self.loading)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        self.loading.hide()

        self.messages = MessageBar(log, scope="profiler", source="Profiler")
        self.breakdown = StepBreakdownPlot()
        self.summary = QTextBrowser()
        self.summary.setOpenExternalLinks(True)
        self.summary.setMinimumWidth(260)
        overview = QSplitter(Qt.Horizontal)
        overview.addWidget(self.breakdown)
        overview.addWidget(self.summary)
        overview.setStretchFactor(0, 3)
        overview.setStretchFactor(1, 2)
        self.operators = OperatorTable()
        self.kernels = KernelTable()
        self.memory = MemoryCurvePlot()
        self.timeline = TimelineView()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.overview_tab = self.tabs.addTab(overview, "Overview")
        self.operators_tab = self.tabs.addTab(self.operators, "Operators")
        self.kernels_tab = self.tabs.addTab(self.kernels, "Kernels")
        self.memory_tab = self.tabs.addTab(self.memory, "Memory")
        self.timeline_tab = self.tabs.addTab(self.timeline, "Timeline")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.loading)
        layout.addWidget(self.messages)
        layout.addWidget(self.tabs, 1)
        self.apply_theme(False)
        self._show(None)

    # --- which run and which capture -------------------------------------------------
    def set_run(self, folder: str | Path | None) -> None:
        """Follow a run: list its captures and show the newest; a run without captures
        shows none (not the profile of the run shown before)."""
        self.run_folder = Path(folder) if folder else None
        self.refresh(show_newest=True)
        if self.captures.currentData() is None:
            self.clear()

    def clear(self) -> None:
        """Show no trace (and stop reading one)."""
        self._abandon()
        self._show(None)
        self.timeline_index = None
        self.tabs.setCurrentIndex(self.overview_tab)
        self.tabs.setTabEnabled(self.timeline_tab, False)
        if self.trace is not None:
            self.trace = None
            self.traceShown.emit("")

    def refresh(self, *, show_newest: bool = False) -> None:
        current = self.captures.currentData()
        found = list_captures(self.run_folder) if self.run_folder else []
        self.captures.clear()
        for cap in found:
            self.captures.addItem(f"{cap.name}  ({cap.size / 1e6:.1f} MB)", str(cap.trace))
        if not found:
            self.captures.addItem("no captures yet: Profile ▸ Capture…" if self.run_folder
                                  else "no run: open or start one", None)
        self.captures.setEnabled(bool(found))
        index = self.captures.findData(current) if current else -1
        if show_newest or index < 0:
            index = 0
        self.captures.setCurrentIndex(index)
        if found and (show_newest or self.trace is None):
            self.load(found[0].trace)

    def capture_written(self, trace: str) -> None:
        """A capture of the current run was written: list it and show it."""
        self.refresh()
        index = self.captures.findData(trace)
        if index >= 0:
            self.captures.setCurrentIndex(index)
        self.load(trace)

    def _capture_chosen(self, index: int) -> None:
        path = self.captures.itemData(index)
        if path and Path(path) != self.trace:
            self.load(path)

    def open_trace_dialog(self) -> None:
        start = str(self.run_folder) if self.run_folder else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open a profiler trace", start,
                                              "Profiler traces (*.json *.json.gz)")
        if path:
            self.load(path)

    # --- loading in the background ---------------------------------------------------
    def load(self, path: str | Path) -> None:
        """Read ``path`` in a worker thread; the result replaces what is shown."""
        self._abandon()
        load_id, cancel = self._load_id, threading.Event()
        self._cancel, self._loading_path = cancel, Path(path)
        self.messages.clear_own()  # the last trace's problems; a report for the window stays
        self.progress.setValue(0)
        self.progress.setFormat(f"Reading {Path(path).name}… %p%")
        self.loading.show()
        threading.Thread(target=self._work, args=(load_id, Path(path), cancel),
                         name="trace-reader", daemon=True).start()

    def cancel(self) -> None:
        """Stop reading; what was shown before stays."""
        if self.busy:
            self._abandon()
            self.messages.show_message(f"Reading {self._loading_path.name} was cancelled.",
                                       "info")

    def _abandon(self) -> None:
        """Forget the load in progress: its worker stops at its next stage, its result is
        ignored (it carries an old load id)."""
        self._load_id += 1
        if self._cancel is not None:
            self._cancel.set()
            self._cancel = None
        self.loading.hide()

    @property
    def busy(self) -> bool:
        return self._cancel is not None

    def _work(self, load_id: int, path: Path, cancel: threading.Event) -> None:
        with gc_guard.paused():  # see app/gc_guard.py: this froze the window once
            self._read(load_id, path, cancel)

    def _read(self, load_id: int, path: Path, cancel: threading.Event) -> None:
        """On the worker thread: the tables (first half), then the timeline. Only signals
        leave it; a trace one reader cannot take may still suit the other."""
        from engine.profiling.report import read_trace
        from engine.profiling.timeline import TraceCancelled, TraceError, load_trace

        signals = self._signals
        report = index = None
        problems = []
        try:
            try:
                report = read_trace(path, lambda f, stage: signals.progress.emit(
                    load_id, f / 2, stage), cancel.is_set)
            except TraceReadError as exc:
                problems.append(str(exc))
            try:
                index = load_trace(path, lambda f: signals.progress.emit(
                    load_id, 0.5 + f / 2, "indexing the timeline"), cancel.is_set)
            except TraceError as exc:
                if not problems:  # the same file fault needs saying once
                    problems.append(f"Timeline: {exc}")
        except (Cancelled, TraceCancelled):
            return  # cancel() has said so already
        except Exception as exc:  # never a traceback into the window
            signals.failed.emit(load_id, f"Cannot read {path}: {type(exc).__name__}: {exc}")
            return
        if report is None and index is None:
            signals.failed.emit(load_id, problems[0])
        else:
            signals.loaded.emit(load_id, report, index, " ".join(problems))

    def _on_progress(self, load_id: int, fraction: float, stage: str) -> None:
        if load_id == self._load_id:
            self.progress.setValue(int(fraction * 100))
            self.progress.setFormat(f"{stage}… %p%")

    def _on_loaded(self, load_id: int, report, index, problems: str) -> None:
        if load_id != self._load_id:
            return
        self._cancel = None
        self.loading.hide()
        self._show(report)
        self.trace = self._loading_path
        self.timeline_index = index
        if index is not None:
            self.timeline.set_trace(index)
        self.tabs.setTabEnabled(self.timeline_tab, index is not None)
        if report is None:
            self.tabs.setCurrentIndex(self.timeline_tab)
        if problems:
            self.messages.show_message(problems, "warning")
        self.traceShown.emit(str(self.trace))

    def _on_failed(self, load_id: int, text: str) -> None:
        if load_id != self._load_id:
            return
        self._cancel = None
        self.loading.hide()
        self.messages.show_message(text, "error")

    # --- showing -------------------------------------------------------------------
    def _show(self, report: ProfileReport | None) -> None:
        self.report = report
        self.breakdown.set_report(report)
        self.summary.setHtml(summary_html(report))
        self.operators.set_operators(report.operators if report else (),
                                     report.operators_by_shape if report else ())
        self.kernels.set_kernels(report.kernels if report else ())
        self.memory.set_curves(report.memory if report else ())
        self.tabs.setTabVisible(self.kernels_tab, bool(report and report.kernels))
        self.tabs.setTabToolTip(self.memory_tab, "" if report is None or report.memory else
                                "This capture recorded no allocations: capture with "
                                "profile_memory")

    # --- export and TensorBoard ------------------------------------------------------
    def export(self, dest: str | Path) -> None:
        """Write the trace on show as .json.gz for Perfetto / chrome://tracing (in a thread)."""
        trace, signals = self.trace, self._signals

        def work() -> None:
            try:
                signals.exported.emit(str(export_trace(trace, dest)), "")
            except OSError as exc:
                signals.exported.emit("", f"Cannot export {trace.name} to {dest}: "
                                          f"{exc.strerror or exc}")

        threading.Thread(target=work, name="trace-export", daemon=True).start()

    def _on_exported(self, path: str, error: str) -> None:
        """Shown in every dock: Profile ▸ Export trace may be chosen from any of them."""
        if error:
            self.messages.show_message(error, "error", EXPORT_SOURCE, everywhere=True)
        else:
            self.messages.show_message(f"Exported {path}: open it in ui.perfetto.dev or "
                                       f"chrome://tracing.", "info", EXPORT_SOURCE,
                                       everywhere=True)

    def open_tensorboard(self) -> None:
        if self.run_folder is None:
            self.messages.show_message("Open or start a run first: TensorBoard shows the "
                                       "captures of one run folder.", "info")
            return
        self.tensorboard.open(self.run_folder)

    def _tensorboard_failed(self, text: str) -> None:
        self.messages.show_message(text, "error")

    def apply_theme(self, dark: bool) -> None:
        colour = "#d7dbe0" if dark else "#394049"
        self.refresh_button.setIcon(qta.icon("mdi6.refresh", color=colour))
        self.breakdown.apply_theme(dark)
        self.memory.apply_theme(dark)
        self.timeline.apply_theme(dark)


def summary_html(report: ProfileReport | None) -> str:
    """The average step split by category, then what to do about it."""
    if report is None:
        return ("<p>No trace shown. Profile ▸ Capture records one for the current run; "
                "<b>Open trace…</b> shows any torch.profiler trace.</p>")
    avg = report.average.total_us
    rows = "".join(
        f"<tr><td><span style='color:{CATEGORY_COLOURS[c]}'>■</span> {c}</td>"
        f"<td align='right'>{report.average.costs_us[c] / 1000:.3f} ms</td>"
        f"<td align='right'>{report.share(c):.1%}</td></tr>"
        for c in CATEGORIES if report.average.costs_us[c] > 0)
    advice = [*report.hints, *report.recommendations]
    items = "".join(f"<li>{html.escape(text)}</li>" for text in advice)
    advice_html = (f"<ul>{items}</ul>" if advice else
                   "<p>Nothing stands out in this breakdown: look at the operator table "
                   "for the most expensive operations.</p>")
    device = f" on {html.escape(report.accelerator.describe())}" if report.has_gpu else ""
    steps = len(report.steps)
    return (f"<p><b>Average step: {avg / 1000:.3f} ms</b> over {steps} profiled "
            f"step{'' if steps == 1 else 's'}{device}</p>"
            f"<table cellspacing='0' cellpadding='2'>{rows}</table>"
            f"<p><b>Recommendations</b></p>{advice_html}"
            f"<p style='color:gray'>{html.escape(Path(report.trace).name)}</p>")


class TensorBoard(QObject):
    """One `tensorboard --logdir <run>` on 127.0.0.1, opened in the browser, stopped on exit."""

    failed = Signal(str)
    URL = re.compile(r"http://127\.0\.0\.1:\d+/?")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.process: QProcess | None = None
        self.logdir: Path | None = None
        self.url: str | None = None
        self._output = ""

    def open(self, logdir: Path) -> None:
        if self.process is not None and self.logdir == logdir and self.url:
            QDesktopServices.openUrl(QUrl(self.url))
            return
        self.stop()
        self.logdir, self.url, self._output = logdir, None, ""
        process = self.process = QProcess(self)
        process.setProcessChannelMode(QProcess.MergedChannels)
        process.readyReadStandardOutput.connect(self._read)
        process.finished.connect(self._finished)
        process.errorOccurred.connect(self._error)
        process.start(sys.executable, ["-m", "tensorboard.main", "--logdir", str(logdir),
                                       "--host", "127.0.0.1", "--port", str(free_port())])

    def _read(self) -> None:
        if self.process is None:  # output that arrives while it is being stopped
            return
        self._output += bytes(self.process.readAllStandardOutput()).decode(errors="replace")
        match = self.URL.search(self._output)
        if match and self.url is None:
            self.url = match.group(0)
            QDesktopServices.openUrl(QUrl(self.url))

    def _finished(self, code: int, _status) -> None:
        if self.process is not None:  # not stopped by us
            last = self._output.strip().splitlines()[-1:] or ["no output"]
            self.failed.emit(f"TensorBoard ended (exit code {code}): {last[0]}")
            self.process = None

    def _error(self, error) -> None:
        if error == QProcess.FailedToStart:
            self.failed.emit(f"TensorBoard could not start with {sys.executable}: is the "
                             f"tensorboard package installed?")
            self.process = None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            if not process.waitForFinished(3000):
                process.kill()
                process.waitForFinished(1000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
