"""Adversarial examples: the fast gradient sign method and projected gradient descent (L-infinity and L2).

An adversarial example is an input ``x' = x + delta`` inside a small ball ``||delta|| <= eps`` around a
training or test input on which the model's loss is as large as the attack can make it (Szegedy et al. 2014;
Goodfellow, Bengio & Courville 2016, sec. 7.13)::

    FGSM   x' = x + eps * sign(grad_x L(f(x), y))                               (one step, L-infinity ball)
    PGD    x^0 = x + uniform noise in the ball;  repeat `steps` times:
               x^{k+1} = Proj_ball(x^k + step_size * sign(grad))                 (norm="linf")
               x^{k+1} = Proj_ball(x^k + step_size * grad / ||grad||_2)          (norm="l2", per example)

Every attack runs the model in ``eval()`` mode (dropout off, batch-norm statistics frozen) and puts each module
back in the mode it was in; it differentiates with respect to the *input* only (``torch.autograd.grad``), so no
``.grad`` is left on the parameters. ``clamp=(low, high)`` keeps the adversarial input inside the valid range of
the data (``(0, 1)`` for the digits); clamping only moves each coordinate back towards ``x``, so the result
stays in the ball when ``x`` itself lies in the range. The returned tensors are detached.

:class:`FGSM` and :class:`PGD` are the same attacks as objects with fixed settings, called as
``attack(model, loss_fn, x, y)``: the form :class:`~regopt.adversarial.AdversarialTraining`,
:class:`~regopt.adversarial.AdversarialBatches` and :func:`~regopt.adversarial.robust_accuracy` take.

References:
    Szegedy et al. (2014), Intriguing properties of neural networks; Goodfellow, Shlens & Szegedy (2015),
    Explaining and harnessing adversarial examples; Madry et al. (2018), Towards deep learning models resistant
    to adversarial attacks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
from torch import Tensor, nn

from regopt._checks import check_int, check_real, is_finite_real

LossFn = Callable[[Tensor, Tensor], Tensor]
Attack = Callable[[nn.Module, LossFn, Tensor, Tensor], Tensor]
NORMS = ("linf", "l2")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module of ``model`` in ``eval()`` mode inside the block and restore each one's mode after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def _check_clamp(clamp: tuple[float, float] | None) -> tuple[float, float] | None:
    if clamp is None:
        return None
    if not (isinstance(clamp, (tuple, list)) and len(clamp) == 2 and float(clamp[0]) <= float(clamp[1])):
        raise ValueError(f"clamp must be None or a pair (low, high) with low <= high, got {clamp!r}")
    return float(clamp[0]), float(clamp[1])


def input_gradient(model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor) -> Tensor:
    """``grad_x loss_fn(model(x), y)``, without touching any parameter's ``.grad`` (the model's mode is kept)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        loss = loss_fn(model(x), y)
        (grad,) = torch.autograd.grad(loss, x, materialize_grads=True)
    return grad


def _per_example_norm(t: Tensor) -> Tensor:
    """L2 norm of each example of ``t``, shaped ``(N, 1, ..., 1)`` to broadcast against ``t``."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def _project(delta: Tensor, eps: float, norm: str) -> Tensor:
    """Project each example of ``delta`` onto the ``norm`` ball of radius ``eps``."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    return delta * (eps / _per_example_norm(delta).clamp_min(1e-12)).clamp(max=1.0)


def _apply(x: Tensor, delta: Tensor, clamp: tuple[float, float] | None) -> Tensor:
    x_adv = x + delta
    return x_adv if clamp is None else x_adv.clamp(*clamp)


def fgsm(
    model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, eps: float, *, clamp: tuple[float, float] | None = None
) -> Tensor:
    """Fast gradient sign method: ``x + eps * sign(grad_x loss_fn(model(x), y))`` (Goodfellow et al. 2015).

    The steepest ascent step of the linearized loss inside the L-infinity ball of radius ``eps``.

    Args:
        model: the classifier (run in ``eval()`` mode for the attack; its modes are restored).
        loss_fn: ``(output, y) -> scalar``, e.g. ``F.cross_entropy``.
        x, y: a batch of inputs (examples first) and targets.
        eps: radius of the L-infinity ball, >= 0.
        clamp: ``(low, high)`` valid range of the inputs, or ``None``.

    Returns:
        The adversarial batch, detached, of the shape of ``x``.

    Example::

        >>> model = nn.Linear(4, 3)
        >>> x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
        >>> x_adv = fgsm(model, nn.functional.cross_entropy, x, y, eps=0.1, clamp=(0.0, 1.0))
        >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
        True
    """
    eps, clamp = check_real("eps", eps), _check_clamp(clamp)
    x = x.detach()
    if eps == 0:
        return x.clone()
    with eval_mode(model):
        grad = input_gradient(model, loss_fn, x, y)
    return _apply(x, eps * grad.sign(), clamp).detach()


def _random_start(x: Tensor, eps: float, norm: str, generator: torch.Generator | None) -> Tensor:
    """A point drawn uniformly from the ``norm`` ball of radius ``eps`` around each example (as a ``delta``)."""

    def draw(kind: Callable[..., Tensor], shape: tuple[int, ...]) -> Tensor:
        return kind(shape, generator=generator, dtype=x.dtype).to(x.device)

    if norm == "linf":
        return eps * (2 * draw(torch.rand, tuple(x.shape)) - 1)
    direction = draw(torch.randn, tuple(x.shape))
    direction = direction / _per_example_norm(direction).clamp_min(1e-12)
    dim = x[0].numel()
    radius = eps * draw(torch.rand, (len(x),)) ** (1.0 / max(dim, 1))  # uniform in the ball's volume
    return direction * radius.view(-1, *([1] * (x.dim() - 1)))


def _pgd_step(eps: float, norm: str, step_size: float | None, steps: int, generator: torch.Generator | None) -> float:
    """Check PGD's settings and return its step size (default ``2.5 * eps / steps``)."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    check_int("steps", steps, 1)
    if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
        raise ValueError(f"generator must be None or a CPU torch.Generator, got {generator!r}")
    if step_size is None:
        return 2.5 * eps / steps
    ok = is_finite_real(step_size)
    if not ok or step_size <= 0:
        raise ValueError(f"step_size must be None or a finite number > 0, got {step_size!r}")
    return float(step_size)


def pgd(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    norm: Literal["linf", "l2"] = "linf",
    step_size: float | None = None,
    steps: int = 10,
    random_start: bool = True,
    clamp: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Projected gradient descent on the negative loss inside an ``eps`` ball (Madry et al. 2018).

    Starting from ``x`` (or a uniform random point of the ball with ``random_start``), ``steps`` times::

        linf:  delta <- clamp(delta + step_size * sign(g), -eps, eps)
        l2:    delta <- delta + step_size * g / ||g||_2;  delta <- delta * min(1, eps / ||delta||_2)

    with ``g = grad_x loss_fn(model(x + delta), y)`` and norms taken per example; then ``x + delta`` is clamped
    to ``clamp``. The last iterate is returned (Madry's convention), not the best one seen.

    Args:
        model, loss_fn, x, y: as for :func:`fgsm`.
        eps: radius of the ball, >= 0.
        norm: ``"linf"`` (default) or ``"l2"``.
        step_size: ascent step (L-infinity: per coordinate; L2: length of the step); default ``2.5 * eps /
            steps``, Madry et al.'s choice, which lets the iterate cross the ball and still reach its surface.
        steps: number of ascent steps, >= 1.
        random_start: start from a uniform random point of the ball instead of ``x``.
        clamp: ``(low, high)`` valid range of the inputs, or ``None``.
        generator: a CPU ``torch.Generator`` for the random start (default: torch's global RNG).

    Returns:
        The adversarial batch, detached, with ``||x_adv - x|| <= eps`` for each example.

    Example::

        >>> model = nn.Linear(4, 3)
        >>> x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
        >>> x_adv = pgd(model, nn.functional.cross_entropy, x, y, eps=0.5, norm="l2", steps=5)
        >>> bool(((x_adv - x).norm(dim=1) <= 0.5 + 1e-6).all())
        True
    """
    eps, clamp = check_real("eps", eps), _check_clamp(clamp)
    step = _pgd_step(eps, norm, step_size, steps, generator)
    x = x.detach()
    if eps == 0:
        return x.clone()
    delta = _random_start(x, eps, norm, generator) if random_start else torch.zeros_like(x)
    delta = _apply(x, delta, clamp) - x
    with eval_mode(model):
        for _ in range(steps):
            grad = input_gradient(model, loss_fn, x + delta, y)
            if norm == "linf":
                delta = delta + step * grad.sign()
            else:
                delta = delta + step * grad / _per_example_norm(grad).clamp_min(1e-12)
            delta = _apply(x, _project(delta, eps, norm), clamp) - x
    return (x + delta).detach()


class FGSM:
    """:func:`fgsm` with fixed ``eps`` and ``clamp``, called as ``attack(model, loss_fn, x, y)``.

    Example::

        >>> attack = FGSM(eps=0.1, clamp=(0.0, 1.0))
        >>> attack
        FGSM(eps=0.1, clamp=(0.0, 1.0))
    """

    def __init__(self, eps: float, *, clamp: tuple[float, float] | None = None) -> None:
        self.eps, self.clamp = check_real("eps", eps), _check_clamp(clamp)

    def __call__(self, model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor) -> Tensor:
        return fgsm(model, loss_fn, x, y, self.eps, clamp=self.clamp)

    def __repr__(self) -> str:
        return f"FGSM(eps={self.eps}, clamp={self.clamp})"


class PGD:
    """:func:`pgd` with fixed settings, called as ``attack(model, loss_fn, x, y)``; arguments as for :func:`pgd`.

    Example::

        >>> attack = PGD(eps=0.1, steps=10, generator=torch.Generator().manual_seed(0))
        >>> attack
        PGD(eps=0.1, norm='linf', step_size=0.025, steps=10, random_start=True, clamp=None)
    """

    def __init__(
        self,
        eps: float,
        *,
        norm: Literal["linf", "l2"] = "linf",
        step_size: float | None = None,
        steps: int = 10,
        random_start: bool = True,
        clamp: tuple[float, float] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.eps, self.clamp = check_real("eps", eps), _check_clamp(clamp)
        self.step_size = _pgd_step(self.eps, norm, step_size, steps, generator)
        self.norm, self.steps, self.random_start, self.generator = norm, steps, random_start, generator

    def _kwargs(self) -> dict[str, Any]:
        return {
            "norm": self.norm,
            "step_size": self.step_size,
            "steps": self.steps,
            "random_start": self.random_start,
            "clamp": self.clamp,
            "generator": self.generator,
        }

    def __call__(self, model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor) -> Tensor:
        return pgd(model, loss_fn, x, y, self.eps, **self._kwargs())

    def __repr__(self) -> str:
        return (
            f"PGD(eps={self.eps}, norm={self.norm!r}, step_size={self.step_size:.4g}, steps={self.steps}, "
            f"random_start={self.random_start}, clamp={self.clamp})"
        )
