"""How error messages quote a value: never huge, never raising."""

from __future__ import annotations

import math
import reprlib
from typing import Any

# Error messages show values through this: short, and safe for what Python cannot
# print (an int beyond its 4,300-digit limit) or recurse through (deep nesting).
_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxtuple = 3, 8, 8
_SHOW.maxstring, _SHOW.maxother, _SHOW.maxlong = 60, 60, 40


def show(value: Any) -> str:
    """A value as an error message quotes it: never huge, never raising."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        try:
            digits = len(str(abs(value)))
        except ValueError:  # past the int-str limit: count them from the logarithm
            digits = int(math.log10(abs(value))) + 1
        return f"a {digits}-digit number"
    try:
        return _SHOW.repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__} too large to show"
