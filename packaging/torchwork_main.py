"""Entry point of the PyInstaller bundle: the installed `torchwork` command, plus
the two jobs a frozen executable must do itself, because in a bundle
``sys.executable`` is this program and not a Python interpreter."""

from __future__ import annotations

import multiprocessing
import runpy
import sys


def main() -> int:
    # The window's runs and exports are spawn children, which start this
    # executable again with multiprocessing's own arguments: hand them over.
    multiprocessing.freeze_support()
    if len(sys.argv) > 2 and sys.argv[1] == "-m":
        # The Profiler panel starts TensorBoard as `sys.executable -m tensorboard.main ...`:
        # act as that interpreter for the modules the bundle holds.
        module = sys.argv[2]
        sys.argv = [sys.argv[0], *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0
    from app.__main__ import main as torchwork

    return torchwork()


if __name__ == "__main__":
    sys.exit(main())
