"""Curriculum schedules, difficulty scores, and continuation by Gaussian smoothing of the objective."""

from __future__ import annotations

import itertools
import math
import runpy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from regopt.curriculum import (
    Curriculum,
    continuation_schedule,
    curriculum_subset,
    difficulty_by_loss,
    difficulty_by_margin,
    smoothed_loss,
)

# ------------------------------------------------------------------------------------------ schedules

# (pacing, start_fraction, epochs_to_full) -> fraction at epochs 0, 1, 2, ...
FRACTIONS = [
    ("linear", 0.2, 4, [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]),
    ("linear", 0.5, 2, [0.5, 0.75, 1.0, 1.0]),
    ("step", 0.25, 3, [0.25, 0.25, 0.25, 1.0, 1.0]),
    ("root", 0.2, 4, [0.2, math.sqrt(0.04 + 0.24), math.sqrt(0.04 + 0.48), math.sqrt(0.04 + 0.72), 1.0]),
    ("linear", 0.3, 0, [1.0, 1.0]),
    ("linear", 1.0, 5, [1.0, 1.0, 1.0]),
]


@pytest.mark.parametrize(("pacing", "start", "full", "expected"), FRACTIONS)
def test_fraction_per_epoch(pacing, start, full, expected):
    curriculum = Curriculum(torch.arange(100.0), start_fraction=start, epochs_to_full=full, pacing=pacing)
    got = [curriculum.fraction(epoch) for epoch in range(len(expected))]
    assert got == pytest.approx(expected)
    assert [curriculum.size(epoch) for epoch in range(len(expected))] == [round(100 * f + 0.4999) for f in expected]


def test_easiest_examples_first_then_all():
    difficulty = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    curriculum = Curriculum(difficulty, start_fraction=0.3, epochs_to_full=2)
    g = torch.Generator().manual_seed(0)
    assert sorted(curriculum.indices(0, g).tolist()) == [1, 5, 9]  # the three easiest
    epoch1 = curriculum.indices(1, g)
    assert len(epoch1) == math.ceil(0.65 * 10)
    assert set(epoch1.tolist()) == set(torch.argsort(difficulty)[: len(epoch1)].tolist())
    for epoch in (2, 3, 10):
        assert sorted(curriculum.indices(epoch, g).tolist()) == list(range(10))  # all by epochs_to_full


def test_ties_are_broken_by_position_and_size_is_at_least_one():
    curriculum = Curriculum(torch.zeros(10), start_fraction=0.01, epochs_to_full=3)
    assert curriculum.size(0) == 1 and curriculum.indices(0).tolist() == [0]
    assert sorted(curriculum.indices(1).tolist()) == list(range(curriculum.size(1)))


def test_indices_are_shuffled_and_deterministic_with_a_generator():
    curriculum = Curriculum(torch.arange(1000.0), start_fraction=0.5, epochs_to_full=1)
    a = curriculum.indices(0, torch.Generator().manual_seed(3))
    b = curriculum.indices(0, torch.Generator().manual_seed(3))
    c = curriculum.indices(0, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, torch.arange(500))  # shuffled ...
    assert torch.equal(a.sort().values, torch.arange(500))  # ... among the easiest half


def test_curriculum_subset():
    x = torch.arange(20.0).reshape(10, 2)
    y = torch.arange(10)
    curriculum = Curriculum(-torch.arange(10.0), start_fraction=0.2, epochs_to_full=4)  # the last are easiest
    xs, ys = curriculum_subset(x, y, curriculum, 0, torch.Generator().manual_seed(0))
    assert sorted(ys.tolist()) == [8, 9]
    assert torch.equal(xs, x[ys])
    with pytest.raises(ValueError, match="expected 10 examples"):
        curriculum_subset(x[:5], y[:5], curriculum, 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"difficulty": torch.zeros(2, 2)}, "difficulty"),
        ({"difficulty": torch.tensor([0.0, float("nan")])}, "difficulty.*NaN"),
        ({"start_fraction": 0.0}, "start_fraction.*0.0"),
        ({"start_fraction": 1.5}, "start_fraction.*1.5"),
        ({"epochs_to_full": -1}, "epochs_to_full.*-1"),
        ({"pacing": "exp"}, "pacing.*'exp'"),
    ],
)
def test_bad_curriculum_arguments(kwargs, match):
    args = {"difficulty": torch.arange(4.0), "epochs_to_full": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        Curriculum(**args)


# ------------------------------------------------------------------------------------------- difficulty


def test_difficulty_by_loss_and_margin():
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    x = torch.tensor([[3.0, 0.0], [1.0, 0.5], [0.0, 2.0], [2.0, 0.0]])
    y = torch.tensor([0, 0, 0, 1])  # easy, harder, wrong, wrong
    model.train()
    loss = difficulty_by_loss(model, None, x, y)
    torch.testing.assert_close(loss, F.cross_entropy(x, y, reduction="none"))
    assert model.training  # the mode is restored
    margin = difficulty_by_margin(model, x, y)
    torch.testing.assert_close(margin, torch.tensor([-3.0, -0.5, 2.0, 2.0]))
    assert loss.argsort().tolist()[:2] == margin.argsort().tolist()[:2] == [0, 1]
    regression = difficulty_by_loss(model, None, x, x, batch_size=3)  # squared error, averaged over outputs
    torch.testing.assert_close(regression, torch.zeros(4))
    custom = difficulty_by_loss(model, lambda out, t: (out.argmax(1) != t).float(), x, y)
    assert custom.tolist() == [0.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="per-example"):
        difficulty_by_loss(model, F.cross_entropy, x, y)
    with pytest.raises(TypeError, match=r"arguments are \(model, loss_fn, x, y\)"):
        difficulty_by_loss(model, x, y, F.cross_entropy)  # type: ignore[arg-type]  # the earlier order


# ------------------------------------------------------------------------------------------ continuation


class Scalar(nn.Module):
    """One parameter w; the "model output" is w itself, so loss_fn(output, _) = f(w)."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float64))

    def forward(self, x: torch.Tensor | None) -> torch.Tensor:
        return self.w


def wiggly(w: torch.Tensor) -> torch.Tensor:
    """f(w) = w^2 + 2 sin(5 w): global minimum at w = -0.302, local minima at 0.906, 2.112, -1.509, ..."""
    return w**2 + 2 * torch.sin(5 * w)


def blurred(w: float, sigma: float) -> float:
    """E f(w + sigma eps) in closed form: w^2 + sigma^2 + 2 sin(5 w) exp(-25 sigma^2 / 2)."""
    return w**2 + sigma**2 + 2 * math.sin(5 * w) * math.exp(-12.5 * sigma**2)


def loss_of_w(output: torch.Tensor, _: object) -> torch.Tensor:
    return wiggly(output)


def descend(w0: float, sigmas: list[float], steps: int, samples: int = 8) -> float:
    model = Scalar(w0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    for sigma in sigmas:
        for _ in range(steps):
            optimizer.zero_grad()
            smoothed_loss(model, loss_of_w, None, None, sigma=sigma, samples=samples, generator=generator).backward()
            optimizer.step()
    return model.w.item()


def test_smoothed_loss_estimates_the_blurred_objective():
    model = Scalar(0.7)
    for sigma in (0.0, 0.1, 0.3, 1.0):
        estimate = smoothed_loss(
            model, loss_of_w, None, None, sigma=sigma, samples=3000, generator=torch.Generator().manual_seed(0)
        )
        assert estimate.item() == pytest.approx(blurred(0.7, sigma), abs=0.15)  # ~4 standard errors
    assert model.w.item() == 0.7  # the model's own parameter is not perturbed


def test_smoothed_loss_gradient_reaches_the_parameters_and_respects_frozen_ones():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    net[0].requires_grad_(False)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    generator = torch.Generator().manual_seed(0)
    smoothed_loss(net, F.cross_entropy, x, y, sigma=0.1, samples=4, generator=generator).backward()
    assert net[2].weight.grad is not None and net[2].weight.grad.abs().sum() > 0
    assert net[0].weight.grad is None
    plain = smoothed_loss(net, F.cross_entropy, x, y, sigma=0.0)
    torch.testing.assert_close(plain, F.cross_entropy(net(x), y))


def test_continuation_escapes_the_local_minimum_that_traps_gradient_descent():
    start = 2.5
    stuck = descend(start, [0.0], steps=500)
    assert stuck == pytest.approx(2.112, abs=0.02)  # the local minimum next to the start
    continued = descend(start, continuation_schedule(1.0, 10), steps=50)
    assert continued == pytest.approx(-0.30, abs=0.1)  # the global minimum
    assert wiggly(torch.tensor(continued)) < wiggly(torch.tensor(stuck)) - 2


def test_continuation_schedule():
    assert continuation_schedule(2.0, 3) == [2.0, 1.0, 0.0]
    cosine = continuation_schedule(1.0, 5, shape="cosine")
    assert cosine[0] == 1.0 and cosine[-1] == 0.0 and cosine[2] == pytest.approx(0.5)
    assert all(a > b for a, b in itertools.pairwise(cosine))
    for kwargs, match in [
        ({"sigma0": 0.0, "stages": 3}, "sigma0"),
        ({"sigma0": 1.0, "stages": 1}, "stages"),
        ({"sigma0": 1.0, "stages": 3, "shape": "exp"}, "shape"),
    ]:
        with pytest.raises(ValueError, match=match):
            continuation_schedule(**kwargs)
    with pytest.raises(ValueError, match="sigma"):
        smoothed_loss(Scalar(0.0), loss_of_w, None, None, sigma=-1.0)
    with pytest.raises(ValueError, match="samples"):
        smoothed_loss(Scalar(0.0), loss_of_w, None, None, sigma=1.0, samples=0)


def test_example_script(capsys):
    example = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "pretraining_curriculum.py"))
    results = example["main"](epochs=4)
    assert set(results) == {"pretraining", "curriculum", "continuation"}
    for errors in (results["pretraining"], results["curriculum"]):
        assert all(error < 0.5 for error in errors.values()), errors  # everything learns the digits
    assert results["continuation"]["plain"] == pytest.approx(2.112, abs=0.02)
    assert results["continuation"]["continuation"] == pytest.approx(-0.302, abs=0.05)
    assert len(capsys.readouterr().out.splitlines()) == 3
