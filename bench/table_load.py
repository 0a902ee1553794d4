"""Loading a large table: Torchwork's path against pandas + scikit-learn by hand.

Generates a table of --rows rows x 40 columns (30 numbers, 10 categories, 5%
missing in each, plus an integer class target), as CSV and as Parquet. Then,
taking turns, each measured in a fresh child process started by this one (so
a measurement's peak memory is its own, not what an earlier one left in the
allocator; both paths' modules are imported before the clock starts):

- torchwork: ``engine.data.load_dataset`` on ``table:FILE`` (read, check,
  seeded stratified split, ColumnTransformer fitted on train, train and
  validation transformed, tensors);
- by hand: ``pandas.read_csv``, the same split with ``train_test_split``, the
  same ColumnTransformer (mean imputation + standard scaling, most-frequent
  imputation + one-hot), fit on train, transform both, tensors.

Bars (issue 17): torchwork / by hand time <= 1.3 and peak memory <= 1.5; the
same from Parquet faster than from CSV. Peak memory is the child's peak
resident set (ru_maxrss) less its resident set after imports.

    python bench/table_load.py [--rows 1000000] [--rounds 2] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_NUMERIC, N_CATEGORICAL, MISSING = 30, 10, 0.05


def generate(rows: int, folder: Path, seed: int = 0) -> tuple[Path, Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    columns = {}
    label = rng.integers(0, 5, size=rows)
    for i in range(N_NUMERIC):
        values = rng.normal(size=rows) + (label == i % 5) * 0.5
        columns[f"n{i}"] = pa.array(values, mask=rng.random(rows) < MISSING)
    for i in range(N_CATEGORICAL):
        levels = np.array([f"c{i}_{k}" for k in range(3 + 4 * i)])
        values = levels[rng.integers(0, len(levels), size=rows)]
        columns[f"c{i}"] = pa.array(values, mask=rng.random(rows) < MISSING)
    columns["label"] = pa.array(label)
    table = pa.table(columns)
    csv, parquet = folder / "table.csv", folder / "table.parquet"
    pacsv.write_csv(table, csv)
    pq.write_table(table, parquet)
    return csv, parquet


def torchwork(path: str) -> None:
    from engine.config import RunConfig
    from engine.data import load_dataset

    cfg = RunConfig()
    cfg.set("data.dataset", f"table:{path}")
    cfg.set("data.target", "label")
    cfg.set("data.task", "classification")
    load_dataset(cfg)


def by_hand(path: str) -> None:
    import numpy as np
    import pandas as pd
    import torch
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    y = frame.pop("label").to_numpy()
    numeric = [c for c in frame.columns if c.startswith("n")]
    categorical = [c for c in frame.columns if c.startswith("c")]
    frame[categorical] = frame[categorical].astype(object)  # sklearn's imputer wants objects
    train, val = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0, stratify=y)
    ct = ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
        ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                      OneHotEncoder(handle_unknown="ignore",
                                                    sparse_output=False)), categorical)],
        sparse_threshold=0.0)
    x_tr = torch.from_numpy(ct.fit_transform(frame.iloc[train]).astype(np.float32))
    x_va = torch.from_numpy(ct.transform(frame.iloc[val]).astype(np.float32))
    del x_tr, x_va


CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
import psutil, numpy, pandas, pyarrow, pyarrow.csv, pyarrow.parquet, torch
import sklearn.compose, sklearn.impute, sklearn.model_selection, sklearn.pipeline
import sklearn.preprocessing, engine.data.table_data  # both paths' imports, out of the timing
sys.path.insert(0, {bench!r})
from table_load import {fn}
base = psutil.Process().memory_info().rss
start = time.perf_counter()
{fn}({path!r})
took = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"s": took, "peak": peak - base}}))
"""


def measure(fn: str, path: Path) -> dict:
    code = CHILD.format(root=str(ROOT), bench=str(ROOT / "bench"), fn=fn, path=str(path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="turns of each measurement")
    parser.add_argument("--dir", type=Path, help="keep the generated files here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        csv, parquet = generate(args.rows, folder)
        print(f"generated {args.rows:,} rows x {N_NUMERIC + N_CATEGORICAL} columns in "
              f"{time.perf_counter() - start:.1f} s: CSV {csv.stat().st_size / 2**20:.0f} MiB, "
              f"Parquet {parquet.stat().st_size / 2**20:.0f} MiB")
        runs: dict[tuple[str, str], list[dict]] = {}
        for turn in range(args.rounds):
            order = [("torchwork", csv), ("by_hand", csv), ("torchwork", parquet)]
            for fn, path in order if turn % 2 == 0 else order[::-1]:
                runs.setdefault((fn, path.suffix), []).append(measure(fn, path))
    med = {k: (statistics.median(r["s"] for r in v), statistics.median(r["peak"] for r in v))
           for k, v in runs.items()}
    tw, hand, pq_ = med[("torchwork", ".csv")], med[("by_hand", ".csv")], \
        med[("torchwork", ".parquet")]
    print(f"\n{args.rows:,} rows, median of {args.rounds} run(s) each\n")
    print("| path | time (s) | peak memory (MiB) |")
    print("|---|---|---|")
    for name, (s, peak) in (("torchwork, CSV", tw), ("pandas + sklearn by hand, CSV", hand),
                            ("torchwork, Parquet", pq_)):
        print(f"| {name} | {s:.2f} | {peak / 2**20:.0f} |")
    time_ratio, mem_ratio = tw[0] / hand[0], tw[1] / hand[1]
    print(f"| **torchwork / by hand** | **{time_ratio:.2f}** (bar <= 1.3: "
          f"{'met' if time_ratio <= 1.3 else 'MISSED'}) | **{mem_ratio:.2f}** (bar <= 1.5: "
          f"{'met' if mem_ratio <= 1.5 else 'MISSED'}) |")
    print(f"| **Parquet / CSV (torchwork)** | **{pq_[0] / tw[0]:.2f}** (bar < 1: "
          f"{'met' if pq_[0] < tw[0] else 'MISSED'}) | {pq_[1] / tw[1]:.2f} |")


if __name__ == "__main__":
    main()
