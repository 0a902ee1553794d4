"""How fast the bundle starts: launch to exit of `torchwork --help`, and launch to
the window shown on an X display (found with xdotool).

    Xvfb :99 & DISPLAY=:99 python packaging/startup_time.py [dist/torchwork/torchwork]

Prints the median of --repeat launches of each; each launch uses a fresh
settings folder, so no saved layout or last configuration changes the work.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def help_s(exe: str, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([exe, "--help"], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def window_s(exe: str, env: dict) -> float:
    """Seconds from launch until a window named Torchwork is mapped on the display."""
    start = time.perf_counter()
    app = subprocess.Popen([exe, "--config", "examples/digits-cnn.toml"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--name", "Torchwork"],
                       env=env, check=True, capture_output=True, timeout=120)
        return time.perf_counter() - start
    finally:
        app.terminate()
        app.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exe", nargs="?", default="dist/torchwork/torchwork")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not os.environ.get("DISPLAY") or shutil.which("xdotool") is None:
        print("startup_time: needs an X display (DISPLAY, e.g. Xvfb) and xdotool "
              "(apt-get install xvfb xdotool)", file=sys.stderr)
        return 2
    exe = str(Path(args.exe).resolve())
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "XDG_CONFIG_HOME": f"{home}/config",
               "XDG_STATE_HOME": f"{home}/state", "TORCHWORK_WORKSPACE": f"{home}/ws"}
        env.pop("QT_QPA_PLATFORM", None)
        helps = [help_s(exe, env) for _ in range(args.repeat)]
        windows = [window_s(exe, env) for _ in range(args.repeat)]
    print(f"{exe}: median of {args.repeat} launches")
    print(f"  torchwork --help          {statistics.median(helps):6.2f} s")
    print(f"  launch to window shown    {statistics.median(windows):6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
