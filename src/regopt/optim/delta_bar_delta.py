"""Delta-bar-delta: per-weight learning rates that grow while the gradient keeps its sign (Jacobs 1988)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from regopt.optim.flat import FlatOptimizer, Scalar, check


def delta_bar_delta_update(
    theta: Tensor,
    g: Tensor,
    rate: Tensor,
    bar: Tensor,
    *,
    lr_scale: Scalar,
    kappa: Scalar,
    phi: Scalar,
    bar_weight: Scalar,
    weight_decay: Scalar,
    decay: bool,
) -> None:
    """One step of Jacobs' rule; ``rate`` holds the per-weight learning rates, ``bar`` the average bar-delta."""
    if decay:
        g = g + weight_decay * theta  # coupled L2
    agreement = bar * g  # delta_bar(t-1) * delta(t)
    rate.copy_(
        torch.where(agreement > 0, rate + kappa, torch.where(agreement < 0, rate - phi * rate, rate))
    )  # additive increase kappa on agreement, multiplicative decrease by phi on disagreement
    theta.sub_(lr_scale * rate * g)  # theta <- theta - eps_i * delta
    bar.lerp_(g, 1 - bar_weight)  # delta_bar(t) = (1 - theta) delta(t) + theta delta_bar(t-1)


class DeltaBarDelta(FlatOptimizer):
    r"""Delta-bar-delta (Jacobs 1988): a learning rate eps_i per weight, adapted by the sign of the gradient.

    With delta(t) = dL/dw_i the current gradient and delta_bar its exponential average::

        delta_bar(t) = (1 - theta) delta(t) + theta delta_bar(t-1)
        delta_eps_i(t) =  kappa            if delta_bar(t-1) delta(t) > 0   (same sign: grow additively)
                         -phi eps_i(t)     if delta_bar(t-1) delta(t) < 0   (sign flip: shrink geometrically)
                          0                otherwise
        w_i <- w_i - eps_i(t+1) delta(t)

    The per-weight rates start at ``lr``. A torch LR scheduler scales every rate by lr / (lr at the first step).

    Args:
        params: parameters or parameter groups.
        lr: initial per-weight learning rate eps_i(0) (> 0).
        kappa: additive increase (>= 0).
        phi: fraction of multiplicative decrease, in [0, 1).
        theta: weight of the past in the average delta_bar, in [0, 1).
        weight_decay: coupled L2 coefficient added to g as ``weight_decay * w``.
        compile: ``None`` compiles the update for large buckets only; ``True``/``False`` force it.

    Example::

        >>> model = torch.nn.Linear(3, 1)
        >>> opt = DeltaBarDelta(model.parameters(), lr=0.01, kappa=1e-3, phi=0.1, theta=0.7)
        >>> model(torch.ones(2, 3)).sum().backward(); _ = opt.step()

    Note:
        With ``kappa = phi = 0`` the rates never change and this is SGD with learning rate ``lr``. Designed for
        full-batch training; with noisy minibatch gradients the sign test flips often and the rates shrink.

    References:
        Jacobs (1988), Increased rates of convergence through learning rate adaptation. Goodfellow et al.
        (2016), sec. 8.5.
    """

    state_names = ("rate", "bar")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        kappa: float = 1e-4,
        phi: float = 0.1,
        theta: float = 0.7,
        weight_decay: float = 0.0,
        *,
        compile: bool | None = None,
    ) -> None:
        check("lr", lr, lr > 0, "must be > 0")
        check("kappa", kappa, kappa >= 0, "must be >= 0")
        check("phi", phi, 0.0 <= phi < 1.0, "must be in [0, 1)")
        check("theta", theta, 0.0 <= theta < 1.0, "must be in [0, 1)")
        check("weight_decay", weight_decay, weight_decay >= 0, "must be >= 0")
        defaults = {"lr": lr, "kappa": kappa, "phi": phi, "theta": theta, "weight_decay": weight_decay}
        super().__init__(params, defaults, compile=compile)

    def init_state(self, name: str, flat: Tensor, group: dict[str, Any]) -> None:
        group.setdefault("initial_rate", group["lr"])
        flat.fill_(group["initial_rate"] if name == "rate" else 0.0)

    def update(self, group: dict[str, Any], theta: Tensor, g: Tensor, state: dict[str, Tensor], t: int) -> None:
        self.kernel(delta_bar_delta_update, theta)(
            theta,
            g,
            state["rate"],
            state["bar"],
            lr_scale=group["lr"] / group.setdefault("initial_rate", group["lr"]),
            kappa=group["kappa"],
            phi=group["phi"],
            bar_weight=group["theta"],
            weight_decay=group["weight_decay"],
            decay=group["weight_decay"] != 0,
        )
