"""How a :class:`~regopt.lab.trainer.Trainer` evaluates: loss and error of the *evaluation view* of the model
(Polyak averages, Nesterov's theta, ...) in ``eval()`` mode, without gradients, in batches, under the training
precision's autocast. Under a :class:`~regopt.lab.distributed.World` each rank evaluates its slice of the split and
the sums are added over the ranks, so every rank gets the same numbers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor, nn

from regopt.lab.distributed import World
from regopt.lab.precision import MixedPrecision

EvalView = Callable[[], AbstractContextManager[Any]]

_EVAL_BATCH = 4096


class TrainerEvaluation:
    """The Trainer's evaluation, as a base class (the attributes are the Trainer's)."""

    model: nn.Module
    forward_model: nn.Module
    loss_fn: Callable[[Any, Tensor], Tensor]
    eval_views: list[EvalView]
    classification: bool
    prediction: Callable[[Any], Tensor] | None
    precision: MixedPrecision
    world: World | None
    sharded: bool

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> tuple[float, float]:
        """Mean task loss and error (error rate, or MSE for regression) of the evaluation view on ``(x, y)``."""
        was_training = self.model.training
        self.model.eval()
        n = max(len(x), 1)
        split = None if self.sharded else self.world  # FSDP2's forward is a collective: every rank evaluates all
        if split is not None:
            x, y = split.shard(x), split.shard(y)
        loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
        wrong = torch.zeros((), device=x.device, dtype=torch.float64)
        with self.evaluation_view():
            for start in range(0, len(x), _EVAL_BATCH):
                xb, yb = x[start : start + _EVAL_BATCH], y[start : start + _EVAL_BATCH]
                with self.precision.autocast():
                    output = self.forward_model(xb)
                    loss = self.loss_fn(output, yb)
                loss_sum += loss * len(xb)
                if self.classification:
                    logits = output if self.prediction is None else self.prediction(output)
                    wrong += (logits.argmax(dim=1) != yb).sum()
        self.model.train(was_training)
        if split is not None:
            loss_sum, wrong = split.sum(loss_sum), split.sum(wrong)
        loss_mean = loss_sum.item() / n
        return loss_mean, (wrong.item() / n if self.classification else loss_mean)

    @contextlib.contextmanager
    def evaluation_view(self) -> Iterator[None]:
        """Enter every evaluation view (Polyak averages, Nesterov's theta, ...) for the duration."""
        with contextlib.ExitStack() as stack:
            for view in self.eval_views:
                stack.enter_context(view())
            yield


__all__ = ["EvalView", "TrainerEvaluation"]
