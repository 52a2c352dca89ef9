"""Loss landscape slices: linear interpolation (Goodfellow et al. 2015), filter-normalized 2-D surfaces (Li et al.
2018), and their figures."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from regopt.diagnostics.landscape import (
    filter_normalized_direction,
    interpolate,
    loss_surface_2d,
    plot_interpolation,
    plot_surface,
)


def mlp(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1))


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(20, 3, generator=g), torch.randn(20, 1, generator=g)


def snapshot(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def unchanged(model: nn.Module, saved: list[torch.Tensor]) -> bool:
    return all(torch.equal(p, s) for p, s in zip(model.parameters(), saved, strict=True))


def test_interpolation_endpoints_reproduce_the_losses_at_theta_a_and_theta_b_and_parameters_are_restored() -> None:
    x, y = data()
    model, net_a, net_b = mlp(0), mlp(1), mlp(2)

    def loss_of_model(m: nn.Module) -> float:
        return F.mse_loss(m(x), y).item()

    saved = snapshot(model)
    alphas = [-0.5, 0.0, 0.25, 0.5, 1.0, 1.5]
    rows = interpolate(model, net_a.state_dict(), list(net_b.parameters()), loss_of_model, alphas)
    assert [alpha for alpha, _ in rows] == alphas
    losses = dict(rows)
    assert losses[0.0] == loss_of_model(net_a)
    assert losses[1.0] == loss_of_model(net_b)
    assert unchanged(model, saved)
    # the midpoint is the model with averaged parameters
    mid = copy.deepcopy(net_a)
    with torch.no_grad():
        for p, pa, pb in zip(mid.parameters(), net_a.parameters(), net_b.parameters(), strict=True):
            p.copy_(0.5 * pa + 0.5 * pb)
    assert losses[0.5] == pytest.approx(loss_of_model(mid), rel=1e-6)


def test_interpolating_to_the_models_own_parameters_and_restoring_after_an_error() -> None:
    x, y = data()
    model, start = mlp(0), mlp(1)
    saved = snapshot(model)
    rows = interpolate(
        model, start.state_dict(), dict(model.named_parameters()), lambda m: F.mse_loss(m(x), y).item(), [0.0, 1.0]
    )
    assert rows[1][1] == F.mse_loss(model(x), y).item()
    assert unchanged(model, saved)

    def failing(m: nn.Module) -> float:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        interpolate(model, start.state_dict(), start.state_dict(), failing, [0.5])
    assert unchanged(model, saved)
    with pytest.raises(ValueError, match="theta_b lacks parameters"):
        interpolate(model, start.state_dict(), {"0.weight": start[0].weight}, failing, [0.5])
    with pytest.raises(ValueError, match="shape"):
        interpolate(model, start.state_dict(), [torch.zeros(1)] * 4, failing, [0.5])


def test_filter_normalized_direction_matches_the_models_filter_norms_and_zeroes_biases() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 5))
    d = filter_normalized_direction(model, seed=3)
    assert [t.shape for t in d] == [p.shape for p in model.parameters()]
    for t, p in zip(d, model.parameters(), strict=True):
        assert not t.requires_grad
        if p.dim() <= 1:
            assert torch.equal(t, torch.zeros_like(p))  # biases, BatchNorm weight and bias
        else:
            torch.testing.assert_close(t.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1))
            assert not torch.allclose(t, p)
    assert all(torch.equal(a, b) for a, b in zip(d, filter_normalized_direction(model, seed=3), strict=True))
    assert not torch.equal(d[0], filter_normalized_direction(model, seed=4)[0])
    copied = filter_normalized_direction(model, seed=3, ignore_1d=False)
    assert torch.equal(copied[1], model[0].bias.detach())


class Quadratic(nn.Module):
    """A "model" that is its own parameter vector; its loss is f(w) = 0.5 w^T A w + c^T w."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())


def test_surface_of_a_quadratic_matches_the_analytic_function() -> None:
    a_mat = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    w0 = torch.tensor([0.3, -0.1, 0.7], dtype=torch.float64)
    d1 = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    d2 = torch.tensor([0.0, 2.0, -1.0], dtype=torch.float64)
    model = Quadratic(w0)

    def f(w: torch.Tensor) -> torch.Tensor:
        return 0.5 * (w @ a_mat * w).sum(-1) + w @ c

    grid_a, grid_b, losses = loss_surface_2d(model, lambda m: f(m.w).item(), [d1], [d2], extent=2.0, steps=9)
    assert grid_a[0] == -2.0 and grid_a[-1] == 2.0 and grid_a[4] == 0.0 and torch.equal(grid_a, grid_b)
    points = w0 + grid_a[:, None, None] * d1 + grid_b[None, :, None] * d2  # (9, 9, 3)
    torch.testing.assert_close(losses, f(points), rtol=1e-12, atol=1e-12)
    assert losses[4, 4] == f(w0).item()
    assert torch.equal(model.w.detach(), w0)


def test_surface_is_minimal_at_the_center_for_a_model_at_a_minimum() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64) + 0.1 * torch.randn(50, 1, generator=g)
    model = nn.Linear(3, 1).double()
    solution = torch.linalg.lstsq(torch.cat([x, torch.ones(50, 1, dtype=x.dtype)], 1), y).solution
    with torch.no_grad():  # the least-squares minimum
        model.weight.copy_(solution[:3].T)
        model.bias.copy_(solution[3])
    saved = snapshot(model)
    d1, d2 = filter_normalized_direction(model, 0), filter_normalized_direction(model, 1)
    _, _, losses = loss_surface_2d(model, lambda m: F.mse_loss(m(x), y).item(), d1, d2, extent=0.5, steps=11)
    center = losses[5, 5]
    assert losses.argmin() == 5 * 11 + 5
    assert (losses.flatten()[torch.arange(121) != 60] > center).all()
    assert unchanged(model, saved)


def test_surface_rejects_bad_grids() -> None:
    model = nn.Linear(2, 1)
    d = filter_normalized_direction(model, 0)
    with pytest.raises(ValueError, match="extent"):
        loss_surface_2d(model, lambda m: 0.0, d, d, extent=0.0)
    with pytest.raises(ValueError, match="steps"):
        loss_surface_2d(model, lambda m: 0.0, d, d, steps=1)


def test_plots_write_png_files_atomically(tmp_path) -> None:
    rows = [(a / 10, (a / 10 - 0.8) ** 2 + 0.1) for a in range(-5, 16)]
    plot_interpolation(rows, tmp_path / "figs" / "interpolation.png", logy=True)
    grid_a = torch.linspace(-1, 1, 7, dtype=torch.float64)
    losses = grid_a[:, None] ** 2 + 2 * grid_a[None, :] ** 2 + 0.1
    plot_surface((grid_a, grid_a.clone(), losses), tmp_path / "figs" / "surface.png", log=True)
    for name in ("interpolation.png", "surface.png"):
        assert (tmp_path / "figs" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["interpolation.png", "surface.png"]
