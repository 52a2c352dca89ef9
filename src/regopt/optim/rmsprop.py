"""RMSProp: Algorithm 8.5, and Algorithm 8.6 with Nesterov momentum."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from torch import Tensor

from regopt.optim.checks import check
from regopt.optim.flat import CompileMode, FlatOptimizer, Scalar, add_scaled_ratio_
from regopt.optim.nesterov import interim_point_, nesterov_theta, recover_theta_


def rmsprop_update(
    theta: Tensor,
    g: Tensor,
    r: Tensor,
    v: Tensor,
    *,
    lr: Scalar,
    rho: Scalar,
    delta: Scalar,
    alpha: Scalar,
    weight_decay: Scalar,
    decay: bool,
    momentum: bool,
    nesterov: bool,
    delta_inside_sqrt: bool,
) -> None:
    """Algorithms 8.5 and 8.6, one step (``v`` is unused without momentum)."""
    if decay:
        g = g + weight_decay * theta  # coupled L2
    r.mul_(rho).add_((1 - rho) * g * g)  # accumulate squared gradient: r <- rho r + (1 - rho) g ⊙ g
    root = (r + delta).sqrt_() if delta_inside_sqrt else r.sqrt().add_(delta)  # sqrt(delta + r)
    if not momentum:
        add_scaled_ratio_(theta, -lr, g, root)  # 8.5: theta <- theta + delta_theta, delta_theta = -eps g / root
        return
    if nesterov:
        recover_theta_(theta, alpha, v)  # parameters hold theta~ = theta + alpha v; recover theta
    add_scaled_ratio_(v.mul_(alpha), -lr, g, root)  # v <- alpha v - eps / sqrt(delta + r) ⊙ g (8.6: g at theta~)
    theta.add_(v)  # theta <- theta + v
    if nesterov:
        interim_point_(theta, alpha, v)  # 8.6, compute interim update: theta~ <- theta + alpha v


class RMSProp(FlatOptimizer):
    r"""RMSProp (Hinton 2012), as the chapter's Algorithm 8.5, and 8.6 with ``nesterov=True``.

    Update, with r initialized to 0::

        8.5  r <- rho r + (1 - rho) g ⊙ g;  delta_theta = -eps / sqrt(delta + r) ⊙ g;  theta <- theta + delta_theta
        8.6  theta~ <- theta + alpha v;  g <- grad L(theta~);  r <- rho r + (1 - rho) g ⊙ g
             v <- alpha v - eps / sqrt(r) ⊙ g;  theta <- theta + v

    With ``momentum > 0`` and ``nesterov=False`` the velocity takes the gradient at theta itself.

    Args:
        params: parameters or parameter groups.
        lr: global learning rate eps (> 0).
        rho: decay rate rho of the squared-gradient average, in [0, 1).
        eps: delta (the chapter: usually 1e-6).
        momentum: momentum coefficient alpha in [0, 1).
        nesterov: Algorithm 8.6 (needs ``momentum > 0``).
        weight_decay: coupled L2 coefficient added to g as ``weight_decay * theta``.
        eps_inside_sqrt: the chapter's sqrt(delta + r) (default) or torch's sqrt(r) + delta.
        compile: ``"auto"`` (default) updates eagerly, and compiles the update of a group of 1M+ elements
            only once the run is long enough to repay the compile (about 5 s for the first compiled step in a
            process; see ``regopt.optim.flat``); ``True`` compiles from the first step, ``False`` never.

    Example::

        >>> import torch
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = RMSProp(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
        >>> model(torch.ones(2, 3)).sum().backward(); _ = opt.step()

    Note:
        The chapter puts delta inside the square root (Algorithm 8.5); torch.optim.RMSprop and Keras add it
        outside (``eps_inside_sqrt=False`` matches torch, which then agrees to rounding, with torch's momentum
        buffer b = -v / lr while lr is constant). The chapter's Algorithm 8.6 has no delta at all; it is kept here
        (in the same place as 8.5) so that a zero r cannot divide by zero; set ``eps=0`` for the literal 8.6.
        As in :class:`regopt.optim.SGD`, Nesterov parameters hold the interim point theta + alpha v between
        steps; ``evaluation_view()`` swaps in theta.

    References:
        Hinton (2012), Neural Networks for Machine Learning, lecture 6e. Goodfellow et al. (2016), Algorithms
        8.5-8.6. Sutskever et al. (2013).
    """

    state_names = ("r", "v")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        rho: float = 0.9,
        eps: float = 1e-6,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        eps_inside_sqrt: bool = True,
        *,
        compile: CompileMode = "auto",
    ) -> None:
        check("lr", lr, lr > 0, "must be > 0")
        check("rho", rho, 0.0 <= rho < 1.0, "must be in [0, 1)")
        check("eps", eps, eps >= 0, "must be >= 0")
        check("momentum", momentum, 0.0 <= momentum < 1.0, "must be in [0, 1)")
        check("nesterov", nesterov, not nesterov or momentum > 0, "needs momentum > 0")
        check("weight_decay", weight_decay, weight_decay >= 0, "must be >= 0")
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "momentum": momentum,
            "nesterov": nesterov,
            "weight_decay": weight_decay,
            "eps_inside_sqrt": eps_inside_sqrt,
        }
        super().__init__(params, defaults, compile=compile)

    def update(self, group: dict[str, Any], theta: Tensor, g: Tensor, state: dict[str, Tensor], t: int) -> None:
        self.kernel(rmsprop_update, theta, t)(
            theta,
            g,
            state["r"],
            state["v"],
            lr=group["lr"],
            rho=group["rho"],
            delta=group["eps"],
            alpha=group["momentum"],
            weight_decay=group["weight_decay"],
            decay=group["weight_decay"] != 0,
            momentum=group["momentum"] > 0,
            nesterov=group["nesterov"],
            delta_inside_sqrt=group["eps_inside_sqrt"],
        )

    @contextlib.contextmanager
    def evaluation_view(self) -> Iterator[None]:
        """Within the block, Nesterov groups' parameters hold theta instead of theta + alpha v."""
        with nesterov_theta(self, "v"):
            yield
