"""Trace times read exactly, as integer nanoseconds, where a float64 cannot hold them.

torch writes absolute µs with three decimals (``1700000000000000.123``); near
1.7e15 a float64 keeps a quarter µs, and orjson reads numbers as floats only.
Where a trace's times are that large and have decimals, the timeline's reader
takes each "ts" again from the file's text with these.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import numpy as np

# Below this many µs a float64 holds a time to within half a nanosecond; above it
# (absolute times since 1970 are 1.7e15 µs) times with decimals are read from their text.
EXACT_FLOAT_US = 2.0 ** 42

# Where a time's text is: a "ts" number (in event order), a "ts" or "dur" number to
# quote so that it is parsed as text, a "ts" with decimals.
_TS_TEXT = re.compile(rb'"ts"\s*:\s*(-?[0-9][0-9.eE+-]*)')
_TIME_NUMBER = re.compile(rb'"(ts|dur)"(\s*):(\s*)(-?[0-9][0-9.eE+-]*)')
_TIME_DECIMALS = re.compile(rb'"ts"\s*:\s*-?[0-9]+\.[0-9]*[1-9]')


def _ns(text: bytes) -> int:
    """µs as written (``1700000000000000.123``) to integer nanoseconds, exactly."""
    whole, _, frac = text.partition(b".")
    if len(frac) <= 3:
        try:
            return int(whole + frac.ljust(3, b"0"))
        except ValueError:
            pass  # an exponent: Decimal reads it
    return int((Decimal(text.decode()) * 1000).to_integral_value())


def times_from_text(data: bytes, events: list) -> bool:
    """Each event's "ts", in place, as integer ns read from its text, and "dur" in ns.

    orjson gives floats only. The "ts" texts come in the file's order, which is
    the events' order; they are taken only where their float values match the
    parsed ones one for one. False where they do not (a "ts" inside args, a
    "ts" that is not a number): the caller reads the file again.
    """
    timed = [e for e in events if type(e) is dict and "ts" in e]
    texts = _TS_TEXT.findall(data)
    if len(texts) != len(timed):
        return False
    try:
        match = np.array_equal(np.array(texts).astype(np.float64),
                               np.asarray([e["ts"] for e in timed], dtype=np.float64))
    except (TypeError, ValueError):
        return False
    if not match:
        return False
    for e, text in zip(timed, texts):
        e["ts"] = _ns(text)
        dur = e.get("dur")
        if type(dur) is float or type(dur) is int:  # short: exact as a float
            e["dur"] = round(dur * 1000)
    return True


def quoted_times(events: list) -> None:
    """Quoted "ts" and "dur" texts (µs) turned, in place, into integer nanoseconds."""
    for e in events:
        if type(e) is dict:
            for key in ("ts", "dur"):
                text = e.get(key)
                if type(text) is str:
                    try:
                        e[key] = _ns(text.encode())
                    except (InvalidOperation, ValueError):
                        pass  # left as text, reported below as not a number


def has_decimal_times(data: bytes) -> bool:
    """Whether some "ts" in the file has decimals (which large floats would lose)."""
    return _TIME_DECIMALS.search(data) is not None


def quote_times(data: bytes) -> bytes:
    """The file with every "ts" and "dur" number quoted, to be parsed as its text."""
    return _TIME_NUMBER.sub(rb'"\1"\2:\3"\4"', data)
