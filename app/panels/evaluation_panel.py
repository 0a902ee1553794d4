"""The Evaluation dock: the stored report of the run on show, and Evaluate to make it anew.

It views the report `torchwork evaluate` prints and every completed run
writes into its folder (engine.evaluation): the confusion matrix (a cell's
samples listed below it, with thumbnails for image data), ROC and
precision-recall curves, the per-class table and the reliability diagram; for
regression, residuals and predicted against true. Evaluate rebuilds the run's
model from its checkpoint in a process of its own (torch work, kept off the
window's threads, as export does) and the report comes back as a signal.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QThread, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.evaluation import EvaluationError, load_report, load_thumbnails
from engine.evaluation.runs import evaluate_run, summary

from ..widgets.confusion_matrix import ConfusionMatrixView
from ..widgets.live_plot import DARK, LIGHT, style_plot
from ..widgets.message_bar import MessageBar, MessageLog
from ..widgets.tables import report_table

SOURCE = "Evaluation"
SPLIT_LABELS = {"val": "Validation split", "test": "Test split"}
MAX_LISTED = 500  # samples listed for one cell; the count above says how many there are
THUMB_PX = 40
# a qualitative palette (matplotlib's tab10) that reads on both themes' backgrounds
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


class _EvaluateJob(QThread):
    """Waits, off the GUI thread, for the evaluation's own process."""

    succeeded = Signal(object)  # the report (plain data)
    failed = Signal(str)

    def __init__(self, workspace_dir, run_id: int, split: str, parent=None):
        super().__init__(parent)
        self.workspace_dir, self.run_id, self.split = workspace_dir, run_id, split

    def run(self) -> None:
        workspace = None if self.workspace_dir is None else str(self.workspace_dir)
        try:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                report = pool.submit(evaluate_run, workspace, self.run_id, self.split).result()
        except EvaluationError as exc:
            self.failed.emit(f"Run {self.run_id} cannot be evaluated: {exc}")
        except Exception as exc:  # a bug must reach the window, not end the thread silently
            self.failed.emit(f"Evaluating run {self.run_id} failed unexpectedly: "
                             f"{type(exc).__name__}: {exc}")
        else:
            self.succeeded.emit(report)


class _Plot(pg.PlotWidget):
    """A plot of the dock: themed, titled, with persistent items only."""

    def __init__(self, title: str, x: str, y: str, legend=(-8, 8)):
        """``legend``: its offset from the corner the curves leave free (pyqtgraph's
        convention: negative x from the right, negative y from the bottom)."""
        super().__init__()
        item = self.getPlotItem()
        item.setMenuEnabled(False)
        item.hideButtons()
        item.showGrid(x=True, y=True, alpha=0.2)
        item.setLabel("bottom", x)
        item.setLabel("left", y)
        self.title = title
        self.legend = item.addLegend(offset=legend, labelTextSize="8pt")

    def apply_theme(self, dark: bool) -> None:
        fg, _bg = style_plot(self, self.title, dark)
        self.legend.setLabelTextColor(fg)

    def reset(self) -> None:
        self.getPlotItem().clear()
        self.legend.clear()


class EvaluationPanel(QWidget):
    """Shows one run's report; ``set_run`` picks the run, Evaluate makes its report anew."""

    reportShown = Signal()

    def __init__(self, workspace_dir=None, *, log: MessageLog | None = None, parent=None):
        super().__init__(parent)
        self.workspace_dir = workspace_dir
        self.run_id: int | None = None
        self.run_dir: Path | None = None
        self.run_label = ""
        self.report: dict | None = None
        self.thumbs: np.ndarray | None = None
        self.cell: tuple[int, int] | None = None  # the confusion-matrix cell listed
        self.dark = False
        self._job: _EvaluateJob | None = None

        self.messages = MessageBar(log, scope="evaluation", source=SOURCE)
        self.title = QLabel("No run yet: train one, or open one (File ▸ Open run…).")
        self.title.setWordWrap(True)
        self.split = QComboBox()
        for split, label in SPLIT_LABELS.items():
            self.split.addItem(label, split)
        self.split.setToolTip("The split the report judges: validation, or the test split "
                              "held out from training and selection (data.test_fraction)")
        self.split.currentIndexChanged.connect(self._on_split)
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip("Judge the run's trained model on the split now "
                                        "(as `torchwork evaluate RUN --split SPLIT`)")
        self.evaluate_button.clicked.connect(self.evaluate)
        self.evaluate_button.setEnabled(False)
        self.headline = QLabel("")
        self.headline.setWordWrap(True)
        self.headline.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.matrix = ConfusionMatrixView()
        self.matrix.cellClicked.connect(self.select_cell)
        self.cell_label = QLabel("Click a cell to list its samples.")
        self.samples = self._table(["Index", "True", "Predicted", "Confidence"])
        self.samples.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.samples.horizontalHeaderItem(0).setToolTip(
            "The sample's position in the split (as in the stored report's samples)")
        cell_box = QWidget()
        cell_layout = QVBoxLayout(cell_box)
        cell_layout.setContentsMargins(0, 0, 0, 0)
        cell_layout.addWidget(self.cell_label)
        cell_layout.addWidget(self.samples, 1)
        matrix_split = QSplitter(Qt.Horizontal)
        matrix_split.addWidget(self.matrix)
        matrix_split.addWidget(cell_box)
        matrix_split.setSizes([600, 350])

        self.roc = _Plot("ROC (one vs rest)", "False positive rate", "True positive rate",
                         legend=(-8, -8))
        self.pr = _Plot("Precision-recall", "Recall", "Precision", legend=(8, -8))
        curves = QSplitter(Qt.Horizontal)
        curves.addWidget(self.roc)
        curves.addWidget(self.pr)
        self.per_class = self._table(["Class", "Precision", "Recall", "F1", "Support"])
        self.per_class.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.calibration = _Plot("Reliability", "Confidence", "Accuracy", legend=(8, 8))
        self.residuals = _Plot("Residuals", "Predicted", "True − predicted")
        self.scatter = _Plot("Predicted vs true", "True", "Predicted", legend=(8, 8))
        self.plots = (self.roc, self.pr, self.calibration, self.residuals, self.scatter)

        self.tabs = QTabWidget()
        self.tab_pages = {"matrix": matrix_split, "curves": curves, "per_class": self.per_class,
                          "calibration": self.calibration, "residuals": self.residuals,
                          "scatter": self.scatter}
        for key, label in (("matrix", "Confusion matrix"), ("curves", "ROC / PR"),
                           ("per_class", "Per class"), ("calibration", "Calibration"),
                           ("residuals", "Residuals"), ("scatter", "Predicted vs true")):
            self.tabs.addTab(self.tab_pages[key], label)

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.split)
        top.addWidget(self.evaluate_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.messages)
        layout.addLayout(top)
        layout.addWidget(self.headline)
        layout.addWidget(self.tabs, 1)
        self._show_tabs(None)
        self.apply_theme(False)

    @staticmethod
    def _table(headers: list[str]) -> QTableWidget:
        return report_table(headers, stretch_last=True)

    # --- which run --------------------------------------------------------------
    def set_run(self, run_id: int, run_dir, name: str = "") -> None:
        """Show ``run_id``'s stored report (or say there is none yet)."""
        self.run_id, self.run_dir = run_id, Path(run_dir)
        self.run_label = f"Run {run_id}" + (f" ({name})" if name else "")
        self.evaluate_button.setEnabled(not self.busy)
        self.reload()

    @property
    def current_split(self) -> str:
        return self.split.currentData()

    def set_split(self, split: str) -> None:
        self.split.setCurrentIndex(self.split.findData(split))

    def _on_split(self, _index: int) -> None:
        if self.run_dir is not None:
            self.reload()

    def on_run_ended(self, event) -> None:
        """A run ended: its report (written before the end reached the window) shows."""
        if self.run_dir is not None:
            self.reload()

    def reload(self) -> None:
        """Read the current run's stored report of the chosen split again."""
        split = self.current_split
        try:
            report = load_report(self.run_dir, split)
        except EvaluationError as exc:
            self.messages.show_message(str(exc), "error")
            report = None
        if report is None:
            self.show_report(None)
            self.title.setText(f"{self.run_label}: no {SPLIT_LABELS[split].lower()} report yet. "
                               f"Completed runs get one; press Evaluate to make it now.")
            return
        self.show_report(report, load_thumbnails(self.run_dir, split))

    # --- evaluate on demand ----------------------------------------------------------
    @property
    def busy(self) -> bool:
        # Until the job's last signal has been handled (not merely until its thread
        # returned): its result and the button's state are in place once this is False.
        return self._job is not None

    def evaluate(self) -> None:
        if self.run_id is None or self.busy:
            return
        self._job = _EvaluateJob(self.workspace_dir, self.run_id, self.current_split, self)
        self._job.succeeded.connect(self._on_evaluated)
        self._job.failed.connect(self._on_failed)
        self._job.finished.connect(self._on_job_finished)
        self.evaluate_button.setEnabled(False)
        self.evaluate_button.setText("Evaluating…")
        self.messages.dismiss()
        self._job.start()

    def wait(self) -> None:
        """Block until a running evaluation ends (the window is closing)."""
        if self._job is not None:
            self._job.wait()

    def _on_evaluated(self, report: dict) -> None:
        run = report.get("run") or {}
        if run.get("id") == self.run_id and report["split"] == self.current_split:
            self.reload()
        self.messages.show_message(f"Run {run.get('id')} evaluated on its "
                                   f"{SPLIT_LABELS[report['split']].lower()}: "
                                   f"{summary(report)}", "info")

    def _on_failed(self, text: str) -> None:
        self.messages.show_message(text, "error")

    def _on_job_finished(self) -> None:
        self._job.deleteLater()
        self._job = None
        self.evaluate_button.setText("Evaluate")
        self.evaluate_button.setEnabled(self.run_id is not None)

    # --- showing a report ---------------------------------------------------------------
    def show_report(self, report: dict | None, thumbs: np.ndarray | None = None) -> None:
        self.report, self.thumbs = report, thumbs
        for plot in self.plots:
            plot.reset()
        self.samples.setRowCount(0)
        self.per_class.setRowCount(0)
        self.cell = None
        self.cell_label.setText("Click a cell to list its samples.")
        self._show_tabs(None if report is None else report["task"])
        if report is None:
            self.headline.setText("")
            self.matrix.set_matrix(np.zeros((0, 0)), [])
            return
        self.title.setText(f"{self.run_label}: {SPLIT_LABELS[report['split']].lower()}, "
                           f"{report['n']} samples, weights at step {report['step']} "
                           f"(evaluated {report['created_at'][:16].replace('T', ' ')})")
        self.headline.setText(summary(report))
        if report["task"] == "classification":
            self._show_classification(report)
        else:
            self._show_regression(report)
        self.reportShown.emit()

    def _show_tabs(self, task: str | None) -> None:
        classification = ("matrix", "curves", "per_class", "calibration")
        for key, page in self.tab_pages.items():
            index = self.tabs.indexOf(page)
            shown = task is None and key in classification or \
                task == "classification" and key in classification or \
                task == "regression" and key not in classification
            self.tabs.setTabVisible(index, shown)

    def _show_classification(self, report: dict) -> None:
        r, names = report["metrics"], report["class_names"]
        self.matrix.set_matrix(r["confusion_matrix"], names)
        rows = [(c["class"], c["precision"], c["recall"], c["f1"], c["support"])
                for c in r["per_class"]]
        total = sum(c["support"] for c in r["per_class"])
        rows += [("macro avg", None, None, r["macro_f1"], total),
                 ("weighted avg", None, None, r["weighted_f1"], total)]
        self.per_class.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                text = "" if value is None else value if isinstance(value, str) else \
                    str(value) if isinstance(value, int) else f"{value:.3f}"
                item = QTableWidgetItem(text)
                if j:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.per_class.setItem(i, j, item)
        k = max(1, len(report["curves"]["roc"]))
        for plot in (self.roc, self.pr):
            plot.legend.setVisible(k <= 10)
        diagonal = pg.mkPen(self._fg(), width=1, style=Qt.DashLine)
        self.roc.plot([0, 1], [0, 1], pen=diagonal)
        for i, curve in enumerate(report["curves"]["roc"]):
            self.roc.plot(curve["fpr"], curve["tpr"], pen=pg.mkPen(_colour(i, k), width=2),
                          name=f"{curve['class']} (AUC {curve['auc']:.3f})")
        for i, curve in enumerate(report["curves"]["pr"]):
            self.pr.plot(curve["recall"], curve["precision"],
                         pen=pg.mkPen(_colour(i, k), width=2),
                         name=f"{curve['class']} (AP {curve['average_precision']:.3f})")
        self._show_reliability(report)

    def _show_reliability(self, report: dict) -> None:
        plot = self.calibration
        plot.plot([0, 1], [0, 1], pen=pg.mkPen(self._fg(), width=1, style=Qt.DashLine),
                  name="perfectly calibrated")
        bins = [b for b in report["reliability"] if b["count"]]
        if bins:
            centers = [(b["lower"] + b["upper"]) / 2 for b in bins]
            width = bins[0]["upper"] - bins[0]["lower"]
            plot.addItem(pg.BarGraphItem(x=centers, height=[b["accuracy"] for b in bins],
                                         width=width * 0.9, brush=(61, 123, 217, 170),
                                         pen=None, name="accuracy"))
            plot.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], pen=None,
                      symbol="o", symbolSize=6, symbolBrush=self._fg(), symbolPen=None,
                      name="mean confidence")
        plot.getPlotItem().setTitle(f"Reliability (ECE {report['metrics']['ece']:.3f})",
                                    color=self._fg(), size="10pt")
        plot.setRange(xRange=(0, 1), yRange=(0, 1))

    def _show_regression(self, report: dict) -> None:
        s = report["samples"]
        true, pred = np.asarray(s["true"]), np.asarray(s["pred"])
        brush = pg.mkBrush(61, 123, 217, 150)
        self.residuals.plot(pred, np.asarray(s["residual"]), pen=None, symbol="o", symbolSize=5,
                            symbolBrush=brush, symbolPen=None)
        self.residuals.addItem(pg.InfiniteLine(0, angle=0, pen=pg.mkPen(self._fg(),
                                                                        style=Qt.DashLine)))
        if len(true):
            lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
            self.scatter.plot([lo, hi], [lo, hi], pen=pg.mkPen(self._fg(), style=Qt.DashLine),
                              name="predicted = true")
        self.scatter.plot(true, pred, pen=None, symbol="o", symbolSize=5, symbolBrush=brush,
                          symbolPen=None, name="samples")

    # --- a cell's samples -------------------------------------------------------------------
    def cell_samples(self, true: int, pred: int) -> list[int]:
        """Positions, in the report's samples, of those of class ``true`` predicted ``pred``."""
        s = self.report["samples"]
        t, p = np.asarray(s["true"]), np.asarray(s["pred"])
        return np.flatnonzero((t == true) & (p == pred)).tolist()

    def select_cell(self, true: int, pred: int) -> None:
        """List the samples of a confusion-matrix cell: index, true, predicted, confidence
        (with each sample's thumbnail for image data)."""
        if self.report is None or self.report["task"] != "classification":
            return
        self.matrix.select(true, pred)
        self.cell = (true, pred)
        names, s = self.report["class_names"], self.report["samples"]
        found = self.cell_samples(true, pred)
        # the least confident first: the doubtful cases are the ones to look at
        found.sort(key=lambda k: s["confidence"][k])
        shown = found[:MAX_LISTED]
        what = "correct" if true == pred else "mistaken"
        more = f"; the {MAX_LISTED} least confident listed" if len(found) > MAX_LISTED else ""
        self.cell_label.setText(f"True {names[true]}, predicted {names[pred]}: {len(found)} "
                                f"{what} sample{'s' if len(found) != 1 else ''}{more}")
        self.samples.setRowCount(len(shown))
        for row, k in enumerate(shown):
            cells = (str(s["index"][k]), names[s["true"][k]], names[s["pred"][k]],
                     f"{s['confidence'][k]:.3f}")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col in (0, 3):
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.samples.setItem(row, col, item)
            icon = self._thumbnail(k)
            if icon is not None:
                self.samples.item(row, 0).setIcon(icon)
                self.samples.setRowHeight(row, THUMB_PX + 4)
        self.samples.resizeColumnsToContents()

    def _thumbnail(self, k: int) -> QIcon | None:
        if self.thumbs is None or k >= len(self.thumbs):
            return None
        pixels = np.ascontiguousarray(self.thumbs[k])
        h, w = pixels.shape[:2]
        if pixels.ndim == 2:
            image = QImage(pixels.data, w, h, w, QImage.Format_Grayscale8)
        else:
            image = QImage(pixels.data, w, h, 3 * w, QImage.Format_RGB888)
        pixmap = QPixmap.fromImage(image.copy()).scaled(THUMB_PX, THUMB_PX, Qt.KeepAspectRatio,
                                                        Qt.FastTransformation)
        return QIcon(pixmap)

    # --- theme ------------------------------------------------------------------------------
    def _fg(self) -> str:
        return (DARK if self.dark else LIGHT)["foreground"]

    def apply_theme(self, dark: bool) -> None:
        self.dark = dark
        self.matrix.apply_theme(dark)
        for plot in self.plots:
            plot.apply_theme(dark)
        if self.report is not None:  # the items drawn in the old theme's colours
            cell = self.cell
            self.show_report(self.report, self.thumbs)
            if cell is not None:
                self.select_cell(*cell)


def _colour(i: int, k: int):
    return PALETTE[i] if k <= len(PALETTE) else pg.intColor(i, k)
