r"""Parameter norm penalties (sec. 7.1) and parameter tying (sec. 7.9): ``loss = task_loss + penalty(model)``.

Each penalty is the chapter's regularized objective J~(theta) = J(theta) + alpha * Omega(theta): ``penalty(model)``
returns ``alpha * Omega`` over the selected parameters (default: weights, not biases or normalization
parameters; see :class:`~regopt.regularize.selection.Selector`), as a scalar to add to the task loss.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from regopt._checks import check_alpha, check_real, is_real
from regopt.regularize.selection import Selector


def _stacked(values: Sequence[Tensor]) -> Tensor:
    """Per-tensor scalars as one vector (dtypes promote; moved to the first tensor's device)."""
    device = values[0].device
    return torch.stack([v if v.device == device else v.to(device) for v in values])


def squared_l2(params: list[Tensor]) -> Tensor:
    """sum_i ||w_i||_2^2 over all tensors, from one ``_foreach_norm`` call (gradient 2w)."""
    return _stacked(torch._foreach_norm(params, 2)).square().sum()


def l1(params: list[Tensor]) -> Tensor:
    """sum_i ||w_i||_1 over all tensors, from one ``_foreach_norm`` call (subgradient sign(w), 0 at w = 0)."""
    return _stacked(torch._foreach_norm(params, 1)).sum()


class Penalty(ABC):
    """Base of the norm penalties: ``penalty(model) = alpha * omega(selected parameters)``.

    Subclasses define :meth:`omega`. The selected parameter list is cached for the last model seen (a new
    model object re-selects; call :meth:`clear_cache` after adding or replacing parameters of the same model).

    Args:
        alpha: weight of the penalty relative to the task loss, in [0, inf); 0 is no regularization.
        selector: which parameters are penalized (default :class:`Selector`: weights only).
    """

    def __init__(self, alpha: float, selector: Selector | None = None) -> None:
        self.alpha = check_alpha(alpha)
        if selector is not None and not isinstance(selector, Selector):
            raise ValueError(f"selector must be a Selector or None, got {selector!r}")
        self.selector = selector if selector is not None else Selector()
        self._cached_model: weakref.ref[nn.Module] | None = None
        self._cached_params: list[Tensor] = []

    @abstractmethod
    def omega(self, params: list[Tensor]) -> Tensor:
        """The penalty Omega over ``params`` (non-empty), without the factor alpha."""

    def parameters(self, model: nn.Module) -> list[Tensor]:
        """The selected parameters of ``model``, cached while ``model`` is the same object."""
        if self._cached_model is None or self._cached_model() is not model:
            self._cached_params = [p for _, p in self.selector(model)]
            self._cached_model = weakref.ref(model)
        return self._cached_params

    def clear_cache(self) -> None:
        """Forget the cached parameter list (after changing which parameters a model holds)."""
        self._cached_model, self._cached_params = None, []

    def __call__(self, model: nn.Module) -> Tensor:
        """``alpha * omega(params)``; exactly 0 (no graph, gradients unchanged) when alpha is 0 or none is selected."""
        params = self.parameters(model)
        if not params:
            return _zero_like_model(model)
        if self.alpha == 0.0:
            return params[0].new_zeros(())
        return self.alpha * self.omega(params)

    def _extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self._extra_repr()
        return f"{type(self).__name__}(alpha={self.alpha}{', ' + extra if extra else ''}, selector={self.selector})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cached_model"], state["_cached_params"] = None, []  # weak references do not pickle
        return state


def _zero_like_model(model: nn.Module | None) -> Tensor:
    first = next(model.parameters(), None) if model is not None else None
    return first.new_zeros(()) if first is not None else torch.zeros(())


class L2(Penalty):
    r"""L2 penalty (weight decay, ridge, Tikhonov): Omega(theta) = 1/2 ||w||_2^2.

    Added to the loss, it contributes alpha * w to the gradient, so one gradient step with learning rate eps is
    the chapter's::

        W <- W - eps (alpha W + grad L(W)) = (1 - eps alpha) W - eps grad L(W)

    the weights shrink by a constant factor before each ordinary step. With plain SGD this is exactly
    ``torch.optim.SGD(weight_decay=alpha)`` on the same parameters; with adaptive optimizers (Adam) the
    penalty's gradient is rescaled too, unlike decoupled decay (:class:`regopt.optim.AdamW`).

    Args:
        alpha: regularization rate, in [0, inf).
        selector: which parameters are penalized (default: weights, not biases or normalization parameters).

    Example::

        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        >>> penalty = L2(1e-3)
        >>> loss = model(torch.randn(16, 4)).pow(2).mean() + penalty(model)
        >>> loss.backward()

    References:
        Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 7.1.1.
        Tikhonov & Arsenin (1977); Hoerl & Kennard (1970), ridge regression.
    """

    def omega(self, params: list[Tensor]) -> Tensor:
        return 0.5 * squared_l2(params)


class L1(Penalty):
    r"""L1 penalty (lasso): Omega(theta) = ||w||_1 = sum_i |w_i|, which drives weights to exactly zero.

    Coupled (default): added to the loss, it contributes the subgradient alpha * sign(w) (0 at w = 0)::

        W <- W - eps (alpha sign(W) + grad L(W))

    Subgradient steps make weights oscillate around 0 rather than land on it. With ``proximal=True``,
    ``penalty(model)`` is 0 and :meth:`shrink` is applied after each optimizer step instead, the proximal
    operator of eps * alpha * ||w||_1 (soft-thresholding, ISTA)::

        w <- sign(w) * max(|w| - eps alpha, 0)

    which sets every weight with |w| <= eps alpha to exactly zero.

    Args:
        alpha: regularization rate, in [0, inf).
        proximal: leave the loss alone and shrink in :meth:`shrink` (default ``False``).
        selector: which parameters are penalized (default: weights, not biases or normalization parameters).

    Example::

        >>> model = nn.Linear(20, 1)
        >>> penalty, opt = L1(1e-2, proximal=True), torch.optim.SGD(model.parameters(), lr=0.1)
        >>> loss = model(torch.randn(32, 20)).pow(2).mean() + penalty(model)  # penalty(model) == 0 here
        >>> loss.backward(); opt.step()
        >>> penalty.shrink(model, lr=0.1)

    Note:
        ``shrink`` is a post-step action that works after any optimizer step (proximal gradient: a step on the
        smooth loss, then the proximal map of the non-smooth penalty). It is exact proximal gradient descent for
        plain SGD; after momentum or Adam it is the common "proximal after the step" heuristic, with the
        threshold taken from the learning rate passed in.

    References:
        Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 7.1.2.
        Tibshirani (1996), Regression shrinkage and selection via the lasso.
        Beck & Teboulle (2009), A fast iterative shrinkage-thresholding algorithm (ISTA/FISTA).
    """

    def __init__(self, alpha: float, *, proximal: bool = False, selector: Selector | None = None) -> None:
        super().__init__(alpha, selector)
        self.proximal = bool(proximal)

    def omega(self, params: list[Tensor]) -> Tensor:
        return l1(params)

    def __call__(self, model: nn.Module) -> Tensor:
        if self.proximal:
            return _zero_like_model(model)
        return super().__call__(model)

    @torch.no_grad()
    def shrink(self, model: nn.Module, lr: float) -> None:
        """Soft-threshold the selected weights in place: w <- sign(w) max(|w| - lr alpha, 0)."""
        check_real("lr", lr)
        params = self.parameters(model)
        threshold = float(lr) * self.alpha
        if not params or threshold == 0.0:
            return
        # w - clamp(w, -t, t) is w - t, 0 or w + t: soft-thresholding, with exact zeros where |w| <= t
        clipped = torch._foreach_clamp_min(params, -threshold)
        torch._foreach_clamp_max_(clipped, threshold)
        torch._foreach_sub_(params, clipped)

    def _extra_repr(self) -> str:
        return f"proximal={self.proximal}"


class ElasticNet(Penalty):
    r"""Elastic net: Omega(theta) = l1_ratio ||w||_1 + (1 - l1_ratio) / 2 ||w||_2^2.

    Gradient contribution alpha (l1_ratio sign(w) + (1 - l1_ratio) w). The L1 part selects features, the L2
    part keeps groups of correlated features together and the problem strictly convex. ``l1_ratio=1`` is
    :class:`L1`, ``l1_ratio=0`` is :class:`L2` (scikit-learn's parametrization).

    Args:
        alpha: overall regularization rate, in [0, inf).
        l1_ratio: share of the L1 term, in [0, 1] (default 0.5).
        selector: which parameters are penalized (default: weights, not biases or normalization parameters).

    Example::

        >>> model = nn.Linear(10, 1)
        >>> loss = model(torch.randn(8, 10)).pow(2).mean() + ElasticNet(1e-3, l1_ratio=0.3)(model)

    References:
        Zou & Hastie (2005), Regularization and variable selection via the elastic net.
        Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 7.1.
    """

    def __init__(self, alpha: float, l1_ratio: float = 0.5, *, selector: Selector | None = None) -> None:
        super().__init__(alpha, selector)
        if not is_real(l1_ratio) or not 0.0 <= l1_ratio <= 1.0:
            raise ValueError(f"l1_ratio must be a number in [0, 1], got {l1_ratio!r}")
        self.l1_ratio = float(l1_ratio)

    def omega(self, params: list[Tensor]) -> Tensor:
        return self.l1_ratio * l1(params) + (1.0 - self.l1_ratio) * 0.5 * squared_l2(params)

    def _extra_repr(self) -> str:
        return f"l1_ratio={self.l1_ratio}"


PairItem = Tensor | nn.Module


class Tying(Penalty):
    r"""Parameter tying: Omega = sum over pairs of ||w^(A) - w^(B)||_2^2 (sec. 7.9).

    Pulls the parameters of two models (or two parts of one) toward each other instead of toward zero: for
    two similar tasks whose parameters should be close. Gradient contribution on w^(A): 2 alpha (w^(A) -
    w^(B)), and the opposite on w^(B). Hard sharing (one tensor used in both places) is the limit
    alpha -> inf; use the same ``nn.Parameter`` for that.

    Args:
        alpha: regularization rate, in [0, inf).
        pairs: pairs ``(a, b)`` of tensors with equal shapes, or of modules whose parameters correspond by
            name (same names and shapes: e.g. two copies of an architecture), or a mix of both kinds of pair.

    ``penalty(model)`` ignores ``model``: the tied tensors are fixed when the penalty is built, so
    ``penalty()`` works as well and the penalty still fits the ``model -> scalar`` contract.

    Example::

        >>> a, b = nn.Linear(4, 3), nn.Linear(4, 3)
        >>> tie = Tying(0.1, [(a, b)])            # ties a.weight~b.weight and a.bias~b.bias
        >>> loss = (a(torch.ones(2, 4)) - 1).pow(2).mean() + tie()

    References:
        Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 7.9.
        Lasserre, Bishop & Minka (2006), principled hybrids of generative and discriminative models.
    """

    def __init__(self, alpha: float, pairs: Sequence[tuple[PairItem, PairItem]]) -> None:
        super().__init__(alpha)
        first: list[Tensor] = []
        second: list[Tensor] = []
        try:
            pairs = list(pairs)
        except TypeError:
            raise ValueError(f"pairs must be a sequence of (a, b) pairs, got {pairs!r}") from None
        for index, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"pairs[{index}] must be a pair (a, b), got {pair!r}")
            for a, b, where in _expand_pair(pair[0], pair[1], index):
                if a.shape != b.shape:
                    raise ValueError(f"pairs{where}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
                first.append(a)
                second.append(b)
        if not first:
            raise ValueError("pairs must name at least one pair of tensors, got none")
        self.pairs: list[tuple[Tensor, Tensor]] = list(zip(first, second, strict=True))
        self._first, self._second = first, second

    def parameters(self, model: nn.Module | None = None) -> list[Tensor]:  # type: ignore[override]
        """The tied tensors, all ``a`` of the pairs followed by all ``b``."""
        return [*self._first, *self._second]

    def omega(self, params: list[Tensor]) -> Tensor:
        """sum_i ||a_i - b_i||^2 where ``params`` lists all a_i, then all b_i."""
        half = len(params) // 2
        return squared_l2(list(torch._foreach_sub(params[:half], params[half:])))

    def __call__(self, model: nn.Module | None = None) -> Tensor:
        if self.alpha == 0.0:
            return self._first[0].new_zeros(())
        return self.alpha * self.omega(self.parameters())

    def __repr__(self) -> str:
        return f"Tying(alpha={self.alpha}, pairs={len(self.pairs)} tensor pairs)"


def _expand_pair(a: PairItem, b: PairItem, index: int) -> list[tuple[Tensor, Tensor, str]]:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return [(a, b, f"[{index}]")]
    if isinstance(a, nn.Module) and isinstance(b, nn.Module):
        params_a, params_b = dict(a.named_parameters()), dict(b.named_parameters())
        if params_a.keys() != params_b.keys():
            only = sorted(params_a.keys() ^ params_b.keys())
            raise ValueError(f"pairs[{index}]: modules have different parameter names (unmatched: {only})")
        if not params_a:
            raise ValueError(f"pairs[{index}]: modules have no parameters to tie")
        return [(params_a[name], params_b[name], f"[{index}] parameter {name!r}") for name in params_a]
    raise ValueError(
        f"pairs[{index}] must hold two tensors or two modules, got {type(a).__name__} and {type(b).__name__}"
    )
