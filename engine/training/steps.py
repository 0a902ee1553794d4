"""One optimizer step of the Trainer: forward and backward under the run's precision,
accumulation weights, penalties, clipping, the scaler and the schedule.

Losses stay on the device: each micro-batch's weighted loss is kept in ``_pending``
and read once per logging interval (engine.training.trainer).
"""

from __future__ import annotations

import torch


class OptimizerSteps:
    """The step methods of engine.training.Trainer (a mixin: they read its model,
    optimizer, loss, precision, schedule and configuration)."""

    def _backward(self, x, y, weight: float) -> None:
        if self.precision.dtype is None:
            out = self.forward(x)
            loss = self.loss_fn(out, y)
        else:
            with self.precision.autocast():
                out = self.forward(x)
                loss = self.loss_fn(out, y)
        if self.loss_hook is not None:
            loss = self.loss_hook(x, out, loss)
        total = loss + self._penalty() if self.penalized_on else loss
        if weight != 1.0:
            total = total * weight
            loss = loss.detach() * weight
        else:
            loss = loss.detach()
        scaler = self.precision.scaler
        (scaler.scale(total) if scaler else total).backward()
        self._pending.append(loss)
        self._pending_steps.append(self.step + 1)

    def _optimizer_step(self, log_now: bool) -> None:
        t = self.config.train
        scaler = self.precision.scaler
        if scaler and (log_now or t.grad_clip_norm or t.grad_clip_value):
            scaler.unscale_(self.optimizer)
        params = self.params
        if t.grad_clip_norm:
            norm = torch.nn.utils.clip_grad_norm_(params, t.grad_clip_norm)
            if log_now:
                self._grad_norm = norm
        elif log_now:
            self._grad_norm = torch.nn.utils.get_total_norm(
                [p.grad for p in params if p.grad is not None])
        if t.grad_clip_value:
            torch.nn.utils.clip_grad_value_(params, t.grad_clip_value)
        if scaler:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None and not self.plateau:
            self.scheduler.step()

    def _lbfgs_step(self, x, y) -> None:
        clip = self.config.train.grad_clip_norm
        params = self.params

        def closure():
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.forward(x), y)
            total = loss + self._penalty() if self.penalized_on else loss
            total.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            return total

        with torch.no_grad():
            before = self.loss_fn(self.forward(x), y)
        self.optimizer.step(closure)
        self._grad_norm = torch.nn.utils.get_total_norm(
            [p.grad for p in params if p.grad is not None])
        if self.scheduler is not None and not self.plateau:
            self.scheduler.step()
        self._pending.append(before.detach())
        self._pending_steps.append(self.step + 1)

    def _penalty(self) -> torch.Tensor:
        r = self.config.regularization
        total = 0.0
        if r.l1:
            total = total + r.l1 * sum(p.abs().sum() for p in self.penalized)
        if r.l2:
            total = total + 0.5 * r.l2 * sum(p.pow(2).sum() for p in self.penalized)
        return total
