"""Run ▸ Preview augmentation…: a grid of the configured run's augmented training samples.

The grid is made by engine.data.augment.preview_grid (as `torchwork augment-preview`
does) on a worker thread, since the first look at an image folder decodes it into
its cache; only the finished uint8 array crosses back to the GUI thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from engine.config import ConfigError, RunConfig

SOURCE = "Run ▸ Preview augmentation"
COUNT = 16
MIN_SIDE = 320  # small images are scaled up (nearest) so their pixels can be seen


class PreviewDialog(QDialog):
    """The grid image, scaled up by a whole factor so each pixel stays a crisp square."""

    def __init__(self, grid: np.ndarray, caption: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Augmentation preview")
        self.grid = np.ascontiguousarray(grid)
        h, w, _ = self.grid.shape
        image = QImage(self.grid.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        factor = max(1, MIN_SIDE // max(h, w))
        self.pixmap = QPixmap.fromImage(image.copy()).scaled(
            w * factor, h * factor, Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.FastTransformation)
        self.image = QLabel()
        self.image.setPixmap(self.pixmap)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text = QLabel(caption)
        text.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.image)
        layout.addWidget(buttons)


class AugmentPreview(QObject):
    """Makes the grid for the form's configuration and shows it in a PreviewDialog."""

    finished = Signal(object, str)  # the (H, W, 3) uint8 grid, its caption
    failed = Signal(str)

    def __init__(self, config: Callable[[], RunConfig], messages, parent: QWidget):
        super().__init__(parent)
        self._config = config
        self._messages = messages
        self._parent = parent
        self._busy = False
        self._draws = 0  # each preview a new draw
        self.dialog: PreviewDialog | None = None
        self.finished.connect(self._show)
        self.failed.connect(self._fail)

    def preview(self) -> None:
        if self._busy:
            return
        cfg = self._config()
        if not cfg.applies("augment.enabled"):
            self._messages.show_message(
                f"data.dataset={cfg.data.dataset!r} is not image data: augmentation applies to "
                f"image folders (images:path/to/folder) and digits", "warning", SOURCE)
            return
        self._busy = True
        self._draws += 1
        self._messages.show_message("Preparing the augmentation preview…", "info", SOURCE)
        threading.Thread(target=self._work, args=(cfg, self._draws), daemon=True,
                         name="augment-preview").start()

    def _work(self, cfg: RunConfig, seed: int) -> None:
        from engine.data.augment import preview_grid

        try:
            grid = preview_grid(cfg, COUNT, seed=seed)
        except ConfigError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # shown, never a crash of the window
            self.failed.emit(f"cannot make the preview: {type(exc).__name__}: {exc}")
            return
        on = cfg.augment.enabled
        caption = (f"The first {COUNT} training samples of {cfg.data.dataset}, "
                   + ("each through this run's [augment] transform (a fresh draw each time)."
                      if on else "unchanged: augmentation is off (Augment training batches)."))
        self.finished.emit(grid, caption)

    def _show(self, grid, caption: str) -> None:
        self._busy = False
        self._messages.dismiss()
        self.dialog = PreviewDialog(grid, caption, self._parent)
        self.dialog.show()

    def _fail(self, text: str) -> None:
        self._busy = False
        self._messages.show_message(text, "error", SOURCE)
