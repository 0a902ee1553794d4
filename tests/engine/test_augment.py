"""[augment]: each transform, soft targets, training batches only, the preview grid."""

import numpy as np
import pytest
import torch

from engine.config import RunConfig
from engine.data.augment import BatchAugment, build_augment, preview_grid, tile
from engine.training import Trainer
from engine.training.loader import epoch_order

from .image_folders import make_folder

OFF = {"crop_scale": 1.0, "hflip": 0.0, "vflip": 0.0, "rotation": 0.0, "brightness": 0.0,
       "contrast": 0.0, "erasing": 0.0, "mixup": 0.0, "cutmix": 0.0}
MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def augmenter(**strengths) -> BatchAugment:
    cfg = RunConfig()
    for key, value in {**OFF, "enabled": True, **strengths}.items():
        cfg.set(f"augment.{key}", value)
    cfg.validate()
    return BatchAugment(cfg, (3, 16, 16), 4, MEAN, STD)


def batch(n=8):
    torch.manual_seed(1)
    pixels = torch.rand(n, 3, 16, 16) * 0.6 + 0.2  # room to brighten and darken unclipped
    x = (pixels - torch.tensor(MEAN).view(1, -1, 1, 1)) / torch.tensor(STD).view(1, -1, 1, 1)
    return x, torch.arange(n) % 4


def pixels_of(x):
    return x * torch.tensor(STD).view(1, -1, 1, 1) + torch.tensor(MEAN).view(1, -1, 1, 1)


def test_certain_flips_mirror_exactly():
    x, y = batch()
    assert torch.equal(augmenter(hflip=1.0)(x, y)[0], x.flip(3))
    assert torch.equal(augmenter(vflip=1.0)(x, y)[0], x.flip(2))
    out, same_y = augmenter(hflip=0.5)(x, y)
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, x)]
    kept = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and torch.equal(same_y, y)


def test_flip_inside_the_warp_agrees_with_a_plain_flip():
    x, y = batch()
    # a 0-degree rotation with a full-size crop: the warp's flip alone
    aug = augmenter(hflip=1.0, rotation=1e-9)
    assert torch.allclose(aug(x, y)[0], x.flip(3), atol=1e-5)


def test_crop_and_rotation_change_every_image_but_keep_the_shape():
    x, y = batch()
    out, _ = augmenter(crop_scale=0.5, rotation=30.0)(x, y)
    assert out.shape == x.shape
    assert all(not torch.allclose(o, i, atol=1e-3) for o, i in zip(out, x))


def test_brightness_shifts_each_image_by_one_amount_within_the_strength():
    x, y = batch()
    out, _ = augmenter(brightness=0.1)(x, y)
    shift = pixels_of(out) - pixels_of(x)
    per_image = shift.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-5)
    assert per_image.abs().max() <= 0.1 + 1e-6 and per_image.abs().max() > 1e-3


def test_contrast_scales_around_each_images_mean():
    x, y = batch()
    out, _ = augmenter(contrast=0.3)(x, y)
    before, after = pixels_of(x), pixels_of(out)
    ratio = after.std(dim=(1, 2, 3)) / before.std(dim=(1, 2, 3))
    assert ((ratio > 0.69) & (ratio < 1.31)).all() and (ratio - 1).abs().max() > 0.01


def test_erasing_blanks_one_rectangle_to_the_mean_colour():
    x, y = batch()
    out, _ = augmenter(erasing=1.0)(x, y)
    for o, i in zip(out, x):
        changed = (o != i).any(dim=0)
        rows, cols = changed.any(dim=1).nonzero(), changed.any(dim=0).nonzero()
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert changed.sum() == box  # a filled rectangle
        assert 0.02 * 256 - 16 <= box <= 0.33 * 256 + 16
        assert (o[:, changed] == 0).all()


def test_mixup_blends_pairs_and_makes_soft_targets():
    x, y = batch()
    out, soft = augmenter(mixup=0.4)(x, y)
    assert soft.shape == (8, 4) and torch.allclose(soft.sum(1), torch.ones(8))
    lam = soft[torch.arange(8), y]  # each image keeps lam of its own label (or more)
    for o, i, weight in zip(out, x, lam):
        others = (o - weight * i) / (1 - weight) if weight < 1 else o - i
        assert any(torch.allclose(others, j, atol=1e-4) for j in x) or weight >= 1 - 1e-6


def test_cutmix_labels_mix_by_the_pasted_area():
    x, y = batch()
    torch.manual_seed(3)
    out, soft = augmenter(cutmix=1.0)(x, y)
    kept = (out == x).all(dim=1).float().mean(dim=(1, 2))
    own = soft[torch.arange(8), y]
    same_pair = own >= 1 - 1e-6  # paired with an image of its own class
    assert torch.allclose(kept[~same_pair], own[~same_pair], atol=1e-6)


def test_soft_targets_are_refused_for_a_loss_that_cannot_take_them():
    cfg = RunConfig()
    cfg.set("data.dataset", "digits")
    cfg.set("augment.enabled", True)
    cfg.set("augment.mixup", 0.2)
    cfg.set("train.loss", "hinge")
    assert any("augment.mixup and augment.cutmix make soft targets" in e for e in cfg.errors())
    cfg.set("augment.enabled", False)  # off: nothing mixes
    assert cfg.errors() == []


def folder_config(tmp_path, **augment) -> RunConfig:
    root = make_folder(tmp_path / "pets", per_class=12)
    cfg = RunConfig()
    values = {"data.dataset": f"images:{root}", "data.image_size": 12, "data.channels": 3,
              "data.batch_size": 8, "data.val_fraction": 0.25, "model.arch": "cnn",
              "model.channels": [8], "model.hidden": [16], "train.epochs": 1,
              "train.device": "cpu", "train.checkpoint_every": 0}
    values.update({f"augment.{k}": v for k, v in augment.items()})
    for key, value in values.items():
        cfg.set(key, value)
    cfg.validate()
    return cfg


def inputs_seen(trainer):
    """(training inputs, validation inputs) the model saw during ``trainer.run()``."""
    seen = {True: [], False: []}

    def record(module, args):
        seen[module.training].append(args[0].detach().clone())

    trainer.model.register_forward_pre_hook(record)
    result = trainer.run()
    assert result.status == "completed", result.error
    return torch.cat(seen[True]), torch.cat(seen[False])


@pytest.mark.parametrize("enabled", [False, True])
def test_augmentation_changes_training_batches_only(tmp_path, monkeypatch, enabled):
    monkeypatch.setenv("TORCHWORK_CACHE", str(tmp_path / "cache"))
    cfg = folder_config(tmp_path, enabled=enabled, erasing=0.5, mixup=0.2)
    trainer = Trainer(cfg)
    data = trainer.data
    train_x, val_x = inputs_seen(trainer)
    unchanged = data.x_train[epoch_order(len(data.x_train), cfg.train.seed, 1)]
    assert torch.equal(val_x, data.x_val)  # validation as it is, in both cases
    if enabled:
        assert train_x.shape == unchanged.shape and not torch.allclose(train_x, unchanged)
    else:
        assert torch.equal(train_x, unchanged)


def test_a_run_with_mixup_and_cutmix_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHWORK_CACHE", str(tmp_path / "cache"))
    cfg = folder_config(tmp_path, enabled=True, mixup=0.2, cutmix=1.0)
    cfg.set("train.epochs", 2)
    result = Trainer(cfg).run()
    assert result.status == "completed" and np.isfinite(result.best_val)


def test_augmentation_is_off_for_tables_and_by_default():
    cfg = RunConfig()
    cfg.set("data.dataset", "wine")
    cfg.set("augment.enabled", True)
    assert not cfg.applies("augment.enabled") and not cfg.applies("augment.hflip")
    assert build_augment(cfg, None, torch.device("cpu")) is None
    assert build_augment(RunConfig(), None, torch.device("cpu")) is None


def test_preview_grid_shows_augmented_training_samples(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHWORK_CACHE", str(tmp_path / "cache"))
    plain = preview_grid(folder_config(tmp_path / "a", enabled=False), 9)
    changed = preview_grid(folder_config(tmp_path / "b", **{**OFF, "enabled": True,
                                                            "hflip": 1.0}), 9)
    assert plain.shape == changed.shape == (3 * 14 + 2, 3 * 14 + 2, 3)
    assert plain.dtype == np.uint8 and not np.array_equal(plain, changed)
    # the first tile, mirrored: the same training image, flipped
    first = (slice(2, 14), slice(2, 14))
    assert np.array_equal(changed[first], plain[first][:, ::-1])


def test_tile_puts_grey_images_in_a_near_square_grid():
    images = np.full((5, 1, 4, 4), 200, dtype=np.uint8)
    grid = tile(images, gap=1)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1, 3)
    assert (grid[1:5, 1:5] == 200).all() and (grid[0] == 128).all()


def test_bce_takes_the_soft_targets_of_mixup():
    from engine.training.setup import _BCEWithLogits

    loss = _BCEWithLogits()
    out = torch.tensor([[2.0, -1.0], [0.5, 0.5]])
    soft = torch.tensor([[0.7, 0.3], [0.0, 1.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out, soft)
    assert torch.allclose(loss(out, soft), expected)
    one_logit = torch.tensor([[1.5], [-0.5]])  # binary: the logit of class 1
    expected = torch.nn.functional.binary_cross_entropy_with_logits(one_logit[:, 0], soft[:, 1])
    assert torch.allclose(loss(one_logit, soft), expected)
    hard = torch.tensor([0, 1])  # class indices still work as before
    assert torch.allclose(loss(out, hard), loss(out, torch.eye(2)[hard]))
