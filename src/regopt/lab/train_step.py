"""The optimizer step of the :class:`~regopt.lab.trainer.Trainer`, phase by phase (the last, the monitors'
``after_step``, runs in :meth:`~regopt.lab.trainer.Trainer.fit`)::

    batch transforms x, y = transform(x, y) for each                                 # augmentation, input noise
    for each micro-batch (x_i, y_i) of the k = ``accumulate`` parts of (x, y), share = n_i / n:
      forward        output = model(x_i)                                              # under autocast
      task loss      loss_i = loss_fn(output, y_i)
      objective      total = share * (loss_i + sum(term(batch_i))) + sum(penalty(model)) # penalties: first part only
      backward       total.backward()                  # gradients add up; S * total under fp16; or a monitor's
    unscale          grad /= S                                   # fp16 only; an overflow skips this step
    raw gradient     monitor.after_backward(step) for each                            # before clipping
    grad transforms  transform(model) for each                                       # e.g. clipping
    optimizer step   optimizer.step()
    post-step        action(model) for each                                          # projection, averaging
    monitors         monitor.after_step(step, loss) for each

An optimizer that needs a closure (:func:`regopt.optim.needs_closure`: SAM, torch's L-BFGS, the second-order
methods) gets ``optimizer.step(closure)`` in place of the phases from forward to the optimizer step, with a
closure that runs them on the same batch (already transformed, so the same augmentation and noise)::

    closure()        zero_grad; forward, objective and backward of each micro-batch; return the loss
                     first call only: monitor.after_backward(step) for each    # the gradient at theta
                     every call: transform(model) for each grad transform     # the gradient the optimizer uses

An optimizer that differentiates the closure itself (:func:`regopt.optim.differentiates_closure`: Newton,
HessianFree) gets a closure that runs no backward and returns the objective with its graph, and the output::

    closure()        forward and objective of the whole batch; return (total, output)
    after the step   monitor.after_backward(step) for each     # .grad: the gradient at theta, set by the optimizer

It needs the whole batch's graph in one piece, so it refuses ``accumulate > 1``, a compiled model (torch.compile
has no double backward), gradient transforms (clipping
cannot act on a step the optimizer computes from the loss itself), a world of ranks (``autograd.grad`` bypasses
DistributedDataParallel's all-reduce) and the ill-conditioning monitor without a probe batch (its backward
would consume the graph): :func:`check_closure`.

The returned loss is the first call's (at the parameters the step started from); a monitor's own backward runs
in the first call only. Clipping runs on every gradient the optimizer reads: for SAM that is the gradient at
theta (which only sets the direction of the ascent) and the one at theta + e (which the base optimizer steps
with); for a line search every trial point's. float16's loss scaling is refused: torch's GradScaler cannot
unscale or skip inside a closure.

Under a :class:`~regopt.lab.distributed.World` of N ranks each rank first takes its slice ``x_r`` of the batch,
and the shares become ``N n_i / n``: DistributedDataParallel averages the ranks' gradients in the last
micro-batch's backward, which makes the average the whole batch's gradient again; the returned loss is the
whole batch's (summed over the ranks), so monitors decide the same everywhere.

The shares make the accumulated gradient the gradient of the whole batch's mean loss (``loss_fn`` must be a mean
over the batch, as torch's losses are by default), so ``accumulate = k`` takes the step one batch would, to float
rounding, in k forward passes of n/k examples (BatchNorm and dropout see the smaller batches). With ``k = 1`` the
step is the plain one, and a monitor may run the backward itself (the ill-conditioning check reuses its graph).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from torch import Tensor, nn
from torch.optim import Optimizer

from regopt.lab.batch_order import micro_batches
from regopt.lab.distributed import World
from regopt.lab.objective import ObjectiveTerm, Penalty, TrainingBatch, objective
from regopt.lab.precision import MixedPrecision
from regopt.monitor import Monitor
from regopt.optim import differentiates_closure, needs_closure


class TrainerStep:
    """The Trainer's optimizer step, as a base class (the attributes are the Trainer's)."""

    model: nn.Module
    train_forward: nn.Module
    parallel_model: nn.Module | None
    world: World | None
    optimizer: Optimizer
    loss_fn: Callable[[Any, Tensor], Tensor]
    batch_transforms: list[Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]]
    penalties: list[Penalty]
    terms: list[ObjectiveTerm]
    grad_transforms: list[Callable[[nn.Module], Any]]
    post_step: list[Callable[[nn.Module], Any]]
    monitors: list[Monitor]
    accumulate: int
    batch_norm: bool
    precision: MixedPrecision
    step: int
    compile_model: bool

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        """One optimizer step on the batch ``(x, y)``; returns the detached task loss (of the whole batch)."""
        self.optimizer.zero_grad(set_to_none=True)
        n, weight = len(x), 1.0
        if self.world is not None:  # this rank's slice, weighted so that DDP's average is the batch's gradient
            x, y = self.world.shard(x), self.world.shard(y)
            weight = self.world.size * len(x) / n
        for transform in self.batch_transforms:  # batch transforms (training only)
            x, y = transform(x, y)
        step = self.step + 1
        if differentiates_closure(self.optimizer):
            return self._graph_closure_step(x, y, step)
        if needs_closure(self.optimizer):
            return self._closure_step(x, y, step, weight)
        loss = self._forward_backward(x, y, step, weight)
        if self.world is not None:  # the whole batch's mean loss, the same on every rank
            loss = self.world.sum(loss * (weight / self.world.size))
        finite = self.precision.unscale(self.optimizer)  # fp16: true gradients, and whether they overflowed
        if finite:
            for monitor in self.monitors:  # the raw gradient, before clipping can hide a cliff
                if hasattr(monitor, "after_backward"):
                    monitor.after_backward(step)
            for grad_transform in self.grad_transforms:  # gradient transforms
                grad_transform(self.model)
        self.precision.step(self.optimizer, finite)  # optimizer step (skipped on an fp16 overflow)
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)  # the overflowed gradient was not used
        for action in self.post_step:  # post-step actions
            action(self.model)
        return loss

    def _closure_step(self, x: Tensor, y: Tensor, step: int, weight: float) -> Tensor:
        """``optimizer.step(closure)`` on the batch ``(x, y)`` (transformed, this rank's slice), then the post-step
        actions; returns the loss of the closure's first call (see the module docstring)."""
        first: list[Tensor] = []

        def closure() -> Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._forward_backward(x, y, step, weight, monitors=not first)
            if self.world is not None:  # the whole batch's loss on every rank: line searches decide alike
                loss = self.world.sum(loss * (weight / self.world.size))
            if not first:
                first.append(loss)
                for monitor in self.monitors:  # the raw gradient at theta
                    if hasattr(monitor, "after_backward"):
                        monitor.after_backward(step)
            for grad_transform in self.grad_transforms:  # on every gradient the optimizer reads
                grad_transform(self.model)
            return loss

        self.optimizer.step(closure)  # type: ignore[arg-type]  # a tensor loss, as torch.optim.LBFGS takes
        if not first:
            name = type(self.optimizer).__name__
            raise RuntimeError(f"{name} needs a closure, but its step did not call the one it was given")
        for action in self.post_step:  # post-step actions
            action(self.model)
        return first[0]

    def _check_closure(self, optimizer: Optimizer) -> None:
        """Refuse an optimizer whose closure cannot go with this Trainer's settings (:func:`check_closure`)."""
        check_closure(
            optimizer,
            self.precision,
            accumulate=self.accumulate,
            grad_transforms=self.grad_transforms,
            world=self.world,
            monitors=self.monitors,
            compiled=self.compile_model,
        )

    def _graph_closure_step(self, x: Tensor, y: Tensor, step: int) -> Tensor:
        """``optimizer.step(closure)`` with a closure that returns ``(objective, output)`` with their graphs (the
        optimizer differentiates them), then the monitors' ``after_backward`` and the post-step actions."""
        first: list[Tensor] = []

        def closure() -> tuple[Tensor, Tensor]:
            self.optimizer.zero_grad(set_to_none=True)
            with self.precision.autocast():
                output = self.train_forward(x)  # forward
                loss = self.loss_fn(output, y)  # task loss
                total = objective(TrainingBatch(self.model, x, y, output, loss), self.penalties, self.terms)
            if not first:
                first.append(loss.detach())
            return total, output

        self.optimizer.step(closure)  # type: ignore[arg-type]  # a (loss, output) pair, as Newton takes
        if not first:
            name = type(self.optimizer).__name__
            raise RuntimeError(f"{name} needs a closure, but its step did not call the one it was given")
        for monitor in self.monitors:  # .grad: the gradient at theta, written by the optimizer
            if hasattr(monitor, "after_backward"):
                monitor.after_backward(step)
        for action in self.post_step:  # post-step actions
            action(self.model)
        return first[0]

    def _forward_backward(
        self, x: Tensor, y: Tensor, step: int, weight: float = 1.0, *, monitors: bool = True
    ) -> Tensor:
        """Forward, objective and backward of each micro-batch; ``p.grad`` ends as the whole batch's gradient
        (``weight``: this rank's factor, see the module docstring). Returns the mean loss over ``x``. A monitor
        may run a plain step's backward unless ``monitors`` is False (a closure's later calls)."""
        parts = micro_batches(x, y, self.accumulate, at_least=2 if self.batch_norm else 1)
        loss_sum: Tensor | None = None
        for i, (x_i, y_i) in enumerate(parts):
            share = len(x_i) / len(x)
            with self._sync_gradients(last=i == len(parts) - 1):
                with self.precision.autocast():
                    output = self.train_forward(x_i)  # forward
                    loss = self.loss_fn(output, y_i)  # task loss
                    batch = TrainingBatch(self.model, x_i, y_i, output, loss)
                    penalties = self.penalties if i == 0 else []  # Omega(theta) once per optimizer step
                    total = objective(batch, penalties, self.terms, share=share * weight)  # J~ = J + a*Omega + terms
                # a plain step's backward may be run by a monitor (to reuse the gradient's graph)
                plain = monitors and len(parts) == 1 and self.precision.scaler is None and self.world is None
                ran = plain and self._monitor_backward(step, total)
                if not ran:
                    self.precision.backward(total)  # backward
            part = loss.detach() if len(parts) == 1 else loss.detach() * share
            loss_sum = part if loss_sum is None else loss_sum + part
        assert loss_sum is not None
        return loss_sum

    def _sync_gradients(self, last: bool) -> AbstractContextManager[Any]:
        """DistributedDataParallel averages gradients across processes in the last micro-batch's backward only:
        the first k - 1 run inside its ``no_sync()`` (FSDP2: with gradient synchronization off)."""
        if self.sharded:
            return _fsdp_gradient_sync(self.model, last)
        no_sync = getattr(self.parallel_model if self.parallel_model is not None else self.model, "no_sync", None)
        return no_sync() if no_sync is not None and not last else contextlib.nullcontext()

    sharded: bool

    def _monitor_backward(self, step: int, total: Tensor) -> bool:
        return any(m.backward(step, total) for m in self.monitors if hasattr(m, "backward"))


@contextlib.contextmanager
def _fsdp_gradient_sync(model: nn.Module, sync: bool) -> Iterator[None]:
    model.set_requires_gradient_sync(sync)  # type: ignore[operator]
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)  # type: ignore[operator]


def check_closure(
    optimizer: Optimizer,
    precision: MixedPrecision,
    *,
    accumulate: int,
    grad_transforms: list[Any],
    world: World | None,
    monitors: list[Monitor],
    compiled: bool = False,
) -> None:
    """Refuse, in one line with the reason, what cannot go with an optimizer's closure (see the module
    docstring): float16's loss scaling with any closure (torch's GradScaler unscales the gradients and skips
    overflowed steps around ``optimizer.step()``, never inside a closure); and with a closure the optimizer
    differentiates, accumulation, gradient transforms, a world of ranks and a monitor's own backward."""
    if precision.scaler is not None and needs_closure(optimizer):
        raise ValueError(
            f'precision "fp16" cannot train with {type(optimizer).__name__}, which needs a closure (torch\'s '
            'GradScaler does not support closures); use precision "bf16" or "32"'
        )
    if not differentiates_closure(optimizer):
        return
    name = type(optimizer).__name__
    if accumulate > 1:
        raise ValueError(f"accumulate = {accumulate}: {name} differentiates the whole batch's loss at once; use 1")
    if compiled:
        raise ValueError(f"{name} differentiates the loss twice, which a torch.compile'd model does not support")
    if grad_transforms:
        raise ValueError(
            f"gradient transforms (clipping) cannot act on {name}'s step, which it computes from the loss itself"
        )
    if world is not None:
        raise ValueError(
            f"{name} cannot train under torchrun: its autograd.grad bypasses DistributedDataParallel's all-reduce"
        )
    for monitor in monitors:
        if hasattr(monitor, "backward") and not getattr(monitor, "uses_probe", True):
            raise ValueError(
                f"the ill-conditioning monitor needs a probe batch (probe_size) with {name}: its backward on the "
                "training step would consume the graph the optimizer differentiates"
            )


__all__ = ["TrainerStep", "check_closure"]
