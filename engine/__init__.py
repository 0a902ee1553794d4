"""Torchwork's engine: everything that trains, measures, compresses and exports. No Qt."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("torchwork")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+source"
