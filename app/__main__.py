"""Composition root of the `torchwork` command.

With a subcommand it runs headless (engine.cli) and never imports Qt, so it
works on a server without a display. Without one it opens the desktop window:
`torchwork [--config FILE.toml] [--workspace DIR]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial


def gui(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="torchwork",
                                     description="Open the Torchwork desktop window.")
    parser.add_argument("--config", metavar="FILE", help="run configuration to open (.toml)")
    parser.add_argument("--workspace", metavar="DIR", help="workspace folder")
    args = parser.parse_args(argv)
    from .platform_check import display_problem

    problem = display_problem()
    if problem:
        print(f"torchwork: {problem}", file=sys.stderr)
        return 2
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow, route_exceptions, show_later

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("Torchwork")
    app.setApplicationName("Torchwork")
    app.setApplicationDisplayName("Torchwork")
    window = MainWindow(workspace_dir=args.workspace, defer_docks=True)
    route_exceptions(window)
    show_later(window, args.config)
    probe = os.environ.get("TORCHWORK_STARTUP_PROBE")
    if probe:
        window.docks_loader.work = partial(_probe, window, probe)
    window.show()
    return app.exec()


def _probe(window, path: str) -> None:
    """bench/startup.py's hook: write when the first frame was on screen, the modules it
    needed, and when the window was usable (docks built; epoch seconds), then quit."""
    modules = " ".join(sorted(sys.modules))
    window.load_docks()
    usable = time.time()
    with open(path, "w") as out:
        out.write(f"visible {window.docks_loader.painted_at or usable!r}\nusable {usable!r}\n"
                  f"start_enabled {window.act_start.isEnabled()}\nfirst_frame_modules {modules}\n")
    window.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0].startswith("--") and argv[0] not in ("--help", "--version")):
        return gui(argv)
    from engine.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
