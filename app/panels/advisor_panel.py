"""The Advisor dock: `torchwork advise --json` in a child process, its findings in a table.

Diagnose profiles a few steps of the form's configuration (or reads the current
run's latest capture) in a process of its own, so the window never waits; each
finding's "Try it" runs the A/B of its change (``--try ID --change K=V``) and
shows the measured speed-up with its interval, or "no measurable gain"; "Apply"
puts the change in the form. The panel holds no rule: the engine's advisor does.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.config import RunConfig

from ..widgets.message_bar import MessageBar, MessageLog
from ..widgets.tables import report_table
from .search_process import SearchProcess

SOURCE = "Advisor"
COLUMNS = ("Finding", "Evidence", "Expected effect", "Change", "Measured", "")
FORM, RUN = "form", "run"


def changes_text(changes: dict | None) -> str:
    return ", ".join(f"{k} = {v}" for k, v in (changes or {}).items()) or "—"


def result_text(event: dict) -> str:
    """One cell for an ``ab_result`` event."""
    if event.get("error"):
        return "A/B failed"
    speed, low, high = event["speedup"], event["low"], event["high"]
    if event.get("confirmed"):
        return f"{speed:.2f}x faster ({low:.2f}–{high:.2f})"
    if high < 1.0:
        return f"slower: {speed:.2f}x ({low:.2f}–{high:.2f})"
    return f"no measurable gain ({speed:.2f}x, {low:.2f}–{high:.2f})"


class AdvisorPanel(QWidget):
    """``config`` returns the form's RunConfig, ``apply(key, value)`` sets one in the form
    and ``current_run()`` the id of the run the window shows (None: none)."""

    applied = Signal(str)  # the finding whose change went into the form

    def __init__(self, workspace_dir, config: Callable[[], RunConfig],
                 apply: Callable[[str, object], None],
                 current_run: Callable[[], int | None] = lambda: None, *,
                 log: MessageLog | None = None, parent=None):
        super().__init__(parent)
        self.workspace_dir = workspace_dir
        self.launcher = [sys.executable, "-m", "app"]  # `torchwork` (tests replace it)
        self._config, self._apply, self._current_run = config, apply, current_run
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.target: str | None = None  # what the findings are of (a TOML path or run id)
        self.findings: dict[str, dict] = {}
        self.rows: dict[str, int] = {}
        self.trying: str | None = None
        self.command: list[str] = []

        self.messages = MessageBar(log, scope="advisor", source=SOURCE)
        self.process = SearchProcess(self, noun="advisor")
        self.process.event.connect(self._on_event)
        self.process.finished.connect(self._on_finished)

        self.source = QComboBox()
        self.source.setToolTip("What to diagnose: the form's configuration (a few steps are "
                               "profiled) or the current run (its latest capture)")
        self.diagnose_button = QPushButton("Diagnose")
        self.diagnose_button.setToolTip("Profile a few steps and list what slows training "
                                        "(as `torchwork advise CONFIG`)")
        self.diagnose_button.clicked.connect(self.diagnose)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.status = QLabel("Press Diagnose: a few steps are profiled and the findings are "
                             "listed here; Try it measures a change before you apply it.")
        self.status.setWordWrap(True)
        self.table = report_table(
            COLUMNS, {0: QHeaderView.Interactive, 1: QHeaderView.Stretch,
                      2: QHeaderView.Stretch}, default=QHeaderView.ResizeToContents)
        self.table.setWordWrap(True)
        self.table.setTextElideMode(Qt.ElideNone)  # long keys wrap instead of losing text
        self.table.setColumnWidth(0, 170)

        top = QHBoxLayout()
        top.addWidget(QLabel("Diagnose"))
        top.addWidget(self.source, 1)
        top.addWidget(self.diagnose_button)
        top.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.messages)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        self.refresh_sources()
        self._update_buttons()

    # --- what to diagnose ---------------------------------------------------------------
    def refresh_sources(self, *_shown) -> None:
        run = self._current_run()
        keep = self.source.currentData()
        self.source.clear()
        self.source.addItem("the form's configuration", FORM)
        if run is not None:
            self.source.addItem(f"run {run} (its latest capture)", RUN)
        index = self.source.findData(keep)
        self.source.setCurrentIndex(max(index, 0))

    def workspace(self) -> Path:
        from engine.workspace.store import default_workspace_dir

        return Path(self.workspace_dir) if self.workspace_dir else default_workspace_dir()

    def _prepare_target(self) -> str | None:
        """The RUN|CONFIG argument: the current run's id, or the form written to a TOML file;
        None, with the reason in the message bar, when the form has a problem."""
        if self.source.currentData() == RUN:
            run = self._current_run()
            if run is not None:
                return str(run)
        cfg = self._config()
        problems = cfg.errors()
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self.messages.show_message(f"Cannot diagnose: {problems[0]}{more}", "error")
            return None
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="torchwork-advise-")
        path = Path(self._tmp.name) / "advise.toml"
        cfg.save(path)
        return str(path)

    # --- running `torchwork advise` ------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.process.running

    def diagnose(self) -> None:
        if self.running:
            return
        target = self._prepare_target()
        if target is None:
            return
        self.target = target
        self.findings.clear()
        self.rows.clear()
        self.table.setRowCount(0)
        self.trying = None
        self._start([*self.launcher, "advise", target, "--workspace", str(self.workspace()),
                     "--json"], "Diagnosing: profiling a few steps…")

    def try_finding(self, finding_id: str) -> None:
        finding = self.findings.get(finding_id)
        if self.running or finding is None or not finding.get("changes") or not self.target:
            return
        changes = [f"{k}={_arg(v)}" for k, v in finding["changes"].items()]
        self.trying = finding_id
        self._set_cell(finding_id, 4, "measuring…")
        self._start([*self.launcher, "advise", self.target, "--workspace",
                     str(self.workspace()), "--json", "--try", finding_id,
                     *(a for c in changes for a in ("--change", c))],
                    f"Measuring {finding_id}: the current and the changed configuration take "
                    f"turns…")

    def apply_finding(self, finding_id: str) -> None:
        finding = self.findings.get(finding_id)
        if finding is None or not finding.get("changes"):
            return
        for key, value in finding["changes"].items():
            self._apply(key, value)
        self.status.setText(f"Applied {finding_id} to the form: "
                            f"{changes_text(finding['changes'])}.")
        self.applied.emit(finding_id)

    def _start(self, argv: list[str], text: str) -> None:
        self.command = argv
        self.messages.clear_own()
        self.process.start(argv)
        self.status.setText(text)
        self._update_buttons()

    def stop(self) -> None:
        if self.running:
            self.process.stop()
            self.status.setText("Stopping…")

    def shutdown(self, wait_ms: int = 5000) -> None:
        """The window closes: end a running diagnosis or A/B."""
        if self.running:
            self.process.end(wait_ms)

    def _on_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "diagnosis":
            notes = "; ".join(event.get("notes") or ())
            self.status.setText(f"Diagnosis of {self._source_name(event)}"
                                + (f" ({notes})" if notes else "") + "…")
        elif kind == "finding":
            self._add_finding(event)
        elif kind == "ab_progress":
            self._set_cell(event.get("finding", ""), 4,
                           f"measuring… {event.get('done')}/{event.get('total')} pairs")
        elif kind == "ab_result":
            fid = event.get("finding", "")
            self._set_cell(fid, 4, result_text(event), event.get("summary") or
                           event.get("error") or "")
            if event.get("error"):
                self.messages.show_message(f"The A/B of {fid} failed: {event['error']}",
                                           "error")
            else:
                self.status.setText(f"{fid}: {event.get('summary', '')}")
        elif kind == "advice_done" and self.trying is None:
            n = len(self.findings)
            self.status.setText("No findings: nothing crosses a threshold of the advisor's "
                                "rules." if not n else f"{n} finding{'s' * (n != 1)}. Try it "
                                "measures a change; Apply puts it in the form.")

    def _source_name(self, event: dict) -> str:
        return ("the form's configuration" if self.target and self.target.endswith(".toml")
                else event.get("source", "the run"))

    def _on_finished(self, code: int, message: str) -> None:
        if message:
            self.messages.show_message(f"Advisor: {message}", "error")
            if self.trying:
                self._set_cell(self.trying, 4, "A/B failed", message)
        elif self.process.stopping:
            self.status.setText("Stopped.")
            if self.trying:
                self._set_cell(self.trying, 4, "stopped")
        self.trying = None
        self._update_buttons()

    # --- the table -------------------------------------------------------------------------
    def _add_finding(self, event: dict) -> None:
        fid = event.get("id", "")
        self.findings[fid] = event
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.rows[fid] = row
        change = changes_text(event.get("changes"))
        if not event.get("changes") and event.get("hint"):
            change = "by hand"
        cells = (event.get("title", fid), event.get("evidence", ""), event.get("effect", ""),
                 change, "not measured")
        for col, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(event.get("hint", "") if col == 3 else text)
            self.table.setItem(row, col, item)
        self.table.setCellWidget(row, 5, self._actions(fid, bool(event.get("changes"))))
        self.table.resizeRowToContents(row)
        self._update_buttons()

    def _actions(self, fid: str, can_change: bool) -> QWidget:
        box = QWidget()
        layout = QHBoxLayout(box)
        layout.setContentsMargins(2, 2, 2, 2)
        for text, tip, slot in (("Try it", "Measure this change against the current "
                                 "configuration (an A/B of alternating windows)", self._try),
                                ("Apply", "Put this change in the form", self._apply_clicked)):
            button = QPushButton(text)
            button.setProperty("finding", fid)
            button.setToolTip(tip if can_change else "This finding proposes no option to "
                              "change: see its hint")
            button.setEnabled(can_change)
            button.clicked.connect(slot)
            layout.addWidget(button)
        return box

    def buttons(self, fid: str) -> tuple[QPushButton, QPushButton]:
        box = self.table.cellWidget(self.rows[fid], 5)
        return tuple(box.findChildren(QPushButton))

    def _try(self) -> None:
        self.try_finding(self.sender().property("finding"))

    def _apply_clicked(self) -> None:
        self.apply_finding(self.sender().property("finding"))

    def _set_cell(self, fid: str, col: int, text: str, tip: str = "") -> None:
        row = self.rows.get(fid)
        if row is None:
            return
        item = QTableWidgetItem(text)
        item.setToolTip(tip or text)
        self.table.setItem(row, col, item)
        self.table.resizeRowsToContents()  # the column widths changed with the text

    def _update_buttons(self) -> None:
        busy = self.running
        self.diagnose_button.setEnabled(not busy)
        self.source.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        for fid, event in self.findings.items():
            can = bool(event.get("changes"))
            try_button, _apply = self.buttons(fid)
            try_button.setEnabled(can and not busy)


def _arg(value) -> str:
    """A change's value as `--change` text: TOML-like (true, 64, bf16)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def install(window) -> AdvisorPanel:
    """Put the Advisor dock's panel in ``window.advisor_dock`` and wire it to the window."""
    panel = AdvisorPanel(window.workspace_dir, window.config_panel.config,
                         window.config_panel.set_value, _CurrentRun(window).get, log=window.log)
    old = window.advisor_dock.widget()
    window.advisor_dock.setWidget(panel)
    old.deleteLater()
    panel.messages.historyRequested.connect(window.show_messages)
    window.advisor_dock.visibilityChanged.connect(panel.refresh_sources)
    return panel


class _CurrentRun:
    """The run the window shows (Open run or the last one started), for "Diagnose run N"."""

    def __init__(self, window):
        self.window = window

    def get(self) -> int | None:
        run = getattr(self.window.export_actions, "current_run", None)
        return int(run) if run is not None else None
