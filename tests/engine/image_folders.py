"""Small image folders for tests: classes of distinct brightness, mixed sizes and modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_folder(root: Path, per_class: int = 6, classes=("cat", "dog"), seed: int = 0) -> Path:
    """``root``/<class>/ with PNG, JPEG and BMP files of sizes 10 to 30 pixels, grey and
    colour; class i is about 60 + 100 * i bright, so a model can tell them apart."""
    rng = np.random.default_rng(seed)
    suffixes = (".png", ".jpg", ".bmp")
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = int(rng.integers(10, 31))
            level = 60 + 100 * c
            pixels = np.clip(rng.normal(level, 25, (size, size + i % 3, 3)), 0, 255)
            image = Image.fromarray(pixels.astype(np.uint8), mode="RGB")
            if i % 2:
                image = image.convert("L")
            image.save(folder / f"{name}{i:03d}{suffixes[i % 3]}")
    return root
