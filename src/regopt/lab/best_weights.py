"""``best.pt``: the weights of a run's best validation epoch, kept beside ``checkpoint.pt``.

Written (atomically, as a regopt checkpoint) when ``[train] keep_best = true`` or when early stopping restores its
best weights. An epoch is the best so far when its metric improves on the best by more than ``min_delta`` (the
metric, mode and ``min_delta`` of ``[regularize.early_stopping]`` when it is configured, so ``best.pt`` is the
epoch early stopping keeps; else the lowest ``val_error``), the rule of
:class:`~regopt.regularize.EarlyStopping`: ties keep the earlier epoch, NaN never improves.

The weights are copied as they were evaluated: inside the optimizer's evaluation view (Nesterov's theta, not the
interim point) and inside Polyak averaging's averaged weights, so ``best.pt`` loaded into a plain model gives the
validation figure of its epoch. The tracker's state (best value and epoch, and the weights) is part of every
checkpoint, so a run killed and resumed writes the same ``best.pt`` as an uninterrupted one. A run resumed from a
checkpoint written before ``best.pt`` existed has no such state; with early stopping that restores, the tracker
adopts early stopping's best epoch (its weights copied in the optimizer's view only), else it starts afresh.

``best.pt`` holds ``{"format", "model": state_dict, "epoch", "step", "metric", "value"}``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from regopt.lab.checkpoint import save_checkpoint
from regopt.lab.config import RunConfig
from regopt.lab.trainer import Trainer
from regopt.monitor import Monitor
from regopt.optim import PolyakAveraging
from regopt.regularize import EarlyStopping

BEST = "best.pt"


def keeps_best(config: RunConfig) -> bool:
    """Whether the run writes ``best.pt``: ``train.keep_best``, or early stopping that restores."""
    stopping = config.regularize.early_stopping
    return config.train.keep_best or (stopping is not None and stopping.restore_best)


class BestWeights(Monitor):
    """Track the best validation epoch of ``trainer`` and write its weights to ``path`` at each improvement."""

    def __init__(
        self, trainer: Trainer, path: Path, *, monitor: str = "val_error", mode: str = "min", min_delta: float = 0.0
    ) -> None:
        self.trainer, self.path = trainer, path
        self.monitor, self.mode, self.min_delta = monitor, mode, min_delta
        self.stopper: EarlyStopping | None = None
        """Early stopping deciding by the same rule: its best epoch is adopted by a tracker that has none after a
        resume (a checkpoint written before ``best.pt`` existed)."""
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.best_step: int | None = None
        self.weights: dict[str, Tensor] | None = None

    @classmethod
    def for_run(cls, config: RunConfig, trainer: Trainer, path: Path) -> BestWeights:
        """The tracker of a run directory: early stopping's metric when configured, else ``val_error``."""
        stopping = config.regularize.early_stopping
        if stopping is None:
            return cls(trainer, path)
        mode = "max" if "acc" in stopping.monitor.lower() else "min"  # EarlyStopping's "auto"
        best = cls(trainer, path, monitor=stopping.monitor, mode=mode, min_delta=stopping.min_delta)
        best.stopper = next((m for m in trainer.monitors if isinstance(m, EarlyStopping)), None)
        return best

    def improves(self, value: float) -> bool:
        """``value < best - min_delta`` (mode min) or ``value > best + min_delta`` (mode max); never for NaN."""
        if math.isnan(value):
            return False
        if self.best_value is None:
            return True
        if self.mode == "min":
            return value < self.best_value - self.min_delta
        return value > self.best_value + self.min_delta

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> tuple[bool, str]:
        stopper = self.stopper
        if self.best_value is None and stopper is not None and stopper.best_weights is not None:
            self.best_value, self.best_epoch, self.best_step = stopper.best_value, stopper.best_epoch, stopper.best_step
            self.weights = dict(stopper.best_weights)
            self._write()
        value = float(metrics[self.monitor])
        if not self.improves(value):
            return False, ""
        self.best_value, self.best_epoch = value, epoch
        self.best_step = int(metrics["step"]) if "step" in metrics else None
        with self._evaluated():
            self.weights = {k: v.detach().clone() for k, v in self.trainer.model.state_dict().items()}
        self._write()
        return False, ""

    def _write(self) -> None:
        best = {"epoch": self.best_epoch, "step": self.best_step, "metric": self.monitor, "value": self.best_value}
        save_checkpoint({"model": self.weights, **best}, self.path)

    def _evaluated(self) -> contextlib.ExitStack:
        """The optimizer's evaluation view, then Polyak averages (as the trainer evaluates), without recomputing
        BatchNorm statistics (the averages keep those of the evaluation just done)."""
        stack = contextlib.ExitStack()
        view = getattr(self.trainer.optimizer, "evaluation_view", None)
        if view is not None:
            stack.enter_context(view())
        for action in self.trainer.post_step:
            if isinstance(action, PolyakAveraging):
                stack.enter_context(action.averaged())
        return stack

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "best_step": self.best_step,
            "weights": None if self.weights is None else dict(self.weights),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; an empty state (a checkpoint written before ``best.pt`` existed) starts
        the tracking afresh."""
        self.best_value, self.best_epoch = state.get("best_value"), state.get("best_epoch")
        self.best_step, self.weights = state.get("best_step"), state.get("weights")


__all__ = ["BEST", "BestWeights", "keeps_best"]
