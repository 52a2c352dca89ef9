"""How an optimizer's update runs: eagerly, slice by slice, or compiled by ``torch.compile`` into one kernel.

:class:`regopt.optim.flat.FlatOptimizer` writes each algorithm's update once, as a function of flat tensors and
scalars; :meth:`~regopt.optim.flat.FlatOptimizer.kernel` asks this module how to run it at a given step.

Compiling is not free: the first compiled step of a process takes about 5 s (torch's Adam step: 0.04 s), and
every later variant (another algorithm or flag) about 0.8 s (BENCHMARKS.md, "Optimizer step speed"). So
``compile="auto"`` (the default of every optimizer) never compiles an update of fewer than :data:`COMPILE_THRESHOLD`
elements, and a larger one only after ``ceil(COMPILE_PAYOFF / n)`` eager steps
(:func:`eager_steps`), when the run has shown itself long enough to repay the compile.

A compiled kernel is trusted only after its first call agreed with the eager update on the same inputs
(:func:`compiled`): if compiling fails (no C++ compiler for inductor: ``InvalidCxxCompiler``, or any other
error) or the kernel computes something else (a stale or miscompiled kernel: torch 2.13's on-disk inductor cache
served kernels built under another ``ATEN_CPU_CAPABILITY`` that were off by 0.1-3 on this machine), the update
keeps the eager result, one ``RuntimeWarning`` per process names the cause, and the process updates eagerly from
then on.
"""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

COMPILE_THRESHOLD = 1 << 20
"""With ``compile="auto"``, only updates of at least this many elements are ever compiled; smaller ones run
eagerly, where compiling could not repay its cost."""

COMPILE_PAYOFF = 10**10
"""With ``compile="auto"``, an update of n >= COMPILE_THRESHOLD elements runs eagerly for its first
``ceil(COMPILE_PAYOFF / n)`` steps and compiled from then on (see :func:`eager_steps`): 9,537 steps at 1M elements,
2,385 at 4M, 597 at 16M, 100 at 100M. Compiling costs C once (the first compiled step of a process) and then saves
s seconds per element and step, so a run of n elements repays it after C / (s n) steps, and running eagerly that
long before compiling costs at most twice the better choice in hindsight, however long the run. COMPILE_PAYOFF is
C / s for Adam on a quiet machine, rounded, near the median over Adam, delta-bar-delta and SGD momentum; the
measurements and the command behind them are in BENCHMARKS.md, "When compiling an optimizer update pays". A short
run of a large model therefore never pays for a compile; a long one compiles after a small fraction of its
steps."""

EAGER_CHUNK = 1 << 17
"""The eager path runs the update over slices of this many elements. The in-place update still makes a few
temporaries the size of its input (Adam's ``g * g``, ``s_hat``, the root); glibc serves large blocks with fresh
mmap'd pages that fault on first touch and go back to the system on free, so whole-bucket temporaries made a
500K-element Adam step ~40x slower than torch's foreach path. Larger slices run faster in a quiet process but make
larger temporaries, which do page-fault in a busy one, so 128K (512 KB temporaries) is the compromise; the
timings are in BENCHMARKS.md, "Eager step() ms by slice size" and "Measured by hand: the flat buffers' costs".
Buckets past COMPILE_THRESHOLD run compiled."""

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

    The first call of a variant also runs the eager update on copies of its tensors and compares
    (:func:`first_disagreement`). If compiling fails there (no C++ compiler for inductor, an unsupported
    backend, ...) or the kernel's result disagrees, the tensors get the eager result, exactly as ``compile=False``
    would have left them, a :class:`RuntimeWarning` names the cause once per process, and every later update of
    the process runs eagerly. The check costs one eager step and one copy of the update's tensors, once per
    variant and process.
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
            reference = [t.clone() for t in flat]  # the eager update on copies: what the kernel must compute
            eager(fn, flat[0].numel())(*reference, **scalars)
            try:
                kernels[key](*flat, **{**scalars, **tensors})
                disagreement = first_disagreement(flat, reference)
                if disagreement:
                    raise RuntimeError(f"the compiled update differs from the eager one ({disagreement})")
            except Exception as error:  # a failure to compile, or a wrong kernel: keep the eager result
                del kernels[key]
                _compile_failed(error)
                for t, r in zip(flat, reference, strict=True):
                    t.copy_(r)

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


def first_disagreement(compiled_out: Sequence[Tensor], eager_out: Sequence[Tensor], rtol: float = 1e-4) -> str:
    """Where a compiled update's tensors differ from the eager update's by more than rounding, or ``""``.

    Both evaluate the same expression once; fusion and reordering change only the last bits, a few ulps of the
    operands' magnitude. The bound, ``rtol`` times each element's magnitude plus ``rtol / 10`` of the tensor's
    largest, is about 800 float32 ulps: 100x the rounding, far below the errors it exists to catch (a kernel off by
    0.1 on values of order 1).
    """
    for index, (c, e) in enumerate(zip(compiled_out, eager_out, strict=True)):
        scale = float(e.abs().max()) if e.numel() else 0.0
        if not torch.allclose(c, e, rtol=rtol, atol=rtol * scale / 10, equal_nan=True):
            worst = float((c - e).abs().nan_to_num(math.inf).max())
            return f"tensor {index}: largest difference {worst:.3g} on values up to {scale:.3g}"
    return ""
