"""Adam: Algorithm 8.7, with coupled L2 or decoupled weight decay (AdamW)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from regopt.optim.checks import check
from regopt.optim.flat import CompileMode, FlatOptimizer, Scalar, add_scaled_ratio_


def adam_update(
    theta: Tensor,
    g: Tensor,
    s: Tensor,
    r: Tensor,
    *,
    lr: Scalar,
    rho1: Scalar,
    rho2: Scalar,
    delta: Scalar,
    correction1: Scalar,
    correction2: Scalar,
    weight_decay: Scalar,
    decay: bool,
    decoupled: bool,
    delta_inside_sqrt: bool,
) -> None:
    """Algorithm 8.7, one step; ``correction1 = 1 - rho1^t`` and ``correction2 = 1 - rho2^t``."""
    if decay and decoupled:
        theta.mul_(1 - lr * weight_decay)  # AdamW: shrink theta apart from the gradient
    elif decay:
        g = g + weight_decay * theta  # coupled L2: alpha * theta added to g
    s.lerp_(g, 1 - rho1)  # update biased first moment: s <- rho1 s + (1 - rho1) g
    r.lerp_(g * g, 1 - rho2)  # update biased second moment: r <- rho2 r + (1 - rho2) g ⊙ g
    s_hat = s / correction1  # correct bias in first moment: s_hat <- s / (1 - rho1^t)
    r_hat = r / correction2  # correct bias in second moment: r_hat <- r / (1 - rho2^t)
    root = r_hat.add_(delta).sqrt_() if delta_inside_sqrt else r_hat.sqrt_().add_(delta)  # sqrt(r_hat + delta)
    add_scaled_ratio_(theta, -lr, s_hat, root)  # delta_theta = -eps s_hat / sqrt(r_hat + delta); theta += delta_theta


class Adam(FlatOptimizer):
    r"""Adam (Kingma & Ba 2015), as the chapter's Algorithm 8.7.

    Update at step t, with s = r = 0 initially::

        s <- rho1 s + (1 - rho1) g            r <- rho2 r + (1 - rho2) g ⊙ g
        s_hat <- s / (1 - rho1^t)             r_hat <- r / (1 - rho2^t)
        delta_theta = -eps s_hat / sqrt(r_hat + delta);   theta <- theta + delta_theta

    Args:
        params: parameters or parameter groups.
        lr: step size eps (seed default 0.001).
        betas: (rho1, rho2), decay rates of the moment estimates in [0, 1) (seed defaults 0.9, 0.999).
        eps: delta (seed default 1e-8).
        weight_decay: L2 coefficient: added to g as ``weight_decay * theta`` (coupled), or, with
            ``decoupled=True``, applied as theta <- theta - lr * weight_decay * theta (Loshchilov & Hutter 2019).
        decoupled: decoupled weight decay (AdamW).
        eps_inside_sqrt: the slide's sqrt(r_hat + delta) (default) or the book's and torch's sqrt(r_hat) + delta.
        compile: ``"auto"`` (default) updates eagerly, and compiles the update of a group of 1M+ elements
            only once the run is long enough to repay the compile (about 5 s for the first compiled step in a
            process; see ``regopt.optim.flat``); ``True`` compiles from the first step, ``False`` never.

    Example::

        >>> import torch
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = Adam(model.parameters(), lr=1e-3)
        >>> model(torch.ones(2, 3)).sum().backward(); _ = opt.step()

    Note:
        The lecture's slide writes sqrt(r_hat + delta); the book (Goodfellow et al. 2016, Algorithm 8.7), Kingma &
        Ba and torch.optim.Adam write sqrt(r_hat) + delta. The default follows the slide;
        ``eps_inside_sqrt=False`` reproduces torch.optim.Adam / AdamW to rounding. With delta = 1e-8 inside the
        root the floor on the denominator is 1e-4, which damps steps of parameters with tiny gradients.

    References:
        Kingma & Ba (2015), Adam: a method for stochastic optimization. Loshchilov & Hutter (2019), Decoupled
        weight decay regularization. Goodfellow et al. (2016), Algorithm 8.7.
    """

    state_names = ("s", "r")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
        eps_inside_sqrt: bool = True,
        *,
        compile: CompileMode = "auto",
    ) -> None:
        check("lr", lr, lr > 0, "must be > 0")
        check("betas", betas, len(betas) == 2 and all(0.0 <= b < 1.0 for b in betas), "both must be in [0, 1)")
        check("eps", eps, eps >= 0, "must be >= 0")
        check("weight_decay", weight_decay, weight_decay >= 0, "must be >= 0")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled": decoupled,
            "eps_inside_sqrt": eps_inside_sqrt,
        }
        super().__init__(params, defaults, compile=compile)

    def update(self, group: dict[str, Any], theta: Tensor, g: Tensor, state: dict[str, Tensor], t: int) -> None:
        rho1, rho2 = group["betas"]
        self.kernel(adam_update, theta, t)(
            theta,
            g,
            state["s"],
            state["r"],
            lr=group["lr"],
            rho1=rho1,
            rho2=rho2,
            delta=group["eps"],
            correction1=1 - rho1**t,
            correction2=1 - rho2**t,
            weight_decay=group["weight_decay"],
            decay=group["weight_decay"] != 0,
            decoupled=group["decoupled"],
            delta_inside_sqrt=group["eps_inside_sqrt"],
        )


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): :class:`Adam` with ``decoupled=True`` and
    ``weight_decay=1e-2`` by default (torch.optim.AdamW's default)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        eps_inside_sqrt: bool = True,
        *,
        compile: CompileMode = "auto",
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, decoupled=True, eps_inside_sqrt=eps_inside_sqrt, compile=compile
        )
