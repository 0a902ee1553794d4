"""Knowledge distillation: a small student learns from a trained teacher's softened outputs.

loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * task loss, with
both distributions softened by temperature T (Hinton et al., 2015). The T^2
keeps the gradient of the soft term at the same scale whatever T is. The
student trains as an ordinary run through the Trainer's loss hook, so it gets
the same events, plots and validation as any run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CompressionError


def kl_term(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            temperature: float) -> torch.Tensor:
    """T^2-scaled KL divergence of the student's softened distribution from the teacher's."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits.float() / t, dim=1),
                    F.log_softmax(teacher_logits.float() / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)


@dataclass
class Distillation:
    """The Trainer's loss hook: runs the frozen teacher on each batch and mixes in its term.

    ``last_kl`` holds the latest KL term (a detached tensor, read when wanted,
    so the loop does not sync every step).
    """

    teacher: nn.Module
    alpha: float = 0.7
    temperature: float = 4.0

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise CompressionError(f"distillation alpha must be in [0, 1] (got {self.alpha:g}): "
                                   f"it is the weight of the teacher term")
        if self.temperature <= 0:
            raise CompressionError(f"distillation temperature must be > 0 "
                                   f"(got {self.temperature:g}); 2 to 8 is usual")
        self.teacher.eval()
        self.last_kl: torch.Tensor | None = None
        self._device: torch.device | None = None

    def __call__(self, x: torch.Tensor, out: torch.Tensor,
                 task_loss: torch.Tensor) -> torch.Tensor:
        if self._device != x.device:
            self.teacher.to(x.device)
            self._device = x.device
        with torch.no_grad():
            teacher_out = self.teacher(x)
        if teacher_out.shape != out.shape:
            raise CompressionError(f"teacher outputs {tuple(teacher_out.shape[1:])} per sample "
                                   f"but the student {tuple(out.shape[1:])}: both must predict "
                                   f"the same classes")
        kl = kl_term(out, teacher_out, self.temperature)
        self.last_kl = kl.detach()
        return self.alpha * kl + (1.0 - self.alpha) * task_loss
