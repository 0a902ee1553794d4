"""Write an image folder to try `data.dataset = "images:..."` on, from data that ships with
scikit-learn (its 8x8 digits), so nothing is downloaded.

    python examples/make_image_folder.py [FOLDER] [--count N]

FOLDER (default: examples/digits-images, which examples/images-folder.toml reads) gets one
subfolder per digit. To look like real files the images vary: sizes from 24 to 40 pixels,
grey and tinted colour, PNG, JPEG and BMP.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

SUFFIXES = (".png", ".jpg", ".bmp")


def make_image_folder(folder: str | Path, count: int | None = None, seed: int = 0) -> Path:
    """Write (up to ``count``) digits as image files under ``folder``/<digit>/; returns it."""
    folder = Path(folder)
    digits = load_digits()
    rng = np.random.default_rng(seed)
    n = len(digits.images) if count is None else min(count, len(digits.images))
    for i in range(n):
        pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)
        size = int(rng.integers(24, 41))
        image = Image.fromarray(pixels, mode="L").resize((size, size), Image.Resampling.BICUBIC)
        if i % 3 == 0:  # a tinted colour image
            tint = rng.uniform(0.6, 1.0, size=3)
            rgb = np.asarray(image, dtype=np.float32)[..., None] * tint
            image = Image.fromarray(rgb.astype(np.uint8), mode="RGB")
        out = folder / str(digits.target[i]) / f"{i:04d}{SUFFIXES[i % len(SUFFIXES)]}"
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(out)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=Path(__file__).parent / "digits-images")
    parser.add_argument("--count", type=int, default=None, help="at most this many images")
    args = parser.parse_args()
    folder = make_image_folder(args.folder, args.count)
    print(f"wrote {sum(1 for _ in folder.rglob('*.*'))} images in 10 class folders under {folder}")


if __name__ == "__main__":
    main()
