"""Data for a run: built-in datasets, a seeded split, and scaling fitted on the training split."""

from .datasets import DataBundle, load_dataset
from .sources import SOURCES

__all__ = ["DataBundle", "SOURCES", "load_dataset"]
