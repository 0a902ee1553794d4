"""Data for a run: built-in datasets and tables, a seeded split, preprocessing fitted on train."""

from .datasets import DataBundle, load_dataset
from .sources import SOURCES


def settle_task(cfg, bundle: DataBundle):
    """``cfg`` with the task its data decided (a table's data.task = 'auto'), so the loss and
    the output layer follow the data; ``cfg`` itself when it already names the task."""
    if cfg.task == bundle.task:
        return cfg
    settled = cfg.copy()
    settled.data.task = bundle.task
    return settled


__all__ = ["DataBundle", "SOURCES", "load_dataset", "settle_task"]
