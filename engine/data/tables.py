"""Read a table (CSV, TSV, Parquet) into a frame, with errors that name the file and the fix.

Every problem a person can fix in the file or the config is found here, before
any preprocessing or training, and raised as a ConfigError of one line: a file
that is missing, unreadable, empty or header-only, ragged rows (with the line
number), text that is not UTF-8, a target column that is not there (with a
"did you mean"), a feature column without a single value, a non-numeric
target for regression. pyarrow reads both formats: its CSV reader is
multithreaded and refuses ragged rows, where pandas' would fill short rows
with missing values without a word.
"""

from __future__ import annotations

import csv
import difflib
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from engine.config import ConfigError, DataConfig

PREFIX = "table:"
PACKAGE = "pkg://"  # table:pkg://PACKAGE/FILE reads a data file an installed package ships
SUFFIXES = {".csv": ",", ".tsv": "\t", ".parquet": None}
# auto: an integer target with at most this many distinct values is a class label
MAX_AUTO_CLASSES = 20


@dataclass
class Table:
    frame: pd.DataFrame  # the feature columns (in order), the target (and group) column
    features: list[str]
    target: str
    task: str  # classification | regression (resolved)
    notes: list[str]  # what a person should read in the run's log
    group: str = ""  # data.group_column, when cross-validation folds keep groups apart


def table_path(spec: str) -> Path:
    """The file ``table:...`` (or a bare path) names; ``pkg://name/file`` is looked up in the
    installed package ``name`` (e.g. table:pkg://palmerpenguins/penguins.csv)."""
    spec = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    if not spec.startswith(PACKAGE):
        return Path(spec).expanduser()
    package, _, inner = spec[len(PACKAGE):].partition("/")
    try:
        root = importlib.resources.files(package)
    except (ModuleNotFoundError, TypeError, ValueError):
        raise ConfigError(f"data.dataset={spec!r}: no installed package {package!r} ships "
                          f"data files: install it, or give the table's path") from None
    for candidate in (root / inner, root / "data" / inner):
        if candidate.is_file():
            return Path(str(candidate))
    raise ConfigError(f"data.dataset={spec!r}: package {package!r} ships no file {inner!r} "
                      f"(looked in {root} and its data/ folder)")


def read_table(path: Path, *, columns: list[str] | None = None) -> pd.DataFrame:
    """The file as a frame (``columns``: only these, when the file has them all).

    Raises ConfigError naming the file and the cause for every unreadable case.
    """
    suffix = _check_file(path)
    table = _read_parquet(path, columns) if suffix == ".parquet" else \
        _read_text(path, SUFFIXES[suffix], columns)
    _check_rows(path, table)
    # split_blocks + self_destruct: columns are handed over one by one, so the frame does
    # not hold a second copy of the whole table while it is converted.
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    return frame


def read_head(path: Path, rows: int) -> tuple[pd.DataFrame, bool]:
    """The first ``rows`` rows of the file (a preview: a big file is not read to its end),
    and whether the file has more. Raises ConfigError as read_table does."""
    suffix = _check_file(path)
    try:
        if suffix == ".parquet":
            file = pq.ParquetFile(path)
            batches = file.iter_batches(batch_size=rows)
            first = next(batches, None)
            table = pa.Table.from_batches([first] if first is not None else [],
                                          schema=file.schema_arrow)
            more = file.metadata.num_rows > table.num_rows
        else:
            reader = pacsv.open_csv(path, parse_options=_parse(SUFFIXES[suffix]),
                                    convert_options=_convert())
            batches, count, more = [], 0, False
            for batch in reader:
                if count >= rows:
                    more = True
                    break
                batches.append(batch)
                count += batch.num_rows
            table = pa.Table.from_batches(batches, schema=reader.schema)
            more = more or table.num_rows > rows
            table = table.slice(0, rows)
    except pa.ArrowInvalid as exc:
        if suffix == ".parquet":
            raise ConfigError(_parquet_problem(path, exc)) from None
        raise ConfigError(_text_problem(path, SUFFIXES[suffix], exc)) from None
    except OSError as exc:
        raise ConfigError(_parquet_problem(path, exc) if suffix == ".parquet"
                          else f"cannot read {path}: {_first_line(exc)}") from None
    if any(pa.types.is_binary(t) for t in table.schema.types):
        raise ConfigError(_encoding_problem(path))
    _check_rows(path, table)
    return table.to_pandas(), more


def _check_file(path: Path) -> str:
    """The suffix of a table file that is there, readable and not empty."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"{path}: unknown table format {suffix or '(no suffix)'!r}: give a "
                          f".csv, .tsv or .parquet file")
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise IsADirectoryError(f"{path} is a folder")
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise ConfigError(f"table file {path} not found: check data.dataset (a relative path "
                          f"starts from the config file's folder)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read table file {path}: {exc.strerror or exc}: check the "
                          f"path and its permissions") from None
    if size == 0:
        raise ConfigError(f"table file {path} is empty: it needs a header row and data rows")
    return suffix


def _check_rows(path: Path, table: pa.Table) -> None:
    if table.num_columns == 0:
        raise ConfigError(f"table file {path} is empty: it needs a header row and data rows")
    if table.num_rows == 0:
        raise ConfigError(f"table file {path} has a header but no data rows: add rows below "
                          f"the header ({', '.join(table.column_names[:5])}...)")


def _read_parquet(path: Path, columns: list[str] | None) -> pa.Table:
    try:
        names = pq.read_schema(path).names
        return pq.read_table(path, columns=columns if _has(names, columns) else None)
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(_parquet_problem(path, exc)) from None


def _parquet_problem(path: Path, exc: Exception) -> str:
    return (f"cannot read {path} as Parquet: {_first_line(exc)}: is it a Parquet file "
            f"(written by pandas' to_parquet or pyarrow)?")


def _parse(delimiter: str) -> pacsv.ParseOptions:
    return pacsv.ParseOptions(delimiter=delimiter)


def _convert() -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(strings_can_be_null=True)


def _read_text(path: Path, delimiter: str, columns: list[str] | None) -> pa.Table:
    parse, convert = _parse(delimiter), _convert()
    try:
        header = pacsv.open_csv(path, parse_options=parse).schema.names if columns else None
        if columns and _has(header, columns):
            convert.include_columns = columns
        table = pacsv.read_csv(path, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise ConfigError(_text_problem(path, delimiter, exc)) from None
    if any(pa.types.is_binary(t) for t in table.schema.types):  # text that is not UTF-8
        raise ConfigError(_encoding_problem(path))
    return table


def _text_problem(path: Path, delimiter: str, exc: Exception) -> str:
    text = str(exc)
    if "Empty CSV file" in text:
        return f"table file {path} is empty: it needs a header row and data rows"
    if "UTF8" in text or "UTF-8" in text:
        return _encoding_problem(path)
    if "Expected" in text and "columns" in text:
        return _ragged_problem(path, delimiter)
    return f"cannot read {path}: {_first_line(exc)}"


def _has(names: list[str] | None, columns: list[str] | None) -> bool:
    return bool(names) and bool(columns) and set(columns) <= set(names)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _encoding_problem(path: Path) -> str:
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return (f"{path} is not UTF-8 text (line {number}, byte {exc.start + 1}: "
                        f"{line[exc.start:exc.start + 1]!r}): save it as UTF-8 (in a "
                        f"spreadsheet: CSV UTF-8)")
    return f"{path} is not UTF-8 text: save it as UTF-8"


def _ragged_problem(path: Path, delimiter: str) -> str:
    """The first row whose field count differs from the header's, found by a plain scan
    (only on this error path): pyarrow's reader does not report line numbers."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f, delimiter=delimiter)
        width = None
        for row in reader:
            if width is None:
                width = len(row)
            elif row and len(row) != width:
                return (f"{path} line {reader.line_num} has {len(row)} fields where the "
                        f"header has {width}: fix that row (a stray {delimiter!r} or a "
                        f"missing value)")
    return f"{path} has rows of different lengths: every row needs the header's fields"


def load_table(data: DataConfig, preprocess) -> Table:
    """Read data.dataset, pick target and features, drop rows without a target, decide the
    task. ``preprocess``: the PreprocessConfig (its drop_columns)."""
    path = table_path(data.dataset)
    wanted = ([*data.features, data.target] if data.features else None)
    frame = read_table(path, columns=wanted)
    return select(frame, path, data, preprocess)


def select(frame: pd.DataFrame, path: Path, data: DataConfig, preprocess) -> Table:
    """Target, feature columns and task of ``frame`` read from ``path``."""
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    target = data.target
    if target not in columns:
        raise ConfigError(f"data.target={target!r}: {path} has no such column"
                          + _did_you_mean(target, columns) + f" (columns: {_listed(columns)})")
    group = data.group_column
    if group and group not in columns:
        raise ConfigError(f"data.group_column={group!r}: {path} has no such column"
                          + _did_you_mean(group, columns) + f" (columns: {_listed(columns)})")
    dropped = set(preprocess.drop_columns)
    features = list(data.features) or [c for c in columns
                                       if c not in (target, group) and c not in dropped]
    features = [c for c in features if c not in dropped]
    missing = [c for c in features if c not in columns]
    if missing:
        raise ConfigError(f"data.features names {missing[0]!r}, which {path} does not have"
                          + _did_you_mean(missing[0], columns) + ": fix data.features")
    if target in features:
        raise ConfigError(f"data.features lists the target {target!r}: remove it from "
                          f"data.features")
    if group and group in features:
        raise ConfigError(f"data.features lists the group column {group!r}: a group name is "
                          f"not a feature; remove it from data.features")
    if not features:
        raise ConfigError(f"{path}: no feature columns are left besides the target {target!r}: "
                          f"check data.features and preprocess.drop_columns")
    frame = frame[[*features, target, *([group] if group else [])]]
    if group and frame[group].isna().any():
        raise ConfigError(f"group column {group!r} of {path} is empty in "
                          f"{int(frame[group].isna().sum())} row(s): every row needs its group; "
                          f"fill them in or remove those rows")
    notes = []
    for name in features:
        if frame[name].isna().all():
            raise ConfigError(f"feature column {name!r} of {path} is empty (no value in any "
                              f"row): add it to preprocess.drop_columns")
    has_target = frame[target].notna()
    if not has_target.all():
        lost = int((~has_target).sum())
        if lost == len(frame):
            raise ConfigError(f"target column {target!r} of {path} has no values: pick "
                              f"another data.target")
        frame = frame[has_target]
        notes.append(f"dropped {lost} row(s) of {path.name} whose target {target!r} is missing")
    task, why = decide_task(frame[target], data.task)
    if task == "regression" and not pd.api.types.is_numeric_dtype(frame[target]):
        example = frame[target].iloc[0]
        raise ConfigError(f"data.task='regression' needs a numeric target, and {target!r} of "
                          f"{path} holds text (e.g. {str(example)!r}): set data.task = "
                          f"'classification' or pick a numeric data.target")
    notes.insert(0, f"task: {task} ({why})")
    return Table(frame, features, target, task, notes, group)


def decide_task(target: pd.Series, asked: str) -> tuple[str, str]:
    """(task, why): the auto rule, or the task the config names."""
    if asked != "auto":
        return asked, "data.task"
    if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        return "classification", f"auto: target {target.name!r} is not numeric"
    values = target.to_numpy(dtype=np.float64)
    distinct = len(np.unique(values))
    if np.all(np.mod(values, 1) == 0) and distinct <= MAX_AUTO_CLASSES:
        return "classification", (f"auto: target {target.name!r} holds {distinct} distinct "
                                   f"integers; set data.task = 'regression' to override")
    return "regression", (f"auto: target {target.name!r} is numeric with {distinct} distinct "
                          f"values; set data.task = 'classification' to override")


def _did_you_mean(name: str, columns: list[str]) -> str:
    folded = {c.lower(): c for c in columns}
    hint = difflib.get_close_matches(name.lower(), list(folded), n=1, cutoff=0.6)
    return f": did you mean {folded[hint[0]]!r}?" if hint else ""


def _listed(columns: list[str]) -> str:
    shown = ", ".join(columns[:12])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > 12 else "")
