"""`torchwork monitor`: the hardware dock's readings in a terminal, for a server.

A live table in a terminal (redrawn in place, like nvitop's compact view), one
table per reading when the output goes to a file or a pipe, or one JSON object
per line with --json. What cannot be read (no NVIDIA GPU, a field this GPU
lacks) is said once on stderr and the rest goes on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import threading


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "monitor", help="print GPU, CPU and memory readings at an interval",
        description="Read every NVIDIA GPU through NVML (utilization, memory, power, "
                    "temperature, clocks, PCIe, throttling) and the CPU and RAM through psutil "
                    "every --interval seconds, as the window's Hardware dock does.")
    p.add_argument("--interval", type=float, default=1.0, metavar="S",
                   help="seconds between readings, 0.1 to 10 (default 1)")
    p.add_argument("--count", type=int, default=0, metavar="N",
                   help="stop after N readings (default: until Ctrl-C)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per reading and line (NaN as null)")
    p.set_defaults(handler=cmd_monitor)


def cmd_monitor(args) -> int:
    from engine.cli import UsageError
    from engine.monitor import Alerts, Sampler

    if args.count < 0:
        raise UsageError(f"--count must be >= 0 (got {args.count})")
    samples: list = []
    arrived = threading.Condition()

    def on_sample(sample) -> None:
        with arrived:
            samples.append(sample)
            arrived.notify()

    def on_problem(text: str) -> None:
        print(f"torchwork monitor: {text}", file=sys.stderr, flush=True)

    try:
        sampler = Sampler(args.interval, on_sample=on_sample, on_problem=on_problem,
                          torch_memory=False)
    except ValueError as exc:
        raise UsageError(f"--interval: {exc}") from None
    table = None if args.json else _Table()
    show = _json_line if table is None else table.show
    alerts = Alerts()
    shown = 0
    sampler.start()
    try:
        while not args.count or shown < args.count:
            with arrived:
                while not samples:
                    arrived.wait()
                sample = samples.pop(0)
            show(sample, alerts.update(sample, training=False))
            shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        sampler.stop()
        if table is not None:
            table.close()
    return 0


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _json_line(sample, warnings: list[str]) -> None:
    record = dataclasses.asdict(sample)
    record.pop("problems")  # said once on stderr, not on every line
    record["warnings"] = warnings
    print(json.dumps(_plain(record)), flush=True)


def _num(value: float, fmt: str = ".0f", scale: float = 1.0) -> str:
    return "-" if not math.isfinite(value) else format(value / scale, fmt)


GIB, MB = 1024 ** 3, 1e6


class _Table:
    """Renders a sample with rich: in place on a terminal, one table per reading elsewhere."""

    def __init__(self):
        from rich.console import Console

        self.console = Console()
        self.live = None

    def show(self, sample, warnings: list[str]) -> None:
        from rich.console import Group
        from rich.live import Live
        from rich.text import Text

        parts = [self._gpu_table(sample)] if sample.gpus else []
        parts.append(Text(
            f"CPU  this process {_num(sample.process_cpu)}%  system {_num(sample.system_cpu)}%"
            f"   RAM  {_num(sample.ram_used, '.1f', GIB)} / {_num(sample.ram_total, '.1f', GIB)}"
            f" GiB   RSS {_num(sample.process_rss, '.2f', GIB)} GiB"))
        parts += [Text(f"! {w}", style="bold yellow") for w in warnings]
        view = Group(*parts)
        if not self.console.is_terminal:
            self.console.print(view)
        elif self.live is None:
            self.live = Live(view, console=self.console, auto_refresh=False)
            self.live.start()
        else:
            self.live.update(view, refresh=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()

    @staticmethod
    def _gpu_table(sample):
        from rich.table import Table

        table = Table(box=None, header_style="bold", pad_edge=False)
        for title in ("GPU", "Util", "Memory GiB", "Power W", "Temp", "Clocks MHz",
                      "PCIe tx/rx MB/s"):
            table.add_column(title, justify="left" if title == "GPU" else "right", no_wrap=True,
                             max_width=14 if title == "GPU" else None, overflow="ellipsis")
        for g in sample.gpus:
            table.add_row(f"{g.index} {g.name.removeprefix('NVIDIA ')}",
                          f"{_num(g.utilization)}%",
                          f"{_num(g.memory_used, '.1f', GIB)}/{_num(g.memory_total, '.0f', GIB)}",
                          f"{_num(g.power)}/{_num(g.power_limit)}",
                          f"{_num(g.temperature)}°C",
                          f"{_num(g.sm_clock)}/{_num(g.memory_clock)}",
                          f"{_num(g.pcie_tx, '.0f', MB)}/{_num(g.pcie_rx, '.0f', MB)}")
        return table
