r"""Sparse representations (sec. 7.10): penalize activations h instead of weights, Omega(h) on hidden units.

    J~(theta; X, y) = J(theta; X, y) + alpha Omega(h)

:class:`ActivationL1` (Omega(h) = ||h||_1) and :class:`ActivationKL` (a target mean activation rho for sigmoid
units) record the chosen modules' outputs with forward hooks, so the model's code stays untouched;
:func:`activation_sparsity` measures the result (fraction of exactly-zero ReLU outputs).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from regopt._checks import check_alpha, is_real


class ActivationPenalty(ABC):
    """Base of the activation penalties: forward hooks record outputs, ``penalty(model)`` consumes them.

    Hooks record only while the hooked module is in training mode, and keep each module's most recent output
    (a module called twice in one forward counts once, with its last output). ``penalty(model)`` returns
    ``alpha * omega`` over what was recorded since the previous call and clears it, so call it once per
    forward pass; ``model`` is not used (the hooks know the modules) and may be omitted.
    """

    def __init__(self, alpha: float, modules: Sequence[nn.Module]) -> None:
        self.alpha = check_alpha(alpha)
        if isinstance(modules, nn.Module):
            modules = [modules]
        modules = list(modules)
        if not modules or not all(isinstance(m, nn.Module) for m in modules):
            raise ValueError(f"modules must be a non-empty sequence of nn.Module, got {modules!r}")
        self.modules = modules
        self._outputs: dict[int, Tensor] = {}
        self._handles: list[RemovableHandle] = [
            m.register_forward_hook(self._make_hook(i)) for i, m in enumerate(modules)
        ]

    def _make_hook(self, index: int):
        def hook(module: nn.Module, args: object, output: object) -> None:
            if not module.training:
                return
            if not isinstance(output, Tensor):
                raise TypeError(f"{type(self).__name__} needs modules that return a tensor, got {type(output)}")
            self._outputs[index] = output

        return hook

    @abstractmethod
    def omega(self, activations: list[Tensor]) -> Tensor:
        """The penalty over the recorded activations (non-empty), without the factor alpha."""

    def __call__(self, model: nn.Module | None = None) -> Tensor:
        """``alpha * omega(recorded activations)``, then forget them; 0 when nothing was recorded."""
        activations = [self._outputs[i] for i in sorted(self._outputs)]
        self._outputs.clear()
        if not activations:
            first = next(self.modules[0].parameters(), None)
            return first.new_zeros(()) if first is not None else torch.zeros(())
        if self.alpha == 0.0:
            return activations[0].new_zeros(())
        return self.alpha * self.omega(activations)

    def clear(self) -> None:
        """Drop recorded activations (e.g. after a forward pass that is not followed by a penalty)."""
        self._outputs.clear()

    def remove(self) -> None:
        """Remove the forward hooks; the penalty is 0 from then on."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._outputs.clear()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha}, modules={len(self.modules)})"


class ActivationL1(ActivationPenalty):
    r"""L1 penalty on hidden activations: Omega(h) = mean over examples of ||h||_1, summed over modules.

    Pushes representations (not weights) toward zero, so that most units are exactly 0 for a given input
    (with ReLU). For a recorded output h of shape (batch, ...)::

        alpha * sum_modules  (1 / batch) sum_{n, j} |h_{n, j}|

    Args:
        alpha: regularization rate, in [0, inf).
        modules: modules whose outputs are penalized, e.g. the ``nn.ReLU`` layers of an MLP.

    Example::

        >>> model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 1))
        >>> penalty = ActivationL1(1e-3, [model[1]])
        >>> loss = model(torch.randn(16, 4)).pow(2).mean() + penalty(model)
        >>> penalty.remove()

    References:
        Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 7.10.
        Glorot, Bordes & Bengio (2011), deep sparse rectifier neural networks.
    """

    def omega(self, activations: list[Tensor]) -> Tensor:
        total = activations[0].new_zeros(())
        for h in activations:
            batch = h.shape[0] if h.dim() > 0 else 1
            total = total + h.abs().sum() / batch
        return total


class ActivationKL(ActivationPenalty):
    r"""KL sparsity penalty for sigmoid units: sum_j KL(rho || rho_hat_j), rho_hat_j = mean_n h_{n, j}.

    Each unit's average activation over the batch is pulled toward a small target rho::

        KL(rho || rho_hat) = rho log(rho / rho_hat) + (1 - rho) log((1 - rho) / (1 - rho_hat))

    summed over units and modules. Activations must lie in (0, 1) (sigmoid outputs); rho_hat is clamped to
    [1e-6, 1 - 1e-6] to keep the logarithms finite.

    Args:
        alpha: regularization rate, in [0, inf).
        rho: target mean activation, in (0, 1), e.g. 0.05.
        modules: modules whose outputs are penalized (e.g. ``nn.Sigmoid`` layers).

    References:
        Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 7.10.
        Ng (2011), Sparse autoencoder, CS294A lecture notes; Lee, Ekanadham & Ng (2008).
    """

    def __init__(self, alpha: float, rho: float, modules: Sequence[nn.Module]) -> None:
        if not is_real(rho) or not 0.0 < rho < 1.0:
            raise ValueError(f"rho must be a number in (0, 1), got {rho!r}")
        super().__init__(alpha, modules)
        self.rho = float(rho)

    def omega(self, activations: list[Tensor]) -> Tensor:
        rho, eps = self.rho, 1e-6
        total = activations[0].new_zeros(())
        for h in activations:
            rho_hat = h.reshape(h.shape[0], -1).mean(dim=0).clamp(eps, 1.0 - eps)
            kl = rho * (math.log(rho) - rho_hat.log()) + (1 - rho) * (math.log(1 - rho) - (1 - rho_hat).log())
            total = total + kl.sum()
        return total


@torch.no_grad()
def activation_sparsity(model: nn.Module, x: Tensor, modules: Sequence[nn.Module]) -> float:
    """Fraction of exactly-zero outputs of ``modules`` when ``model(x)`` runs in eval mode under no_grad.

    The model's (and every submodule's) training flags are restored afterwards.

    Example::

        >>> model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 1))
        >>> 0.0 <= activation_sparsity(model, torch.randn(64, 4), [model[1]]) <= 1.0
        True
    """
    if isinstance(modules, nn.Module):
        modules = [modules]
    modules = list(modules)
    if not modules or not all(isinstance(m, nn.Module) for m in modules):
        raise ValueError(f"modules must be a non-empty sequence of nn.Module, got {modules!r}")
    counts = [0, 0]  # zeros, total

    def hook(module: nn.Module, args: object, output: object) -> None:
        if isinstance(output, Tensor):
            counts[0] += int((output == 0).sum())
            counts[1] += output.numel()

    flags = [(m, m.training) for m in model.modules()]
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        model.eval()
        model(x)
    finally:
        for handle in handles:
            handle.remove()
        for m, training in flags:
            m.training = training
    if counts[1] == 0:
        raise ValueError("modules produced no tensor output during model(x); are they part of the model?")
    return counts[0] / counts[1]
