"""How long from launching `torchwork` to a visible window, and to a usable one?

Each round launches, in rotating order:
  app      `python -m app` (the `torchwork` window) with TORCHWORK_STARTUP_PROBE set:
           the app writes when its first frame was on screen ("visible") and when
           the deferred docks were built and Start enabled ("usable"), then quits;
  control  a bare QMainWindow of the same size through the same first-paint hook:
           interpreter, PySide6 and a first frame, the floor no window goes under;
  before   (with --compare DIR) the window of another checkout, such as the main
           branch before a change, timed the same way from outside its code
           (first frame; usable = visible there when it defers nothing).
Times run from just before the process is spawned, on the machine's clock. Each
launch gets a fresh settings folder and workspace (a first start). The load
average before and after is printed beside the table: this VM is shared.

    python bench/startup.py [--rounds 5] [--compare /path/to/other/checkout]
        [--command "dist/torchwork/torchwork"]  (the app launched another way: a bundle)

QT_QPA_PLATFORM is left as set (offscreen when there is no DISPLAY): under Xvfb,
DISPLAY=:N QT_QPA_PLATFORM=xcb python bench/startup.py.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Times the first frame of a window built by `make` (code run in the child), the way the
# app's own probe does (app/deferred.py): the first frame is complete once a zero timer
# posted from the window's first paint event has fired.
OUTSIDE_PROBE = """
import sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
{make}
class Probe(QObject):
    seen = False
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Paint and obj is window and not self.seen:
            self.seen = True
            QTimer.singleShot(0, self.write)
        return False
    def write(self):
        now = time.time()
        with open(sys.argv[1], "w") as out:
            out.write(f"visible {{now!r}}\\nusable {{now!r}}\\nstart_enabled {{start}}\\n"
                      f"first_frame_modules {{' '.join(sys.modules)}}\\n")
        window.close()
probe = Probe()
app.installEventFilter(probe)
window.show()
app.exec()
"""
CONTROL = OUTSIDE_PROBE.format(make="window = QMainWindow(); window.resize(1400, 860)\n"
                                    "start = None")
BEFORE = OUTSIDE_PROBE.format(
    make="from app.main_window import MainWindow, route_exceptions\n"
         "window = MainWindow(workspace_dir=sys.argv[2])\n"
         "route_exceptions(window)\n"
         "start = window.act_start.isEnabled()")


def launch(kind: str, args: argparse.Namespace, scratch: Path) -> dict:
    probe = scratch / "probe.txt"
    probe.unlink(missing_ok=True)
    env = dict(os.environ, XDG_CONFIG_HOME=str(scratch / "config"),
               TORCHWORK_STARTUP_PROBE=str(probe), PYTHONPATH=str(ROOT))
    workspace = str(scratch / "workspace")
    if kind == "app":
        cmd = [*(shlex.split(args.command) if args.command else [sys.executable, "-m", "app"]),
               "--workspace", workspace]
    elif kind == "control":
        cmd = [sys.executable, "-c", CONTROL, str(probe)]
    else:
        env["PYTHONPATH"] = str(args.compare)
        cmd = [sys.executable, "-c", BEFORE, str(probe), workspace]
    start = time.time()
    proc = subprocess.run(cmd, env=env, cwd=scratch, capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0 or not probe.exists():
        raise SystemExit(f"{kind} did not start (exit {proc.returncode}):\n{proc.stderr}")
    fields = dict(line.split(" ", 1) for line in probe.read_text().splitlines())
    return {"visible": float(fields["visible"]) - start,
            "usable": float(fields["usable"]) - start,
            "start_enabled": fields["start_enabled"].strip(),
            "modules": fields["first_frame_modules"].split()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compare", type=Path, metavar="DIR",
                        help="another checkout's root, timed as 'before'")
    parser.add_argument("--command", help="launch the app with this command line instead "
                        "of `python -m app` (e.g. a PyInstaller bundle's executable)")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY") and not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    kinds = ["app", "control"] + (["before"] if args.compare else [])
    times: dict[str, list[dict]] = {k: [] for k in kinds}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="torchwork-startup-") as tmp:
        for r in range(args.rounds):
            order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]  # rotate the turns
            for kind in order:
                scratch = Path(tmp, f"{kind}-{r}")
                scratch.mkdir()
                times[kind].append(launch(kind, args, scratch))
    load_after = os.getloadavg()[0]
    print(f"platform {os.environ.get('QT_QPA_PLATFORM', 'xcb')}, {os.cpu_count()} CPUs, "
          f"load average {load_before:.2f} before, {load_after:.2f} after, "
          f"{args.rounds} rounds")
    print("| launch | to visible window: median (min - max) | to usable: median "
          "(min - max) | Start enabled | modules at the first frame (torch?) |")
    print("|---|---|---|---|---|")
    for kind in kinds:
        cells = []
        for key in ("visible", "usable"):
            values = [t[key] for t in times[kind]]
            cells.append(f"{statistics.median(values):.2f} s ({min(values):.2f} - "
                         f"{max(values):.2f})")
        enabled = {t["start_enabled"] for t in times[kind]}
        label = {"app": f"torchwork window ({args.command or 'this tree'})",
                 "control": "control: bare QMainWindow (the floor)",
                 "before": f"before: {args.compare}"}[kind]
        modules = times[kind][-1]["modules"]
        torch = "torch" if "torch" in modules else "no torch"
        print(f"| {label} | {cells[0]} | {cells[1]} | {', '.join(sorted(enabled))} | "
              f"{len(modules)} ({torch}) |")


if __name__ == "__main__":
    main()
