"""`torchwork run CONFIG --nproc-per-node N`: N local processes through torchrun's agent.

The agent is torch.distributed.run's own (its argument parser and config, then
``elastic_launch``, as `torchrun --standalone` does), each process running
Torchwork's entry point (``python -m app run ...``) with the same arguments. The
command's exit code is the run's: rank 0's, which speaks for it.
"""

from __future__ import annotations

import os
import uuid

EXIT_FAILED, EXIT_STOPPED = 1, 130


def launch_local(nproc: int, worker_argv: list[str], max_restarts: int = 0) -> int:
    """Run ``python -m app *worker_argv`` on ``nproc`` local processes; the run's exit code.
    After a process dies the agent restarts them all, up to ``max_restarts`` times (each
    attempt resumes from the run's last checkpoint: engine.distributed.elastic)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, get_args_parser

    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", f"--max-restarts={max_restarts}",
         "--module", "app", *worker_argv])
    # what torchrun does for --standalone: a c10d store of its own on a free port
    args.rdzv_backend, args.rdzv_endpoint, args.rdzv_id = "c10d", "localhost:0", str(uuid.uuid4())
    if max_restarts:
        # A restarted attempt must not read the dead attempt's process-group keys from a
        # store shared between attempts (pytorch/pytorch#135712): each gets its own store.
        os.environ.setdefault("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")
    config, cmd, cmd_args = config_from_args(args)
    try:
        elastic_launch(config, cmd)(*cmd_args)
    except ChildFailedError as exc:
        return exit_code(exc.failures)
    except SignalException:  # Ctrl-C: the agent passed it on; the ranks stopped together
        return EXIT_STOPPED
    return 0


def exit_code(failures: dict) -> int:
    """The run's exit code from the failed processes (rank -> ProcessFailure): rank 0's, or
    the first failure's; a process killed by a signal counts as a failed run."""
    failure = failures.get(0) or failures[min(failures)]
    return failure.exitcode if failure.exitcode > 0 else EXIT_FAILED


def local_slots(device: str) -> tuple[str, int, str]:
    """What `--nproc-per-node` can use on this machine for a run on ``device``
    (train.device): ("cuda", CUDA devices, "nccl") when it trains on GPUs and there are
    some, else ("cpu", usable cores, "gloo")."""
    import os

    import torch

    if device != "cpu" and not device.startswith("mps") and torch.cuda.is_available():
        count = torch.cuda.device_count()
        if count:
            return "cuda", count, "nccl"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return "cpu", max(1, cores), "gloo"
