"""Stochastic gradient descent: Algorithms 8.1 (plain), 8.2 (momentum) and 8.3 (Nesterov momentum)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from torch import Tensor

from regopt.optim.checks import check
from regopt.optim.flat import CompileMode, FlatOptimizer, Scalar, add_scaled_
from regopt.optim.nesterov import interim_point_, nesterov_theta, recover_theta_


def sgd_update(theta: Tensor, g: Tensor, *, lr: Scalar, weight_decay: Scalar, decay: bool) -> None:
    """Algorithm 8.1: theta <- theta - eps * g."""
    if decay:
        g = g + weight_decay * theta  # coupled L2: gradient of alpha/2 ||theta||^2 added to g
    add_scaled_(theta, -lr, g)  # apply update: theta <- theta - eps g


def momentum_update(
    theta: Tensor, g: Tensor, v: Tensor, *, lr: Scalar, alpha: Scalar, weight_decay: Scalar, decay: bool, nesterov: bool
) -> None:
    """Algorithms 8.2 and 8.3: v <- alpha v - eps g; theta <- theta + v.

    With ``nesterov`` the parameters hold the interim point theta~ = theta + alpha v, where the caller's loop
    took the gradient g, so theta is recovered first and the next interim point is written back.
    """
    if decay:
        g = g + weight_decay * theta
    if nesterov:
        recover_theta_(theta, alpha, v)  # parameters hold theta~ = theta + alpha v; recover theta
    add_scaled_(v.mul_(alpha), -lr, g)  # compute velocity update: v <- alpha v - eps g (8.3: g taken at theta~)
    theta.add_(v)  # apply update: theta <- theta + v
    if nesterov:
        interim_point_(theta, alpha, v)  # 8.3, apply interim update: theta~ <- theta + alpha v


class SGD(FlatOptimizer):
    r"""Stochastic gradient descent with optional (Nesterov) momentum, as the chapter's Algorithms 8.1-8.3.

    Update at step k, with g the minibatch gradient::

        8.1  theta <- theta - eps_k g
        8.2  v <- alpha v - eps g;  theta <- theta + v
        8.3  theta~ <- theta + alpha v;  g <- grad L(theta~);  v <- alpha v - eps g;  theta <- theta + v

    Args:
        params: parameters or parameter groups.
        lr: learning rate eps (> 0).
        momentum: momentum parameter alpha in [0, 1); 0 gives Algorithm 8.1.
        nesterov: Algorithm 8.3 (needs ``momentum > 0``).
        weight_decay: coupled L2 coefficient: ``weight_decay * theta`` is added to g (the chapter's alpha*W).
        compile: ``"auto"`` (default) updates eagerly, and compiles the update of a group of 1M+ elements
            only once the run is long enough to repay the compile (about 5 s for the first compiled step in a
            process; see ``regopt.optim.flat``); ``True`` compiles from the first step, ``False`` never.

    Example::

        >>> import torch
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        >>> model(torch.ones(2, 3)).sum().backward(); _ = opt.step()

    Note:
        torch.optim.SGD keeps b <- mu b + g and steps theta <- theta - lr b; here v carries eps inside it, as in
        the chapter (v = -lr b). The two agree while lr is constant and differ once a schedule changes lr: here a
        new lr affects only new gradients, not the velocity already accumulated.

        Nesterov follows the chapter: the gradient is taken at the interim point theta + alpha v. Between steps
        the parameters *hold* that interim point, so any ordinary training loop computes the right gradient,
        and ``evaluation_view()`` swaps in theta itself for evaluation. The parameters then coincide with
        torch's ``nesterov=True`` (Sutskever et al. 2013's change of variables) while lr is constant.

    References:
        Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 8.3, Algorithms 8.1-8.3.
        Polyak (1964); Nesterov (1983); Sutskever, Martens, Dahl & Hinton (2013).
    """

    state_names = ("v",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        *,
        compile: CompileMode = "auto",
    ) -> None:
        check("lr", lr, lr > 0, "must be > 0")
        check("momentum", momentum, 0.0 <= momentum < 1.0, "must be in [0, 1)")
        check("nesterov", nesterov, not nesterov or momentum > 0, "needs momentum > 0")
        check("weight_decay", weight_decay, weight_decay >= 0, "must be >= 0")
        defaults = {"lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay}
        super().__init__(params, defaults, compile=compile)

    def update(self, group: dict[str, Any], theta: Tensor, g: Tensor, state: dict[str, Tensor], t: int) -> None:
        wd, alpha = group["weight_decay"], group["momentum"]
        common = {"lr": group["lr"], "weight_decay": wd, "decay": wd != 0}
        if alpha == 0 and wd == 0:
            theta.add_(g, alpha=-group["lr"])  # Algorithm 8.1 is itself one in-place axpy: no kernel to compile
        elif alpha == 0:
            self.kernel(sgd_update, theta, t)(theta, g, **common)
        else:
            self.kernel(momentum_update, theta, t)(
                theta, g, state["v"], alpha=alpha, nesterov=group["nesterov"], **common
            )

    @contextlib.contextmanager
    def evaluation_view(self) -> Iterator[None]:
        """Within the block, Nesterov groups' parameters hold theta instead of the interim point theta + alpha v;
        they are restored exactly afterwards. A no-op for groups without Nesterov momentum."""
        with nesterov_theta(self, "v"):
            yield
