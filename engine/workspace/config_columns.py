"""Runs' stored configurations as flat columns: ``optim.lr``, ``model.hidden``, ...

A table of runs shows the config keys whose values differ between the runs it
lists. Parsing a stored TOML takes ~0.6 ms, so 10,000 runs would take seconds:
each run's flat config is kept as the few keys where it departs from the
defaults, cached in memory and in ``<workspace>/cache/config_columns.json``
(keyed by run id and a checksum of its TOML), so a table opens again in tens of
milliseconds. The cache is only a speed-up: a read-only workspace, a damaged
or foreign file, or new defaults (another Torchwork version) just rebuild it.

Since schema 7 the workspace stores each run's departures beside its TOML when
the run is created (``stored_departures``), with the defaults they are from
(``defaults_row``): a table reads them with its rows and parses nothing, even on
a first open; departures from another version's defaults are rebased onto this
one's (``ConfigColumns.add_stored``). Runs created before schema 7 (the column is
NULL) take the parse and cache path above.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import tomllib

CACHE_FILE = Path("cache") / "config_columns.json"
MISSING = None  # the value of a key a run's stored config does not have (an older version's)

_EMPTY: dict = {}  # also the sentinel of a key a run's departures do not hold
_lock = threading.Lock()
_memory: dict[str, dict[int, tuple[int, dict]]] = {}  # per workspace root: id -> (crc, sparse)


def flatten(table: Mapping, prefix: str = "") -> dict[str, Any]:
    """A nested TOML table as dotted keys; arrays become tuples (hashable, comparable)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = _frozen(value)
    return out


def _frozen(value):
    if isinstance(value, list | tuple):
        return tuple([_frozen(v) if isinstance(v, list | tuple) else v for v in value])
    return value


@functools.cache
def _defaults() -> tuple[dict[str, Any], int]:
    from engine.config import RunConfig

    toml = RunConfig().to_toml()
    return flatten(tomllib.loads(toml)), zlib.crc32(toml.encode())


@functools.cache
def _default_entries() -> dict[tuple[str, str], tuple[str, ...]]:
    """Each entry of the default config's TOML text -> the flat keys it sets."""
    from engine.config import RunConfig

    return {entry: tuple(_parse_entry(entry)) for entry in _entries(RunConfig().to_toml())}


def _entries(toml: str) -> list[tuple[str, str]] | None:
    """A TOML text as RunConfig.to_toml (tomli_w) writes it, cut into (table header, entry)
    pairs: an entry is a ``key = value`` line and the indented lines of its multi-line
    array. None for text this cannot cut (an array of tables)."""
    header, out, current = "", [], None
    for line in toml.split("\n"):
        if not line.strip():
            continue
        if line[0] in " \t]":  # the rest of a multi-line array
            if current is None:
                return None
            current.append(line)
            continue
        if current is not None:
            out.append((header, "\n".join(current)))
            current = None
        if line.startswith("[["):
            return None
        if line.startswith("["):
            header = line
        else:
            current = [line]
    if current is not None:
        out.append((header, "\n".join(current)))
    return out


def _parse_entry(entry: tuple[str, str]) -> dict[str, Any]:
    return flatten(tomllib.loads(f"{entry[0]}\n{entry[1]}"))


def _thawed(value):
    """A value read back from JSON as ``flatten`` makes it (arrays as tuples)."""
    return _frozen(value) if type(value) is list else value


def stored_departures(toml: str) -> str | None:
    """A run's departures from the defaults as the workspace stores them beside its TOML
    (runs.config_departures): ``{"defaults": fingerprint, "departures": {...}}`` as JSON.
    None for a config whose values JSON cannot carry exactly (NaN, dates): that run is
    parsed when listed, as before schema 7."""
    defaults, fingerprint = _defaults()
    sparse = ConfigColumns.departures_from(defaults, toml)
    try:
        text = orjson.dumps({"defaults": fingerprint, "departures": sparse}).decode()
    except TypeError:
        return None
    back = orjson.loads(text)["departures"]
    if {k: _thawed(v) for k, v in back.items()} != sparse:
        return None
    return text


def defaults_row() -> tuple[int, str]:
    """This version's defaults as the workspace's config_defaults table holds them:
    (fingerprint, flat keys as JSON)."""
    defaults, fingerprint = _defaults()
    return fingerprint, orjson.dumps(defaults).decode()


class ConfigColumns:
    """The flat configs of a list of runs, and the keys that differ between them."""

    def __init__(self, root: Path | str, runs: Iterable = ()):
        defaults, self._fingerprint = _defaults()
        self.defaults = dict(defaults)
        self.root = Path(root)
        self._sparse: dict[int, dict] = {}
        self._cached = _load(self.root, self._fingerprint)
        self.add((r.id, r.config_toml) for r in runs)

    @classmethod
    def of_runs(cls, ws, runs: Sequence) -> ConfigColumns:
        """The flat configs of a workspace's runs (records with their config_toml): the
        departures stored with them, and only the runs created before schema 7 parsed."""
        columns = cls(ws.root)
        stored = ws.config_departures([r.id for r in runs])
        missing = set(columns.add_stored(((r.id, stored.get(r.id)) for r in runs),
                                         ws.config_defaults))
        columns.add((r.id, r.config_toml) for r in runs if r.id in missing)
        return columns

    def add_cached(self, run_ids: Iterable[int]) -> list[int]:
        """Take in runs from the cache by id alone, without reading their TOML (``add``
        verifies them later); return the ids the cache does not hold."""
        missing = []
        for run_id in run_ids:
            hit = self._cached.get(run_id)
            if hit is None:
                missing.append(run_id)
            else:
                self._sparse[run_id] = hit[1]
        return missing

    def add(self, configs: Iterable[tuple[int, str]]) -> int:
        """Take in runs' stored TOML; only those not cached (or changed) are parsed.
        Return how many were."""
        fresh = 0
        for run_id, toml in configs:
            crc = zlib.crc32(toml.encode())
            hit = self._cached.get(run_id)
            if hit is None or hit[0] != crc:
                hit = (crc, self._departures(toml))
                self._cached[run_id] = hit
                fresh += 1
            self._sparse[run_id] = hit[1]
        if fresh:
            _save(self.root, self._fingerprint, self._cached)
        return fresh

    def __contains__(self, run_id: int) -> bool:
        return run_id in self._sparse

    def cached(self, run_id: int) -> bool:
        """Whether a run's flat config is known without parsing (from an earlier open)."""
        return run_id in self._cached

    def _departures(self, toml: str) -> dict:
        return self.departures_from(self.defaults, toml)

    @staticmethod
    def departures_from(defaults: Mapping[str, Any], toml: str) -> dict:
        """The keys where a stored config departs from ``defaults`` (this version's; MISSING:
        a key it lacks). Only the entries whose text is not the default's are parsed
        (several times faster than the whole text); text that cannot be cut into entries
        is parsed whole."""
        try:
            fast = ConfigColumns._by_entry(defaults, toml)
        except tomllib.TOMLDecodeError:
            fast = None
        return fast if fast is not None else ConfigColumns._whole(defaults, toml)

    def _departures_by_entry(self, toml: str) -> dict | None:
        return self._by_entry(self.defaults, toml)

    def _departures_whole(self, toml: str) -> dict:
        return self._whole(self.defaults, toml)

    @staticmethod
    def _by_entry(defaults: Mapping[str, Any], toml: str) -> dict | None:
        entries = _entries(toml)
        if entries is None:
            return None
        known = _default_entries()
        seen: set[str] = set()
        other: dict[str, list[str]] = {}  # the entries not as in the defaults, by table
        for entry in entries:
            keys = known.get(entry)
            if keys is None:
                other.setdefault(entry[0], []).append(entry[1])
            else:
                seen.update(keys)
        flat = flatten(tomllib.loads("\n".join(f"{header}\n" + "\n".join(lines)
                                               for header, lines in other.items())))
        seen.update(flat)
        sparse = {k: v for k, v in flat.items() if defaults.get(k, _EMPTY) != v}
        sparse.update({k: MISSING for k in defaults if k not in seen})
        return sparse

    @staticmethod
    def _whole(defaults: Mapping[str, Any], toml: str) -> dict:
        try:
            flat = flatten(tomllib.loads(toml))
        except tomllib.TOMLDecodeError:
            flat = {}
        sparse = {k: v for k, v in flat.items() if defaults.get(k, object()) != v}
        sparse.update({k: MISSING for k in defaults if k not in flat})
        return sparse

    def add_stored(self, rows: Iterable[tuple[int, str | None]],
                   stored_defaults: Callable[[], Mapping[int, str]]) -> list[int]:
        """Take in runs from the departures the workspace stored at their creation
        (runs.config_departures), without reading their TOML; return the ids that have
        none (created before schema 7) or whose defaults are unknown. Departures from
        other defaults (another version's) are rebased onto this version's, given
        ``stored_defaults()``: the workspace's config_defaults, read once if needed."""
        missing: list[int] = []
        rebase: dict[int, dict | None] = {}
        others: Mapping[int, str] | None = None
        for run_id, text in rows:
            try:
                data = orjson.loads(text) if text else None
                fingerprint, stored = data["defaults"], data["departures"]
            except (orjson.JSONDecodeError, TypeError, KeyError):
                missing.append(run_id)
                continue
            sparse = stored
            for key, value in stored.items():
                if type(value) is list:  # in place: the dict is this read's own
                    sparse[key] = _frozen(value)
            if fingerprint != self._fingerprint:
                if fingerprint not in rebase:
                    if others is None:
                        others = stored_defaults()
                    rebase[fingerprint] = self._delta(others.get(fingerprint))
                delta = rebase[fingerprint]
                if delta is None:
                    missing.append(run_id)
                    continue
                sparse = self._rebased(sparse, delta)
            self._sparse[run_id] = sparse
        return missing

    def _delta(self, old_text: str | None) -> dict | None:
        """How other defaults (flat, JSON) depart from this version's: what a run that kept
        all of them departs by."""
        try:
            old = {k: _thawed(v) for k, v in orjson.loads(old_text).items()}
        except (orjson.JSONDecodeError, TypeError, AttributeError):
            return None
        delta = {k: v for k, v in old.items() if self.defaults.get(k, _EMPTY) != v}
        delta.update({k: MISSING for k in self.defaults if k not in old})
        return delta

    def _rebased(self, stored: dict, delta: dict) -> dict:
        """Departures from other defaults as departures from this version's: the same as
        parsing the run's TOML against them (a run's flat config is the old defaults
        overlaid with its departures, MISSING ones removed)."""
        out = {k: v for k, v in delta.items() if k not in stored}
        for key, value in stored.items():
            if value is MISSING:
                if key in self.defaults:
                    out[key] = MISSING
            elif self.defaults.get(key, _EMPTY) != value:
                out[key] = value
        return out

    def value(self, run_id: int, key: str):
        value = self._sparse.get(run_id, _EMPTY).get(key, _EMPTY)
        return self.defaults.get(key, MISSING) if value is _EMPTY else value

    def row(self, run_id: int, keys: Sequence[str]) -> list:
        sparse, defaults = self._sparse.get(run_id, _EMPTY), self.defaults
        return [sparse[k] if k in sparse else defaults.get(k, MISSING) for k in keys]

    def known(self, key: str) -> bool:
        return key in self.defaults or any(key in s for s in self._sparse.values())

    def differing(self, run_ids: Iterable[int] | None = None,
                  exclude: Iterable[str] = ()) -> list[str]:
        """Keys whose value is not the same in all these runs (default: all), in config
        order (sections as RunConfig declares them)."""
        ids = list(self._sparse if run_ids is None else run_ids)
        skip = set(exclude)
        candidates = {k for i in ids for k in self._sparse[i]} - skip
        order = {k: n for n, k in enumerate(self.defaults)}
        out = []
        for key in sorted(candidates, key=lambda k: (order.get(k, len(order)), k)):
            first = self.value(ids[0], key)
            if any(self.value(i, key) != first for i in ids[1:]):
                out.append(key)
        return out


def show_value(value) -> str:
    """A config value as a cell shows it: lists in brackets, a missing key as a dash."""
    if value is MISSING:
        return "—"
    if isinstance(value, tuple):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _load(root: Path, fingerprint: int) -> dict[int, tuple[int, dict]]:
    key = str(root)
    with _lock:
        if key in _memory and _memory[key].get(-1, (None,))[0] == fingerprint:
            return dict(_memory[key])
    try:
        data = orjson.loads((root / CACHE_FILE).read_bytes())
        if data.get("defaults") != fingerprint:
            return {-1: (fingerprint, {})}
        runs = {int(i): (crc, {k: _thawed(v) for k, v in sparse.items()})
                for i, (crc, sparse) in data["runs"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError, orjson.JSONDecodeError):
        runs = {}
    runs[-1] = (fingerprint, {})
    return runs


def _save(root: Path, fingerprint: int, runs: dict[int, tuple[int, dict]]) -> None:
    with _lock:
        _memory[str(root)] = dict(runs)
    data = {"defaults": fingerprint,
            "runs": {str(i): [crc, sparse] for i, (crc, sparse) in runs.items() if i >= 0}}
    path = root / CACHE_FILE
    try:
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config_columns-")
    except OSError:
        return  # a read-only workspace: the cache is only a speed-up
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(data))
        os.replace(tmp, path)  # atomic: a second process reads the old file or the new one
    except OSError:  # a full disk
        Path(tmp).unlink(missing_ok=True)
