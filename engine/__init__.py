"""Torchwork's engine: everything that trains, measures, compresses and exports. No Qt."""


def __getattr__(name: str):
    """``__version__``, read from the installed metadata when first asked for: importing
    importlib.metadata at every start cost the window's first frame ~40 modules."""
    if name != "__version__":
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("torchwork")
    except PackageNotFoundError:  # running from a source tree that is not installed
        value = "0+source"
    globals()["__version__"] = value
    return value
