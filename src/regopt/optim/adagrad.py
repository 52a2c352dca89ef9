"""AdaGrad: Algorithm 8.4."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from regopt.optim.checks import check
from regopt.optim.flat import CompileMode, FlatOptimizer, Scalar, add_scaled_ratio_


def adagrad_update(
    theta: Tensor, g: Tensor, r: Tensor, *, lr: Scalar, delta: Scalar, weight_decay: Scalar, decay: bool
) -> None:
    """Algorithm 8.4, one step."""
    if decay:
        g = g + weight_decay * theta  # coupled L2
    r.add_(g * g)  # accumulate squared gradient: r <- r + g ⊙ g
    root = r.sqrt().add_(delta)  # delta + sqrt(r)
    add_scaled_ratio_(theta, -lr, g, root)  # theta <- theta + delta_theta, delta_theta = -eps / (delta + sqrt(r)) ⊙ g


class AdaGrad(FlatOptimizer):
    r"""AdaGrad (Duchi, Hazan & Singer 2011), as the chapter's Algorithm 8.4.

    Update, with r initialized to 0::

        r <- r + g ⊙ g
        delta_theta <- -eps / (delta + sqrt(r)) ⊙ g
        theta <- theta + delta_theta

    Args:
        params: parameters or parameter groups.
        lr: global learning rate eps (> 0).
        eps: delta, the small constant for numerical stability (the chapter: perhaps 1e-7).
        weight_decay: coupled L2 coefficient added to g as ``weight_decay * theta``.
        compile: ``"auto"`` (default) updates eagerly, and compiles the update of a group of 1M+ elements
            only once the run is long enough to repay the compile (about 5 s for the first compiled step in a
            process; see ``regopt.optim.flat``); ``True`` compiles from the first step, ``False`` never.

    Example::

        >>> import torch
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = AdaGrad(model.parameters(), lr=0.1)
        >>> model(torch.ones(2, 3)).sum().backward(); _ = opt.step()

    Note:
        Equals ``torch.optim.Adagrad`` with ``lr_decay=0`` and ``initial_accumulator_value=0``: both add delta
        outside the square root.

    References:
        Duchi, Hazan & Singer (2011), Adaptive subgradient methods. Goodfellow et al. (2016), Algorithm 8.4.
    """

    state_names = ("r",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        eps: float = 1e-7,
        weight_decay: float = 0.0,
        *,
        compile: CompileMode = "auto",
    ) -> None:
        check("lr", lr, lr > 0, "must be > 0")
        check("eps", eps, eps >= 0, "must be >= 0")
        check("weight_decay", weight_decay, weight_decay >= 0, "must be >= 0")
        super().__init__(params, {"lr": lr, "eps": eps, "weight_decay": weight_decay}, compile=compile)

    def update(self, group: dict[str, Any], theta: Tensor, g: Tensor, state: dict[str, Tensor], t: int) -> None:
        self.kernel(adagrad_update, theta, t)(
            theta,
            g,
            state["r"],
            lr=group["lr"],
            delta=group["eps"],
            weight_decay=group["weight_decay"],
            decay=group["weight_decay"] != 0,
        )


__all__ = ["AdaGrad", "adagrad_update"]
