"""The PyInstaller bundle works as the installed `torchwork` does: it trains,
exports a verified ONNX file, serves TensorBoard and opens the window.

Only `make package-test` runs these (marker `package`): they build
dist/torchwork/ with packaging/build.sh unless `make package` left one newer
than every source file. TORCHWORK_BUNDLE=DIR tests another bundle folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.package, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("engine", "app", "packaging", "pyproject.toml", "constraints.txt")
EXE = "torchwork.exe" if sys.platform == "win32" else "torchwork"


def newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        path = ROOT / name
        files = path.rglob("*") if path.is_dir() else [path]
        newest = max([newest, *(f.stat().st_mtime for f in files
                               if f.is_file() and "__pycache__" not in f.parts)])
    return newest


@pytest.fixture(scope="module")
def bundle() -> Path:
    """The bundle's executable: TORCHWORK_BUNDLE's, a fresh dist/torchwork/, or a new build."""
    given = os.environ.get("TORCHWORK_BUNDLE")
    if given:
        return Path(given) / EXE
    exe = ROOT / "dist" / "torchwork" / EXE
    if not exe.exists() or exe.stat().st_mtime < newest_source():
        subprocess.run(["sh", str(ROOT / "packaging" / "build.sh")], cwd=ROOT, check=True,
                       env={**os.environ, "PYTHON": sys.executable})
    return exe


def user_env(home: Path) -> dict:
    """No display, and the user's folders (workspace, settings, log) inside ``home``."""
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TORCHWORK_WORKSPACE": str(home / "ws"),
            "HOME": str(home / "home"), "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_STATE_HOME": str(home / "state"), "XDG_DATA_HOME": str(home / "data"),
            "XDG_CACHE_HOME": str(home / "cache")}


@pytest.fixture
def env(tmp_path) -> dict:
    return user_env(tmp_path)


def run(exe: Path, env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(exe), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"torchwork {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def trained(bundle, tmp_path_factory) -> tuple[dict, str]:
    """A workspace where the bundle trained one epoch of the digits demo, and the run's id."""
    env = user_env(tmp_path_factory.mktemp("trained"))
    run(bundle, env, "run", "examples/digits-cnn.toml", "--set", "train.epochs=1",
        "--name", "bundled")
    runs = json.loads(run(bundle, env, "runs", "--json").stdout)
    assert [r["name"] for r in runs] == ["bundled"]
    assert runs[0]["status"] == "completed" and runs[0]["epochs_completed"] == 1
    return env, str(runs[0]["id"])


def test_the_bundle_has_the_commands_of_the_installed_torchwork(bundle, env):
    out = run(bundle, env, "--help").stdout
    for command in ("run", "resume", "runs", "profile", "export", "compress", "monitor"):
        assert f"    {command} " in out


def test_the_bundle_trains_the_digits_demo_and_exports_a_verified_onnx_file(bundle, trained,
                                                                            tmp_path):
    env, run_id = trained
    out = tmp_path / "digits.onnx"
    report = json.loads(run(bundle, env, "export", run_id, "--out", str(out), "--json").stdout)
    assert report["format"] == "onnx" and report["max_abs_diff"] <= report["tolerance"]

    import onnxruntime  # the file works outside the bundle too

    session = onnxruntime.InferenceSession(str(out))
    feed = {session.get_inputs()[0].name: np.zeros((3, 1, 8, 8), np.float32)}
    assert session.run(None, feed)[0].shape == (3, 10)


@pytest.mark.parametrize("quantize", ["torch", "onnx"])
def test_the_bundle_prunes_and_quantizes(bundle, trained, tmp_path, quantize):
    """Torch-Pruning, then torchao (torch) or ONNX Runtime's quantization (onnx)."""
    env, run_id = trained
    out = run(bundle, env, "compress", run_id, "--prune", "structured", "--ratio", "0.25",
              "--quantize", quantize, "--finetune-epochs", "0", "--repeats", "1",
              "--out", str(tmp_path / "compressed"), "--json").stdout
    candidates = json.loads(out)
    pruned = [c for c in candidates if c["ratio"] == 0.25]
    assert pruned and all(c["params"] < candidates[0]["params"] for c in pruned)
    runtime = {"torch": "torch", "onnx": "onnxruntime"}[quantize]
    assert any("int8" in c["name"] and c["runtime"] == runtime for c in candidates), candidates


def test_the_bundle_serves_tensorboard_with_the_profiler_plugin(bundle, env, tmp_path):
    """Profile ▸ Open in TensorBoard starts `sys.executable -m tensorboard.main`: in a
    bundle that is the bundle itself, which must act as that interpreter."""
    server = subprocess.Popen([str(bundle), "-m", "tensorboard.main", "--logdir", str(tmp_path),
                               "--host", "127.0.0.1", "--port", "0"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, url = "", None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline and server.poll() is None:
            output += server.stdout.readline()
            url = next(iter(re.findall(r"http://127\.0\.0\.1:\d+/", output)), None)
        assert url, f"TensorBoard did not start from the bundle:\n{output[-3000:]}"
        with urllib.request.urlopen(url + "data/plugins_listing", timeout=30) as reply:
            plugins = json.load(reply)
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200  # the web page ships in the bundle
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert "pytorch_profiler" in plugins and "scalars" in plugins


def test_the_bundle_opens_the_window_for_three_seconds(bundle, env, tmp_path):
    window = subprocess.Popen([str(bundle), "--config", "examples/digits-cnn.toml"], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    time.sleep(3)
    alive = window.poll() is None
    window.terminate()
    output = window.communicate(timeout=30)[0]
    assert alive, f"the window closed within 3 s (exit {window.returncode}):\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    logs = list((tmp_path / "state").rglob("app.log"))
    errors = [line for log in logs for line in log.read_text().splitlines() if "ERROR" in line]
    assert not errors, errors
