r"""The Hessian's spectrum without forming it: Lanczos eigenvalues, Hutchinson trace, spectral density.

All functions take a :class:`~regopt.diagnostics.hessian_operator.HessianOperator` (or anything with
``matvec``, ``dim``, ``dtype`` and ``device``: :class:`~regopt.diagnostics.probes.LinearOperator`) and use only
Hessian-vector products; independent ones (the runs of :func:`spectral_quadrature`) go as blocks through ``matmat``.

- :func:`top_eigenvalues` / :func:`min_eigenvalue`: Lanczos with full reorthogonalization. After m products,
  the Krylov space ``span{v, Hv, ..., H^(m-1) v}`` holds the best polynomial of degree m-1, where power
  iteration uses only ``H^(m-1) v``; both ends of the spectrum converge at once, at about the square root of
  power iteration's number of products when the top eigenvalues are close (Golub & Van Loan, sec. 10.1).
  A negative minimum means a saddle direction (Goodfellow et al. 2016, sec. 8.2.3).
- :func:`hessian_trace` (from :mod:`~regopt.diagnostics.trace`): Hutchinson's and Hutch++'s estimators.
- :func:`spectral_quadrature` / :func:`spectral_density`: stochastic Lanczos quadrature (Ghorbani et al.
  2019): the eigenvalues ``theta_j`` of each run's tridiagonal matrix, weighted by the squared first components
  ``tau_j`` of its eigenvectors, smoothed with a Gaussian kernel.
- :func:`power_iteration`: the baseline (PyHessian's method), for comparison.

Example:
    >>> import torch
    >>> from regopt.diagnostics.hessian_operator import HessianOperator
    >>> model = torch.nn.Linear(3, 1, bias=False)
    >>> x = torch.diag(torch.tensor([1.0, 2.0, 3.0]))
    >>> op = HessianOperator(model, torch.nn.functional.mse_loss, x, torch.zeros(3, 1))  # H = 2/3 x'x
    >>> [round(v, 4) for v in top_eigenvalues(op, k=2).tolist()]
    [6.0, 2.6667]

References:
    Lanczos, C. (1950). An iteration method for the solution of the eigenvalue problem of linear differential
    and integral operators. J. Res. Nat. Bur. Standards 45.
    Hutchinson, M. F. (1989). A stochastic estimator of the trace of the influence matrix for Laplacian
    smoothing splines. Comm. Statist. Simulation Comput. 18(3).
    Ghorbani, B., Krishnan, S. & Xiao, Y. (2019). An investigation into neural net optimization via Hessian
    eigenvalue density. ICML.
    Yao, Z., Gholami, A., Keutzer, K. & Mahoney, M. (2020). PyHessian: Neural networks through the lens of the
    Hessian. IEEE BigData.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from regopt.diagnostics.probes import (
    LinearOperator,
    apply_block,
    balanced_step,
    check_at_least,
    random_block,
    random_vector,
)
from regopt.diagnostics.trace import hessian_trace

__all__ = [
    "LinearOperator",
    "condition_number_estimate",
    "hessian_trace",
    "lanczos",
    "min_eigenvalue",
    "power_iteration",
    "spectral_density",
    "spectral_quadrature",
    "top_eigenvalues",
]


def _ritz(alphas: list[float], betas: list[float]) -> tuple[Tensor, Tensor]:
    """Eigenvalues (ascending) and eigenvectors of the tridiagonal matrix T (float64)."""
    a = torch.tensor(alphas, dtype=torch.float64)
    b = torch.tensor(betas[: len(alphas) - 1], dtype=torch.float64)
    t = torch.diag(a) + torch.diag(b, 1) + torch.diag(b, -1)
    return torch.linalg.eigh(t)


class _LanczosState:
    """One Lanczos run with full reorthogonalization: its basis, ``alphas``, ``betas`` and norm estimate."""

    def __init__(self, op: LinearOperator, steps: int, v0: Tensor) -> None:
        self.basis = torch.empty(steps, op.dim, dtype=op.dtype, device=op.device)
        self.basis[0] = v0 / torch.linalg.vector_norm(v0)
        self.alphas: list[float] = []
        self.betas: list[float] = []
        self.norm = 0.0
        self.breakdown = 100 * torch.finfo(op.dtype).eps

    def step(self, w: Tensor) -> bool:
        """Take ``w = H q_j`` for the newest basis vector; returns whether the run can go on (no invariant
        subspace, room for another vector)."""
        j = len(self.alphas)
        q = self.basis[j]
        alpha = float(torch.dot(w, q))
        w = w - alpha * q
        if j > 0:
            w = w - self.betas[-1] * self.basis[j - 1]
        basis = self.basis[: j + 1]
        for _ in range(2):  # full reorthogonalization, twice is enough (Kahan-Parlett)
            w = w - basis.T @ (basis @ w)
        beta = float(torch.linalg.vector_norm(w))
        self.alphas.append(alpha)
        self.betas.append(beta)
        self.norm = max(self.norm, abs(alpha) + beta + (self.betas[-2] if j > 0 else 0.0))
        if beta <= self.breakdown * max(self.norm, 1e-300) or j + 1 == len(self.basis):
            return False
        self.basis[j + 1] = w / beta
        return True


def _lanczos_run(
    op: LinearOperator, steps: int, v0: Tensor, converged: Callable[[Tensor, Tensor, float], bool] | None = None
) -> tuple[list[float], list[float]]:
    """Lanczos with full reorthogonalization; stops after ``steps``, on an invariant subspace, or once
    ``converged(ritz_values, ritz_residuals, norm_estimate)`` holds. Returns ``alphas`` and ``betas`` (the
    last beta is the residual norm after the final step)."""
    run = _LanczosState(op, min(steps, op.dim), v0)
    while run.step(op.matvec(run.basis[len(run.alphas)])):
        if converged is not None:
            theta, s = _ritz(run.alphas, run.betas)
            if converged(theta, (run.betas[-1] * s[-1]).abs(), run.norm):
                break
    return run.alphas, run.betas


def _lanczos_block(op: LinearOperator, steps: int, starts: Tensor) -> list[tuple[list[float], list[float]]]:
    """Independent Lanczos runs (one per row of ``starts``) in lockstep: each step multiplies the runs still
    going as one block (``matmat``); each run's arithmetic is :func:`_lanczos_run`'s."""
    runs = [_LanczosState(op, min(steps, op.dim), v0) for v0 in starts]
    active = list(runs)
    while active:
        products = apply_block(op, torch.stack([run.basis[len(run.alphas)] for run in active]))
        active = [run for run, w in zip(active, products, strict=True) if run.step(w)]
    return [(run.alphas, run.betas) for run in runs]


def lanczos(op: LinearOperator, steps: int, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``steps`` Lanczos steps from a Gaussian start vector: the tridiagonal matrix's diagonal ``alpha``
    (length m <= steps; shorter on an invariant subspace) and off-diagonal ``beta`` (length m - 1), float64."""
    check_at_least("steps", steps)
    alphas, betas = _lanczos_run(op, steps, random_vector(op, seed))
    return torch.tensor(alphas, dtype=torch.float64), torch.tensor(betas[:-1], dtype=torch.float64)


def _floor(op: LinearOperator, norm: float) -> float:
    return 10 * torch.finfo(op.dtype).eps * norm  # residuals below this are rounding: converged


def top_eigenvalues(
    op: LinearOperator, k: int = 1, *, iterations: int = 100, tol: float = 1e-5, seed: int = 0
) -> Tensor:
    r"""The ``k`` largest (algebraic) eigenvalues of H, descending, by Lanczos.

    Stops once each wanted Ritz value ``theta_i`` has residual ``|beta_m s_mi| <= tol * |theta_i|``: H then has
    an eigenvalue within ``tol * |theta_i|`` of ``theta_i`` (the error is usually far smaller, about
    ``residual^2 / gap``), or after ``iterations`` products.

    Args:
        op: the Hessian operator.
        k: how many eigenvalues (default 1).
        iterations: the most Hessian-vector products (default 100).
        tol: relative residual tolerance (default 1e-5).
        seed: seed of the random start vector (default 0).

    Returns:
        float64 tensor of shape ``(k,)``.

    Note:
        Lanczos from one start vector sees each *distinct* eigenvalue once: an exactly repeated eigenvalue fills
        one of the k slots (rounding sometimes reveals a copy later). Network Hessians rarely have exact
        repeats; where they matter, :func:`power_iteration` with deflation resolves them, at many more products.
    """
    check_at_least("k", k)
    check_at_least("iterations", iterations, k)
    if k > op.dim:
        raise ValueError(f"k must be <= dim = {op.dim}, got {k}")

    def converged(theta: Tensor, res: Tensor, norm: float) -> bool:
        if theta.numel() < k:
            return False
        top, r = theta[-k:], res[-k:]
        return bool(((r <= tol * top.abs()) | (r <= _floor(op, norm))).all())

    alphas, betas = _lanczos_run(op, iterations, random_vector(op, seed), converged)
    theta = _ritz(alphas, betas)[0]
    if theta.numel() < k:
        raise RuntimeError(
            f"Lanczos found an invariant subspace with only {theta.numel()} distinct eigenvalues (k = {k}): H has "
            "repeated eigenvalues or the start vector misses part of the spectrum; try power_iteration or another seed"
        )
    return theta[-k:].flip(0)


def min_eigenvalue(op: LinearOperator, *, iterations: int = 100, tol: float = 1e-5, seed: int = 0) -> float:
    r"""The most negative (smallest algebraic) eigenvalue of H, by Lanczos.

    A negative value means a direction of negative curvature: a saddle point, not a minimum. Accuracy is
    relative to the spectral norm (residual ``<= tol * ||H||``), since near a minimum the smallest eigenvalues
    of a network's Hessian cluster around zero: trust the sign only when ``|value| > tol * ||H||``.
    """
    check_at_least("iterations", iterations)

    def converged(theta: Tensor, res: Tensor, norm: float) -> bool:
        return bool(res[0] <= max(tol * norm, _floor(op, norm)))

    alphas, betas = _lanczos_run(op, iterations, random_vector(op, seed), converged)
    return float(_ritz(alphas, betas)[0][0])


def condition_number_estimate(op: LinearOperator, *, iterations: int = 100, tol: float = 1e-5, seed: int = 0) -> float:
    """``lambda_max / lambda_min`` for a positive definite H from one Lanczos run (both ends converge together);
    ``inf`` when the smallest eigenvalue is <= ``tol * lambda_max`` (singular or indefinite H)."""
    check_at_least("iterations", iterations)

    def converged(theta: Tensor, res: Tensor, norm: float) -> bool:
        low, high = float(theta[0]), float(theta[-1])
        return bool(float(res[0]) <= max(tol * abs(low), _floor(op, norm)) and float(res[-1]) <= tol * abs(high))

    alphas, betas = _lanczos_run(op, iterations, random_vector(op, seed), converged)
    theta = _ritz(alphas, betas)[0]
    low, high = float(theta[0]), float(theta[-1])
    return high / low if high > 0 and low > tol * high else math.inf


def power_iteration(
    op: LinearOperator, k: int = 1, *, iterations: int = 100, tol: float = 1e-3, seed: int = 0
) -> Tensor:
    """The baseline: the ``k`` largest-magnitude eigenvalues by power iteration with deflation (PyHessian's
    method): for each, iterate ``v <- Hv / ||Hv||`` orthogonal to the eigenvectors found so far, until the
    Rayleigh quotient changes by less than ``tol`` relatively, or for ``iterations`` products."""
    check_at_least("k", k)
    check_at_least("iterations", iterations)
    found: list[Tensor] = []
    values: list[float] = []
    for i in range(k):
        v = random_vector(op, seed + i)
        value = math.nan
        for _ in range(iterations):
            for u in found:
                v = v - torch.dot(u, v) * u
            v = v / torch.linalg.vector_norm(v)
            hv = op.matvec(v)
            new = float(torch.dot(hv, v))
            done = not math.isnan(value) and abs(new - value) <= tol * (abs(value) + 1e-6)
            value, v = new, hv
            if done:
                break
        found.append(v / torch.linalg.vector_norm(v))
        values.append(value)
    return torch.tensor(values, dtype=torch.float64)


def spectral_quadrature(
    op: LinearOperator, *, num_runs: int = 10, lanczos_steps: int = 50, seed: int = 0, block_size: int = 10
) -> tuple[Tensor, Tensor]:
    """Stochastic Lanczos quadrature: nodes ``theta_j`` and weights ``tau_j / num_runs`` (summing to 1) over
    ``num_runs`` Lanczos runs of ``lanczos_steps`` from Gaussian start vectors (seeds ``seed``, ``seed + 1``,
    ...; float64, concatenated). The runs are independent: ``block_size`` of them go in lockstep, one block of
    products (``matmat``) per step, holding ``block_size * lanczos_steps`` basis vectors."""
    check_at_least("num_runs", num_runs)
    check_at_least("lanczos_steps", lanczos_steps)
    check_at_least("block_size", block_size)
    nodes, weights = [], []
    step = balanced_step(num_runs, block_size)
    for first in range(0, num_runs, step):
        starts = random_block(op, range(seed + first, seed + min(first + step, num_runs)))
        for alphas, betas in _lanczos_block(op, lanczos_steps, starts):
            theta, s = _ritz(alphas, betas)
            nodes.append(theta)
            weights.append(s[0] ** 2 / num_runs)
    return torch.cat(nodes), torch.cat(weights)


def spectral_density(
    op: LinearOperator,
    *,
    num_runs: int = 10,
    lanczos_steps: int = 50,
    seed: int = 0,
    grid_points: int = 1000,
    sigma: float | None = None,
    block_size: int = 10,
) -> tuple[Tensor, Tensor]:
    """The Hessian's eigenvalue density by stochastic Lanczos quadrature, smoothed with a Gaussian kernel.

    ``density(t) = sum_j tau_j N(t; theta_j, sigma^2)`` on a grid padded by ``6 sigma`` beyond the extreme nodes,
    so it integrates to 1 (use ``torch.trapezoid(density, grid)``).

    Args:
        op: the Hessian operator.
        num_runs: independent Lanczos runs averaged (default 10).
        lanczos_steps: Hessian-vector products per run (default 50).
        seed: seed of the start vectors (default 0).
        block_size: runs multiplied together as one block (default 10; see :func:`spectral_quadrature`).
        grid_points: grid size (default 1000).
        sigma: kernel width (default: 1% of the spread of the nodes).

    Returns:
        ``(grid, density)``, float64 tensors of shape ``(grid_points,)``.
    """
    check_at_least("grid_points", grid_points, 2)
    nodes, weights = spectral_quadrature(
        op, num_runs=num_runs, lanczos_steps=lanczos_steps, seed=seed, block_size=block_size
    )
    low, high = float(nodes.min()), float(nodes.max())
    if sigma is None:
        sigma = 0.01 * (high - low) if high > low else 1e-3 * max(1.0, abs(high))
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    grid = torch.linspace(low - 6 * sigma, high + 6 * sigma, grid_points, dtype=torch.float64)
    kernel = torch.exp(-0.5 * ((grid[:, None] - nodes[None, :]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return grid, kernel @ weights
