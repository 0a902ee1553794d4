"""Kineto's category names across torch versions, mapped to the ones it writes today.

torch 1.8 and 1.9 wrote ``Kernel``, ``Runtime``, ``Memcpy``, ``Memset`` and
``Operator``; later versions write ``kernel``, ``cuda_runtime``, ``gpu_memcpy``,
``gpu_memset`` and ``cpu_op``. Both readers (the timeline's and the report's)
pass every category through ``normalise_category`` as they read a trace, so
what comes after (GPU lanes, step marks, colours, the report's breakdown) knows
one spelling only.
"""

from __future__ import annotations

# Keys are lower case: traces of that era are not consistent in their capitals.
LEGACY_CATEGORIES = {
    "kernel": "kernel",
    "runtime": "cuda_runtime",
    "memcpy": "gpu_memcpy",
    "memset": "gpu_memset",
    "operator": "cpu_op",
}


def normalise_category(category):
    """The current Kineto name of ``category``; anything unknown (or not text) as it is."""
    if not isinstance(category, str):
        return category
    return LEGACY_CATEGORIES.get(category.lower(), category)
