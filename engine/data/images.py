"""Image folders: list the files, decode each once into a memory-mapped uint8 cache.

``data.dataset = "images:FOLDER"`` (one subfolder per class) or ``"images:FILE.csv"``
(rows of ``path,label``; paths relative to the CSV's folder). Every image is
decoded, converted to ``data.channels`` and resized to ``data.image_size`` square
once, into one ``(N, C, S, S)`` uint8 file in the cache folder (``$TORCHWORK_CACHE``,
else ``$XDG_CACHE_HOME/torchwork``, else ``~/.cache/torchwork``; subfolder
``images``). The file's name is a hash of the listing (paths, sizes, mtimes) and of
the size and channels, so a touched, added or removed file makes a new cache and
an unchanged folder is read back without opening one image. Files that cannot be
decoded are remembered in the cache too, so they are not tried again.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.config import ConfigError
from engine.show import show

PREFIX = "images:"
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
CACHE_VERSION = 1
PARALLEL_FROM = 256  # fewer files decode faster in this process than workers start
MAX_WORKERS = 8  # decoding processes at most: beyond, the disk and memory bus are the limit
BAD_SHOWN = 5  # how many skipped paths the log names

log = logging.getLogger("torchwork.data")


@dataclass(frozen=True)
class Listing:
    paths: list[Path]
    labels: np.ndarray  # int64 class index per path
    class_names: list[str]
    source: Path  # the folder or CSV the listing came from


@dataclass(frozen=True)
class DecodedImages:
    """The cache of one listing: ``pixels`` (N, C, S, S) uint8, memory-mapped, rows in
    listing order; ``bad`` the rows that could not be decoded (their pixels are zero)."""

    pixels: np.memmap
    path: Path
    bad: dict[int, str]  # row -> why it could not be decoded
    decoded: int  # images decoded by this call (0: everything came from the cache)


def is_images(dataset: str) -> bool:
    return dataset.startswith(PREFIX)


def images_source(dataset: str) -> Path:
    """The folder or CSV an ``images:`` dataset names (relative paths: the current folder;
    `torchwork run` stores them absolute, resolved beside the config file)."""
    return Path(dataset[len(PREFIX):]).expanduser()


def cache_root() -> Path:
    env = os.environ.get("TORCHWORK_CACHE")
    if env:
        return Path(env).expanduser() / "images"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "torchwork" / "images"


# --- listing ------------------------------------------------------------------
def list_images(dataset: str) -> Listing:
    """The images and labels of an ``images:`` dataset, in a fixed (sorted) order."""
    source = images_source(dataset)
    if source.suffix.lower() == ".csv":
        if not source.is_file():
            raise ConfigError(f"data.dataset={show(dataset)}: {source.resolve()} not found: give "
                              f"a CSV of path,label rows or a folder with one subfolder per class")
        return _list_csv(dataset, source)
    if not source.is_dir():
        state = "is not a folder" if source.exists() else "not found"
        raise ConfigError(f"data.dataset={show(dataset)}: {source.resolve()} {state}: give a "
                          f"folder with one subfolder per class, or a CSV of path,label rows")
    return _list_folder(dataset, source)


def _list_folder(dataset: str, root: Path) -> Listing:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise ConfigError(f"data.dataset={show(dataset)}: {root.resolve()} has "
                          f"{len(classes)} class subfolder(s); put the images of each class "
                          f"in a subfolder named after it (at least 2 classes)")
    paths, labels = [], []
    for index, folder in enumerate(classes):
        files = sorted(p for p in folder.rglob("*")
                       if p.suffix.lower() in EXTENSIONS and p.is_file())
        if not files:
            raise ConfigError(f"data.dataset={show(dataset)}: class folder {folder.resolve()} "
                              f"holds no image ({', '.join(EXTENSIONS)}): add images or remove "
                              f"the folder")
        paths += files
        labels += [index] * len(files)
    return Listing(paths, np.asarray(labels, dtype=np.int64), [p.name for p in classes], root)


def _list_csv(dataset: str, file: Path) -> Listing:
    try:
        with file.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"data.dataset={show(dataset)}: cannot read {file}: {exc}") from None
    start = 1 if rows and [c.strip().lower() for c in rows[0]] == ["path", "label"] else 0
    paths, names = [], []
    for line, row in enumerate(rows[start:], start=start + 1):
        if not any(c.strip() for c in row):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise ConfigError(f"data.dataset={show(dataset)}: {file} line {line} has "
                              f"{show(row)}; each row must be path,label")
        path = Path(row[0].strip()).expanduser()
        paths.append(path if path.is_absolute() else file.parent / path)
        names.append(row[1].strip())
    class_names = sorted(set(names))
    if len(class_names) < 2:
        raise ConfigError(f"data.dataset={show(dataset)}: {file} lists {len(paths)} image(s) "
                          f"of {len(class_names)} class(es); a classifier needs at least 2 "
                          f"labels")
    index = {name: i for i, name in enumerate(class_names)}
    return Listing(paths, np.asarray([index[n] for n in names], dtype=np.int64), class_names,
                   file)


# --- the cache ----------------------------------------------------------------
def cache_key(listing: Listing, size: int, channels: int) -> str:
    """Hash of what the decoded pixels depend on: each file's path, size and mtime, and
    the size and channels decoded to. A missing file hashes as such (it is a bad file)."""
    h = hashlib.sha256(f"v{CACHE_VERSION} {size} {channels}\n".encode())
    for path in listing.paths:
        try:
            st = path.stat()
            h.update(f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{path}\0missing\n".encode())
    return h.hexdigest()[:32]


def decode_images(listing: Listing, size: int, channels: int, *,
                  workers: int | None = None) -> DecodedImages:
    """The listing's pixels from the cache, decoding (in parallel) only on a miss."""
    root = cache_root()
    key = cache_key(listing, size, channels)
    data, meta = root / f"{key}.u8", root / f"{key}.json"
    shape = (len(listing.paths), channels, size, size)
    hit = _read_meta(meta, shape)
    if hit is not None and data.is_file() and data.stat().st_size == int(np.prod(shape)):
        pixels = np.memmap(data, dtype=np.uint8, mode="r", shape=shape)
        return DecodedImages(pixels, data, hit, 0)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f"{key}.u8.{os.getpid()}.tmp"
        bad = _decode_into(tmp, shape, listing.paths, size, channels, workers)
        os.replace(tmp, data)
        tmp_meta = meta.with_suffix(f".{os.getpid()}.tmp")
        tmp_meta.write_text(json.dumps({"shape": list(shape), "source": str(listing.source),
                                        "bad": {str(k): v for k, v in bad.items()}}))
        os.replace(tmp_meta, meta)  # written last: its presence marks a complete cache
    except OSError as exc:
        raise ConfigError(f"cannot write the image cache in {root} ({exc}): free disk space "
                          f"or set TORCHWORK_CACHE to a writable folder") from None
    pixels = np.memmap(data, dtype=np.uint8, mode="r", shape=shape)
    return DecodedImages(pixels, data, bad, len(listing.paths))


def _read_meta(meta: Path, shape: tuple[int, ...]) -> dict[int, str] | None:
    try:
        stored = json.loads(meta.read_text())
        if tuple(stored["shape"]) != shape:
            return None
        return {int(k): str(v) for k, v in stored["bad"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _decode_into(file: Path, shape, paths: list[Path], size: int, channels: int,
                 workers: int | None) -> dict[int, str]:
    np.memmap(file, dtype=np.uint8, mode="w+", shape=shape).flush()
    n = len(paths)
    workers = workers if workers is not None else min(os.cpu_count() or 1, MAX_WORKERS)
    if n < PARALLEL_FROM or workers <= 1:
        return _decode_chunk(file, shape, [str(p) for p in paths], 0, size, channels)
    chunk = max(64, -(-n // (workers * 8)))
    methods = multiprocessing.get_all_start_methods()
    # fork: the workers only run Pillow, and need not import torch again as spawn would
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    bad: dict[int, str] = {}
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        jobs = [pool.submit(_decode_chunk, file, shape, [str(p) for p in paths[lo:lo + chunk]],
                            lo, size, channels) for lo in range(0, n, chunk)]
        for job in jobs:
            bad.update(job.result())
    return bad


def _decode_chunk(file: Path, shape, paths: list[str], first: int, size: int,
                  channels: int) -> dict[int, str]:
    pixels = np.memmap(file, dtype=np.uint8, mode="r+", shape=shape)
    bad = {}
    for offset, path in enumerate(paths):
        try:
            pixels[first + offset] = decode_image(path, size, channels)
        except UnidentifiedImageError:
            bad[first + offset] = "not an image Pillow can read"
        except FileNotFoundError:
            bad[first + offset] = "file not found"
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            bad[first + offset] = f"{type(exc).__name__}: {exc}"
    pixels.flush()
    return bad


def decode_image(path: str | Path, size: int, channels: int) -> np.ndarray:
    """One image as (channels, size, size) uint8: grey or RGB, squashed to the square."""
    mode = "L" if channels == 1 else "RGB"
    with Image.open(path) as im:
        im.draft(mode, (size, size))  # JPEG: decode at a reduced scale when it can
        im = im.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def report_bad(dataset: str, listing: Listing, bad: dict[int, str], on_bad_file: str) -> None:
    """Fail on undecodable files (``data.on_bad_file = "fail"``) or log how many are skipped."""
    if not bad:
        return
    rows = sorted(bad)
    shown = "; ".join(f"{listing.paths[i]} ({bad[i]})" for i in rows[:BAD_SHOWN])
    more = f" and {len(rows) - BAD_SHOWN} more" if len(rows) > BAD_SHOWN else ""
    if on_bad_file == "fail":
        raise ConfigError(f"data.dataset={show(dataset)}: {len(rows)} of {len(listing.paths)} "
                          f"images cannot be decoded: {shown}{more}; remove or replace them, or "
                          f"set data.on_bad_file='skip'")
    log.warning("skipped %d of %d images that cannot be decoded: %s%s", len(rows),
                len(listing.paths), shown, more)
