"""The Compression dock: options, Run, the before/after table and the sparsity-sweep chart.

Pruning, quantization and timing are torch work of seconds, so a worker thread
runs engine.compression.compress, the same call as `torchwork compress`; only
plain Candidate rows and progress text come back as signals. Fine-tuning and
distillation are ordinary runs: the worker hands their configs to a
BridgeTrainer, which trains them through the window's bridge (live curves in
the Training dock, listed with the workspace's runs, resumable). The chart
draws the validation metric against file size and against latency at batch
64, with the Pareto front marked; clicking a point (or a table row) picks the
candidate that File ▸ Export compressed model… writes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QThread, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import gc_guard
from engine.compression import (
    CompressionError,
    CompressOptions,
    compress,
    pareto_front,
    save_candidate,
)
from engine.compression.errors import FinetuneStopped
from engine.compression.measure import human_bytes, metric_text
from engine.compression.prune import IMPORTANCES
from engine.export import SUFFIXES, ExportError, load_run_model
from engine.run_builder import workspace_train

from ..widgets.label_layout import place_labels
from ..widgets.live_plot import DARK, LIGHT
from ..widgets.message_bar import MessageBar, MessageLog
from ..widgets.tables import report_table
from .export_dialog import FILTERS, exportable_runs
from .finetune_runs import BridgeTrainer

COLUMNS = ("candidate", "runtime", "params", "non-zero", "size", "MACs", "latency b1",
           "latency b64", "metric")
RUNTIME_COLOURS = {"torch": "#e8912d", "onnxruntime": "#2f6fd6"}
FRONT_COLOUR = "#2da44e"
SYMBOL_SIZE = 11  # pixels
EXPORT_SOURCE = "Export compressed model"


class _CompressJob(QThread):
    """Runs one compression session; the CompressionResult (modules) stays on this object."""

    progress = Signal(str)
    finished_rows = Signal(list)  # list[Candidate]
    failed = Signal(str, str)  # text, outcome: "failed" | "stopped" (a fine-tuning run was)

    def __init__(self, workspace_dir, run_id: int, teacher_id: int | None,
                 options: CompressOptions, train, parent=None):
        super().__init__(parent)
        self.workspace_dir, self.run_id, self.teacher_id = workspace_dir, run_id, teacher_id
        self.options, self.train = options, train
        self.result = None

    def run(self) -> None:
        with gc_guard.paused():
            self._run()

    def _run(self) -> None:
        try:
            loaded = load_run_model(self.workspace_dir, self.run_id)
            teacher = str(self.teacher_id) if self.teacher_id is not None else None
            self.result = compress(loaded, self.options, loaded.run.dir / "compressed",
                                   teacher=teacher, progress=self.progress.emit,
                                   train=self.train)
        except (CompressionError, ExportError) as exc:
            outcome = "stopped" if isinstance(exc, FinetuneStopped) else "failed"
            self.failed.emit(f"Compression of run {self.run_id} {outcome}: {exc}", outcome)
        except Exception as exc:  # a bug must reach the window, not end the thread silently
            self.failed.emit(f"Compression of run {self.run_id} failed unexpectedly: "
                             f"{type(exc).__name__}: {exc}", "failed")
        else:
            self.finished_rows.emit(list(self.result.candidates))


class _SaveJob(QThread):
    done = Signal(str)
    failed = Signal(str)

    def __init__(self, result, name: str, fmt: str, path: Path, parent=None):
        super().__init__(parent)
        self.args = (result, name, fmt, path)

    def run(self) -> None:
        with gc_guard.paused():
            self._run()

    def _run(self) -> None:
        result, name, fmt, path = self.args
        try:
            written = save_candidate(result, name, fmt, path, overwrite=True)
        except (CompressionError, ExportError) as exc:
            self.failed.emit(f"Export of {name} failed: {exc}")
        except Exception as exc:  # see _CompressJob.run
            self.failed.emit(f"Export of {name} failed unexpectedly: {type(exc).__name__}: {exc}")
        else:
            self.done.emit(f"Exported {name} to {written}.")


class SweepChart(QWidget):
    """Metric against size and against latency (log x axes); Pareto fronts as green steps."""

    pointClicked = Signal(str)  # candidate name

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plots, self.points, self.fronts, self.marks, self.labels = {}, {}, {}, {}, {}
        self.label_at: dict[str, list[tuple[float, float]]] = {}  # view coordinates
        self.costs: dict[str, list[float]] = {}
        for key, title, unit in (("size", "Metric vs file size", "file size (KiB)"),
                                 ("latency", "Metric vs CPU latency, batch 64",
                                  "latency (ms)")):
            plot = pg.PlotWidget(axisItems={"bottom": _PlainLogAxis("bottom")})
            plot.setLogMode(x=True, y=False)
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.setMenuEnabled(False)
            plot.getPlotItem().setTitle(title)
            plot.setLabel("bottom", unit)
            front = pg.PlotDataItem(pen=pg.mkPen(FRONT_COLOUR, width=2))
            points = pg.PlotDataItem(pen=None, symbol="o", symbolSize=SYMBOL_SIZE)
            mark = pg.PlotDataItem(pen=None, symbol="o", symbolSize=22, symbolBrush=None,
                                   symbolPen=pg.mkPen("#d1242f", width=2))
            for item in (front, points, mark):
                plot.addItem(item)
            points.sigPointsClicked.connect(self._clicked)
            # every point names itself on hover: only the front is labelled, and a label
            # with no free room is left out
            points.scatter.opts.update(hoverable=True, tip=self.tip)
            plot.getViewBox().sigTransformChanged.connect(self._place_labels)
            self.plots[key], self.points[key], self.fronts[key] = plot, points, front
            self.marks[key], self.labels[key] = mark, []
            layout.addWidget(plot)
        self.rows = []
        self._fg, self._bg = LIGHT["foreground"], LIGHT["background"]
        self.apply_theme(False)

    def set_candidates(self, rows) -> None:
        self.rows = list(rows)
        scale = 100.0 if self.rows and self.rows[0].metric_name == "val_accuracy" else 1.0
        metric = [c.metric * scale for c in self.rows]
        self.costs = {"size": [c.size_bytes / 1024 for c in self.rows],
                      "latency": [c.latency_b64_ms for c in self.rows]}
        for key, cost in self.costs.items():
            plot = self.plots[key]
            self.points[key].setData(
                cost, metric, data=[c.name for c in self.rows],
                symbolBrush=[pg.mkBrush(RUNTIME_COLOURS.get(c.runtime, "#888888"))
                             for c in self.rows], symbolPen=pg.mkPen(self._fg, width=1))
            front = pareto_front(cost, metric) if self.rows else []
            xs = [cost[i] for i in front]
            ys = [metric[i] for i in front]
            # a staircase: each front point holds until the next cheaper-to-better step
            self.fronts[key].setData(np.repeat(xs, 2)[1:], np.repeat(ys, 2)[:-1])
            for label in self.labels[key]:
                plot.removeItem(label)
            self.labels[key] = []
            self.label_at[key] = [(math.log10(cost[i]), metric[i]) for i in front]
            for i in front:  # placed by _place_labels, in pixels
                backdrop = QColor(self._bg)
                backdrop.setAlpha(200)  # a grid or front line under the label stays faint
                label = pg.TextItem(_short(self.rows[i].name), color=FRONT_COLOUR,
                                    fill=backdrop)
                plot.addItem(label, ignoreBounds=True)
                self.labels[key].append(label)
            plot.setLabel("left", "val accuracy (%)" if scale == 100.0 else "val R2")
        self._place_labels()
        self.select(None)

    def _place_labels(self) -> None:
        """Lay the Pareto front's labels out so that none covers another or a point; runs
        again whenever a plot's view changes (resize, zoom), as labels keep their pixel size."""
        for key, plot in self.plots.items():
            view = plot.getViewBox()
            labels = self.labels.get(key, [])
            if not labels:
                continue
            def scene(x, y, view=view):
                return view.mapViewToScene(QPointF(x, y))
            xs, ys = self.points[key].getData()
            markers = [scene(x, y) for x, y in zip(xs, ys, strict=True)]
            spots = place_labels([scene(x, y) for x, y in self.label_at[key]],
                                 [label.textItem.boundingRect().size() for label in labels],
                                 view.sceneBoundingRect(), markers, SYMBOL_SIZE / 2 + 1)
            for label, spot in zip(labels, spots, strict=True):
                label.setVisible(spot is not None)
                if spot is not None:
                    label.setAnchor((0, 0))
                    label.setPos(view.mapSceneToView(spot.topLeft()))

    def select(self, name: str | None) -> None:
        names = [c.name for c in self.rows]
        for key, mark in self.marks.items():
            if name in names:
                i = names.index(name)
                y = self.rows[i].metric * (100.0 if self.rows[i].metric_name == "val_accuracy"
                                           else 1.0)
                mark.setData([self.costs[key][i]], [y])
            else:
                mark.setData([], [])

    def apply_theme(self, dark: bool) -> None:
        theme = DARK if dark else LIGHT
        self._fg, self._bg = theme["foreground"], theme["background"]
        for plot in self.plots.values():
            plot.setBackground(theme["background"])
            item = plot.getPlotItem()
            item.setTitle(item.titleLabel.text, color=self._fg)
            for axis in ("left", "bottom"):
                item.getAxis(axis).setPen(self._fg)
                item.getAxis(axis).setTextPen(self._fg)
        if self.rows:
            self.set_candidates(self.rows)

    def tip(self, x=None, y=None, data=None) -> str:
        """The hover text of the point of candidate ``data``: its whole name and numbers."""
        row = next((c for c in self.rows if c.name == data), None)
        if row is None:
            return ""
        metric = (f"{row.metric * 100:.2f}%" if row.metric_name == "val_accuracy"
                  else f"{row.metric:.4g}")
        return (f"{row.name}\n{row.metric_name} {metric} · {row.size_bytes / 1024:.1f} KiB · "
                f"{row.latency_b64_ms:.3g} ms at batch 64")

    def _clicked(self, _item, spots, _event=None) -> None:
        if len(spots):
            self.pointClicked.emit(spots[0].data())


class _PlainLogAxis(pg.AxisItem):
    """Log axis labelled 20, 50, 100 instead of 2·10¹, with only 1-2-5 steps named,
    so a span of one decade does not crowd its labels."""

    def logTickStrings(self, values, scale, spacing):
        labels = []
        for v in values:
            x = 10 ** v * scale
            lead = round(x / 10 ** math.floor(math.log10(x)), 6) if x > 0 else 0
            labels.append(f"{x:g}" if lead in (1, 2, 5) else "")
        return labels


def _short(name: str) -> str:
    """'structured 50% + ft 10 ep int8 linear (onnx)' -> '50% int8 linear (onnx)'."""
    words = [w for w in name.split() if w not in ("structured", "unstructured", "global", "+",
                                                 "ft", "kd", "ep") and not w.isdigit()]
    return " ".join(words)


class CompressionPanel(QWidget):
    """Options form, Run, progress, the table and the chart; owns the worker threads."""

    message = Signal(str, str)  # text, kind ("error" | "info"): shown in the dock's bar
    selectionChanged = Signal(bool)  # a candidate is picked (export possible)
    # "Distil into the configured model": teacher run id, alpha, temperature
    studentRequested = Signal(int, float, float)

    def __init__(self, workspace_dir=None, bridge=None, parent=None,
                 log: MessageLog | None = None):
        """Without a ``bridge`` (tests), fine-tuning runs train in the worker thread, still
        as workspace runs. Messages go to ``log`` (the window's) through the dock's bar."""
        super().__init__(parent)
        self.workspace_dir = workspace_dir
        self.messages = MessageBar(log, scope="compression", source="Compression")
        self.message.connect(self.messages.show_message)
        if bridge is not None:
            self.trainer = BridgeTrainer(bridge, workspace_dir, self)
            self.trainer.waiting.connect(self._waiting)
        else:
            self.trainer = None
        self._job: _CompressJob | None = None
        self._save: _SaveJob | None = None
        self.result = None
        self.selected: str | None = None
        self.run_box, self.teacher_box = QComboBox(), QComboBox()
        self.method = QComboBox()
        self.method.addItems(["structured", "unstructured", "global", "none"])
        self.ratio = QDoubleSpinBox(decimals=2, minimum=0.05, maximum=0.95, singleStep=0.05,
                                    value=0.5)
        self.sweep = QLineEdit(placeholderText="e.g. 0.25, 0.5, 0.75 (replaces the ratio)")
        self.importance = QComboBox()
        self.importance.addItems(list(IMPORTANCES))
        self.exclude = QLineEdit(placeholderText="layer names, e.g. 0 4 (classifier is kept)")
        self.quantize = QComboBox()
        self.quantize.addItems(["onnx", "torch", "none"])
        self.epochs = QSpinBox(minimum=0, maximum=1000, value=5)
        self.alpha = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=1.0, singleStep=0.05,
                                    value=0.7)
        self.alpha.setToolTip("Share of the loss that follows the teacher's softened outputs")
        self.temperature = QDoubleSpinBox(decimals=1, minimum=0.5, maximum=20.0, value=4.0)
        self.temperature.setToolTip("Softens both models' outputs; 2 to 8 is usual")
        self.student_button = QPushButton("Distil into the configured model")
        self.student_button.setToolTip(
            "Train the model configured in the Run configuration panel (a smaller one) as a "
            "student of the 'Distil from' run: a normal run with distill.* set")
        self.student_button.clicked.connect(self._request_student)
        self.teacher_box.currentIndexChanged.connect(self._teacher_changed)
        self.run_button = QPushButton("Run compression")
        self.run_button.clicked.connect(self.start)
        refresh = QPushButton("Refresh runs")
        refresh.clicked.connect(self.refresh_runs)
        form = QFormLayout()
        form.addRow("Run", self.run_box)
        form.addRow("Pruning", self.method)
        form.addRow("Ratio", self.ratio)
        form.addRow("Sweep ratios", self.sweep)
        form.addRow("Importance", self.importance)
        form.addRow("Exclude layers", self.exclude)
        form.addRow("Quantize (int8)", self.quantize)
        form.addRow("Fine-tune epochs", self.epochs)
        form.addRow("Distil from", self.teacher_box)
        form.addRow("Teacher weight", self.alpha)
        form.addRow("Temperature", self.temperature)
        form.addRow(self.student_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(refresh)
        buttons.addStretch(1)
        form.addRow(buttons)
        self.status = QLabel("Pick a trained run, then Run compression.")
        self.status.setWordWrap(True)
        options = QWidget()
        left = QVBoxLayout(options)
        left.addLayout(form)
        left.addWidget(self.status)
        left.addStretch(1)
        self.table = report_table(COLUMNS, {0: QHeaderView.Stretch},
                                  default=QHeaderView.ResizeToContents)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.itemSelectionChanged.connect(self._row_selected)
        self.chart = SweepChart()
        self.chart.pointClicked.connect(self.pick)
        legend = QLabel(
            f"<span style='color:{RUNTIME_COLOURS['torch']}'>●</span> PyTorch &nbsp; "
            f"<span style='color:{RUNTIME_COLOURS['onnxruntime']}'>●</span> ONNX Runtime "
            f"&nbsp; <span style='color:{FRONT_COLOUR}'>━</span> Pareto front (no other "
            f"candidate is both cheaper and more accurate) &nbsp; "
            f"<span style='color:#d1242f'>◯</span> picked: click a point or a row")
        legend.setWordWrap(True)  # on one line it would hold every dock of its tab group wide
        charts = QWidget()
        box = QVBoxLayout(charts)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.chart, 1)
        box.addWidget(legend)
        results = QSplitter(Qt.Vertical)
        results.addWidget(self.table)
        results.addWidget(charts)
        results.setSizes([220, 320])
        split = QSplitter(Qt.Horizontal)
        split.addWidget(options)
        split.addWidget(results)
        split.setStretchFactor(1, 1)
        split.setSizes([330, 900])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.messages)
        layout.addWidget(split, 1)
        self.refresh_runs()

    @property
    def busy(self) -> bool:
        return any(j is not None and j.isRunning() for j in (self._job, self._save))

    def refresh_runs(self) -> None:
        runs = exportable_runs(self.workspace_dir)
        keep = self.run_box.currentData()
        self.run_box.clear()
        self.teacher_box.clear()
        self.teacher_box.addItem("no distillation", None)
        for run in runs:
            best = f", {run.best_metric} {run.best_val:.4g}" if run.best_val is not None else ""
            label = f"{run.id}  {run.name}{best}"
            self.run_box.addItem(label, run.id)
            self.teacher_box.addItem(label, run.id)
        if keep is not None and self.run_box.findData(keep) >= 0:
            self.run_box.setCurrentIndex(self.run_box.findData(keep))
        self.run_button.setEnabled(bool(runs) and not self.busy)

    def options(self) -> CompressOptions:
        """The form as engine options; raises CompressionError for a bad sweep list."""
        text = self.sweep.text().replace(",", " ").split()
        try:
            ratios = tuple(float(r) for r in text) or (self.ratio.value(),)
        except ValueError:
            raise CompressionError(f"sweep ratios must be numbers such as 0.25, 0.5, 0.75 "
                                   f"(got {self.sweep.text()!r})") from None
        method = self.method.currentText()
        return CompressOptions(prune=None if method == "none" else method, ratios=ratios,
                               importance=self.importance.currentText(),
                               exclude=tuple(self.exclude.text().replace(",", " ").split()),
                               quantize=self.quantize.currentText(),
                               finetune_epochs=self.epochs.value(),
                               distill_alpha=self.alpha.value(),
                               distill_temperature=self.temperature.value())

    def start(self) -> None:
        run_id = self.run_box.currentData()
        if run_id is None or self.busy:
            return
        try:
            options = self.options()
            options.check()
        except CompressionError as exc:
            self.message.emit(str(exc), "error")
            return
        self.run_button.setEnabled(False)
        self.status.setText(f"Compressing run {run_id}…")
        train = self.trainer or workspace_train(self.workspace_dir)
        job = _CompressJob(self.workspace_dir, run_id, self.teacher_box.currentData(), options,
                           train, self)
        job.progress.connect(self.status.setText)
        job.finished_rows.connect(self._done)
        job.failed.connect(self._failed)
        self._job = job
        job.start()

    def show_candidates(self, rows) -> None:
        self.table.setRowCount(len(rows))
        for r, c in enumerate(rows):
            cells = (c.name, c.runtime, f"{c.params:,}", f"{c.nonzero:,}",
                     human_bytes(c.size_bytes), f"{c.macs / 1e6:.3f} M",
                     f"{c.latency_b1_ms:.3f} ms", f"{c.latency_b64_ms:.3f} ms", metric_text(c))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col >= 2:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(r, col, item)
        self.chart.set_candidates(rows)
        self.pick(None)

    def pick(self, name: str | None) -> None:
        """Select a candidate in the table and the chart (None: nothing selected)."""
        self.selected = name
        names = [c.name for c in self.chart.rows]
        self.table.blockSignals(True)
        if name in names:
            self.table.selectRow(names.index(name))
            self.table.scrollToItem(self.table.item(names.index(name), 0))
        else:
            self.table.clearSelection()
        self.table.blockSignals(False)
        self.chart.select(name)
        self.selectionChanged.emit(name is not None and self.result is not None)

    def export_dialog(self) -> None:
        """File ▸ Export compressed model…: the picked candidate, through engine.export."""
        if self.result is None or self.selected is None:
            self.message.emit("Run a compression and pick a candidate in its table or chart "
                              "first.", "info")
            return
        candidate = self.result.get(self.selected)
        formats = ("onnx",) if candidate.path else ("safetensors", "pt2", "onnx")
        stem = re.sub(r"[^A-Za-z0-9]+", "-", candidate.name).strip("-")
        suggested = str(Path.home() / (stem + SUFFIXES[formats[0]]))
        path, chosen = QFileDialog.getSaveFileName(self, "Export compressed model", suggested,
                                                   ";;".join(FILTERS[f] for f in formats))
        if path:
            self.export_candidate(self.selected, *_path_and_format(path, chosen, formats))

    def export_candidate(self, name: str, path: Path, fmt: str) -> None:
        if self.busy:
            return
        job = _SaveJob(self.result, name, fmt, path, self)
        job.done.connect(self._saved)
        job.failed.connect(self._save_failed)
        self._save = job
        job.start()

    def _saved(self, text: str) -> None:
        """An export's verification: shown in every dock, wherever the user went meanwhile."""
        self.messages.show_message(text, "info", EXPORT_SOURCE, everywhere=True)

    def _save_failed(self, text: str) -> None:
        self.messages.show_message(text, "error", EXPORT_SOURCE, everywhere=True)

    def apply_theme(self, dark: bool) -> None:
        self.chart.apply_theme(dark)

    def wait(self) -> None:
        """Let the jobs end (the window is closing): a job waiting for its fine-tuning run
        is woken and fails."""
        if self.trainer is not None:
            self.trainer.cancel()
        for job in (self._job, self._save):
            if job is not None:
                job.wait()

    def _done(self, rows) -> None:
        self.result = self._job.result
        self.run_button.setEnabled(True)
        self.status.setText(f"{len(rows)} candidates measured. Pick one in the table or chart; "
                            f"File ▸ Export compressed model… writes it.")
        self.show_candidates(rows)

    def _teacher_changed(self) -> None:
        teaching = self.teacher_box.currentData() is not None
        self.student_button.setEnabled(teaching)
        self.alpha.setEnabled(teaching)
        self.temperature.setEnabled(teaching)

    def _request_student(self) -> None:
        teacher = self.teacher_box.currentData()
        if teacher is not None:
            self.studentRequested.emit(int(teacher), self.alpha.value(),
                                       self.temperature.value())

    def _waiting(self, text: str) -> None:
        self.status.setText(text[0].upper() + text[1:] + "…")

    def _failed(self, text: str, outcome: str) -> None:
        """The dock keeps the outcome and its reason, not the last progress line."""
        self.run_button.setEnabled(True)
        self.status.setText(text)
        # a long job's outcome, like an export's: every dock shows it (the user has moved on)
        self.messages.show_message(text, "info" if outcome == "stopped" else "error",
                                   everywhere=True)

    def _row_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.pick(self.chart.rows[rows[0].row()].name)


def _path_and_format(path: str, chosen_filter: str, formats) -> tuple[Path, str]:
    """The format the file name's suffix names, else the chosen filter's (suffix added)."""
    out = Path(path)
    for fmt in formats:
        if out.suffix.lower() == SUFFIXES[fmt]:
            return out, fmt
    fmt = next((f for f in formats if FILTERS[f] == chosen_filter), formats[0])
    return out.with_name(out.name + SUFFIXES[fmt]), fmt
