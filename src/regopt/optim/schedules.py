"""Learning-rate decay of Algorithm 8.1, as a factor for ``torch.optim.lr_scheduler.LambdaLR``."""

from __future__ import annotations

from collections.abc import Callable

from regopt.optim.checks import check


def linear_decay(tau: int, final_fraction: float = 0.01) -> Callable[[int], float]:
    """The chapter's decay eps_k = (1 - k/tau) eps_0 + (k/tau) eps_tau until k = tau, then eps_tau, as the factor
    eps_k / eps_0 for ``LambdaLR`` (with eps_tau = ``final_fraction`` * eps_0; the book suggests about 1%).

    Example::

        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        >>> schedule = torch.optim.lr_scheduler.LambdaLR(opt, linear_decay(tau=100, final_fraction=0.01))

    Reference: Goodfellow et al. (2016), sec. 8.3.1, eq. 8.14.
    """
    check("tau", tau, tau >= 1, "must be >= 1")
    check("final_fraction", final_fraction, 0.0 <= final_fraction <= 1.0, "must be in [0, 1]")

    def factor(k: int) -> float:
        a = min(k, tau) / tau
        return (1.0 - a) + a * final_fraction

    return factor
