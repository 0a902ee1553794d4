"""torch-tb-profiler's step parser, made to count the steps a trace recorded, no fewer.

Imported by ``report`` only, as it reads a trace (torch-tb-profiler is slow to
import). Its ``EventParser`` decides two things about steps that a trace from
another machine gets wrong:

- It drops trailing steps that launched no kernel, or under 80% of the kernels
  of the step before, guessing the profiler missed them. A training loop's last
  step (an evaluation, a short last batch, a step whose kernels all ran before)
  is as real as the others, and whether a step was dropped then depended on how
  the runtime calls were named: only those it recognised counted as launches.
- With no CPU events at all (a trace of kernels only) its one step spans
  nothing, so every cost is zero and its advice reads an idle GPU into it.
  Here that step spans the trace.
"""

from __future__ import annotations

import sys

from torch_tb_profiler.profiler import data as tb_data
from torch_tb_profiler.profiler.event_parser import EventParser


class RecordedStepsParser(EventParser):
    def parse_steps(self, events, comm_nodes) -> None:
        super().parse_steps(events, comm_nodes)
        if self.cpu_min_ts == sys.maxsize and self.global_min_ts != sys.maxsize:
            self.steps = [(self.global_min_ts, self.global_max_ts)]

    def _update_steps_duration(self, prev_step_end_time, steps_device,
                               steps_matched_device_nodes) -> None:
        steps, names = self.steps, list(self.steps_names)
        super()._update_steps_duration(prev_step_end_time, steps_device,
                                       steps_matched_device_nodes)
        # It times each step in place, then keeps a prefix of the list: keep them all.
        self.steps, self.steps_names = steps, names


def install() -> None:
    """Make ``RunProfileData.process`` use this parser (it names ``EventParser`` itself)."""
    tb_data.EventParser = RecordedStepsParser
