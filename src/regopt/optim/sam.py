"""Sharpness-aware minimization (SAM, Foret et al. 2021): a base optimizer stepped with the gradient taken at the
worst point of a small ball around the parameters (ASAM's scale-invariant ball as an option)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from regopt.optim.checks import check_bool, check_real

__all__ = ["SAM", "differentiates_closure", "needs_closure"]

_KEY = "sam"  # the param_groups[0] key of state_dict() holding rho and adaptive
_TINY = 1e-12  # added to ||g|| as in the reference implementation (davda54/sam): a zero gradient ascends by 0


def needs_closure(optimizer: Optimizer) -> bool:
    """Whether ``optimizer.step`` must be given a closure that re-evaluates the loss and its gradient: optimizers
    that declare ``needs_closure = True`` (SAM, the second-order methods) and ``torch.optim.LBFGS``."""
    return bool(getattr(optimizer, "needs_closure", False)) or isinstance(optimizer, torch.optim.LBFGS)


def differentiates_closure(optimizer: Optimizer) -> bool:
    """Whether ``optimizer.step``'s closure must *return* the loss with its graph, without calling ``backward``:
    the optimizer differentiates it itself (twice, for curvature). These optimizers (Newton, HessianFree) declare
    ``differentiates_closure = True`` and take a ``(loss, output)`` pair; after the step ``.grad`` holds the
    gradient at the starting point. Every other closure optimizer's closure runs ``backward`` (torch's
    convention)."""
    return bool(getattr(optimizer, "differentiates_closure", False))


class SAM(Optimizer):
    r"""Sharpness-aware minimization: step a base optimizer with the gradient at the ascent point of a rho-ball.

    SAM minimizes the sharpness-aware loss ``max_{||e|| <= rho} L(theta + e)``, whose inner maximum it takes to
    first order. One step, with g = grad L(theta) (the minibatch gradient)::

        e      = rho * g / (||g|| + 1e-12)                  # ascent to the (first-order) worst point of the ball
        g_SAM  = grad L(theta + e)                           # second forward and backward, through the closure
        theta <- base_step(theta, g_SAM)                    # the base optimizer's update, taken from theta

    ``||g||`` is the 2-norm over all parameters. With ``adaptive=True`` (ASAM, Kwon et al. 2021, with eta = 0 as
    in davda54/sam) the ball is scaled elementwise by T = |theta|::

        e = rho * T^2 g / (||T g|| + 1e-12)

    which makes the step invariant to rescaling the weights (ASAM's paper uses larger radii, e.g. rho = 2).

    ``step(closure)`` is the normal path: ``closure`` zeroes the gradients, recomputes the loss on the *same*
    batch, runs backward and returns the loss (as ``torch.optim.LBFGS``'s); ``step`` calls it twice, at theta
    (for g: whatever ``.grad`` held before is not used, so a loop never steps with a stale gradient) and at
    theta + e. A loop that has g in ``.grad`` already calls the pieces instead: :meth:`first_step` (ascend to
    theta + e from ``.grad``), its own second backward, then :meth:`second_step` (restore theta exactly, step
    the base).

    The base optimizer is any ``torch.optim.Optimizer`` (regopt's or torch's) that the caller built over the same
    parameters, and that steps from ``.grad`` without a closure. ``param_groups`` and ``state`` *are* the base's
    (the same objects), so an LR scheduler built on the SAM optimizer changes the base's ``lr``, and
    :meth:`state_dict` is the base's (torch's layout, with ``rho`` and ``adaptive`` in the first group under
    ``"sam"``), so a checkpoint resumes the base's moments.

    Args:
        params: the parameters (or parameter groups) the base optimizer was built over.
        base_optimizer: the optimizer that takes the step, e.g. ``regopt.optim.SGD(model.parameters(), lr=0.1)``.
        rho: radius of the neighbourhood (> 0); 0.05 is the paper's default on CIFAR.
        adaptive: ASAM's scale-invariant neighbourhood.

    Example::

        >>> import torch
        >>> from regopt.optim import SGD
        >>> model = torch.nn.Linear(3, 1)
        >>> x, y = torch.randn(8, 3), torch.randn(8, 1)
        >>> opt = SAM(model.parameters(), SGD(model.parameters(), lr=0.1), rho=0.05)
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = torch.nn.functional.mse_loss(model(x), y)
        ...     loss.backward()
        ...     return loss
        >>> loss = opt.step(closure)  # two forward and backward passes

    Note:
        A step costs two forward and backward passes. Hooks registered with torch's global
        ``register_optimizer_step_post_hook`` hear both the SAM step and the base's. Parameters whose gradient is
        None at theta are not perturbed (the base still steps them if the second pass gives them a gradient).

    References:
        Foret, Kleiner, Mobahi & Neyshabur (2021), Sharpness-Aware Minimization for Efficiently Improving
        Generalization, ICLR. Kwon, Kim, Park & Choi (2021), ASAM: Adaptive Sharpness-Aware Minimization for
        Scale-Invariant Learning of Deep Neural Networks, ICML. https://github.com/davda54/sam (the API shape).
    """

    needs_closure = True

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: Optimizer,
        rho: float = 0.05,
        adaptive: bool = False,
    ) -> None:
        if not isinstance(base_optimizer, Optimizer):
            kind = type(base_optimizer).__name__
            raise ValueError(f"base_optimizer must be a torch.optim.Optimizer built over the params, got {kind}")
        if needs_closure(base_optimizer):
            raise ValueError(
                f"base_optimizer: {type(base_optimizer).__name__} needs a closure of its own; SAM steps its base "
                "once from the gradient at the ascent point"
            )
        check_real("rho", rho, positive=True)
        check_bool("adaptive", adaptive)
        super().__init__(params, {"rho": rho, "adaptive": adaptive})  # torch's checks of params; groups replaced
        ours = {id(p) for group in self.param_groups for p in group["params"]}
        theirs = {id(p) for group in base_optimizer.param_groups for p in group["params"]}
        if ours != theirs:
            raise ValueError(
                f"base_optimizer must be built over SAM's params: {len(ours - theirs)} of SAM's {len(ours)} "
                f"parameters are not the base's, and the base has {len(theirs - ours)} others"
            )
        self.base_optimizer = base_optimizer
        self.rho, self.adaptive = float(rho), adaptive
        self.defaults = {**base_optimizer.defaults, "rho": self.rho, "adaptive": adaptive}
        self._share_base()
        self._theta: dict[Tensor, Tensor] = {}  # theta, kept between first_step and second_step
        if hasattr(base_optimizer, "evaluation_view"):  # e.g. Nesterov's theta~ -> theta for evaluation
            self.evaluation_view = base_optimizer.evaluation_view

    def _share_base(self) -> None:
        """Make ``param_groups`` and ``state`` the base's own objects (again after it loads a state dict)."""
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    # ------------------------------------------------------------------------------------------ stepping
    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Ascend from theta to theta + e (see the class docstring), keeping theta; ``zero_grad`` then drops the
        gradients for the second pass."""
        if self._theta:
            raise RuntimeError("SAM.first_step: the previous first_step was not followed by second_step")
        with_grad = [(p, p.grad) for p in self._params() if p.grad is not None]
        if not with_grad:
            return
        scaled = [(p.abs() * g if self.adaptive else g) for p, g in with_grad]  # T g
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(s) for s in scaled]))  # ||T g||
        scale = self.rho / (norm + _TINY)
        for (p, _), s in zip(with_grad, scaled, strict=True):
            self._theta[p] = p.detach().clone()
            p.add_((p.abs() * s if self.adaptive else s) * scale)  # theta + rho T^2 g / ||T g||
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore theta exactly (a copy, not a subtraction) and step the base optimizer with the gradients now in
        ``.grad`` (those at theta + e); ``zero_grad`` then drops them."""
        for p, theta in self._theta.items():
            p.copy_(theta)
        self._theta.clear()
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One SAM step: the closure at theta (g), the ascent, the closure at theta + e, and the base's step from
        theta. Returns the loss at theta (the first closure's)."""
        if closure is None:
            raise ValueError(
                "SAM.step needs a closure that zeroes the gradients, recomputes the loss on the same batch, runs "
                "backward and returns the loss (or call first_step and second_step around your own backward)"
            )
        closure = torch.enable_grad()(closure)
        loss = closure()
        self.first_step(zero_grad=True)
        closure()
        self.second_step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """The base's ``zero_grad`` (regopt's flat optimizers zero their flat gradient buffer in one fill)."""
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if "base_optimizer" not in self.__dict__:  # called by Optimizer.__init__
            super().add_param_group(param_group)
            return
        raise NotImplementedError("SAM cannot add param groups; add them to the base optimizer and build SAM again")

    # ------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """The base optimizer's state dict, with ``{"rho", "adaptive"}`` under ``"sam"`` in its first group (a group
        key, since ``torch.distributed.checkpoint`` keeps only ``state`` and ``param_groups``)."""
        if self._theta:
            raise RuntimeError("SAM.state_dict: called between first_step and second_step (theta is perturbed)")
        state = self.base_optimizer.state_dict()
        groups = [dict(group) for group in state["param_groups"]]
        groups[0][_KEY] = {"rho": self.rho, "adaptive": self.adaptive}
        return {**state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:  # type: ignore[override]
        """Restore what :meth:`state_dict` returned: the base's state, and rho and adaptive (as torch restores
        ``lr``)."""
        groups = list(state_dict["param_groups"])
        sam = groups[0].get(_KEY) if groups and isinstance(groups[0], Mapping) else None
        if not isinstance(sam, Mapping) or not {"rho", "adaptive"} <= set(sam):
            raise ValueError(f"state_dict's param_groups[0] has no {_KEY!r} entry with rho and adaptive (not SAM's)")
        groups[0] = {key: value for key, value in groups[0].items() if key != _KEY}
        self.base_optimizer.load_state_dict({**state_dict, "param_groups": groups})
        self._share_base()  # torch's load_state_dict gives the base new group dicts
        self.rho, self.adaptive = float(sam["rho"]), bool(sam["adaptive"])
        self.defaults.update(rho=self.rho, adaptive=self.adaptive)
