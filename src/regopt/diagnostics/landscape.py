"""Loss landscape slices: 1-D linear interpolation and 2-D filter-normalized surfaces.

Two ways to look at a loss function of millions of parameters through a low-dimensional window:

- :func:`interpolate` evaluates the loss along the straight line ``theta(alpha) = (1 - alpha) theta_a +
  alpha theta_b`` (Goodfellow, Vinyals & Saxe 2015): from the initialization to the solution it is often a
  smooth, monotone descent, without the local minima and barriers one might fear (sec. 8.2); between two
  solutions it shows whether they lie in one basin. ``alpha`` may extend beyond ``[0, 1]``.
- :func:`loss_surface_2d` evaluates ``L(theta + a d1 + b d2)`` on a grid around the current parameters along two
  directions, usually from :func:`filter_normalized_direction` (Li et al. 2018), which rescales a random
  direction filter by filter to the model's own filter norms, so that surfaces of networks of different weight
  scale (see the rescaling symmetry, :mod:`regopt.diagnostics.symmetry`) can be compared.

Every function restores the model's parameters afterwards (also on an exception), and evaluates
``loss_of_model(model) -> float`` under ``torch.no_grad()``; put the model in the mode you want (usually
``model.eval()``) before calling.

Example::

    def loss_of_model(m): return F.cross_entropy(m(x), y).item()
    theta_final = dict(model.named_parameters())
    rows = interpolate(model, theta_init, theta_final, loss_of_model, torch.linspace(-0.5, 1.5, 41))
    plot_interpolation(rows, "interpolation.png")
    d1, d2 = filter_normalized_direction(model, 0), filter_normalized_direction(model, 1)
    plot_surface(loss_surface_2d(model, loss_of_model, d1, d2, extent=1.0, steps=21), "surface.png")

References:
    Goodfellow, Vinyals & Saxe (2015), "Qualitatively characterizing neural network optimization problems".
    Li, Xu, Taylor, Studer & Goldstein (2018), "Visualizing the Loss Landscape of Neural Nets".
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from regopt._checks import check_int, check_real

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Params = Mapping[str, Tensor] | Sequence[Tensor]
"""Parameters as a name -> tensor mapping (``dict(model.named_parameters())``, a ``state_dict``; extra entries
such as buffers are ignored) or a list of tensors in ``model.parameters()`` order."""

LossOfModel = Callable[[nn.Module], float]


def interpolate(
    model: nn.Module, theta_a: Params, theta_b: Params, loss_of_model: LossOfModel, alphas: Iterable[float]
) -> list[tuple[float, float]]:
    """The loss along the line ``(1 - alpha) theta_a + alpha theta_b``: a list of ``(alpha, loss)`` rows.

    At ``alpha = 0`` and ``1`` the parameters are exactly ``theta_a`` and ``theta_b``. The model's own parameters
    are restored afterwards.

    Args:
        model: the module whose parameters are set along the line.
        theta_a: the start (``alpha = 0``), see :data:`Params`.
        theta_b: the end (``alpha = 1``).
        loss_of_model: ``loss_of_model(model) -> float``, called under ``torch.no_grad()``.
        alphas: where to evaluate; values outside ``[0, 1]`` extrapolate the line.
    """
    a = _as_list(model, theta_a, "theta_a")
    b = _as_list(model, theta_b, "theta_b")
    params = list(model.parameters())
    rows = []
    with _restored(model), torch.no_grad():
        for alpha in alphas:
            alpha = float(alpha)
            for p, pa, pb in zip(params, a, b, strict=True):
                p.copy_((1 - alpha) * pa + alpha * pb)
            rows.append((alpha, float(loss_of_model(model))))
    return rows


def filter_normalized_direction(model: nn.Module, seed: int, *, ignore_1d: bool = True) -> list[Tensor]:
    """A random Gaussian direction in parameter space, normalized filter by filter (Li et al. 2018).

    For every parameter with ``dim >= 2`` a direction ``d ~ N(0, I)`` is drawn and each filter ``d[i]`` (a row of a
    ``Linear`` weight, an output channel of a convolution: index ``i`` along dimension 0) is rescaled to the norm
    of the model's filter: ``d[i] <- d[i] / ||d[i]|| * ||theta[i]||``. Parameters with ``dim <= 1`` (biases,
    normalization scales and shifts) get a zero direction: Li et al.'s convention (their ``ignore='biasbn'``),
    since these are few and perturbing them distorts the picture. With ``ignore_1d=False`` they get a copy of the
    parameter itself, Li et al.'s other option.

    Args:
        model: the module; returns one tensor per ``model.parameters()`` entry, same shape, dtype and device.
        seed: seeds a private ``torch.Generator`` (CPU), so the direction is reproducible.
        ignore_1d: zero (default) or copy the 1-D parameters.
    """
    generator = torch.Generator().manual_seed(seed)
    directions = []
    for p in model.parameters():
        theta = p.detach()
        if theta.dim() <= 1:
            directions.append(torch.zeros_like(theta) if ignore_1d else theta.clone())
            continue
        d = torch.randn(theta.shape, generator=generator, dtype=theta.dtype).to(theta.device)
        theta_norm = theta.flatten(1).norm(dim=1)
        d_norm = d.flatten(1).norm(dim=1).clamp_min(torch.finfo(theta.dtype).tiny)
        shape = (-1,) + (1,) * (theta.dim() - 1)
        directions.append(d * (theta_norm / d_norm).view(shape))
    return directions


def loss_surface_2d(
    model: nn.Module,
    loss_of_model: LossOfModel,
    d1: Params,
    d2: Params,
    extent: float = 1.0,
    steps: int = 21,
) -> tuple[Tensor, Tensor, Tensor]:
    """The loss on the plane ``theta + a d1 + b d2`` through the current parameters ``theta``.

    Returns ``(grid_a, grid_b, losses)``: the coordinates ``a`` and ``b`` (float64, ``steps`` values evenly
    spaced in ``[-extent, extent]``; for odd ``steps`` the middle one is exactly 0) and ``losses`` of shape
    ``(steps, steps)`` with ``losses[i, j] = L(theta + grid_a[i] d1 + grid_b[j] d2)``. The model's parameters are
    restored afterwards.

    Args:
        model: the module; ``theta`` is its current parameters.
        loss_of_model: ``loss_of_model(model) -> float``, called under ``torch.no_grad()``.
        d1, d2: directions (see :data:`Params`), e.g. from :func:`filter_normalized_direction`.
        extent: half-width of the grid (> 0).
        steps: points per axis (>= 2).
    """
    check_real("extent", extent, positive=True)
    check_int("steps", steps, 2)
    u = _as_list(model, d1, "d1")
    v = _as_list(model, d2, "d2")
    params = list(model.parameters())
    theta = [p.detach().clone() for p in params]
    coords = extent * (torch.arange(steps, dtype=torch.float64) * 2 / (steps - 1) - 1)
    losses = torch.empty(steps, steps, dtype=torch.float64)
    with _restored(model), torch.no_grad():
        for i, a in enumerate(coords.tolist()):
            for j, b in enumerate(coords.tolist()):
                for p, t, du, dv in zip(params, theta, u, v, strict=True):
                    p.copy_(t + a * du + b * dv)
                losses[i, j] = float(loss_of_model(model))
    return coords, coords.clone(), losses


def plot_interpolation(
    rows: Sequence[tuple[float, float]], path: str | Path, *, title: str = "", logy: bool = False
) -> None:
    """Plot :func:`interpolate`'s ``(alpha, loss)`` rows, marking ``theta_a`` (alpha 0) and ``theta_b`` (1); save
    a PNG at ``path`` atomically."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    alphas = [row[0] for row in rows]
    ax.plot(alphas, [row[1] for row in rows], marker=".", color="tab:blue")
    for x, label in ((0.0, r"$\theta_a$"), (1.0, r"$\theta_b$")):
        ax.axvline(x, color="gray", linestyle=":")
        ax.annotate(label, (x, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(r"$\alpha$ in $(1-\alpha)\,\theta_a + \alpha\,\theta_b$")
    ax.set_ylabel("loss")
    ax.set_title(title or "Linear interpolation (Goodfellow et al. 2015)", pad=16)
    ax.grid(alpha=0.3)
    save_png(fig, path)


def plot_surface(
    grid: tuple[Tensor, Tensor, Tensor], path: str | Path, *, title: str = "", levels: int = 30, log: bool = False
) -> None:
    """Contour plot of :func:`loss_surface_2d`'s ``(grid_a, grid_b, losses)``, the center (the model) marked;
    ``log=True`` contours ``log10(loss)``. Saves a PNG at ``path`` atomically."""
    from matplotlib.figure import Figure

    grid_a, grid_b, losses = (torch.as_tensor(t, dtype=torch.float64).cpu() for t in grid)
    z = losses.log10() if log else losses
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    # contour wants z[y, x]; losses[i, j] is at (a_i, b_j), so x = a, y = b, z = losses.T
    filled = ax.contourf(grid_a.numpy(), grid_b.numpy(), z.T.numpy(), levels=levels, cmap="viridis")
    ax.contour(
        grid_a.numpy(), grid_b.numpy(), z.T.numpy(), levels=levels, colors="k", linewidths=0.3, linestyles="solid"
    )
    fig.colorbar(filled, ax=ax, label="log10 loss" if log else "loss")
    ax.plot([0.0], [0.0], marker="*", color="red", markersize=10, linestyle="none", label=r"$\theta$")
    ax.set_xlabel(r"$a$ (direction $d_1$)")
    ax.set_ylabel(r"$b$ (direction $d_2$)")
    ax.set_title(title or r"$L(\theta + a\,d_1 + b\,d_2)$")
    ax.legend(loc="upper right")
    save_png(fig, path)


def save_png(fig: Figure, path: str | Path) -> None:
    """Save a matplotlib ``Figure`` as PNG at ``path`` atomically: a temporary file in the same directory, then
    ``os.replace``, so an error never leaves a half-written figure (or destroys the previous one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the figure an ordinary file's permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _restored(model: nn.Module) -> Iterator[None]:
    """Restore ``model``'s parameter values (in place, same tensors) when the block ends, even on an error."""
    saved = [p.detach().clone() for p in model.parameters()]
    try:
        yield
    finally:
        with torch.no_grad():
            for p, value in zip(model.parameters(), saved, strict=True):
                p.copy_(value)


def _as_list(model: nn.Module, theta: Params, name: str) -> list[Tensor]:
    """``theta`` as detached copies in ``model.parameters()`` order, each checked against its parameter's shape
    and cast to its dtype and device."""
    named = list(model.named_parameters())
    if isinstance(theta, Mapping):
        missing = [n for n, _ in named if n not in theta]
        if missing:
            raise ValueError(f"{name} lacks parameters {missing}")
        values = [theta[n] for n, _ in named]
    else:
        values = list(theta)
        if len(values) != len(named):
            raise ValueError(f"{name} has {len(values)} tensors, the model has {len(named)} parameters")
    out = []
    for (param_name, p), value in zip(named, values, strict=True):
        value = torch.as_tensor(value)
        if value.shape != p.shape:
            raise ValueError(f"{name}[{param_name!r}] has shape {tuple(value.shape)}, expected {tuple(p.shape)}")
        # a copy: ``theta`` may be the model's own parameters (``dict(model.named_parameters())``), overwritten below
        out.append(value.detach().to(device=p.device, dtype=p.dtype, copy=True))
    return out
