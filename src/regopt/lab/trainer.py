"""The Trainer: one explicit training loop with named phases that techniques plug into.

One optimizer step runs the phases of :mod:`regopt.lab.train_step` (batch transforms, forward and backward of
each micro-batch under autocast, unscaling, monitors of the raw gradient, gradient transforms, the optimizer step,
post-step actions), then the monitors hear of the step.

After each epoch the model is evaluated (in ``eval()`` mode, without gradients, inside every *evaluation view*,
e.g. Polyak-averaged weights) on the training and validation splits, a metrics row is recorded, the scheduler
advances (per epoch or per step), monitors decide whether to stop, and a checkpoint is written.

Batches are drawn from tensors already on the device by a seeded permutation; the position in training (epoch,
batch within it, the batch-order generator, every RNG) is part of :meth:`Trainer.state_dict`, so a resumed run
ends with exactly the metrics and weights of an uninterrupted one. :meth:`Trainer.fit` takes its limits as totals
(``max_epochs``, ``max_steps``), so calling it again with larger ones continues training where it stopped: that is
how a resumed run, Algorithm 7.2 (train for i* steps) and Algorithm 7.3 (one more epoch at a time) run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from regopt.lab.batch_order import BatchOrder, has_batch_norm, steps_per_epoch
from regopt.lab.data import Dataset
from regopt.lab.distributed import World, check_slices, data_parallel, is_sharded, synced
from regopt.lab.evaluation import EvalView, TrainerEvaluation
from regopt.lab.models.base import ModelError
from regopt.lab.objective import ObjectiveTerm, Penalty
from regopt.lab.precision import MixedPrecision, Precision
from regopt.lab.progress import TrainingProgress
from regopt.lab.train_step import TrainerStep
from regopt.lab.trainer_state import TrainerCheckpoint
from regopt.monitor import Monitor

BatchTransform = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
ModelAction = Callable[[nn.Module], Any]
_LIMIT_STOP = re.compile(r"(completed \d+ epochs|reached \d+ steps)")  # how a stop at the limits reads


def default_loss(task: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Cross-entropy for classification, mean squared error for regression."""
    return F.cross_entropy if task == "classification" else F.mse_loss


class Trainer(TrainerCheckpoint, TrainerEvaluation, TrainerStep):
    """Train ``model`` on ``data`` with ``optimizer``; see the module docstring for the phases.

    Args:
        model: any ``nn.Module`` mapping a batch of ``data`` inputs to outputs.
        optimizer: any ``torch.optim.Optimizer`` over the model's parameters; one that needs a closure (SAM,
            L-BFGS) is stepped with a closure that re-runs the step's forward and backward on the same batch
            (see :mod:`regopt.lab.train_step`).
        data: a :class:`regopt.lab.data.Dataset` whose tensors are already on the training device.
        epochs: number of passes over the training split (the default limit of :meth:`fit`).
        batch_size: examples per optimizer step (see :mod:`regopt.lab.batch_order` for the last batch).
        shuffle: a fresh seeded order of the training examples every epoch; ``False`` takes consecutive slices
            of the data's own order every epoch (the MNIST-1D paper's loop).
        loss_fn: task loss ``(output, target) -> scalar``; default from ``data.task``.
        scheduler: a torch LR scheduler, stepped once per ``scheduler_interval``.
        batch_transforms: callables ``(x, y) -> (x, y)`` applied to each training batch (augmentation, noise).
        penalties: callables ``model -> scalar`` added to the task loss before backward (alpha * Omega(theta)).
        terms: callables ``TrainingBatch -> scalar`` added after the penalties: terms of the objective that use
            the batch, the output or the task loss (see :mod:`regopt.lab.objective`).
        grad_transforms: callables ``model -> None`` run between backward and the optimizer step.
        post_step: callables ``model -> None`` run after each optimizer step.
        monitors: :class:`regopt.monitor.Monitor` objects, told of every step and epoch; any may stop training.
        eval_views: callables returning context managers entered around every evaluation.
        seed: seeds the batch order (a generator of its own; torch's global RNG is the caller's to seed).
        checkpoint_path: where to write a checkpoint after every epoch (atomically), if given.
        checkpoint_every: also checkpoint every this many optimizer steps.
        progress: show a rich progress bar with live metrics.
        max_steps: stop after this many optimizer steps in all (the epoch is then cut short and evaluated).
        prediction: ``output -> logits`` judged by the error rate (default: the output itself); a multi-task
            model's dict of outputs names its main task's here.
        scheduler_metric: the metrics row's key passed to ``scheduler.step`` each epoch (``ReduceLROnPlateau``).
        batch_order: which examples each epoch takes, in what order (default: all of them, shuffled from
            ``seed`` or in order; see :mod:`regopt.lab.batch_order`).
        start_step: optimizer steps the model has already taken elsewhere (Algorithm 7.3 counts on from the
            early-stopping phase); ``step`` counts on from it.
        accumulate: split each batch into this many micro-batches, one forward and backward pass each, whose
            gradients add up to the batch's before the one optimizer step (gradient accumulation).
        precision: ``"32"``, ``"bf16"`` or ``"fp16"`` (see :mod:`regopt.lab.precision`).
        compile_model: run the forward passes of training and evaluation through ``torch.compile(model)``; the
            Trainer's ``model`` (its state dict, checkpoints, hooks) stays the uncompiled module, whose parameters
            the compiled one shares.
        world: train on this rank's slice of every batch, with the model in ``DistributedDataParallel``, and
            evaluate in slices added over the ranks (see :mod:`regopt.lab.distributed`); ``None``: one process.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: Optimizer,
        data: Dataset,
        *,
        epochs: int,
        batch_size: int,
        shuffle: bool = True,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        scheduler: LRScheduler | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        batch_transforms: Sequence[BatchTransform] = (),
        penalties: Sequence[Penalty] = (),
        terms: Sequence[ObjectiveTerm] = (),
        grad_transforms: Sequence[ModelAction] = (),
        post_step: Sequence[ModelAction] = (),
        monitors: Sequence[Monitor] = (),
        eval_views: Sequence[EvalView] = (),
        seed: int = 0,
        checkpoint_path: str | Path | None = None,
        checkpoint_every: int | None = None,
        progress: bool = False,
        max_steps: int | None = None,
        prediction: Callable[[Any], Tensor] | None = None,
        scheduler_metric: str | None = None,
        batch_order: BatchOrder | None = None,
        start_step: int = 0,
        accumulate: int = 1,
        precision: Precision = "32",
        compile_model: bool = False,
        world: World | None = None,
    ) -> None:
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
        if not 1 <= accumulate <= batch_size:
            raise ValueError(f"accumulate must be between 1 and batch_size ({batch_size}), got {accumulate}")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        self.model, self.optimizer, self.data = model, optimizer, data
        self.epochs, self.batch_size = epochs, batch_size
        self.loss_fn = loss_fn or default_loss(data.task)
        self.scheduler, self.scheduler_interval = scheduler, scheduler_interval
        self.scheduler_metric = scheduler_metric
        self.batch_transforms = list(batch_transforms)
        self.penalties, self.terms, self.grad_transforms = list(penalties), list(terms), list(grad_transforms)
        self.post_step, self.monitors, self.eval_views = list(post_step), list(monitors), list(eval_views)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        self.max_steps = max_steps
        self.classification = data.task == "classification"
        self.prediction = prediction
        self.accumulate = accumulate
        self.precision = MixedPrecision(precision, data.x_train.device)
        self.compile_model = compile_model
        self.world = world
        self._check_closure(optimizer)
        batch_norm = self.batch_norm = has_batch_norm(model)
        if batch_norm and min(batch_size // accumulate, len(data.x_train)) < 2:
            split = f" in {accumulate} micro-batches" if accumulate > 1 else ""
            raise ModelError(
                f"model: BatchNorm normalizes each batch by its own statistics and cannot train on batches of one "
                f"example (batch_size {batch_size}{split}, {len(data.x_train)} training examples): "
                + ("each micro-batch must hold at least 2" if split else "both must be at least 2")
            )
        self.batch_order = batch_order or BatchOrder(
            len(data.x_train), batch_size, shuffle=shuffle, seed=seed, drop_single=batch_norm
        )
        self._use_forward_models(model)
        if world is not None:
            check_slices(world, self.batch_order.length(0), batch_size, accumulate, batch_norm and not synced(model))
        self.history: list[dict[str, float]] = []
        self.epoch = 0  # completed epochs
        self.batch = 0  # completed batches of the current epoch
        self.step = start_step  # completed optimizer steps
        self.elapsed = 0.0  # training seconds before this process
        self.stop_reason = ""

    def use_model(self, model: nn.Module, optimizer: Optimizer, eval_views: Sequence[EvalView] = ()) -> None:
        """Train ``model`` with ``optimizer`` from here on (greedy pretraining's next stage: a deeper network and a
        fresh optimizer). The position, history, batch order, RNGs and every hook carry on; hooks that hold the
        old model's parameters (rather than taking the model at each call) must be replaced by the caller, and
        a scheduler, bound to the old optimizer, is not allowed."""
        if self.scheduler is not None:
            raise ValueError("use_model: a scheduler is bound to the old optimizer; train stages without one")
        self._check_closure(optimizer)
        self.model, self.optimizer, self.eval_views = model, optimizer, list(eval_views)
        self._use_forward_models(model)
        self.model.train()

    def _use_forward_models(self, model: nn.Module) -> None:
        """What runs the forward passes: ``forward_model`` evaluates (``model``, compiled if asked) and
        ``train_forward`` trains (the same, or ``model`` in ``DistributedDataParallel`` under a world)."""
        self.forward_model = self._compiled(model)
        self.sharded = is_sharded(model)  # FSDP2: every forward is a collective; it averages the gradients itself
        self.parallel_model = data_parallel(model) if self.world is not None and not self.sharded else None
        for monitor in self.monitors if self.parallel_model is not None else []:
            if hasattr(monitor, "attach_data_parallel"):  # e.g. the gradient noise scale's communication hook
                monitor.attach_data_parallel(self.parallel_model)
        self.train_forward = self.forward_model if self.parallel_model is None else self._compiled(self.parallel_model)

    def _compiled(self, model: nn.Module) -> nn.Module:
        # torch.compile, not nn.Module.compile: in torch 2.13 the latter leaves the forward eager (dynamo traces
        # no frame), and the wrapper's "_orig_mod." keys never reach a checkpoint since ``model`` is saved
        return torch.compile(model) if self.compile_model else model  # type: ignore[return-value]

    # --------------------------------------------------------------------------------------------- loop
    def _batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """The current epoch's batches, skipping those already taken."""
        for index in self.batch_order.indices(self.epoch, self.batch, self.data.x_train.device):
            yield self.data.x_train[index], self.data.y_train[index]

    def epochs_for(self, steps: int) -> int:
        """The epochs that hold ``steps`` optimizer steps at the current epoch's size (the last may be partial)."""
        return -(-steps // self.steps_per_epoch())

    def steps_per_epoch(self) -> int:
        """Optimizer steps in the current epoch (the same every epoch unless the batch order is a curriculum)."""
        return self.batch_order.steps(self.epoch)

    def fit(self, max_epochs: int | None = None, max_steps: int | None = None) -> list[dict[str, float]]:
        """Train until ``max_epochs`` epochs or ``max_steps`` optimizer steps have been taken in all (defaults: the
        constructor's ``epochs`` and ``max_steps``), or a monitor stops; returns the metrics history (one row per
        epoch). The limits are totals, not increments: calling again with larger ones continues where the last
        call (or the checkpoint loaded) stopped, and a stop at the old limits is lifted; a monitor's stop is not.
        An epoch cut short by ``max_steps`` is evaluated and closed like any other, so a later call starts the
        next epoch: ``fit(max_steps=a)`` then ``fit(max_steps=b)`` is not one run to ``b`` (epoch limits are).
        """
        self.epochs = self.epochs if max_epochs is None else max_epochs
        self.max_steps = self.max_steps if max_steps is None else max_steps
        if self.stopped_at_limits():
            self.stop_reason = ""  # the limits decide afresh
        self.model.train()
        started = time.perf_counter()
        per_epoch = self.steps_per_epoch()
        with TrainingProgress(self.epochs * per_epoch, enabled=self.progress, epochs=self.epochs) as bar:
            bar.advance(self.epoch * per_epoch + self.batch)
            while not self.limit_reached() and not self.stop_reason:
                for x, y in self._batches():
                    loss = self.train_step(x, y)
                    self.batch += 1
                    self.step += 1
                    if self.scheduler is not None and self.scheduler_interval == "step":
                        self.scheduler.step()
                    for monitor in self.monitors:
                        monitor.after_step(self.step, loss)
                    bar.advance()
                    if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                        self.elapsed += time.perf_counter() - started
                        started = time.perf_counter()
                        self.save_checkpoint()
                    if self.max_steps is not None and self.step >= self.max_steps:
                        self.stop_reason = self.limit_reached()
                        break
                self.elapsed += time.perf_counter() - started
                row = self._end_epoch()
                started = time.perf_counter()  # ``seconds`` counts training, not the evaluation of an epoch
                bar.show(row)
        if not self.stop_reason:
            self.stop_reason = self.limit_reached()
        return self.history

    def stopped_at_limits(self) -> bool:
        """Whether training last stopped because it reached its epoch or step limit (not a monitor's stop)."""
        return _LIMIT_STOP.fullmatch(self.stop_reason) is not None

    def limit_reached(self) -> str:
        """Why the limits end training now (``""`` while they do not)."""
        if self.max_steps is not None and self.step >= self.max_steps:
            return f"reached {self.max_steps} steps"
        return f"completed {self.epochs} epochs" if self.epoch >= self.epochs else ""

    def _end_epoch(self) -> dict[str, float]:
        """Evaluate, record a metrics row, advance the schedule, ask the monitors, checkpoint."""
        lr = self.optimizer.param_groups[0]["lr"]
        train_loss, train_error = self.evaluate(self.data.x_train, self.data.y_train)
        val_loss, val_error = self.evaluate(self.data.x_val, self.data.y_val)
        self.epoch += 1
        self.batch = 0
        self.batch_order.next_epoch()
        row = {
            "epoch": self.epoch,
            "step": self.step,
            "lr": lr,
            "train_loss": train_loss,
            "train_error": train_error,
            "val_loss": val_loss,
            "val_error": val_error,
            "seconds": round(self.elapsed, 4),
        }
        self.history.append(row)
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            if self.scheduler_metric is None:
                self.scheduler.step()
            else:  # ReduceLROnPlateau judges the epoch's metric
                self.scheduler.step(row[self.scheduler_metric])  # type: ignore[arg-type]
        for monitor in self.monitors:
            stop, reason = monitor.after_epoch(self.epoch, row)
            if stop and not self.stop_reason:
                self.stop_reason = reason or f"stopped by {type(monitor).__name__}"
        if self.world is not None and self.world.any(bool(self.stop_reason)) and not self.stop_reason:
            self.stop_reason = "stopped on another rank"  # ranks see the same row, so this is a safety net
        self.save_checkpoint()
        return row

    def test(self) -> dict[str, float]:
        """Loss and error on the test split, through the evaluation views."""
        loss, error = self.evaluate(self.data.x_test, self.data.y_test)
        return {"test_loss": loss, "test_error": error}


__all__ = ["EvalView", "Trainer", "default_loss", "steps_per_epoch"]
