"""A confusion matrix as a heatmap: rows are true classes, columns predicted, in class order.

Each cell is coloured by its row-normalised rate (the share of that true class
predicted as the column's class), so a small class's mistakes show as plainly
as a large one's, and reads "count / rate". Clicking a cell emits its (true,
predicted) pair; the panel lists those samples.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem

from .live_plot import DARK, LIGHT

MAX_LABELLED = 20  # classes beyond this: the cells are too small for text; the colour says it
# low rate -> high rate; both ends read against each theme's plot background
RAMP = {False: [(247, 251, 255), (8, 69, 148)], True: [(40, 42, 46), (61, 123, 217)]}


class ConfusionMatrixView(pg.PlotWidget):
    cellClicked = Signal(int, int)  # true class, predicted class

    def __init__(self, parent=None):
        super().__init__(parent)
        self.dark = False
        self.matrix = np.zeros((0, 0), dtype=np.int64)
        self.names: list[str] = []
        self.image = pg.ImageItem(axisOrder="row-major")
        self.addItem(self.image)
        self.texts: list[pg.TextItem] = []
        self.selection = QGraphicsRectItem()
        self.selection.setZValue(10)
        self.selection.hide()
        self.addItem(self.selection)
        item = self.getPlotItem()
        item.setMenuEnabled(False)
        item.hideButtons()
        item.setLabel("left", "True class")
        item.setLabel("bottom", "Predicted class")
        self.getViewBox().invertY(True)
        self.getViewBox().setMouseEnabled(False, False)
        self.getViewBox().setAspectLocked(True)
        self.scene().sigMouseClicked.connect(self._on_click)
        self.apply_theme(False)

    def set_matrix(self, matrix, names: list[str]) -> None:
        self.matrix = np.asarray(matrix, dtype=np.int64).reshape(len(names), len(names))
        self.names = list(names)
        k = len(names)
        self.selection.hide()
        if not k:
            self.image.clear()
            self._label()
            return
        # coloured by the square root of the rate: a 3% confusion stands out from none
        self.image.setImage(np.sqrt(self.rates()), levels=(0.0, 1.0))
        self.image.setRect(QRectF(0, 0, k, k))
        ticks = [[(i + 0.5, name) for i, name in enumerate(names)]] if k <= MAX_LABELLED \
            else [[(i + 0.5, name) for i, name in enumerate(names) if i % 5 == 0]]
        for axis in ("left", "bottom"):
            self.getPlotItem().getAxis(axis).setTicks(ticks)
        self._label()
        self.getViewBox().setRange(xRange=(0, k), yRange=(0, k), padding=0.02)

    def rates(self) -> np.ndarray:
        """Each row divided by its total (a class with no samples: a row of zeros)."""
        totals = self.matrix.sum(axis=1, keepdims=True)
        return np.divide(self.matrix, totals, out=np.zeros(self.matrix.shape),
                         where=totals > 0)

    def cell_text(self, i: int, j: int) -> str:
        """"count\nrate" (an empty cell: "0" alone, so the eye finds the confusions)."""
        count = self.matrix[i, j]
        return f"{count}\n{self.rates()[i, j]:.0%}" if count else "0"

    def select(self, i: int, j: int) -> None:
        self.selection.setRect(QRectF(j, i, 1, 1))
        self.selection.show()

    def apply_theme(self, dark: bool) -> None:
        self.dark = dark
        colours = DARK if dark else LIGHT
        self.setBackground(colours["background"])
        item = self.getPlotItem()
        for axis in ("left", "bottom"):
            item.getAxis(axis).setPen(colours["foreground"])
            item.getAxis(axis).setTextPen(colours["foreground"])
        ramp = pg.ColorMap([0.0, 1.0], [QColor(*c) for c in RAMP[dark]])
        self.image.setLookupTable(ramp.getLookupTable(0.0, 1.0, 256))
        pen = QPen(QColor("#ff9f1c" if dark else "#d1242f"))
        pen.setWidthF(3)
        pen.setCosmetic(True)
        self.selection.setPen(pen)
        self._label()

    def _label(self) -> None:
        for text in self.texts:
            self.removeItem(text)
        self.texts = []
        k = len(self.names)
        if not k or k > MAX_LABELLED:
            return
        rates = self.rates()
        for i in range(k):
            for j in range(k):
                # dark text on the ramp's light end, light text on its dark end
                light = self.dark or rates[i, j] > 0.3
                text = pg.TextItem(self.cell_text(i, j), anchor=(0.5, 0.5),
                                   color="#f0f0f0" if light else "#1f2328")
                text.setPos(j + 0.5, i + 0.5)
                self.addItem(text)
                self.texts.append(text)

    def _on_click(self, event) -> None:
        k = len(self.names)
        if not k:
            return
        point = self.getViewBox().mapSceneToView(event.scenePos())
        j, i = int(np.floor(point.x())), int(np.floor(point.y()))
        if 0 <= i < k and 0 <= j < k:
            self.select(i, j)
            self.cellClicked.emit(i, j)
