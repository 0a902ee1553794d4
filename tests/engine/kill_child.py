"""Run `torchwork` and SIGKILL the process at a chosen moment, never at a random time.

Usage: python tests/engine/kill_child.py POINT N -- torchwork arguments...

POINT names the moment; the process kills itself on the N-th time it gets there:
  created      after the run's row and folder exist, before the run is marked running
  ckpt-write   while a checkpoint is half written (a .tmp file is left behind)
  ckpt-renamed right after a checkpoint's rename into place
  finishing    after the run's end (its last checkpoint written), before it is marked ended
The patches wrap the real functions, so everything up to the kill is the real code path.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def kill() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def countdown(n: int):
    left = [n]

    def reached() -> bool:
        left[0] -= 1
        return left[0] == 0

    return reached


def install(point: str, n: int) -> None:
    import engine.files as files
    import engine.training.checkpoint as checkpoint
    from engine.workspace.store import Workspace

    reached = countdown(n)
    if point == "created":
        real_mark = Workspace.mark_running

        def mark_running(self, *args, **kwargs):
            if reached():
                kill()
            return real_mark(self, *args, **kwargs)

        Workspace.mark_running = mark_running
    elif point == "ckpt-write":
        real_save = checkpoint.torch.save

        def save(obj, fh, *args, **kwargs):
            if reached():
                fh.write(b"PK\x03\x04 half a checkpoint")
                fh.flush()
                kill()
            return real_save(obj, fh, *args, **kwargs)

        checkpoint.torch.save = save
    elif point == "ckpt-renamed":
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            real_replace(src, dst, *args, **kwargs)
            if str(dst).endswith(".pt") and reached():
                kill()

        files.os.replace = replace  # the atomic write's rename (engine.files)
    elif point == "finishing":
        real_finish = Workspace.finish_run

        def finish_run(self, *args, **kwargs):
            if reached():
                kill()
            return real_finish(self, *args, **kwargs)

        Workspace.finish_run = finish_run
    else:
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    point, n, sep, *argv = sys.argv[1:]
    assert sep == "--", "usage: kill_child.py POINT N -- torchwork arguments"
    install(point, int(n))
    from engine.cli import main

    sys.exit(main(argv))
