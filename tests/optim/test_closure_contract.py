"""The optimizer contract for the methods of sec. 8.6 that drive their own evaluations through a ``closure``
(as ``torch.optim.LBFGS``): Rosenbrock's minimum from (-1.2, 1) to 1e-6 with the evaluations counted, a
state_dict round trip through ``torch.save``/``weights_only`` that continues identically, bad arguments named,
and parameter groups (one only, refused by name beyond it, as torch's LBFGS).

Closures come in the three shapes these methods take (see each class's docstring):

- ``"backward"``: zero the gradients, compute the loss, ``backward()``, return the loss (torch's LBFGS, CG, BFGS,
  SAM);
- ``"graph"``: return the loss with its graph; the optimizer differentiates it (Newton, HessianFree on the
  Hessian);
- ``"ggn"``: return ``(loss, output)``, the loss computed from the output (HessianFree on the Gauss-Newton
  matrix).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import regopt.optim as ro

TIGHT = {"tolerance_grad": 1e-12, "tolerance_change": 1e-15}  # the line-search methods stop early by default

# (id, class, keyword arguments, closure shape, a bad keyword argument)
CASES: list[tuple[str, type[torch.optim.Optimizer], dict[str, Any], str, dict[str, Any]]] = [
    ("lbfgs", ro.LBFGS, TIGHT, "backward", {"history": 0}),
    ("bfgs", ro.BFGS, TIGHT, "backward", {"max_params": 0}),
    ("cg-polak-ribiere", ro.ConjugateGradient, {"variant": "polak_ribiere", **TIGHT}, "backward", {"variant": "hs"}),
    ("cg-fletcher-reeves", ro.ConjugateGradient, {"variant": "fletcher_reeves", **TIGHT}, "backward", {"restart": 0}),
    ("newton", ro.Newton, {"line_search": "backtracking"}, "graph", {"damping": -1.0}),
    ("newton-saddle-free", ro.Newton, {"saddle_free": True, "damping": 1e-3}, "graph", {"max_params": 0}),
    ("hessian-free-ggn", ro.HessianFree, {"curvature": "ggn"}, "ggn", {"damping": 0.0}),
    ("hessian-free", ro.HessianFree, {"curvature": "hessian"}, "graph", {"cg_max_iter": 0}),
]
IDS = [case[0] for case in CASES]


def factory(cls: type[torch.optim.Optimizer], kwargs: dict[str, Any]) -> Callable[[list[Tensor]], Any]:
    return lambda params: cls(params, **kwargs)


MAKERS = [(factory(cls, kwargs), shape) for _, cls, kwargs, shape, _ in CASES]


def residuals(xy: Tensor) -> Tensor:
    """Rosenbrock's residuals: f = ||r||^2 = (1 - x)^2 + 100 (y - x^2)^2."""
    return torch.stack([1 - xy[0], 10 * (xy[1] - xy[0] ** 2)])


def make_closure(shape: str, optimizer: torch.optim.Optimizer, output: Callable[[], Tensor], counter: list[int]):
    """A closure of ``shape`` for the loss ``||output()||^2`` (Rosenbrock) or a mean squared error."""

    def closure() -> Any:
        counter[0] += 1
        if shape == "backward":
            optimizer.zero_grad()
            loss = output().square().sum()
            loss.backward()
            return loss
        out = output()
        loss = out.square().sum()
        return (loss, out) if shape == "ggn" else loss

    return closure


@pytest.mark.parametrize(("make", "shape"), MAKERS, ids=IDS)
def test_reaches_rosenbrocks_minimum(make, shape, capsys: pytest.CaptureFixture[str]) -> None:
    xy = nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
    optimizer = make([xy])
    evaluations = [0]
    closure = make_closure(shape, optimizer, lambda: residuals(xy), evaluations)
    steps = 0
    while (xy.detach() - 1).abs().max() > 1e-6 and steps < 500:
        optimizer.step(closure)
        steps += 1
    assert (xy.detach() - 1).abs().max() <= 1e-6, (steps, xy.detach().tolist())
    with capsys.disabled():
        print(f"\n  {type(optimizer).__name__}: {steps} steps, {evaluations[0]} closure evaluations", end="")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()


def _data(k: int) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(k)
    return torch.randn(12, 3, generator=gen, dtype=torch.float64), torch.randn(
        12, 2, generator=gen, dtype=torch.float64
    )


def _steps(model: nn.Module, optimizer: torch.optim.Optimizer, shape: str, ks: range) -> None:
    for k in ks:
        x, y = _data(k)
        optimizer.step(make_closure(shape, optimizer, lambda x=x, y=y: (model(x) - y) / 12**0.5, [0]))


@pytest.mark.parametrize(("make", "shape"), MAKERS, ids=IDS)
def test_state_dict_round_trip_continues_identically(make, shape, tmp_path: Path) -> None:
    model = _model()
    optimizer = make(list(model.parameters()))
    _steps(model, optimizer, shape, range(3))
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path / "ckpt.pt")
    _steps(model, optimizer, shape, range(3, 6))
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    fresh = _model()
    fresh.load_state_dict(saved["model"])
    fresh_optimizer = make(list(fresh.parameters()))
    fresh_optimizer.load_state_dict(saved["optimizer"])
    _steps(fresh, fresh_optimizer, shape, range(3, 6))
    for p, q in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(("cls", "kwargs", "bad"), [(c[1], c[2], c[4]) for c in CASES], ids=IDS)
def test_a_bad_argument_names_itself(cls, kwargs, bad) -> None:
    name, value = next(iter(bad.items()))
    with pytest.raises(ValueError, match=rf"^Invalid {name}: {re.escape(repr(value))} \(must be "):  # torch's wording
        cls([nn.Parameter(torch.zeros(2))], **{**kwargs, name: value})


@pytest.mark.parametrize(("make", "shape"), MAKERS, ids=IDS)
def test_more_than_one_parameter_group_is_refused_by_name(make, shape) -> None:
    a, b = nn.Parameter(torch.ones(2, dtype=torch.float64)), nn.Parameter(torch.ones(1, dtype=torch.float64))
    with pytest.raises(ValueError, match="takes one parameter group"):
        optimizer = make([a])
        optimizer.add_param_group({"params": [b]})
        optimizer.step(make_closure(shape, optimizer, lambda: torch.cat([a, b]) - 2, [0]))
