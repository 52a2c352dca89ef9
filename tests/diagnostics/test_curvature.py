"""Lanczos, Hutchinson and SLQ against exact spectra: quadratics with a known spectrum and small MLPs (float64)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regopt.diagnostics.curvature import (
    condition_number_estimate,
    hessian_trace,
    lanczos,
    min_eigenvalue,
    power_iteration,
    spectral_density,
    spectral_quadrature,
    top_eigenvalues,
)
from regopt.diagnostics.hessian_operator import HessianOperator

from .test_hvp import small_mlp


class Quadratic(nn.Module):
    """A "model" whose output is its parameter vector: with ``quadratic_loss`` the Hessian is ``h``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.randn(dim, dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        return self.theta


def quadratic_operator(eigenvalues: list[float] | Tensor, seed: int = 0) -> tuple[HessianOperator, Tensor]:
    """``L = 0.5 theta' H theta`` with ``H = Q diag(eigenvalues) Q'`` for a random orthogonal Q."""
    lam = torch.as_tensor(eigenvalues, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(lam), len(lam), generator=gen, dtype=torch.float64))
    h = q @ torch.diag(lam) @ q.T
    torch.manual_seed(seed)
    model = Quadratic(len(lam))
    op = HessianOperator(model, lambda out, y: 0.5 * out @ h @ out, torch.zeros(1), torch.zeros(1))
    return op, h


SPECTRUM = [10.0, 9.0, 8.5, *torch.linspace(0.1, 5.0, 47).tolist()]


def rel(a: Tensor, b: Tensor) -> float:
    return float(((a - b).abs() / b.abs()).max())


@pytest.mark.parametrize("k", [1, 3])
def test_top_eigenvalues_of_a_known_spectrum(k):
    op, _ = quadratic_operator(SPECTRUM)
    got = top_eigenvalues(op, k=k, tol=1e-10)
    assert got.dtype == torch.float64 and got.shape == (k,)
    assert rel(got, torch.tensor(SPECTRUM[:k], dtype=torch.float64)) < 1e-6
    assert op.num_products < 40  # far fewer than dim = 50


def test_top_and_min_eigenvalues_of_an_mlp():
    model, x, y = small_mlp()
    op = HessianOperator(model, F.cross_entropy, x, y)
    exact = torch.linalg.eigvalsh(op.dense())
    got = top_eigenvalues(op, k=3, tol=1e-10)
    assert rel(got, exact[-3:].flip(0)) < 1e-6
    lam_min = min_eigenvalue(op, tol=1e-10)
    assert lam_min < 0  # a random initialization is not a minimum: the Hessian is indefinite
    assert lam_min == pytest.approx(float(exact[0]), rel=1e-6)


def test_min_eigenvalue_finds_the_saddle_direction():
    op, _ = quadratic_operator([4.0, 2.0, 1.0, 0.5, -0.3, -1.5, *[3.0] * 20])
    assert min_eigenvalue(op, tol=1e-10) == pytest.approx(-1.5, rel=1e-8)
    assert top_eigenvalues(op, k=1, tol=1e-10).item() == pytest.approx(4.0, rel=1e-8)
    assert condition_number_estimate(op) == math.inf
    convex, _ = quadratic_operator([4.0, 2.0, 1.0, 0.5])
    assert min_eigenvalue(convex, tol=1e-10) == pytest.approx(0.5, rel=1e-8)


def test_condition_number_of_a_positive_definite_quadratic():
    op, _ = quadratic_operator(SPECTRUM)
    assert condition_number_estimate(op, tol=1e-10) == pytest.approx(10.0 / 0.1, rel=1e-6)


def test_lanczos_uses_far_fewer_products_than_power_iteration():
    """Same accuracy (1e-6 relative on the top-1 and top-3 eigenvalues): count Hessian-vector products."""
    truth = torch.tensor(SPECTRUM[:3], dtype=torch.float64)
    op, _ = quadratic_operator(SPECTRUM)
    top1 = top_eigenvalues(op, k=1, tol=1e-8)
    lanczos_products = op.num_products
    assert rel(top1, truth[:1]) < 1e-6

    # power iteration given twice Lanczos's products (tol=0: fixed-length runs) is still short of 1e-6
    power_op, _ = quadratic_operator(SPECTRUM)
    assert rel(power_iteration(power_op, k=1, iterations=2 * lanczos_products, tol=0.0), truth[:1]) > 1e-6
    assert power_op.num_products == 2 * lanczos_products
    op3, _ = quadratic_operator(SPECTRUM)
    assert rel(top_eigenvalues(op3, k=3, tol=1e-8), truth) < 1e-6
    power_op3, _ = quadratic_operator(SPECTRUM)  # k=3 with three times the products in all
    assert rel(power_iteration(power_op3, k=3, iterations=op3.num_products, tol=0.0), truth) > 1e-6


def test_power_iteration_baseline_converges():
    op, _ = quadratic_operator(SPECTRUM)
    got = power_iteration(op, k=2, iterations=1000, tol=1e-12)
    assert rel(got, torch.tensor(SPECTRUM[:2], dtype=torch.float64)) < 1e-6


def test_lanczos_tridiagonal_on_an_invariant_subspace():
    op, _ = quadratic_operator([3.0, 2.0, 1.0, 1.0, 1.0])  # three distinct eigenvalues: Krylov space of dim 3
    alpha, beta = lanczos(op, steps=10)
    assert alpha.shape == (3,) and beta.shape == (2,)
    t = torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)
    torch.testing.assert_close(torch.linalg.eigvalsh(t), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


def test_hutchinson_trace():
    op, _ = quadratic_operator(SPECTRUM)
    assert hessian_trace(op, samples=200) == pytest.approx(sum(SPECTRUM), rel=0.03)
    model, x, y = small_mlp()
    mlp = HessianOperator(model, F.cross_entropy, x, y)
    dense = mlp.dense()
    exact = float(torch.trace(dense))
    stderr = math.sqrt(2 * float((dense**2).sum() - (dense.diagonal() ** 2).sum()) / 400)
    assert abs(hessian_trace(mlp, samples=400) - exact) < 3 * stderr  # Hutchinson's variance, to 3 sigma
    diagonal, _ = quadratic_operator(SPECTRUM)
    diagonal.loss_fn = lambda out, y: 0.5 * (out * torch.tensor(SPECTRUM, dtype=torch.float64)) @ out
    assert hessian_trace(diagonal, samples=1) == pytest.approx(sum(SPECTRUM), rel=1e-12)  # exact for diagonal H


def test_spectral_density_integrates_to_one_and_sits_on_the_eigenvalues():
    clusters = {1.0: 20, 5.0: 10, 10.0: 30}
    spectrum = [lam for lam, n in clusters.items() for _ in range(n)]
    op, _ = quadratic_operator(spectrum)
    nodes, weights = spectral_quadrature(op, num_runs=30, lanczos_steps=10)
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-12)
    for lam, n in clusters.items():  # mass at each eigenvalue ~ its multiplicity / dim
        near = weights[(nodes - lam).abs() < 1e-6].sum().item()
        assert near == pytest.approx(n / len(spectrum), abs=0.06)
    grid, density = spectral_density(op, num_runs=30, lanczos_steps=10)
    assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, abs=1e-3)
    sigma = 0.01 * 9.0
    near_any = sum((grid - lam).abs() < 3 * sigma for lam in clusters)
    mass_near = torch.trapezoid(density * near_any, grid).item()
    assert mass_near > 0.99


def test_spectral_density_of_an_mlp_matches_its_eigenvalues():
    model, x, y = small_mlp()
    op = HessianOperator(model, F.cross_entropy, x, y)
    exact = torch.linalg.eigvalsh(op.dense())
    grid, density = spectral_density(op, num_runs=5, lanczos_steps=op.dim)
    assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, abs=1e-3)
    assert grid[0] < exact[0] and grid[-1] > exact[-1]
    mean = torch.trapezoid(grid * density, grid).item()
    assert mean == pytest.approx(exact.mean().item(), abs=0.02 * exact.abs().max().item())


def test_results_depend_on_the_seed_only():
    op, _ = quadratic_operator(SPECTRUM)
    assert torch.equal(top_eigenvalues(op, k=2, seed=3), top_eigenvalues(op, k=2, seed=3))
    assert hessian_trace(op, samples=5, seed=1) == hessian_trace(op, samples=5, seed=1)


def test_bad_arguments():
    op, _ = quadratic_operator([1.0, 2.0])
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        top_eigenvalues(op, k=0)
    with pytest.raises(ValueError, match="k must be <= dim = 2, got 3"):
        top_eigenvalues(op, k=3)
    repeated, _ = quadratic_operator([2.0, 2.0, 1.0])
    with pytest.raises(RuntimeError, match="only 2 distinct eigenvalues"):
        top_eigenvalues(repeated, k=3)
    with pytest.raises(ValueError, match="samples must be >= 1, got 0"):
        hessian_trace(op, samples=0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        spectral_density(op, sigma=-1.0)
