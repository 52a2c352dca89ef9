r"""The generalized Gauss-Newton matrix ``G = J' H_L J``, as a matrix-free operator (Schraudolph 2002).

Split the loss as ``L(theta) = ell(f(theta))``: the model's output ``z = f(theta)`` (logits, predictions) and a
loss ``ell(z)`` of the output (cross-entropy, squared error). With ``J = dz/dtheta`` and ``H_L = d^2 ell/dz^2``,
the Hessian is ``H = J' H_L J + sum_k (d ell/dz_k) d^2 z_k/dtheta^2``; the generalized Gauss-Newton matrix keeps
the first term. For a loss convex in the output, ``H_L`` is positive semi-definite and so is ``G``: what a
Newton-type method needs (Martens 2010 solves ``(G + lambda I) d = -g`` by conjugate gradients; on an indefinite
``H`` CG meets negative curvature). For squared error ``G`` is the Gauss-Newton matrix ``2 J'J / n``.

``G v`` costs three products on graphs kept between calls, never forming ``J`` (``dim(z) x dim(theta)``):

1. ``u = J v``: the double-backward trick. ``w(a) = J' a`` is linear in a dummy ``a``; ``J v = d(w(a) . v)/da``.
2. ``u <- H_L u``: a Hessian-vector product of ``ell`` w.r.t. the output alone.
3. ``G v = J' u``: one backward pass from the output.

:class:`GaussNewtonProducts` does this on a ``(loss, output)`` pair from any graph (what
:class:`~regopt.optim.hessian_free.HessianFree` calls on its closure's result); :class:`GGNOperator` wraps a
model, a loss and a batch with :class:`~regopt.diagnostics.hessian_operator.HessianOperator`'s protocol (``matvec``,
``gradient``, ``dim``, ``num_products``), so :func:`~regopt.diagnostics.curvature.top_eigenvalues`,
:func:`~regopt.diagnostics.curvature.hessian_trace` and the rest run on it unchanged.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Linear(2, 1, bias=False)
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> op = GGNOperator(model, nn.functional.mse_loss, x, torch.zeros(2, 1))  # G = 2/n x'x = diag(1, 4)
    >>> op.dense()
    tensor([[1., 0.],
            [0., 4.]])

References:
    Schraudolph, N. N. (2002). Fast curvature matrix-vector products for second-order gradient descent.
    Neural Computation 14(7).
    Martens, J. (2010). Deep learning via Hessian-free optimization. ICML.
    Martens, J. (2020). New insights and perspectives on the natural gradient method. JMLR 21(146).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from regopt.diagnostics.hessian_operator import FlatCoordinates

__all__ = ["GGNOperator", "GaussNewtonProducts"]


def _fill(tensors: Sequence[Tensor | None], like: Sequence[Tensor]) -> list[Tensor]:
    return [torch.zeros_like(p) if t is None else t for t, p in zip(tensors, like, strict=True)]


class GaussNewtonProducts:
    r"""``G v = J' H_L J v`` on the graph of ``loss = ell(output)``, ``output = f(params)``, kept between products.

    Args:
        loss: the scalar loss, computed from ``output`` (with its graph).
        output: the model's output the loss was computed from (with its graph to ``params``).
        params: the tensors to differentiate w.r.t.

    The graphs are built once here (``dell/dz`` with ``create_graph=True`` and ``J' a`` for a dummy ``a``), so each
    :meth:`matvec` is three backward passes through kept graphs. Build a new one after the parameters change.
    """

    def __init__(self, loss: Tensor, output: Tensor, params: Sequence[Tensor]) -> None:
        if loss.dim() != 0:
            raise ValueError(f"loss must be a scalar, got shape {tuple(loss.shape)}")
        if not output.requires_grad:
            raise ValueError("output does not depend on the parameters (it has no graph)")
        self.params = list(params)
        with torch.enable_grad():
            (self._dl_dz,) = torch.autograd.grad(loss, output, create_graph=True)
            self._dummy = torch.zeros_like(output, requires_grad=True)
            self._jt_dummy = torch.autograd.grad(
                output, self.params, grad_outputs=self._dummy, create_graph=True, allow_unused=True
            )
        self.loss, self.output = loss.detach(), output

    def gradient(self) -> list[Tensor]:
        """``g = J' dell/dz``, shaped like ``params`` (detached)."""
        return self.vjp(self._dl_dz.detach())

    def jvp(self, v: Sequence[Tensor]) -> Tensor:
        """``J v``, shaped like the output (double-backward trick)."""
        pairs = [(w, vi) for w, vi in zip(self._jt_dummy, v, strict=True) if w is not None and w.requires_grad]
        if not pairs:
            return torch.zeros_like(self.output)
        outs, vs = zip(*pairs, strict=True)
        (jv,) = torch.autograd.grad(outs, self._dummy, grad_outputs=vs, retain_graph=True, allow_unused=True)
        return torch.zeros_like(self.output) if jv is None else jv

    def vjp(self, u: Tensor) -> list[Tensor]:
        """``J' u``, shaped like ``params``."""
        ju = torch.autograd.grad(self.output, self.params, grad_outputs=u, retain_graph=True, allow_unused=True)
        return _fill(ju, self.params)

    def output_hvp(self, u: Tensor) -> Tensor:
        """``H_L u``: the loss's Hessian w.r.t. the output times ``u`` (zero for a loss linear in the output)."""
        if not self._dl_dz.requires_grad:
            return torch.zeros_like(u)
        (hu,) = torch.autograd.grad(self._dl_dz, self.output, grad_outputs=u, retain_graph=True, allow_unused=True)
        return torch.zeros_like(u) if hu is None else hu

    def matvec(self, v: Sequence[Tensor]) -> list[Tensor]:
        """``G v = J' H_L J v`` for ``v`` shaped like ``params``."""
        return self.vjp(self.output_hvp(self.jvp(v)))


class GGNOperator(FlatCoordinates):
    r"""The generalized Gauss-Newton matrix of ``loss_fn(model(x), y)`` as an operator on flat parameter vectors.

    Same protocol and coordinates as :class:`~regopt.diagnostics.hessian_operator.HessianOperator` (parameters
    flattened in ``params`` order, row-major): :meth:`matvec` returns ``G v``, :meth:`gradient` the flat gradient,
    :attr:`num_products` counts products. ``G`` is positive semi-definite when ``loss_fn`` is convex in the
    output (squared error, cross-entropy on logits), whatever the model.

    Args:
        model: the model; its parameters at the time of each call are the point (an in-place change, e.g. an
            optimizer step, is detected by tensor version counters and the graphs are rebuilt).
        loss_fn: ``loss_fn(output, y) -> scalar``.
        x, y: the batch.
        params: the parameters to differentiate w.r.t. (default: the model's with ``requires_grad``).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        x: Tensor,
        y: Tensor,
        params: Sequence[Tensor] | None = None,
    ) -> None:
        self.model, self.loss_fn, self.x, self.y = model, loss_fn, x, y
        chosen = list(model.parameters()) if params is None else list(params)
        self.params = [p for p in chosen if p.requires_grad]
        if not self.params:
            raise ValueError("no parameters with requires_grad=True to differentiate")
        self.numels = [p.numel() for p in self.params]
        self.dim = sum(self.numels)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.num_products = 0
        self._products: GaussNewtonProducts | None = None
        self._versions: tuple[int, ...] = ()

    def refresh(self) -> None:
        """Drop the kept graphs (e.g. after changing ``x`` or ``y``)."""
        self._products = None

    def _kept(self) -> GaussNewtonProducts:
        versions = tuple(p._version for p in self.params)
        if self._products is None or versions != self._versions:
            self._products = None  # free the old graphs first
            with torch.enable_grad():
                output = self.model(self.x)
                self._products = GaussNewtonProducts(self.loss_fn(output, self.y), output, self.params)
            self._versions = versions
        return self._products

    def loss(self) -> float:
        """The loss at the current parameters."""
        return float(self._kept().loss)

    def gradient(self) -> Tensor:
        """The flat gradient ``g = J' dell/dz`` at the current parameters (detached)."""
        return self.flatten(self._kept().gradient())

    def matvec(self, v: Tensor) -> Tensor:
        """``G v`` for a flat vector ``v`` of length :attr:`dim`."""
        vs = self.unflatten(v.to(dtype=self.dtype, device=self.device))
        self.num_products += 1
        return self.flatten(self._kept().matvec(vs))

    __matmul__ = matvec

    def dense(self) -> Tensor:
        """The full ``dim x dim`` matrix, column by column (``dim`` products; for small models and tests)."""
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        return torch.stack([self.matvec(e) for e in eye], dim=1)
