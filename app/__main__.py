"""Composition root of the `torchwork` command.

With a subcommand it runs headless (engine.cli) and never imports Qt, so it
works on a server without a display. With no arguments it opens the desktop
window once that exists.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from engine.cli import main as cli_main

    argv = sys.argv[1:] if argv is None else argv
    if argv:
        return cli_main(argv)
    print("The desktop window is not built yet; the headless commands work now:\n",
          file=sys.stderr)
    return cli_main([])


if __name__ == "__main__":
    sys.exit(main())
