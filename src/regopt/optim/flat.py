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

Compiling is not free: the first compiled step of a process takes about 5 s (4.8 s in the report of issue 14,
7.5 s cold in BENCHMARKS.md; torch's Adam takes 0.04 s), and every later variant (another algorithm or flag)
about 0.8 s. So ``compile="auto"`` (the default of every optimizer) never compiles an update of fewer than
:data:`COMPILE_THRESHOLD` elements, and a larger one only after ``ceil(COMPILE_PAYOFF / n)`` eager steps
(:data:`COMPILE_PAYOFF`), when the run has shown itself long enough to repay the compile; the switch depends only
on the size and the step count kept in the optimizer state, so a resumed run switches where the uninterrupted one
did. ``compile=True`` compiles from the first step, ``compile=False`` never; ``REGOPT_COMPILE=0`` in the
environment turns compiling off whatever ``compile`` says, and ``REGOPT_COMPILE=1`` makes ``"auto"`` compile from
the first step. If compiling fails (no C++ compiler for inductor:
``InvalidCxxCompiler``, or any other error at the first compiled call), the update runs eagerly with the same
result and one ``RuntimeWarning`` per process that names the cause.

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
"""

from __future__ import annotations

import math
import os
import types
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor
from torch.optim import Optimizer

COMPILE_THRESHOLD = 1 << 20
"""With ``compile="auto"``, only updates of at least this many elements are ever compiled; smaller ones run
eagerly, where compiling could not repay its cost."""

COMPILE_PAYOFF = 10**10
"""With ``compile="auto"``, an update of n >= COMPILE_THRESHOLD elements runs eagerly for its first
``ceil(COMPILE_PAYOFF / n)`` steps and compiled from then on (see :func:`eager_steps`): 9,537 steps at 1M elements,
2,385 at 4M, 597 at 16M, 100 at 100M. Compiling costs C once (the first compiled step of a process: 4.8 s in the
report of issue 14, 7.5 s cold in BENCHMARKS.md "Optimizer step speed"; torch's Adam takes 0.04 s) and then saves
s seconds per element and step, so a run of n elements repays it after C / (s n) steps, and running eagerly that
long before compiling costs at most twice the better choice in hindsight, however long the run. With Adam on
1M float32 elements s = 0.56 ns (eager 0.82 ms, compiled kernel 0.27 ms a step, quiet machine, BENCHMARKS.md),
giving C / s = 0.9-1.3e10 element-steps. ``.venv/bin/python benchmarks/compile_payoff.py`` (1M and 4M elements,
1 thread, on a machine at load 7-9, C as CPU time: 17-18 s there) measured C / s at 1M elements = 1.7e10 (Adam),
0.5e10 (delta-bar-delta) and 7e10 (SGD momentum, whose saving is smallest), a median of 1.1e10 over all six rows.
A short run of a large model therefore never pays for a compile; a long one compiles after a small fraction of
its steps."""

EAGER_CHUNK = 1 << 17
"""The eager path runs the update over slices of this many elements. The in-place update still makes a few
temporaries the size of its input (Adam's ``g * g``, ``s_hat``, the root); glibc serves large blocks with fresh
mmap'd pages that fault on first touch and go back to the system on free, so whole-bucket temporaries made a
500K-element Adam step ~40x slower than torch's foreach path (17.5 ms vs 0.46 ms here). In a quiet process
(``benchmarks/optimizer_probes.py``) Adam takes 0.11 / 0.43 / 0.82 ms at 100K / 500K / 1M elements in 128K
slices, 0.15 / 0.59 / 1.19 ms in 64K slices and 0.11 / 0.34 / 0.72 ms in 256K slices (torch's foreach: 0.11 /
0.26 / 0.47 ms; fused: 0.04 / 0.10 / 0.19 ms). Larger slices win there but make larger temporaries, which do
page-fault in a busy process (inside a bagging fit one 488 KB temporary cost 40 us a step;
``benchmarks/ensemble.py --profile``), so 128K (512 KB temporaries) is the compromise. Buckets past
COMPILE_THRESHOLD run compiled."""

DIRECT_MIN = 1 << 18
"""A fresh gradient tensor (made by backward after ``zero_grad(set_to_none=True)``) with at least this many
elements is used where it lies, its parameter's slice updated by a call of its own, instead of being copied into
the flat gradient buffer: the copy moves 8 bytes per element (2 ms for 16M float32 here), far more than the
~30 us of one more kernel call. Smaller fresh gradients are copied, so a model of many small tensors still
updates in one call."""

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

_COMPILED: dict[Callable[..., None], Callable[..., None]] = {}

_COMPILE_FAILURE: str | None = None
"""Why compiling an update failed in this process (``"InvalidCxxCompiler: ..."``), or ``None``; once set, every
update runs eagerly and no further compile is tried."""


def compile_failure() -> str | None:
    """Why compiling an update failed in this process, or ``None`` if it has not (or was never tried)."""
    return _COMPILE_FAILURE


def _compile_failed(error: Exception) -> None:
    """Record the first failure to compile, and warn once per process."""
    global _COMPILE_FAILURE
    if _COMPILE_FAILURE is not None:
        return
    lines = str(error).strip().splitlines()
    _COMPILE_FAILURE = f"{type(error).__name__}: {lines[0] if lines else ''}".strip().rstrip(":")
    warnings.warn(
        f"regopt: compiling the optimizer update failed ({_COMPILE_FAILURE}); updating eagerly instead (the same "
        "result, slower on large models). Pass compile=False or set REGOPT_COMPILE=0 to skip compiling and "
        "silence this warning.",
        RuntimeWarning,
        stacklevel=2,
    )


def eager(fn: Callable[..., None], numel: int) -> Callable[..., None]:
    """``fn`` as the eager path runs it: slice by slice (:func:`chunked`) beyond :data:`EAGER_CHUNK` elements."""
    return chunked(fn) if numel > EAGER_CHUNK else fn


def compiled(fn: Callable[..., None]) -> Callable[..., None]:
    """``fn`` compiled once per process and per variant: dtype, device and its boolean flags.

    Each variant compiles a copy of ``fn`` with its own code object, so the variants do not share dynamo's
    recompile budget (8 per code object): with ``fullgraph=True`` a ninth variant of one function (RMSProp has
    12 per dtype) would otherwise fail inside ``step()``. Dynamic shapes let every bucket size share a kernel.
    Numeric keyword arguments are passed as 0-dim tensors (float64 for float64 buffers, else float32).

    If the first call of a variant fails (compiling happens there: no C++ compiler for inductor, an
    unsupported backend, ...), the update is applied eagerly instead, exactly as ``compile=False`` would, a
    :class:`RuntimeWarning` names the cause once per process, and every later update of the process runs
    eagerly. Compiling fails before the kernel runs, so no tensor has been touched when the eager path takes over.
    """
    if fn not in _COMPILED:
        kernels: dict[tuple[Any, ...], Callable[..., None]] = {}

        def dispatch(*flat: Tensor, **scalars: Any) -> None:
            if _COMPILE_FAILURE is not None:
                eager(fn, flat[0].numel())(*flat, **scalars)
                return
            flags = tuple(sorted((k, v) for k, v in scalars.items() if isinstance(v, bool)))
            key = (flat[0].dtype, flat[0].device.type, flags)
            first = key not in kernels
            if first:
                copy = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__)
                copy.__kwdefaults__ = fn.__kwdefaults__
                kernels[key] = torch.compile(copy, dynamic=True, fullgraph=True)
            dtype = torch.float64 if flat[0].dtype == torch.float64 else torch.float32
            tensors = {k: torch.tensor(v, dtype=dtype) for k, v in scalars.items() if not isinstance(v, (bool, Tensor))}
            if not first:
                kernels[key](*flat, **{**scalars, **tensors})
                return
            try:
                kernels[key](*flat, **{**scalars, **tensors})
            except Exception as error:  # any failure to compile falls back to the same eager math
                del kernels[key]
                _compile_failed(error)
                eager(fn, flat[0].numel())(*flat, **scalars)

        _COMPILED[fn] = dispatch
    return _COMPILED[fn]


def chunked(fn: Callable[..., None]) -> Callable[..., None]:
    """``fn`` applied slice by slice: positional arguments are the flat tensors, keywords the scalars."""

    def run(*flat: Tensor, **scalars: Any) -> None:
        n = flat[0].numel()
        for start in range(0, n, EAGER_CHUNK):
            fn(*(t[start : start + EAGER_CHUNK] for t in flat), **scalars)

    return run


def eager_steps(numel: int) -> float:
    """With ``compile="auto"``: how many steps an update of ``numel`` elements runs eagerly before it is compiled
    (every step, i.e. never compiled, below :data:`COMPILE_THRESHOLD`). It depends only on the size and the step
    count kept in the optimizer state, so a resumed run switches at the same step as an uninterrupted one."""
    if numel < COMPILE_THRESHOLD:
        return math.inf
    return math.ceil(COMPILE_PAYOFF / numel)


def check(name: str, value: Any, ok: bool, requirement: str) -> None:
    """Raise ``ValueError("Invalid <name>: <value> (<requirement>)")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"Invalid {name}: {value!r} ({requirement})")


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

    def is_current(self, params: list[Tensor]) -> bool:
        """True while the group still holds exactly these parameters, each still viewing the flat buffer."""
        return len(params) == len(self.params) and all(
            p is q and p.data_ptr() == ptr for p, q, ptr in zip(params, self.params, self.param_ptrs, strict=True)
        )


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
        beyond :data:`EAGER_CHUNK` elements).

        ``compile="auto"`` runs eagerly for the first :func:`eager_steps` steps of an update of at least
        :data:`COMPILE_THRESHOLD` elements and compiled after them (never below the threshold; ``t=None``, a step
        count the caller does not know, compiles at once); ``REGOPT_COMPILE=1`` in the environment makes
        ``"auto"`` always compile. ``True`` compiles from the first step, ``False`` never, and
        ``REGOPT_COMPILE=0`` never compiles whatever ``compile`` says. If compiling fails, the update runs eagerly
        with a warning (see :func:`compiled`)."""
        use = self.compile
        env = os.environ.get("REGOPT_COMPILE")
        if env == "0":
            use = False
        elif use == "auto":
            n = theta.numel()
            use = env == "1" or (n >= COMPILE_THRESHOLD and (t is None or t > eager_steps(n)))
        if use and _COMPILE_FAILURE is None:
            return compiled(fn)
        return eager(fn, theta.numel())

    # ----------------------------------------------------------------------------------------- layout
    def _build_bucket(self, group: dict[str, Any], params: list[Tensor]) -> Bucket:
        first = params[0]
        total = sum(p.numel() for p in params)
        theta = torch.empty(total, dtype=first.dtype, device=first.device)
        grad = torch.zeros(total, dtype=first.dtype, device=first.device)
        bucket = Bucket(params=params, theta=theta, grad=grad)
        offset = 0
        for p in params:
            n = p.numel()
            bucket.slices.append((offset, offset + n))
            view = theta[offset : offset + n].view_as(p)
            view.copy_(p.detach())
            p.data = view
            bucket.param_ptrs.append(p.data_ptr())
            grad_view = grad[offset : offset + n].view_as(p)
            if p.grad is not None:
                grad_view.copy_(p.grad)
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
                    flat[start:end].copy_(s[name].reshape(-1))
            else:
                self.init_state(name, flat, group)
            bucket.state[name] = flat
        for (start, end), p, s in zip(bucket.slices, params, states, strict=True):
            for name, flat in bucket.state.items():
                s[name] = flat[start:end].view_as(p)
            s["step"] = bucket.step
        return bucket

    def _layout(self) -> list[list[Bucket]]:
        """The buckets of every group, rebuilt where parameters moved or the state was reloaded."""
        if self._buckets is None or len(self._buckets) != len(self.param_groups):
            self._buckets = [[] for _ in self.param_groups]
        for index, group in enumerate(self.param_groups):
            keyed: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
            for p in group["params"]:
                keyed.setdefault((p.device, p.dtype), []).append(p)
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
                runs = self._gather_grads(bucket)
                if not runs:
                    continue
                bucket.step += 1
                t = int(bucket.step.item())
                for start, end, fresh in runs:
                    g = bucket.grad[start:end] if fresh is None else fresh
                    state = {name: flat[start:end] for name, flat in bucket.state.items()}
                    self.update(group, bucket.theta[start:end], g, state, t)
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
