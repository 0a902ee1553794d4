"""Column buffers that grow by doubling: an append is amortised O(1), and a reader
(a plot, a table) takes views of what is filled, never copies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np


class GrowingColumns:
    """Named float64 columns of equal length, appended row by row.

    A view handed out by ``column()`` stays valid and unchanged after later
    appends: appends write past its end, and growing, clearing, truncating or
    replacing a column moves to new arrays instead of writing over old ones.
    A plot may therefore keep the views it was given until its next update.
    """

    def __init__(self, names: Iterable[str], capacity: int = 1024):
        self.names = tuple(names)
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f"column names must be distinct and not empty (got {self.names})")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 (got {capacity})")
        self._initial = capacity
        self.revision = 0  # bumped by every change: readers compare it to what they drew
        self._reset(capacity)

    def _reset(self, capacity: int) -> None:
        self._len = 0
        self._cols = {n: np.empty(capacity) for n in self.names}
        self._finite = dict.fromkeys(self.names, True)
        self._positive = dict.fromkeys(self.names, True)
        self.revision += 1

    def __len__(self) -> int:
        return self._len

    @property
    def capacity(self) -> int:
        return len(self._cols[self.names[0]])

    def column(self, name: str) -> np.ndarray:
        return self._cols[name][:self._len]

    def all_finite(self, name: str) -> bool:
        return self._finite[name]

    def all_positive(self, name: str) -> bool:
        """True when every value is > 0, so a log axis can draw them all."""
        return self._positive[name]

    def append(self, **values: float) -> None:
        """One row; a column left out gets NaN."""
        self._check(values)
        if self._len == self.capacity:
            self._grow(self._len + 1)
        i = self._len
        for name, buf in self._cols.items():
            v = float(values.get(name, np.nan))
            buf[i] = v
            if not np.isfinite(v):
                self._finite[name] = False
            if not v > 0:
                self._positive[name] = False
        self._len += 1
        self.revision += 1

    def append_many(self, **arrays) -> None:
        """Rows given column by column, all the same length; a column left out gets NaN."""
        self._check(arrays)
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) > 1:
            sizes = {k: len(a) for k, a in arrays.items()}
            raise ValueError(f"columns differ in length: {sizes}")
        n = lengths.pop() if lengths else 0
        if n == 0:
            return
        if self._len + n > self.capacity:
            self._grow(self._len + n)
        start, stop = self._len, self._len + n
        for name, buf in self._cols.items():
            v = np.asarray(arrays[name], dtype=np.float64) if name in arrays else np.full(n, np.nan)
            buf[start:stop] = v
            self._note(name, buf[start:stop])
        self._len = stop
        self.revision += 1

    def set_column(self, name: str, values) -> None:
        """Replace a whole column (same length), in a new buffer so earlier views keep theirs."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (self._len,):
            raise ValueError(f"column {name!r} needs {self._len} values (got {values.shape})")
        buf = np.empty(self.capacity)
        buf[:self._len] = values
        self._cols[name] = buf
        self._finite[name] = self._positive[name] = True
        self._note(name, values)
        self.revision += 1

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` rows."""
        n = max(0, min(n, self._len))
        kept = {name: self.column(name)[:n] for name in self.names}
        self._reset(max(self._initial, n))
        self.append_many(**kept)

    def clear(self) -> None:
        self._reset(self._initial)

    def _check(self, values: Mapping) -> None:
        unknown = set(values) - set(self.names)
        if unknown:
            raise KeyError(f"unknown columns {sorted(unknown)}; the columns are {self.names}")

    def _grow(self, needed: int) -> None:
        capacity = self.capacity
        while capacity < needed:
            capacity *= 2
        for name, buf in self._cols.items():
            bigger = np.empty(capacity)
            bigger[:self._len] = buf[:self._len]
            self._cols[name] = bigger

    def _note(self, name: str, values: np.ndarray) -> None:
        if self._finite[name] and not np.isfinite(values).all():
            self._finite[name] = False
        if self._positive[name]:
            with np.errstate(invalid="ignore"):
                if not (values > 0).all():
                    self._positive[name] = False


class GrowingSeries(GrowingColumns):
    """An x/y pair of growing buffers."""

    def __init__(self, capacity: int = 1024):
        super().__init__(("x", "y"), capacity)

    def append(self, x: float, y: float) -> None:  # type: ignore[override]
        super().append(x=x, y=y)

    def append_many(self, xs, ys) -> None:  # type: ignore[override]
        super().append_many(x=xs, y=ys)

    @property
    def x(self) -> np.ndarray:
        return self.column("x")

    @property
    def y(self) -> np.ndarray:
        return self.column("y")
