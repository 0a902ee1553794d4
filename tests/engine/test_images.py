"""Image folders: listing, the decode-once cache, bad files, the split and normalization."""

import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from engine.config import ConfigError, RunConfig
from engine.data import image_bundle, images, load_dataset
from engine.data.images import decode_images, list_images

from .image_folders import make_folder


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("TORCHWORK_CACHE", str(folder))
    return folder


@pytest.fixture
def decodes(monkeypatch):
    """Counts images opened and decoded in this process (small folders decode here)."""
    calls = []
    real = images.decode_image

    def counting(path, size, channels):
        calls.append(str(path))
        return real(path, size, channels)

    monkeypatch.setattr(images, "decode_image", counting)
    return calls


def config(folder, **data) -> RunConfig:
    cfg = RunConfig()
    for key, value in {"dataset": f"images:{folder}", "image_size": 12, "channels": 3,
                       "val_fraction": 0.25, **data}.items():
        cfg.set(f"data.{key}", value)
    cfg.set("model.arch", "cnn")
    cfg.validate()
    return cfg


def test_folder_listing_one_class_per_subfolder(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=4)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "dog" / "more").mkdir()
    Image.new("L", (9, 9)).save(root / "dog" / "more" / "nested.png")
    listing = list_images(f"images:{root}")
    assert listing.class_names == ["cat", "dog"]
    names = [p.name for p in listing.paths]
    assert "notes.txt" not in names and "nested.png" in names
    assert list(listing.labels) == [0] * 4 + [1] * 5


def test_csv_listing_paths_beside_the_csv(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=2)
    table = tmp_path / "labels.csv"
    table.write_text("path,label\npets/cat/cat000.png,kitty\npets/dog/dog001.jpg,puppy\n"
                     f"{root / 'dog' / 'dog000.png'},puppy\n")
    listing = list_images(f"images:{table}")
    assert listing.class_names == ["kitty", "puppy"]
    assert listing.paths[0] == tmp_path / "pets/cat/cat000.png"
    assert list(listing.labels) == [0, 1, 1]


def test_csv_ragged_row_names_the_line(tmp_path):
    table = tmp_path / "labels.csv"
    table.write_text("path,label\na.png,x\nb.png\n")
    with pytest.raises(ConfigError, match=r"labels.csv line 3 .*path,label"):
        list_images(f"images:{table}")


def test_missing_folder_and_empty_class_are_named(tmp_path):
    with pytest.raises(ConfigError, match="nowhere not found"):
        list_images(f"images:{tmp_path / 'nowhere'}")
    root = make_folder(tmp_path / "pets", per_class=2)
    (root / "bird").mkdir()
    with pytest.raises(ConfigError, match=r"class folder .*bird holds no image"):
        list_images(f"images:{root}")


def test_mixed_sizes_grey_and_colour_decode_to_one_shape(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=6)
    listing = list_images(f"images:{root}")
    colour = decode_images(listing, 12, 3).pixels
    grey = decode_images(listing, 12, 1).pixels
    assert colour.shape == (12, 3, 12, 12) and grey.shape == (12, 1, 12, 12)
    grey_file = next(i for i, p in enumerate(listing.paths) if Image.open(p).mode == "L")
    assert np.array_equal(colour[grey_file, 0], colour[grey_file, 2])  # grey -> equal RGB
    # class brightness survives the conversions: dogs (160) brighter than cats (60)
    assert grey[6:].mean() > grey[:6].mean() + 60


def test_second_load_decodes_nothing(tmp_path, decodes):
    root = make_folder(tmp_path / "pets")
    first = load_dataset(config(root))
    assert len(decodes) == 12
    decodes.clear()
    second = load_dataset(config(root))
    assert decodes == []
    assert torch.equal(first.x_train, second.x_train)


def test_touched_or_added_file_invalidates_the_cache(tmp_path, decodes):
    root = make_folder(tmp_path / "pets")
    listing = list_images(f"images:{root}")
    decode_images(listing, 12, 3)
    path = listing.paths[3]
    Image.new("RGB", (12, 12), (255, 255, 255)).save(path, format=Image.open(path).format)
    stamp = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(stamp, stamp))
    decodes.clear()
    again = decode_images(list_images(f"images:{root}"), 12, 3)
    assert again.decoded == 12 and again.pixels[3].min() == 255
    Image.new("RGB", (8, 8)).save(root / "cat" / "new.png")
    decodes.clear()
    more = decode_images(list_images(f"images:{root}"), 12, 3)
    assert more.pixels.shape[0] == 13 and len(decodes) == 13
    decodes.clear()
    assert decode_images(list_images(f"images:{root}"), 12, 3).decoded == 0 and not decodes


def test_a_different_size_is_its_own_cache(tmp_path, decodes):
    root = make_folder(tmp_path / "pets")
    listing = list_images(f"images:{root}")
    decode_images(listing, 12, 3)
    decodes.clear()
    assert decode_images(listing, 16, 3).pixels.shape[-1] == 16 and len(decodes) == 12


def test_parallel_decode_matches_serial(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "pets", per_class=10)
    listing = list_images(f"images:{root}")
    serial = np.array(decode_images(listing, 12, 3, workers=1).pixels)
    for f in (tmp_path / "cache" / "images").iterdir():
        f.unlink()
    monkeypatch.setattr(images, "PARALLEL_FROM", 4)
    parallel = decode_images(listing, 12, 3, workers=2)
    assert parallel.decoded == 20 and np.array_equal(serial, parallel.pixels)


def broken_file(root):
    bad = root / "dog" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return bad


def test_undecodable_images_are_skipped_and_logged(tmp_path, caplog, decodes):
    root = make_folder(tmp_path / "pets")
    bad = broken_file(root)
    with caplog.at_level(logging.WARNING, logger="torchwork.data"):
        bundle = load_dataset(config(root))
    assert len(bundle.x_train) + len(bundle.x_val) == 12
    assert "skipped 1 of 13 images" in caplog.text and str(bad) in caplog.text
    assert bundle.preprocessing["image"]["skipped_files"] == [str(bad)]
    decodes.clear()
    load_dataset(config(root))
    assert decodes == []  # the bad file is remembered, not tried again


def test_undecodable_image_fails_the_run_when_asked(tmp_path):
    root = make_folder(tmp_path / "pets")
    bad = broken_file(root)
    with pytest.raises(ConfigError, match=rf"1 of 13 images cannot be decoded: {bad}.*"
                                          r"data.on_bad_file='skip'"):
        load_dataset(config(root, on_bad_file="fail"))


def test_normalization_is_fitted_on_the_training_split_only(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=10)
    bundle = load_dataset(config(root))
    image = bundle.preprocessing["image"]
    x_train = bundle.x_train.double()
    # the training split is exactly standardized by the stored statistics...
    assert x_train.mean(dim=(0, 2, 3)).abs().max() < 1e-6
    assert (x_train.std(dim=(0, 2, 3), unbiased=False) - 1).abs().max() < 1e-5
    # ...which differ from the statistics of all images (validation ones included)
    pixels = decode_images(list_images(f"images:{root}"), 12, 3).pixels / 255.0
    assert abs(pixels.mean(axis=(0, 2, 3))[0] - image["mean"][0]) > 1e-4
    # and reproduce the tensors from raw pixels, as predict/export would
    raw = decode_images(list_images(f"images:{root}"), 12, 3).pixels
    mean = np.array(image["mean"]).reshape(1, -1, 1, 1)
    std = np.array(image["std"]).reshape(1, -1, 1, 1)
    fed = ((raw / 255.0 - mean) / std).reshape(len(raw), -1)
    for row in bundle.x_val.numpy().reshape(len(bundle.x_val), -1):
        assert np.abs(fed - row).max(axis=1).min() < 1e-5


def test_split_is_stratified_and_seeded(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=8)
    a, b = load_dataset(config(root)), load_dataset(config(root))
    assert torch.equal(a.x_val, b.x_val)
    assert torch.bincount(a.y_val).tolist() == [2, 2]
    assert a.input_shape == (3, 12, 12) and a.class_names == ["cat", "dog"]


@pytest.mark.parametrize("loading", ["memory", "stream"])
def test_a_test_split_of_a_folder_is_held_out_from_training_and_validation(tmp_path, loading):
    root = make_folder(tmp_path / "pets", per_class=10)
    plain = load_dataset(config(root, image_loading=loading))
    assert plain.x_test is None and plain.y_test is None
    bundle = load_dataset(config(root, test_fraction=0.2, image_loading=loading))
    assert torch.bincount(bundle.y_test).tolist() == [2, 2]  # stratified, 20% of 20
    sizes = [len(bundle.y_train), len(bundle.y_val), len(bundle.y_test)]
    assert sum(sizes) == 20 and bundle.x_test.shape[0] == 4
    rows = [{tuple(x.flatten().tolist()) for x in part[:len(part)]}
            for part in (bundle.x_train, bundle.x_val, bundle.x_test)]
    assert not rows[2] & (rows[0] | rows[1])  # no test image is trained or validated on


def test_streamed_rows_equal_the_in_memory_tensors(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=8)
    held = load_dataset(config(root))
    streamed = load_dataset(config(root, image_loading="stream"))
    assert isinstance(streamed.x_train, image_bundle.ImageRows)
    assert streamed.x_train.shape == tuple(held.x_train.shape)
    assert torch.allclose(streamed.x_train[[3, 0, 5]], held.x_train[[3, 0, 5]])
    assert torch.allclose(streamed.x_val[:4], held.x_val[:4])
    assert torch.equal(streamed.y_train, held.y_train)


def test_auto_streams_when_the_tensors_would_not_fit(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "pets")

    class Tight:
        available = 1000

    monkeypatch.setattr(image_bundle.psutil, "virtual_memory", lambda: Tight)
    assert isinstance(load_dataset(config(root)).x_train, image_bundle.ImageRows)


def test_channels_must_be_one_or_three():
    cfg = RunConfig()
    cfg.set("data.dataset", "images:somewhere")
    cfg.set("data.channels", 2)
    assert any("data.channels must be 1 (grey) or 3" in e for e in cfg.errors())
    cfg.set("data.dataset", "digits")  # not read for a built-in set
    assert not any("data.channels" in e for e in cfg.errors())


def test_a_csv_row_naming_a_missing_file_is_a_bad_file(tmp_path, caplog):
    make_folder(tmp_path / "pets", per_class=6)
    rows = [f"pets/{c}/{c}{i:03d}{('.png', '.jpg', '.bmp')[i % 3]},{c}"
            for c in ("cat", "dog") for i in range(6)]
    (tmp_path / "labels.csv").write_text("\n".join(rows + ["pets/cat/gone.png,cat"]) + "\n")
    with caplog.at_level(logging.WARNING, logger="torchwork.data"):
        bundle = load_dataset(config(tmp_path / "labels.csv"))
    assert len(bundle.x_train) + len(bundle.x_val) == 12
    assert "gone.png (file not found)" in caplog.text


def test_cross_validation_folds_of_a_folder_are_disjoint_and_cover_it(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=6)
    seen = []
    for fold in (1, 2, 3):
        cfg = config(root)
        cfg.set("train.cv_folds", 3)
        cfg.set("train.cv_fold", fold)
        bundle = load_dataset(cfg)
        assert len(bundle.x_val) == 4 and torch.bincount(bundle.y_val).tolist() == [2, 2]
        image = bundle.preprocessing["image"]
        mean = torch.tensor(image["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(image["std"]).view(1, -1, 1, 1)
        pixels = ((bundle.x_val * std + mean) * 255).round().to(torch.uint8)  # the files' pixels
        seen.append({bytes(r.flatten().numpy()) for r in pixels})
    assert len(seen[0] | seen[1] | seen[2]) == 12  # disjoint folds covering all 12 images
