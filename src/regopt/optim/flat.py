"""Flat buffers: the base of regopt's optimizers, so each update is one vector expression over all parameters.

Within a parameter group, the tensors that share a device and dtype (a *bucket*) are re-homed as views into one
flat buffer, as FSDP does with its flat parameters; their gradients and every per-element state tensor (``v``,
``r``, ``s``, ...) are views into flat buffers of the same layout. An algorithm's update is then written once,
as the book writes it, over whole vectors ``theta, g, r, s``, and runs either eagerly (small models: no
compilation, a few passes over memory) or compiled by ``torch.compile`` into one kernel at the memory-bandwidth
limit (large models), with step-dependent scalars (bias corrections, the learning rate) computed outside the
compiled function and passed as 0-dim tensors so that changing them never recompiles (eagerly, as Python floats).
Each update is written with in-place operations (``add_scaled_(v.mul_(alpha), -lr, g)`` for v <- alpha v - eps g)
so that the eager path makes few temporaries; compiled, the same code becomes one kernel.

When an update compiles, and what happens when compiling fails or a compiled kernel disagrees with the eager
update, is :mod:`regopt.optim.kernels`'s business: ``compile="auto"`` (the default) compiles only large updates,
and only once the run has shown itself long enough to repay the ~5 s compile; ``compile=True`` compiles from the
first step, ``compile=False`` never; ``REGOPT_COMPILE=0`` in the environment turns compiling off whatever
``compile`` says, and ``REGOPT_COMPILE=1`` makes ``"auto"`` compile from the first step.

Contracts kept from ``torch.optim``:

- ``optimizer.state[p]`` holds per-parameter state (views of the flat buffers) under the algorithm's names,
  created at the first step, so ``state_dict()``/``load_state_dict()`` round-trip as torch's do.
- A parameter whose ``.grad`` is ``None`` is skipped (its slice of every buffer is left alone).
- Gradients produced as fresh tensors (after ``zero_grad(set_to_none=True)``) are copied into the flat gradient
  buffer and ``p.grad`` is re-pointed at its view, except large ones (:data:`DIRECT_MIN`), which are used in
  place by an update call of their own; after ``zero_grad(set_to_none=False)`` the views are zeroed
  in place and backward accumulates straight into them, which saves that copy.
- Moving or replacing a parameter's storage (``model.to(...)``, ``p.data = ...``) is detected and the buffers
  are rebuilt at the next step.
- DTensor parameters (FSDP2 ``fully_shard``, tensor parallel) are never re-homed: their bucket holds a copy of
  their local shards, updated in place of them and written back at each step (:mod:`regopt.optim.dtensor`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor
from torch.optim import Optimizer

from regopt.optim import kernels
from regopt.optim.checks import check
from regopt.optim.dtensor import check_placements, is_dtensor, like, local

DIRECT_MIN = 1 << 18
"""A fresh gradient tensor (made by backward after ``zero_grad(set_to_none=True)``) with at least this many
elements is used where it lies, its parameter's slice updated by a call of its own, instead of being copied into
the flat gradient buffer: the copy moves 8 bytes per element, which takes far longer than one more kernel call
(BENCHMARKS.md, "Measured by hand: the flat buffers' costs"). Smaller fresh gradients are copied, so a model of
many small tensors still updates in one call."""

CompileMode = Literal["auto", True, False] | None
"""``compile=`` of every regopt optimizer: ``"auto"`` (``None`` is the same), ``True`` or ``False``; see
:meth:`FlatOptimizer.kernel`."""

Scalar = float | Tensor
"""A step-dependent scalar of an update: a Python float when the update runs eagerly, a 0-dim tensor when it runs
compiled (so that a new value is an input of the kernel, not a constant that forces a recompile)."""


def add_scaled_(target: Tensor, scale: Scalar, x: Tensor) -> Tensor:
    """``target += scale * x`` in place: one fused pass with no temporary when ``scale`` is a Python number
    (eager), ``target.add_(scale * x)`` when it is a 0-dim tensor (compiled, where it fuses anyway)."""
    return target.add_(x, alpha=scale) if isinstance(scale, (int, float)) else target.add_(scale * x)


def add_scaled_ratio_(target: Tensor, scale: Scalar, num: Tensor, den: Tensor) -> Tensor:
    """``target += scale * num / den`` in place, like :func:`add_scaled_` (eagerly one ``addcdiv_``)."""
    if isinstance(scale, (int, float)):
        return target.addcdiv_(num, den, value=scale)
    return target.add_(scale * num / den)


@dataclass
class Bucket:
    """The parameters of one group that share a device and dtype, as views into flat buffers."""

    params: list[Tensor]
    theta: Tensor
    grad: Tensor
    state: dict[str, Tensor] = field(default_factory=dict)
    step: Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    param_ptrs: list[int] = field(default_factory=list)
    grad_views: list[Tensor] = field(default_factory=list)
    grad_ptrs: list[int] = field(default_factory=list)
    slices: list[tuple[int, int]] = field(default_factory=list)
    sharded: bool = False
    theta_views: list[Tensor] = field(default_factory=list)

    def is_current(self, params: list[Tensor]) -> bool:
        """True while the group still holds exactly these parameters, each still viewing the flat buffer."""
        return len(params) == len(self.params) and all(
            p is q and local(p).data_ptr() == ptr
            for p, q, ptr in zip(params, self.params, self.param_ptrs, strict=True)
        )

    def pull(self) -> None:
        """Copy DTensor parameters' local shards into ``theta`` (no-op for plain parameters, which view it)."""
        if self.sharded:
            torch._foreach_copy_(self.theta_views, [local(p) for p in self.params])

    def push(self) -> None:
        """Copy ``theta`` back into DTensor parameters' local shards (no-op for plain parameters)."""
        if self.sharded:
            torch._foreach_copy_([local(p) for p in self.params], self.theta_views)


class FlatOptimizer(Optimizer):
    """Base class: keeps buckets flat and calls :meth:`update` once per bucket (or per run of parameters that
    have gradients) with flat ``theta``, ``g`` and state views.

    Subclasses set :attr:`state_names` and implement :meth:`update`; they may override :meth:`init_state`.
    """

    state_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any], *, compile: CompileMode = "auto") -> None:
        check("compile", compile, compile in ("auto", None, True, False), "must be 'auto', True or False")
        self.compile: CompileMode = "auto" if compile is None else compile
        super().__init__(params, defaults)
        self._buckets: list[list[Bucket]] | None = None

    # ----------------------------------------------------------------------------------- subclass hooks
    def init_state(self, name: str, flat: Tensor, group: dict[str, Any]) -> None:
        """Initialize a fresh flat state buffer (zeros by default)."""
        flat.zero_()

    def update(self, group: dict[str, Any], theta: Tensor, g: Tensor, state: dict[str, Tensor], t: int) -> None:
        """Apply one step of the algorithm in place to ``theta`` and ``state`` (``t`` counts from 1)."""
        raise NotImplementedError

    def kernel(self, fn: Callable[..., None], theta: Tensor, t: int | None = None) -> Callable[..., None]:
        """The update ``fn`` as it runs at step ``t`` (from 1) on ``theta``: compiled, or eager (slice by slice
        beyond :data:`regopt.optim.kernels.EAGER_CHUNK` elements).

        ``compile="auto"`` runs eagerly for the first :func:`~regopt.optim.kernels.eager_steps` steps of an update
        of at least :data:`~regopt.optim.kernels.COMPILE_THRESHOLD` elements and compiled after them (never below
        the threshold; ``t=None``, a step count the caller does not know, compiles at once);
        ``REGOPT_COMPILE=1`` in the environment makes ``"auto"`` always compile. ``True`` compiles from the
        first step, ``False`` never, and ``REGOPT_COMPILE=0`` never compiles whatever ``compile`` says. If
        compiling fails or the kernel disagrees with the eager update, the update runs eagerly with a warning
        (see :func:`regopt.optim.kernels.compiled`)."""
        use = self.compile
        env = os.environ.get("REGOPT_COMPILE")
        if env == "0":
            use = False
        elif use == "auto":
            n = theta.numel()
            use = env == "1" or (n >= kernels.COMPILE_THRESHOLD and (t is None or t > kernels.eager_steps(n)))
        if use and kernels.compile_failure() is None:
            return kernels.compiled(fn)
        return kernels.eager(fn, theta.numel())

    # ----------------------------------------------------------------------------------------- layout
    def _build_bucket(self, group: dict[str, Any], params: list[Tensor]) -> Bucket:
        first = params[0]
        shards = [local(p.detach()) for p in params]  # the tensors themselves, or DTensors' local shards
        total = sum(x.numel() for x in shards)
        theta = torch.empty(total, dtype=first.dtype, device=first.device)
        grad = torch.zeros(total, dtype=first.dtype, device=first.device)
        bucket = Bucket(params=params, theta=theta, grad=grad, sharded=is_dtensor(first))
        offset = 0
        for p, x in zip(params, shards, strict=True):
            n = x.numel()
            bucket.slices.append((offset, offset + n))
            view = theta[offset : offset + n].view_as(x)
            view.copy_(x)
            bucket.theta_views.append(view)
            if not bucket.sharded:
                p.data = view
            bucket.param_ptrs.append(local(p).data_ptr())
            grad_view = grad[offset : offset + n].view_as(x)
            if p.grad is not None:
                grad_view.copy_(local(p.grad))
                if not bucket.sharded:
                    p.grad = grad_view
            bucket.grad_views.append(grad_view)
            bucket.grad_ptrs.append(grad_view.data_ptr())
            offset += n
        states = [self.state[p] for p in params]
        started = [s for s in states if s]
        if started and len(started) != len(states):
            raise RuntimeError("optimizer state exists for some parameters of a bucket but not others")
        if started:
            step = started[0].get("step")
            bucket.step.fill_(float(step) if step is not None else 0.0)
        for name in self.state_names:
            flat = torch.empty(total, dtype=first.dtype, device=first.device)
            if started:
                for (start, end), s in zip(bucket.slices, states, strict=True):
                    flat[start:end].copy_(local(s[name]).reshape(-1))
            else:
                self.init_state(name, flat, group)
            bucket.state[name] = flat
        for (start, end), p, x, s in zip(bucket.slices, params, shards, states, strict=True):
            for name, flat in bucket.state.items():
                s[name] = like(flat[start:end].view_as(x), p)
            s["step"] = bucket.step
        return bucket

    def _layout(self) -> list[list[Bucket]]:
        """The buckets of every group, rebuilt where parameters moved or the state was reloaded."""
        if self._buckets is None or len(self._buckets) != len(self.param_groups):
            self._buckets = [[] for _ in self.param_groups]
        for index, group in enumerate(self.param_groups):
            keyed: dict[tuple[torch.device, torch.dtype, bool], list[Tensor]] = {}
            for p in group["params"]:
                keyed.setdefault((p.device, p.dtype, is_dtensor(p)), []).append(p)
            current = self._buckets[index]
            if len(current) == len(keyed) and all(
                b.is_current(ps) for b, ps in zip(current, keyed.values(), strict=True)
            ):
                continue
            self._buckets[index] = [self._build_bucket(group, ps) for ps in keyed.values()]
        return self._buckets

    def _gather_grads(self, bucket: Bucket) -> list[tuple[int, int, Tensor | None]]:
        """Bring the gradients into the flat buffer, except large fresh ones (see :data:`DIRECT_MIN`); return the
        runs ``(start, end, g)`` to update: ``g`` is ``None`` for a run of the flat buffer, else the fresh
        gradient of the one parameter at ``start:end``. Parameters without a gradient are left out."""
        missing: set[int] = set()
        direct: dict[int, Tensor] = {}
        sources: list[Tensor] = []
        targets: list[Tensor] = []
        for i, p in enumerate(bucket.params):
            g = p.grad
            if g is None:
                missing.add(i)
            elif bucket.sharded:  # a DTensor's gradient: copy its local shard in, leave p.grad as it is
                sources.append(local(g))
                targets.append(bucket.grad_views[i])
            elif g.data_ptr() != bucket.grad_ptrs[i]:
                if g.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                if g.numel() >= DIRECT_MIN and g.is_contiguous() and g.dtype == p.dtype and g.device == p.device:
                    direct[i] = g.view(-1)
                    continue
                sources.append(g)
                targets.append(bucket.grad_views[i])
                p.grad = bucket.grad_views[i]
        if sources:
            torch._foreach_copy_(targets, sources)
        if not missing and not direct:
            return [(0, bucket.theta.numel(), None)]
        runs: list[tuple[int, int, Tensor | None]] = []
        for i, (start, end) in enumerate(bucket.slices):
            if i in missing:
                continue
            if i in direct:
                runs.append((start, end, direct[i]))
            elif runs and runs[-1][2] is None and runs[-1][1] == start:
                runs[-1] = (runs[-1][0], end, None)
            else:
                runs.append((start, end, None))
        return runs

    # ------------------------------------------------------------------------------------- optimizer API
    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Perform one optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group, buckets in zip(self.param_groups, self._layout(), strict=True):
            for bucket in buckets:
                if bucket.sharded:
                    check_placements(self, bucket.params)
                runs = self._gather_grads(bucket)
                if not runs:
                    continue
                bucket.step += 1
                t = int(bucket.step.item())
                bucket.pull()
                for start, end, fresh in runs:
                    g = bucket.grad[start:end] if fresh is None else fresh
                    state = {name: flat[start:end] for name, flat in bucket.state.items()}
                    self.update(group, bucket.theta[start:end], g, state, t)
                bucket.push()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """As torch: ``set_to_none=True`` drops gradients; ``False`` zeroes them in place (one flat fill per
        bucket when gradients are the flat views, the fastest path)."""
        if set_to_none or self._buckets is None:
            super().zero_grad(set_to_none=set_to_none)
            return
        for buckets in self._buckets:
            for bucket in buckets:
                if all(p.grad is v for p, v in zip(bucket.params, bucket.grad_views, strict=True)):
                    bucket.grad.zero_()
                else:
                    for p in bucket.params:
                        if p.grad is not None:
                            p.grad.zero_()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._buckets = None  # state tensors are no longer views: rebuild the flat buffers at the next step

    def flat_buckets(self) -> list[list[Bucket]]:
        """The current buckets of every group (builds them if needed); for views such as Nesterov's theta."""
        return self._layout()
