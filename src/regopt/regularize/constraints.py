"""Norm constraints as projections after the optimizer step (sec. 7.2): max-norm on each unit's weights."""

from __future__ import annotations

import weakref

import torch
from torch import nn

from regopt._checks import check_real, is_int
from regopt.regularize.selection import Selector


class MaxNorm:
    r"""Max-norm constraint: after each step, project every unit's incoming weight vector into ||w||_2 <= c.

    Projected gradient descent on the constrained problem min J(theta) s.t. ||w_i||_2 <= c for every unit i::

        w <- w - eps grad J(w)            (the optimizer's step)
        w_i <- w_i * min(1, c / ||w_i||_2) (this action)

    Unit i's incoming weights are the slices along ``dim``: for ``nn.Linear`` (out, in) each row, for
    ``nn.ConvNd`` (out, in, k...) each output filter; both use the default ``dim=0``. Rows already inside the
    ball are left bit-for-bit unchanged. Unlike a penalty, the constraint never shrinks small weights, and it
    keeps large learning rates from blowing weights up (Hinton et al. 2012 use it with dropout).

    Args:
        c: radius of the L2 ball (> 0); 3-4 is common with dropout.
        selector: which parameters are projected (default: weights, not biases or normalization parameters).
        dim: dimension that indexes units (default 0). ``nn.ConvTranspose`` stores (in, out, k...): use a
            selector for those layers with ``dim=1``. One-dimensional tensors (``include="all"``) are
            clipped element by element.

    Call ``max_norm(model)`` right after ``optimizer.step()``.

    Example::

        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        >>> opt, max_norm = torch.optim.SGD(model.parameters(), lr=0.5), MaxNorm(3.0)
        >>> model(torch.randn(16, 4)).pow(2).mean().backward(); opt.step()
        >>> max_norm(model)
        >>> bool((model[0].weight.norm(dim=1) <= 3.0 + 1e-6).all())
        True

    References:
        Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 7.2.
        Srebro & Shraibman (2005), Rank, trace-norm and max-norm.
        Hinton, Srivastava, Krizhevsky, Sutskever & Salakhutdinov (2012), improving neural networks by
        preventing co-adaptation of feature detectors.
    """

    def __init__(self, c: float, selector: Selector | None = None, *, dim: int = 0) -> None:
        check_real("c", c, positive=True)
        if selector is not None and not isinstance(selector, Selector):
            raise ValueError(f"selector must be a Selector or None, got {selector!r}")
        if not is_int(dim) or dim < 0:
            raise ValueError(f"dim must be an int >= 0, got {dim!r}")
        self.c = float(c)
        self.selector = selector if selector is not None else Selector()
        self.dim = dim
        self._cached_model: weakref.ref[nn.Module] | None = None
        self._cached_params: list[nn.Parameter] = []

    def parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """The selected parameters of ``model``, cached while ``model`` is the same object."""
        if self._cached_model is None or self._cached_model() is not model:
            params = [p for _, p in self.selector(model)]
            for p in params:
                if p.dim() > 1 and self.dim >= p.dim():
                    raise ValueError(f"dim must be < the parameter's dimension {p.dim()}, got {self.dim}")
            self._cached_params, self._cached_model = params, weakref.ref(model)
        return self._cached_params

    def clear_cache(self) -> None:
        """Forget the cached parameter list (after changing which parameters a model holds)."""
        self._cached_model, self._cached_params = None, []

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> None:
        """Project every selected tensor in place (one ``renorm_``, or ``clamp_`` for vectors, per tensor)."""
        for p in self.parameters(model):
            if p.dim() > 1:
                p.renorm_(p=2, dim=self.dim, maxnorm=self.c)
            else:  # each entry is its own unit: |w_i| <= c
                p.clamp_(-self.c, self.c)

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_cached_model"], state["_cached_params"] = None, []
        return state

    def __repr__(self) -> str:
        return f"MaxNorm(c={self.c}, selector={self.selector}, dim={self.dim})"
