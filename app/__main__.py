"""Composition root of the `torchwork` command.

With a subcommand it runs headless (engine.cli) and never imports Qt, so it
works on a server without a display. Without one it opens the desktop window:
`torchwork [--config FILE.toml] [--workspace DIR]`.
"""

from __future__ import annotations

import argparse
import sys


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
    window = MainWindow(workspace_dir=args.workspace)
    route_exceptions(window)
    show_later(window, args.config)
    window.show()
    return app.exec()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0].startswith("--") and argv[0] not in ("--help", "--version")):
        return gui(argv)
    from engine.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
