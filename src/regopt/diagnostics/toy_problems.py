"""The chapter's "Challenges in Neural Network Optimization", worked on toy problems small enough to solve by hand.

- **Ill-conditioning** (the chapter's example): f(x) = 30 x^2, so f'(x) = 60 x and f''(x) = H = 60, inputs
  x0 in {3, 4, 50}, learning rates 0.033, 0.034, 0.035. Gradient descent multiplies x by (1 - 60 eps) each
  step, so it converges for eps < 2/60 = 1/30 and diverges above; the chapter's criterion
  (1/2) eps^2 g'Hg > eps g'g says the same (:func:`stable_lr_boundary`). Remedies: an adaptive method
  (:func:`adam_1d`) and input normalization (:func:`badly_scaled_least_squares`, :func:`standardize`).
- **Saddle points**: f(x, y) = x^2 - y^2 from next to the saddle (:func:`saddle_trajectories`).
- **Cliffs**: a smooth bowl with a steep drop in front of its minimum (:func:`cliff_loss`); an unclipped step
  on the cliff face jumps far away, a clipped one walks down (:func:`cliff_trajectories`).

Everything runs in float64 on the CPU in milliseconds to a second.

References:
    Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 8.2 (eq. 8.10, Fig. 8.3).
    Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent neural networks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from regopt.optim.adam import Adam
from regopt.optim.sgd import SGD

CURVATURE = 60.0
"""H = f''(x) of the chapter's f(x) = 30 x^2."""
SEED_INPUTS = (3.0, 4.0, 50.0)
SEED_LRS = (0.033, 0.034, 0.035)
F64 = torch.float64


def _tensor(x: float | Sequence[float] | Tensor) -> Tensor:
    return torch.as_tensor(x, dtype=F64).clone()


# --------------------------------------------------------------------------------------------- ill-conditioning


def gradient_descent_1d(
    x0: float | Sequence[float] | Tensor, lr: float, steps: int, curvature: float = CURVATURE
) -> Tensor:
    """Gradient descent on f(x) = (curvature/2) x^2 (the chapter's 30 x^2): x_{k+1} = x_k - lr * f'(x_k).

    Since f'(x) = curvature * x, each step multiplies x by (1 - lr * curvature): x_1 = 3 (1 - 60 * 0.033) =
    -2.94. ``x0`` may hold several inputs; returns the trajectory, shape ``(steps + 1, *x0.shape)``, float64,
    with x0 first.

    Example::

        >>> gradient_descent_1d([3.0, 4.0, 50.0], lr=0.033, steps=1)[1]
        tensor([ -2.9400,  -3.9200, -49.0000], dtype=torch.float64)
    """
    x = _tensor(x0)
    trajectory = [x]
    for _ in range(steps):
        g = curvature * x  # f'(x)
        x = x - lr * g
        trajectory.append(x)
    return torch.stack(trajectory)


def ill_conditioning_criterion(
    x: float | Sequence[float] | Tensor, lr: float | Sequence[float] | Tensor, curvature: float = CURVATURE
) -> Tensor:
    """The chapter's criterion (1/2) eps^2 g'Hg - eps g'g at x for f(x) = (curvature/2) x^2; positive means that
    the second-order term outweighs the first and a gradient step of size eps *raises* the cost.

    With g = f'(x) = curvature * x and H = curvature; ``x`` and ``lr`` broadcast against each other.
    """
    x, lr = _tensor(x), _tensor(lr)
    g = curvature * x
    return 0.5 * lr**2 * g * curvature * g - lr * g * g


def stable_lr_boundary(curvature: float = CURVATURE) -> float:
    """The learning rate where the criterion changes sign: 2 / H (1/30 for the chapter's f(x) = 30 x^2).

    Derivation: with g = H x, (1/2) eps^2 g H g - eps g g = eps g^2 (eps H / 2 - 1), which for eps > 0 and
    g != 0 is positive exactly when eps > 2/H, whatever x is. It is also the divergence boundary of gradient
    descent: x_{k+1} = (1 - eps H) x_k, and |1 - eps H| < 1 <=> 0 < eps < 2/H. So 0.033 < 1/30 = 0.0333...
    converges (multiplier -0.98) while 0.034 (-1.04) and 0.035 (-1.10) diverge, for every input.
    """
    return 2.0 / curvature


def adam_1d(
    x0: float | Sequence[float] | Tensor,
    lr: float = 1.0,
    steps: int = 300,
    curvature: float = CURVATURE,
    betas: tuple[float, float] = (0.9, 0.999),
) -> Tensor:
    """The same f(x) = (curvature/2) x^2 minimized with regopt's :class:`~regopt.optim.Adam`: returns the
    trajectory ``(steps + 1, *x0.shape)``.

    Adam divides the gradient by its running root-mean-square, so its step is about ``lr`` in units of x
    whatever f'' is: there is no boundary 2/H, and one lr serves inputs 3, 4 and 50 alike.
    """
    return _optimize(lambda x: 0.5 * curvature * (x**2).sum(), _tensor(x0), steps, lambda p: Adam(p, lr, betas))


@dataclass
class LeastSquaresRun:
    """Gradient descent on L(w) = ||Xw - y||^2 / (2n) from w = 0 at ``lr`` = 1/lambda_max(X'X/n)."""

    lr: float
    condition_number: float
    iterations: int | None
    """First iteration where (L - L*) / (L(0) - L*) <= tol; None if ``max_iters`` was not enough."""
    relative_gap: Tensor
    """(L(w_k) - L*) / (L(0) - L*) for k = 0..iterations."""


def badly_scaled_least_squares(
    n: int = 200, scales: Sequence[float] = (1.0, 100.0), *, seed: int = 0, noise: float = 0.1
) -> tuple[Tensor, Tensor]:
    """A linear regression whose features have very different scales: X[:, j] ~ N(0, scales[j]^2) and
    y = X w + noise with w_j = 1/scales[j] (every feature matters equally). X'X then has condition number
    about (max scale / min scale)^2."""
    g = torch.Generator().manual_seed(seed)
    scale = _tensor(scales)
    X = torch.randn(n, len(scale), generator=g, dtype=F64) * scale
    y = X @ (1.0 / scale) + noise * torch.randn(n, generator=g, dtype=F64)
    return X, y


def standardize(X: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Input normalization: every column of X to mean 0 and standard deviation 1; y centered."""
    return (X - X.mean(0)) / X.std(0), y - y.mean()


def condition_number(X: Tensor) -> float:
    """lambda_max / lambda_min of X'X, the Hessian of the least-squares loss up to the factor 1/n."""
    eigenvalues = torch.linalg.eigvalsh(X.T @ X)
    return float(eigenvalues[-1] / eigenvalues[0])


def least_squares_gd(
    X: Tensor, y: Tensor, *, tol: float = 1e-6, max_iters: int = 200_000, lr: float | None = None
) -> LeastSquaresRun:
    """Full-batch gradient descent on ||Xw - y||^2 / (2n) until the loss gap shrinks by ``tol``.

    The default lr is 1/lambda_max of the Hessian H = X'X/n (half the stability boundary 2/lambda_max, the
    many-dimensional form of 1/30 above); the slowest direction then shrinks by (1 - lambda_min/lambda_max)
    per step, so the iterations grow with the condition number.
    """
    n = X.shape[0]
    H, b = X.T @ X / n, X.T @ y / n
    eigenvalues = torch.linalg.eigvalsh(H)
    step = float(1.0 / eigenvalues[-1]) if lr is None else lr
    w_star = torch.linalg.solve(H, b)

    def gap(w: Tensor) -> Tensor:  # L(w) - L* = (w - w*)' H (w - w*) / 2, batched over rows of w
        e = w - w_star
        return 0.5 * ((e @ H) * e).sum(-1)

    w = torch.zeros_like(b)
    gap0 = gap(w)
    gaps, iterations, k = [torch.ones(1, dtype=F64)], None, 0
    while k < max_iters and iterations is None:
        chunk = []
        for _ in range(min(1000, max_iters - k)):
            w = w - step * (H @ w - b)  # gradient of L is X'(Xw - y)/n = Hw - b
            chunk.append(w)
        relative = gap(torch.stack(chunk)) / gap0
        below = torch.nonzero(relative <= tol)
        if len(below):
            iterations = k + int(below[0]) + 1
            relative = relative[: int(below[0]) + 1]
        gaps.append(relative)
        k += len(chunk)
    return LeastSquaresRun(step, float(eigenvalues[-1] / eigenvalues[0]), iterations, torch.cat(gaps))


# --------------------------------------------------------------------------------------------- saddle and cliff


@dataclass
class Trajectory:
    """Parameters, loss and gradient norm (before any clipping) at each step; ``params[0]`` is the start."""

    params: Tensor
    loss: Tensor
    grad_norm: Tensor


def _optimize(
    loss_fn: Callable[[Tensor], Tensor],
    start: Tensor,
    steps: int,
    make: Callable[[list[Tensor]], torch.optim.Optimizer],
    clip: float | None = None,
    record: list[tuple[float, float]] | None = None,
) -> Tensor:
    """Run ``make([theta])`` on ``loss_fn`` from ``start``; returns the parameters at every step. ``record``
    gets (loss, gradient norm) at each visited point."""
    theta = start.clone().requires_grad_(True)
    optimizer = make([theta])
    params = [start.clone()]
    for k in range(steps + 1):
        optimizer.zero_grad()
        loss = loss_fn(theta)
        loss.backward()
        assert theta.grad is not None
        if record is not None:
            record.append((float(loss.detach()), float(theta.grad.norm())))
        if k == steps:
            break
        if clip is not None:
            torch.nn.utils.clip_grad_norm_([theta], max_norm=clip)
        optimizer.step()
        params.append(theta.detach().clone())
    return torch.stack(params)


def _trajectory(
    loss_fn: Callable[[Tensor], Tensor],
    start: Tensor,
    steps: int,
    make: Callable[[list[Tensor]], torch.optim.Optimizer],
    clip: float | None = None,
) -> Trajectory:
    record: list[tuple[float, float]] = []
    params = _optimize(loss_fn, start, steps, make, clip, record)
    loss, grad_norm = torch.tensor(record, dtype=F64).unbind(1)
    return Trajectory(params, loss, grad_norm)


def saddle_loss(p: Tensor) -> Tensor:
    """f(x, y) = x^2 - y^2: a saddle at the origin, curving up along x and down along y (Hessian diag(2, -2))."""
    return p[..., 0] ** 2 - p[..., 1] ** 2


def saddle_trajectories(
    start: Sequence[float] = (1.0, 1e-3),
    steps: int = 60,
    *,
    lr: float = 0.1,
    momentum: float = 0.9,
    adam_lr: float | None = None,
) -> dict[str, Trajectory]:
    """Gradient descent, momentum (regopt :class:`~regopt.optim.SGD`) and :class:`~regopt.optim.Adam` on
    :func:`saddle_loss` from ``start``, one lr for all (``adam_lr`` overrides Adam's).

    Gradient descent multiplies y by (1 + 2 lr) per step (1.2 at lr 0.1), so from y = 1e-3 it needs ~38 steps
    to leave; momentum's growth factor is the root of r^2 - (1 + momentum + 2 lr) r + momentum (1.5 at lr 0.1,
    momentum 0.9); Adam's first step already moves y by ~lr whatever the gradient's size.
    """
    p0 = _tensor(start)
    makers: dict[str, Callable[[list[Tensor]], torch.optim.Optimizer]] = {
        "gradient descent": lambda p: SGD(p, lr=lr),
        "momentum": lambda p: SGD(p, lr=lr, momentum=momentum),
        "Adam": lambda p: Adam(p, lr=lr if adam_lr is None else adam_lr),
    }
    return {name: _trajectory(saddle_loss, p0, steps, make) for name, make in makers.items()}


def escape_step(trajectory: Trajectory | Tensor, threshold: float = 1.0) -> int | None:
    """First step k with |y_k| > ``threshold`` (y is the last coordinate); None if the trajectory never leaves."""
    params = trajectory.params if isinstance(trajectory, Trajectory) else trajectory
    out = torch.nonzero(params[..., -1].abs() > threshold)
    return int(out[0, 0]) if len(out) else None


CLIFF = {"bowl": 0.05, "center": 5.0, "height": 20.0, "edge": 2.0, "steepness": 25.0}
"""f(x) = bowl (x - center)^2 + height * sigmoid(-steepness (x - edge)): a 20-high plateau left of x = 2 that
drops within ~0.2 to a gentle bowl with its minimum at x = 5; the cliff face's slope reaches 125."""


def cliff_loss(x: Tensor) -> Tensor:
    """A bowl with a cliff in front of its minimum (see :data:`CLIFF`), summed over the elements of x."""
    c = CLIFF
    bowl = c["bowl"] * (x - c["center"]) ** 2
    return (bowl + c["height"] * torch.sigmoid(-c["steepness"] * (x - c["edge"]))).sum()


def cliff_trajectories(x0: float = 0.5, lr: float = 0.5, steps: int = 40, clip: float | None = None) -> Trajectory:
    """Gradient descent (regopt :class:`~regopt.optim.SGD`) on :func:`cliff_loss` from ``x0``, with the
    gradient clipped to norm ``clip`` by ``torch.nn.utils.clip_grad_norm_`` when given.

    Unclipped, a step that lands on the cliff face is lr * ~100 long: from the defaults, step 8 goes from x = 1.98
    to 59.5, past the minimum at 5, and the loss rises from 13 to 149, to come down again only slowly. Whether a
    step lands on the face depends on the start (about one start in four of -2.0, -1.9, ..., 1.0 does). Clipped
    to norm 1, no step exceeds lr, so the iterate walks down the face and into the bowl (Pascanu et al. 2013;
    Goodfellow et al. 2016, Fig. 8.3).
    """
    return _trajectory(cliff_loss, _tensor([x0]), steps, lambda p: SGD(p, lr=lr), clip)
