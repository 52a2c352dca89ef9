"""How closely an optimizer's run may be asked to match a reference run of the same algorithm.

Two correct implementations of one algorithm agree only up to rounding. They order their float operations
differently (torch's foreach kernels, regopt's fused updates, the transcription's one op per line), and the
machine decides the last bits of every gradient and update: MKL takes different paths on Intel and AMD, ATen
picks AVX-512, AVX2 or scalar kernels (with or without fused multiply-adds). The iteration then carries those
last-bit differences forward, and normalized methods (AdaGrad, RMSProp, Adam) amplify them step after step: one
fixed atol tuned on one machine fails on another (rmsprop with momentum on the MLP, 200 steps: 3e-13 apart on
an AMD EPYC, 2.8e-10 on an Intel Xeon, where 1e-10 was allowed).

So the tolerance is measured on the problem itself. ``rounding_drift`` runs the reference again with its start
moved by one ulp (every element up, then every element down) and with every gradient it computes moved by one ulp
in random directions (what another summation order or BLAS kernel does), and returns how far the furthest of
these runs ends from the unperturbed one: how much these steps amplify a last-bit difference.
``reference_tolerance`` allows ``MULTIPLE`` times that drift (an implementation rounds a few times per step where
the probe perturbs once; the factor also covers a machine whose trajectory amplifies a little more) plus a floor
of ``FLOOR_ULPS`` ulps of the result's magnitude: the additions theta + delta round differently at every step, and
an iteration that neither amplifies nor damps them keeps up to one ulp per step (Adam's normalized step hardly
feels a perturbed theta, so the probe's drift misses them); 256 covers the 200 steps these tests run.

A real bug changes every update by far more than an ulp, and ``assert_matches_reference`` keeps the comparison
sharp: it refuses a tolerance above ``SHARPNESS`` times the distance the run travelled (a problem that chaotic
needs fewer steps or a stabler learning rate, not a looser test). tests/optim/test_tolerance.py shows mutated
references (a momentum coefficient off by 1e-4, delta on the wrong side of the root) failing it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

Perturb = Callable[[Tensor], Tensor]
# run(init, perturb): the reference's final parameters, started at ``init`` (flat), with ``perturb`` applied to
# every gradient before it is used
Run = Callable[[Tensor, Perturb], Tensor]

MULTIPLE = 100.0
FLOOR_ULPS = 256
SHARPNESS = 1e-5


def identity(t: Tensor) -> Tensor:
    return t


def nudge(t: Tensor, direction: float) -> Tensor:
    """Every element moved one ulp towards ``direction`` (+inf or -inf)."""
    return torch.nextafter(t, torch.full_like(t, direction))


def jitter(seed: int) -> Perturb:
    """A perturbation that moves each element of each tensor it is given one ulp up or down, at random (seeded)."""
    gen = torch.Generator().manual_seed(seed)

    def perturb(t: Tensor) -> Tensor:
        up = torch.rand(t.shape, generator=gen, dtype=torch.float64) < 0.5
        target = torch.where(up, math.inf, -math.inf).to(t.dtype)
        return torch.nextafter(t, target)

    return perturb


def rounding_drift(run: Run, init: Tensor, expected: Tensor | None = None, seeds: tuple[int, ...] = (0,)) -> float:
    """Largest distance from ``run(init)`` of the runs whose start or whose every gradient is one ulp off."""
    if expected is None:
        expected = run(init.clone(), identity)
    others = [run(nudge(init, math.inf), identity), run(nudge(init, -math.inf), identity)]
    others += [run(init.clone(), jitter(seed)) for seed in seeds]
    return max((other - expected).abs().max().item() for other in others)


def ulps_of(values: Tensor, count: int) -> float:
    """``count`` ulps of the largest magnitude in ``values`` (at least of 1.0)."""
    return count * torch.finfo(values.dtype).eps * max(1.0, values.abs().max().item())


def reference_tolerance(run: Run, init: Tensor, expected: Tensor | None = None) -> float:
    """``MULTIPLE`` x the rounding drift + ``FLOOR_ULPS`` ulps of the result: what rounding alone can explain."""
    if expected is None:
        expected = run(init.clone(), identity)
    return MULTIPLE * rounding_drift(run, init, expected) + ulps_of(expected, FLOOR_ULPS)


def tolerance_from(expected: Tensor, perturbed: list[Tensor], floor_ulps: int = FLOOR_ULPS) -> float:
    """The same rule for runs the caller perturbed itself: ``MULTIPLE`` x the furthest of ``perturbed`` (runs of
    the reference started one ulp off) from ``expected``, plus ``floor_ulps`` ulps of ``expected``'s magnitude."""
    drift = max((p - expected).abs().max().item() for p in perturbed)
    return MULTIPLE * drift + ulps_of(expected, floor_ulps)


def assert_matches_reference(got: Tensor, run: Run, init: Tensor) -> None:
    """``got`` equals the reference ``run(init)`` up to what rounding explains on this problem (see module doc)."""
    expected = run(init.clone(), identity)
    assert torch.isfinite(expected).all()
    travelled = (expected - init).abs().max().item()
    assert travelled > 1e-3, f"the run hardly moved ({travelled:.1e}): nothing is compared"
    atol = reference_tolerance(run, init, expected)
    assert atol <= SHARPNESS * travelled, (
        f"rounding alone moves this run by {atol / MULTIPLE:.1e} (travelled {travelled:.1e}): "
        "too chaotic for a sharp comparison; use fewer steps or a stabler learning rate"
    )
    torch.testing.assert_close(got, expected, rtol=0, atol=atol)
