"""The benchmark scripts still run (their figures live in docs/benchmarks.md, not here)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def run_bench(*args):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_engine_overhead_prints_its_table():
    out = run_bench("bench/engine_overhead.py", "--pairs", "3", "--window", "10")
    assert "| ratio of a pair: median (quartiles) |" in out


@pytest.mark.slow
@pytest.mark.bench
def test_digits_cnn_reaches_its_accuracy():
    out = run_bench("bench/digits_cnn.py", "--repeats", "1")
    accuracy = float(out.strip().splitlines()[-1].split("|")[4])
    assert accuracy >= 0.97


@pytest.mark.slow
@pytest.mark.bench
def test_monitor_overhead_prints_its_tables():
    out = run_bench("bench/monitor_overhead.py", "--seconds", "1", "--rounds", "1",
                    "--turn", "0.5")
    assert "| psutil only (real pynvml: no NVML library here) |" in out
    assert "| control: without again (the noise floor) |" in out


@pytest.mark.slow
@pytest.mark.bench
def test_timeline_bench_prints_its_table():
    out = run_bench("bench/timeline.py", "--events", "20000", "--frames", "3")
    assert "| open (parse + index) 20," in out
    assert "RunProfileData.parse" in out


@pytest.mark.slow
@pytest.mark.bench
def test_compression_bench_prints_its_table_and_bars():
    out = run_bench("bench/compression.py", "--epochs", "2", "--finetune-epochs", "1",
                    "--repeats", "2")
    assert "| original (onnx) | onnxruntime |" in out
    assert "| file size vs fp32 ONNX |" in out and "| ORT CPU latency, batch 64 |" in out


@pytest.mark.slow
@pytest.mark.bench
def test_gui_overhead_prints_its_table():
    out = run_bench("bench/gui_overhead.py", "--rounds", "1", "--steps", "60",
                    "--probe-runs", "1", "--live-idle-s", "9", "--phase-s", "2")
    assert "| (a) throughput, window / headless (median) |" in out
    assert "| (a) within one run: window live / window idle" in out
    assert "| (b) 10 ms timer lateness p99 / median |" in out


@pytest.mark.slow
@pytest.mark.bench
def test_startup_bench_prints_its_table():
    out = run_bench("bench/startup.py", "--rounds", "1")
    assert "| torchwork window (this tree) |" in out
    assert "| control: bare QMainWindow (the floor) |" in out
    assert "(no torch) |" in out  # the window's first frame, through its probe


@pytest.mark.slow
@pytest.mark.bench
def test_image_folder_bench_prints_its_tables():
    out = run_bench("bench/image_folder.py", "--count", "200", "--pairs", "2", "--steps", "2")
    assert "later / first epoch throughput:" in out
    assert "median augmented / plain:" in out


@pytest.mark.slow
@pytest.mark.bench
def test_table_load_bench_prints_its_table():
    out = run_bench("bench/table_load.py", "--rows", "3000", "--rounds", "1")
    assert "| **torchwork / by hand** |" in out and "| **Parquet / CSV (torchwork)** |" in out


@pytest.mark.slow
@pytest.mark.bench
def test_runs_table_bench_prints_its_table():
    out = run_bench("bench/runs_table.py", "--runs", "300", "--rounds", "1")
    assert "| open, cache warm: model filled + first paint (bar <= 1 s) |" in out
    assert "| open, no config cache, runs created at schema 7: rows and hyperparameter " in out
    assert "| live: a run committed by another connection shows (poll 1 s) |" in out


@pytest.mark.slow
@pytest.mark.bench
def test_run_overlay_bench_prints_its_table():
    out = run_bench("bench/run_overlay.py", "--runs", "3", "--steps", "3000", "--redraws", "4")
    assert "| pan: loss plot zoomed to 1% of the steps" in out
    assert "| x axis switched" in out


def test_lr_finder_bench_prints_its_table():
    out = run_bench("bench/lr_finder.py", "--problems", "1", "--epochs-scale", "0.25",
                    "--seeds", "1")
    row = out.strip().splitlines()[-1].split("|")
    assert row[1].strip() == "digits MLP" and float(row[2]) > 0


@pytest.mark.slow
@pytest.mark.bench
def test_memory_forecast_bench_prints_its_tables():
    out = run_bench("bench/memory_forecast.py", "--budget-mib", "16")
    errors = [float(line.split("|")[5].strip().rstrip("%")) for line in out.splitlines()
              if line.startswith("| digits CNN |")]
    assert errors and abs(errors[0]) < 5  # the forecast is within 5% of the measured peak


@pytest.mark.slow
@pytest.mark.bench
def test_search_bench_prints_its_table():
    out = run_bench("bench/search.py", "--trials", "2", "--epochs", "1", "--skip-workers")
    assert "| pruned | median | 1 |" in out and "| unpruned | none | 1 |" in out
    assert "epochs saved by pruning:" in out


@pytest.mark.slow
@pytest.mark.bench
def test_distributed_bench_prints_its_table():
    out = run_bench("bench/distributed.py", "--rounds", "1", "--steps", "11", "--batch", "128",
                    "--hidden", "32")
    assert "| 2 processes (DDP, gloo) |" in out and "bar >= 1.6:" in out
    assert "| 2 processes (FSDP2, gloo) |" in out


@pytest.mark.slow
@pytest.mark.bench
def test_advisor_bench_prints_its_tables():
    out = run_bench("bench/advisor.py", "--cases", "tiny-batch,fp32-on-gpu", "--pairs", "2")
    assert "| tiny-batch | batch 8" in out and "| yes |" in out  # the planted one is found
    assert "fp32-on-gpu" in out and ("skipped: no CUDA GPU here" in out or "precision" in out)
    assert "| tiny-batch: small-batch found |" in out
