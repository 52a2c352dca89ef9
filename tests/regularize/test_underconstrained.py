"""Sec. 7.3: with more features than examples X'X is singular, X'X + alpha I is not, and ridge -> pinv."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from regopt.regularize import (
    RidgePoint,
    gram_condition_number,
    pseudo_inverse_solution,
    regularized_gram,
    ridge_path,
    ridge_solution,
)


@pytest.fixture
def wide() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(20, 50, generator=g), torch.randn(20, generator=g)


def test_gram_is_singular_and_ridge_makes_it_invertible(wide):
    x, _ = wide
    assert torch.linalg.matrix_rank(regularized_gram(x)).item() == 20
    singular = gram_condition_number(x)
    regularized = gram_condition_number(x, 0.1)
    assert singular > 1e10 or math.isinf(singular)
    assert math.isfinite(regularized) and regularized < 1e5 and regularized < singular * 1e-6
    # eigenvalues of X'X + alpha I are those of X'X shifted by alpha
    lam = torch.linalg.eigvalsh(regularized_gram(x.double()))
    assert regularized == pytest.approx((lam.max().item() + 0.1) / (lam.clamp_min(0).min().item() + 0.1), rel=1e-6)


def test_ridge_solves_the_regularized_normal_equations(wide):
    x, y = wide
    x64, y64 = x.double(), y.double()
    for method in ("auto", "primal", "dual"):
        w = ridge_solution(x, y, 0.3, method=method)
        assert w.dtype == torch.float64 and w.shape == (50,)
        residual = (x64.T @ x64 + 0.3 * torch.eye(50, dtype=torch.float64)) @ w - x64.T @ y64
        assert residual.abs().max().item() < 1e-10, method
    multi = ridge_solution(x, torch.stack([y, 2 * y], dim=1), 0.3)
    torch.testing.assert_close(multi[:, 1], 2 * ridge_solution(x, y, 0.3))


def test_ridge_path_approaches_the_pseudo_inverse(wide):
    x, y = wide
    alphas = [10.0**-k for k in range(0, 9)]  # 1 ... 1e-8
    path = ridge_path(x, y, alphas)
    assert all(isinstance(p, RidgePoint) for p in path) and [p.alpha for p in path] == alphas
    distances = [p.distance for p in path]
    conditions = [p.condition for p in path]
    assert all(a > b for a, b in itertools.pairwise(distances)), distances
    assert distances[-1] < 1e-4 and distances[0] > 1e-2
    assert all(a < b for a, b in itertools.pairwise(conditions)), conditions
    pinv = pseudo_inverse_solution(x, y)
    torch.testing.assert_close(x.double() @ pinv, y.double())  # interpolates: an exact fit exists...
    w = ridge_solution(x, y, 1e-8)
    assert w.norm() <= pinv.norm() + 1e-6  # ...and ridge's limit is the minimum-norm one


def test_overdetermined_limit_is_least_squares():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(60, 5, generator=g), torch.randn(60, generator=g)
    lstsq = torch.linalg.lstsq(x.double(), y.double().unsqueeze(1)).solution.squeeze(1)
    torch.testing.assert_close(ridge_solution(x, y, 1e-10), lstsq, rtol=0, atol=1e-8)
    torch.testing.assert_close(pseudo_inverse_solution(x, y), lstsq, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x, y: ridge_solution(x, y, 0.0), r"alpha must be a finite number > 0, got 0\.0"),
        (lambda x, y: ridge_solution(x, y, -1.0), r"alpha must be .*got -1\.0"),
        (lambda x, y: ridge_solution(x, y, 0.1, method="qr"), r"method must be .*got 'qr'"),
        (lambda x, y: ridge_solution(x[0], y, 0.1), r"x must be a 2-D tensor .*got shape \(50,\)"),
        (lambda x, y: ridge_solution(x, y[:5], 0.1), r"y must be a tensor of shape \(20,\) .*got shape \(5,\)"),
        (lambda x, y: ridge_path(x, y, []), r"alphas must hold at least one value"),
        (lambda x, y: ridge_path(x, y, [1.0, float("nan")]), r"alpha must be .*got nan"),
        (lambda x, y: gram_condition_number(x, -0.5), r"alpha must be a finite number >= 0, got -0\.5"),
    ],
)
def test_bad_arguments(wide, call, message):
    with pytest.raises(ValueError, match=message):
        call(*wide)
