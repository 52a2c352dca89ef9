"""The Trainer: one explicit training loop with named phases that techniques plug into.

One optimizer step runs these phases, in order::

    batch transforms x, y = transform(x, y) for each                                 # augmentation, input noise
    forward          output = model(x)
    task loss        loss = loss_fn(output, y)
    penalties        total = loss + sum(penalty(model) for penalty in penalties)      # alpha * Omega(theta)
    backward         total.backward()                                                 # or a monitor's backward
    raw gradient     monitor.after_backward(step) for each                            # before clipping
    grad transforms  transform(model) for each                                       # e.g. clipping
    optimizer step   optimizer.step()
    post-step        action(model) for each                                          # projection, averaging
    monitors         monitor.after_step(step, loss) for each

After each epoch the model is evaluated (in ``eval()`` mode, without gradients, inside every *evaluation view*,
e.g. Polyak-averaged weights) on the training and validation splits, a metrics row is recorded, the scheduler
advances (per epoch or per step), monitors decide whether to stop, and a checkpoint is written.

Batches are drawn from tensors already on the device by a seeded permutation; the position in training (epoch,
batch within it, the shuffling generator, every RNG) is part of :meth:`Trainer.state_dict`, so a resumed run
ends with exactly the metrics and weights of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from regopt.lab.checkpoint import save_checkpoint
from regopt.lab.data import Dataset
from regopt.lab.models.base import ModelError
from regopt.lab.progress import TrainingProgress
from regopt.monitor import Monitor

Penalty = Callable[[nn.Module], Tensor]
BatchTransform = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
ModelAction = Callable[[nn.Module], Any]
EvalView = Callable[[], AbstractContextManager[Any]]

_EVAL_BATCH = 4096


def default_loss(task: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Cross-entropy for classification, mean squared error for regression."""
    return F.cross_entropy if task == "classification" else F.mse_loss


def steps_per_epoch(examples: int, batch_size: int, model: nn.Module) -> int:
    """Optimizer steps in one epoch of ``examples`` in batches of ``batch_size``: the last batch may be smaller,
    and is dropped when it holds a single example and ``model`` has BatchNorm (which cannot normalize one)."""
    single = examples % batch_size == 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return -(-examples // batch_size) - int(single)


class Trainer:
    """Train ``model`` on ``data`` with ``optimizer``; see the module docstring for the phases.

    Args:
        model: any ``nn.Module`` mapping a batch of ``data`` inputs to outputs.
        optimizer: any ``torch.optim.Optimizer`` over the model's parameters.
        data: a :class:`regopt.lab.data.Dataset` whose tensors are already on the training device.
        epochs: number of passes over the training split.
        batch_size: examples per optimizer step (the last batch of an epoch may be smaller; when the model has
            BatchNorm, a last batch of a single example is dropped, as torch's ``drop_last`` would, since
            BatchNorm cannot normalize one example by its own statistics: the same batch every epoch and run,
            so resumed runs still match).
        shuffle: a fresh seeded order of the training examples every epoch; ``False`` takes consecutive slices
            of the data's own order every epoch (the MNIST-1D paper's loop).
        loss_fn: task loss ``(output, target) -> scalar``; default from ``data.task``.
        scheduler: a torch LR scheduler, stepped once per ``scheduler_interval``.
        batch_transforms: callables ``(x, y) -> (x, y)`` applied to each training batch (augmentation, noise).
        penalties: callables ``model -> scalar`` added to the task loss before backward.
        grad_transforms: callables ``model -> None`` run between backward and the optimizer step.
        post_step: callables ``model -> None`` run after each optimizer step.
        monitors: :class:`regopt.monitor.Monitor` objects, told of every step and epoch; any may stop training.
        eval_views: callables returning context managers entered around every evaluation.
        seed: seeds the batch order (a generator of its own; torch's global RNG is the caller's to seed).
        checkpoint_path: where to write a checkpoint after every epoch (atomically), if given.
        checkpoint_every: also checkpoint every this many optimizer steps.
        progress: show a rich progress bar with live metrics.
        max_steps: stop after this many optimizer steps (the epoch is then cut short and evaluated).
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
        grad_transforms: Sequence[ModelAction] = (),
        post_step: Sequence[ModelAction] = (),
        monitors: Sequence[Monitor] = (),
        eval_views: Sequence[EvalView] = (),
        seed: int = 0,
        checkpoint_path: str | Path | None = None,
        checkpoint_every: int | None = None,
        progress: bool = False,
        max_steps: int | None = None,
    ) -> None:
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        self.model, self.optimizer, self.data = model, optimizer, data
        self.epochs, self.batch_size = epochs, batch_size
        self.loss_fn = loss_fn or default_loss(data.task)
        self.scheduler, self.scheduler_interval = scheduler, scheduler_interval
        self.batch_transforms = list(batch_transforms)
        self.penalties, self.grad_transforms = list(penalties), list(grad_transforms)
        self.post_step, self.monitors, self.eval_views = list(post_step), list(monitors), list(eval_views)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        self.max_steps = max_steps
        self.classification = data.task == "classification"
        self.batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        if self.batch_norm and min(batch_size, len(data.x_train)) < 2:
            raise ModelError(
                f"model: BatchNorm normalizes each batch by its own statistics and cannot train on batches of one "
                f"example (batch_size {batch_size}, {len(data.x_train)} training examples): both must be at least 2"
            )
        self.reshuffle = shuffle
        self.shuffle = torch.Generator().manual_seed(seed)
        self.history: list[dict[str, float]] = []
        self.epoch = 0  # completed epochs
        self.batch = 0  # completed batches of the current epoch
        self.step = 0  # completed optimizer steps
        self.elapsed = 0.0  # training seconds before this process
        self.stop_reason = ""
        self._epoch_shuffle_state = self.shuffle.get_state()

    # ------------------------------------------------------------------------------------------- phases
    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        """One optimizer step on the batch ``(x, y)``; returns the detached task loss."""
        self.optimizer.zero_grad(set_to_none=True)
        for transform in self.batch_transforms:  # batch transforms (training only)
            x, y = transform(x, y)
        output = self.model(x)  # forward
        loss = self.loss_fn(output, y)  # task loss
        total = loss
        for penalty in self.penalties:  # penalties: J~ = J + alpha * Omega
            total = total + penalty(self.model)
        step = self.step + 1  # a monitor may run the backward itself (to reuse the gradient's graph)
        if not any(m.backward(step, total) for m in self.monitors if hasattr(m, "backward")):
            total.backward()  # backward
        for monitor in self.monitors:  # the raw gradient, before clipping can hide a cliff
            if hasattr(monitor, "after_backward"):
                monitor.after_backward(step)
        for grad_transform in self.grad_transforms:  # gradient transforms
            grad_transform(self.model)
        self.optimizer.step()  # optimizer step
        for action in self.post_step:  # post-step actions
            action(self.model)
        return loss.detach()

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> tuple[float, float]:
        """Mean task loss and error (error rate, or MSE for regression) of the evaluation view on ``(x, y)``."""
        was_training = self.model.training
        self.model.eval()
        loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
        wrong = torch.zeros((), device=x.device, dtype=torch.float64)
        with self.evaluation_view():
            for start in range(0, len(x), _EVAL_BATCH):
                xb, yb = x[start : start + _EVAL_BATCH], y[start : start + _EVAL_BATCH]
                output = self.model(xb)
                loss_sum += self.loss_fn(output, yb) * len(xb)
                if self.classification:
                    wrong += (output.argmax(dim=1) != yb).sum()
        self.model.train(was_training)
        n = max(len(x), 1)
        loss = loss_sum.item() / n
        return loss, (wrong.item() / n if self.classification else loss)

    @contextlib.contextmanager
    def evaluation_view(self) -> Iterator[None]:
        """Enter every evaluation view (Polyak averages, Nesterov's theta, ...) for the duration."""
        with contextlib.ExitStack() as stack:
            for view in self.eval_views:
                stack.enter_context(view())
            yield

    # --------------------------------------------------------------------------------------------- loop
    def _batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """The current epoch's batches from its seeded permutation (or in the data's order), skipping those done."""
        n = len(self.data.x_train)
        if self.reshuffle:
            self.shuffle.set_state(self._epoch_shuffle_state)
            order = torch.randperm(n, generator=self.shuffle).to(self.data.x_train.device)
        else:
            order = torch.arange(n, device=self.data.x_train.device)
        end = n - 1 if self._drops_last_batch() else n
        for start in range(self.batch * self.batch_size, end, self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.data.x_train[index], self.data.y_train[index]

    def _drops_last_batch(self) -> bool:
        """Whether the epoch's last batch is a single example that BatchNorm could not normalize (it is dropped)."""
        return self.batch_norm and len(self.data.x_train) % self.batch_size == 1

    def steps_per_epoch(self) -> int:
        return steps_per_epoch(len(self.data.x_train), self.batch_size, self.model)

    def fit(self) -> list[dict[str, float]]:
        """Train until ``epochs`` are done or a monitor stops; returns the metrics history (one row per epoch)."""
        self.model.train()
        started = time.perf_counter()
        with TrainingProgress(self.epochs * self.steps_per_epoch(), enabled=self.progress) as bar:
            bar.advance(self.epoch * self.steps_per_epoch() + self.batch)
            while self.epoch < self.epochs and not self.stop_reason:
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
                        self.stop_reason = f"reached {self.max_steps} steps"
                        break
                self.elapsed += time.perf_counter() - started
                started = time.perf_counter()
                row = self._end_epoch()
                bar.show(row)
        if not self.stop_reason:
            self.stop_reason = f"completed {self.epochs} epochs"
        return self.history

    def _end_epoch(self) -> dict[str, float]:
        """Evaluate, record a metrics row, advance the schedule, ask the monitors, checkpoint."""
        lr = self.optimizer.param_groups[0]["lr"]
        train_loss, train_error = self.evaluate(self.data.x_train, self.data.y_train)
        val_loss, val_error = self.evaluate(self.data.x_val, self.data.y_val)
        self.epoch += 1
        self.batch = 0
        self._epoch_shuffle_state = self.shuffle.get_state()
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
            self.scheduler.step()
        for monitor in self.monitors:
            stop, reason = monitor.after_epoch(self.epoch, row)
            if stop and not self.stop_reason:
                self.stop_reason = reason or f"stopped by {type(monitor).__name__}"
        self.save_checkpoint()
        return row

    def test(self) -> dict[str, float]:
        """Loss and error on the test split, through the evaluation views."""
        loss, error = self.evaluate(self.data.x_test, self.data.y_test)
        return {"test_loss": loss, "test_error": error}

    # ---------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly: weights, optimizer, schedule, monitors,
        position (epoch, batch, step), the shuffling generator and every RNG, and the history so far."""
        state: dict[str, Any] = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "monitors": [m.state_dict() for m in self.stateful()],
            "position": {"epoch": self.epoch, "batch": self.batch, "step": self.step},
            "elapsed": self.elapsed,
            "stop_reason": self.stop_reason,
            "history": [dict(row) for row in self.history],
            "rng": {
                "epoch_shuffle": self._epoch_shuffle_state,
                "torch": torch.get_rng_state(),
                "numpy": _numpy_state_to_tensors(cast(tuple[Any, ...], np.random.get_state())),
                "python": repr(random.getstate()),
            },
        }
        if torch.cuda.is_available():
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        stateful = self.stateful()
        if len(state["monitors"]) != len(stateful):
            raise ValueError(f"checkpoint has {len(state['monitors'])} stateful hooks, trainer has {len(stateful)}")
        for hook, hook_state in zip(stateful, state["monitors"], strict=True):
            hook.load_state_dict(hook_state)
        position = state["position"]
        self.epoch, self.batch, self.step = position["epoch"], position["batch"], position["step"]
        self.elapsed, self.stop_reason = state["elapsed"], state["stop_reason"]
        self.history = [dict(row) for row in state["history"]]
        rng = state["rng"]
        self._epoch_shuffle_state = rng["epoch_shuffle"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(_numpy_state_from_tensors(rng["numpy"]))
        random.setstate(_literal_eval(rng["python"]))
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def stateful(self) -> list[Any]:
        """Monitors, and every penalty, transform or post-step action with ``state_dict``/``load_state_dict``
        (e.g. Polyak averages), in a fixed order: all of their state goes into checkpoints."""
        hooks = [*self.batch_transforms, *self.penalties, *self.grad_transforms, *self.post_step]
        extra = [h for h in hooks if hasattr(h, "state_dict") and hasattr(h, "load_state_dict")]
        return [*self.monitors, *extra]

    def save_checkpoint(self) -> None:
        if self.checkpoint_path is not None:
            save_checkpoint(self.state_dict(), self.checkpoint_path)


def _numpy_state_to_tensors(state: tuple[Any, ...]) -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = state
    return {
        "kind": kind,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }


def _numpy_state_from_tensors(state: dict[str, Any]) -> tuple[Any, ...]:
    keys = state["keys"].numpy().astype(np.uint32)
    return (state["kind"], keys, state["pos"], state["has_gauss"], state["gauss"])


def _literal_eval(text: str) -> Any:
    import ast

    return ast.literal_eval(text)
