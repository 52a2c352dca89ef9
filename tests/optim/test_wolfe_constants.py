"""The strong Wolfe constants ``c1, c2`` of the line-search methods (LBFGS, BFGS, ConjugateGradient) are
constructor arguments: they reach the search, keep their defaults, are checked, and travel in the param group.

The hand-worked problem: ``f(x) = x^2 / 2`` from ``x = 1``, one iteration (``max_iter=1``). Every method's first
direction is ``d = -g = -1``, so along it ``phi(t) = (1 - t)^2 / 2``, ``phi'(t) = t - 1`` and ``phi'(0) = -1``:

- curvature condition ``|t - 1| <= c2``; sufficient decrease ``(1 - t)^2 / 2 <= 1/2 - c1 t``, i.e. ``t <= 2 - 2 c1``.
- The first trial is ``t = lr`` (``||g||_1 = 1``; ``max_eval=10`` leaves room for more trials). At ``t = 0.5``
  (``|phi'| = 0.5``) ``c2 = 0.9`` accepts it: ``x = 0.5`` after one trial. ``c2 = 0.1`` does not; the search
  extrapolates by the cubic through ``phi(0)``, ``phi(0.5)`` and their slopes, which on a quadratic is its
  minimizer ``t = 1`` (``phi' = 0``): ``x = 0``, two trials.
- At ``t = 1.5`` (``|phi'| = 0.5``), ``c1 = 1e-4`` accepts it (``x = -0.5``); ``c1 = 0.4`` needs ``t <= 1.2``,
  so the search zooms into ``[0, 1.5]``, whose cubic minimizer is again ``t = 1``: ``x = 0``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch

from regopt.optim import BFGS, LBFGS, ConjugateGradient

F64 = torch.float64
CLASSES = [LBFGS, BFGS, ConjugateGradient]


def one_iteration(cls: type[torch.optim.Optimizer], lr: float, **kwargs: Any) -> tuple[float, int]:
    """``x`` after one iteration on ``x^2 / 2`` from 1, and the closure calls (1 at the start + the trials)."""
    x = torch.nn.Parameter(torch.ones(1, dtype=F64))
    opt = cls([x], lr=lr, max_iter=1, max_eval=10, **kwargs)  # the default max_eval (1) would allow one trial

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = 0.5 * (x**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return float(x.detach()), int(opt.state[x]["func_evals"])


@pytest.mark.parametrize("cls", CLASSES)
def test_c2_decides_whether_the_first_trial_is_accepted(cls):
    assert one_iteration(cls, 0.5, c2=0.9) == (0.5, 2)  # |phi'(0.5)| = 0.5 <= 0.9
    assert one_iteration(cls, 0.5, c2=0.1) == (0.0, 3)  # 0.5 > 0.1: extrapolated to the minimizer


def test_defaults_are_the_quasi_newton_and_the_conjugate_gradient_constants():
    assert one_iteration(LBFGS, 0.5) == (0.5, 2)  # c2 = 0.9
    assert one_iteration(BFGS, 0.5) == (0.5, 2)  # c2 = 0.9
    assert one_iteration(ConjugateGradient, 0.5) == (0.0, 3)  # c2 = 0.1
    for cls, c2 in [(LBFGS, 0.9), (BFGS, 0.9), (ConjugateGradient, 0.1)]:
        group = cls([torch.nn.Parameter(torch.zeros(1))]).param_groups[0]
        assert (group["c1"], group["c2"]) == (1e-4, c2)


@pytest.mark.parametrize("cls", CLASSES)
def test_c1_decides_whether_a_long_trial_decreases_enough(cls):
    assert one_iteration(cls, 1.5, c1=1e-4, c2=0.9) == (-0.5, 2)  # 1.5 <= 2 - 2e-4
    assert one_iteration(cls, 1.5, c1=0.4, c2=0.9) == (0.0, 3)  # 1.5 > 1.2: zoomed to the minimizer


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"c1": 0.0}, "Invalid c1: 0.0 (must be in (0, 1))"),
        ({"c1": True}, "Invalid c1: True (must be in (0, 1))"),
        ({"c1": float("nan")}, "Invalid c1: nan (must be in (0, 1))"),
        ({"c1": 0.5, "c2": 0.5}, "Invalid c2: 0.5 (must be in (c1, 1) = (0.5, 1))"),
        ({"c1": 0.5, "c2": 0.3}, "Invalid c2: 0.3 (must be in (c1, 1) = (0.5, 1))"),
        ({"c2": 1.0}, "Invalid c2: 1.0 (must be in (c1, 1) = (0.0001, 1))"),
    ],
)
def test_bad_constants_are_refused_by_name(cls, kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        cls([torch.nn.Parameter(torch.zeros(1))], **kwargs)


def test_the_constants_travel_in_the_state_dict():
    saved = LBFGS([torch.nn.Parameter(torch.zeros(1))], c1=0.01, c2=0.2).state_dict()
    opt = LBFGS([torch.nn.Parameter(torch.zeros(1))])
    opt.load_state_dict(saved)
    assert (opt.param_groups[0]["c1"], opt.param_groups[0]["c2"]) == (0.01, 0.2)
    # a state dict from before the constants were arguments: the loading optimizer's own constants
    for key in ("c1", "c2"):
        del saved["param_groups"][0][key]
    cg = ConjugateGradient([torch.nn.Parameter(torch.zeros(1))], c2=0.3)
    cg.load_state_dict({**saved, "param_groups": [{**saved["param_groups"][0], "variant": "polak_ribiere"}]})
    assert (cg.param_groups[0]["c1"], cg.param_groups[0]["c2"]) == (1e-4, 0.3)


@pytest.mark.parametrize(("cls", "c2"), [(LBFGS, 0.9), (BFGS, 0.9), (ConjugateGradient, 0.1)])
def test_a_state_from_before_the_constants_were_settable_gets_the_class_defaults(cls, c2):
    # as unpickling an optimizer saved before c1 and c2 existed: neither its defaults nor its groups hold them
    state = cls([torch.nn.Parameter(torch.zeros(2))]).__getstate__()
    for holder in (state["defaults"], *state["param_groups"]):
        del holder["c1"], holder["c2"]
    restored = cls.__new__(cls)
    restored.__setstate__(state)
    assert (restored.param_groups[0]["c1"], restored.param_groups[0]["c2"]) == (1e-4, c2)
