"""`torchwork augment-preview CONFIG --out grid.png`: augmented training samples as a grid.

The same grid as Run ▸ Preview augmentation… in the window: the first training
images of CONFIG's dataset, each through its ``[augment]`` transform, so the
strengths can be judged by eye before a run is started.
"""

from __future__ import annotations


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "augment-preview", help="write a grid of augmented training samples (PNG)",
        description="Load CONFIG's dataset (an image folder is decoded into its cache once), "
                    "pass its first training images through the [augment] transform and "
                    "write them as one grid image.")
    p.add_argument("config", help="path to a run configuration (.toml)")
    p.add_argument("--out", required=True, metavar="PNG", help="where to write the grid")
    p.add_argument("--count", type=int, default=16, metavar="N",
                   help="samples in the grid, 1 to 256 (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draws (default 0)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one option, e.g. --set augment.rotation=30 (repeatable)")
    p.set_defaults(handler=cmd_augment_preview)


def cmd_augment_preview(args) -> int:
    from PIL import Image

    from engine import cli
    from engine.data.augment import preview_grid

    if not 1 <= args.count <= 256:
        raise cli.UsageError(f"--count must be 1 to 256 (got {args.count})")
    args.max_steps = None
    cfg = cli._config_for_run(args)
    if not cfg.applies("augment.enabled"):
        raise cli.UsageError(f"data.dataset={cfg.data.dataset!r} is not image data: "
                             f"augmentation applies to image folders and digits")
    grid = preview_grid(cfg, args.count, seed=args.seed)
    try:
        Image.fromarray(grid).save(args.out, format="PNG")
    except (OSError, ValueError) as exc:
        raise cli.UsageError(f"cannot write {args.out}: {exc}") from None
    state = "on" if cfg.augment.enabled else "off (augment.enabled = false)"
    print(f"wrote {args.out}: training samples, augmentation {state}")
    return 0
