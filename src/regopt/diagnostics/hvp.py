r"""Hessian-vector products ``Hv`` for any model and loss, without ever forming the Hessian H.

Two ways to get ``Hv = d/dt grad L(theta + t v) |_{t=0}``:

- :func:`hvp` -- reverse-over-reverse (Pearlmutter 1994): take ``g = grad L`` with ``create_graph=True``, then
  ``Hv = grad(g . v)``. Works on any closure ``loss_fn()``.
- :func:`hvp_func` -- forward-over-reverse with ``torch.func``: ``jvp(grad(L), (theta,), (v,))`` on a
  :func:`torch.func.functional_call` of the model. In JAX this is the recommended order.

:func:`backward_with_hvp` reuses a training step's own backward: ``g`` with ``create_graph=True`` in place of
``loss.backward()``, then ``Hg`` on that graph. :class:`~regopt.diagnostics.hessian_operator.HessianOperator`
builds on these products (it keeps the graph of ``g`` between products at the same parameters). Each
implementation's cost in gradients, and the arithmetic floor that no exact product from scratch can beat, are
in BENCHMARKS.md, "Hessian-vector product implementations (regopt.diagnostics.hvp)".

References:
    Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation 6(1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp

__all__ = ["backward_with_hvp", "hvp", "hvp_func"]

LossOfOutput = Callable[[Tensor, Tensor], Tensor]


def _zeros_for_none(tensors: Sequence[Tensor | None], like: Sequence[Tensor]) -> list[Tensor]:
    return [torch.zeros_like(p) if t is None else t for t, p in zip(tensors, like, strict=True)]


def _grad_of_grads(
    grads: Sequence[Tensor | None],
    params: Sequence[Tensor],
    v: Sequence[Tensor],
    *,
    retain_graph: bool = True,
    batch: int | None = None,
) -> list[Tensor]:
    """``grad(g . v, params)`` for ``grads`` built with ``create_graph=True``; the graph is kept if asked. With
    ``batch = k``, each ``v`` has a leading dimension of ``k`` vectors (``is_grads_batched``)."""
    pairs = [(g, vi) for g, vi in zip(grads, v, strict=True) if g is not None and g.requires_grad]
    like = list(params) if batch is None else [p.new_empty(batch, *p.shape) for p in params]
    if not pairs:  # the loss is (at most) linear in params: H = 0
        return [torch.zeros_like(p) for p in like]
    outs, vs = zip(*pairs, strict=True)
    hv = torch.autograd.grad(
        outs, params, grad_outputs=vs, retain_graph=retain_graph, allow_unused=True, is_grads_batched=batch is not None
    )
    return _zeros_for_none(hv, like)


def hvp(loss_fn: Callable[[], Tensor], params: Sequence[Tensor], v: Sequence[Tensor]) -> list[Tensor]:
    r"""Hessian-vector product ``Hv`` of ``loss_fn()`` w.r.t. ``params`` by double backward.

    ``g = grad(L, params, create_graph=True)``, then ``Hv = grad(g . v, params)``: about the cost of a forward
    and two backward passes, exact up to rounding.

    Args:
        loss_fn: closure computing the scalar loss from the current ``params``
            (e.g. ``lambda: F.mse_loss(model(x), y)``).
        params: tensors with ``requires_grad=True`` (e.g. ``list(model.parameters())``).
        v: one tensor per parameter, same shapes.

    Returns:
        ``Hv`` as a list shaped like ``params`` (detached).

    Example:
        >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> hvp(lambda: (w**3).sum(), [w], [torch.ones(2)])  # H = diag(6 w)
        [tensor([ 6., 12.])]
    """
    params = list(params)
    if len(v) != len(params):
        raise ValueError(f"v has {len(v)} tensors, params has {len(params)}")
    with torch.enable_grad():
        loss = loss_fn()
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        return _grad_of_grads(grads, params, list(v))


def backward_with_hvp(
    loss: Tensor, params: Sequence[Tensor], subset: Sequence[Tensor] | None = None
) -> tuple[list[Tensor], list[Tensor]]:
    r"""``loss.backward()`` into ``params``, and the gradient ``g`` with ``Hg`` (v = g) on that same graph.

    ``g`` is taken with ``create_graph=True`` and stored in ``p.grad`` as ``loss.backward()`` would (assigned
    or accumulated; same values bit for bit, no graph attached); one more backward through its graph gives
    ``Hg`` and frees it. In place of ``loss.backward()``, training is unchanged; ``Hg`` costs ~2 gradients.

    Args:
        loss: the scalar being minimized.
        params: every tensor ``loss.backward()`` would fill (e.g. the model's parameters with ``requires_grad``).
        subset: the parameters ``g`` and ``Hg`` refer to (default: ``params``); all must be in ``params``.

    Returns:
        ``(g, Hg)``, lists shaped like ``subset`` (detached; zeros where ``loss`` does not depend on one).
    """
    params = list(params)
    subset = params if subset is None else list(subset)
    with torch.enable_grad():
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    by_id = {id(p): gr for p, gr in zip(params, grads, strict=True)}
    if any(id(p) not in by_id for p in subset):
        raise ValueError("subset must be drawn from params")
    sub = [by_id[id(p)] for p in subset]
    g = [torch.zeros_like(p) if gr is None else gr.detach() for gr, p in zip(sub, subset, strict=True)]
    hg = _grad_of_grads(sub, subset, g, retain_graph=False)  # frees the graph
    with torch.no_grad():
        for p, gr in zip(params, grads, strict=True):
            if gr is None:
                continue
            gr = gr.detach()
            if p.grad is not None:
                p.grad.add_(gr)
            else:  # backward() gives .grad the parameter's strides
                p.grad = gr if gr.stride() == p.stride() else torch.empty_like(p).copy_(gr)
    return g, hg


def hvp_func(
    model: nn.Module,
    loss_of_output: LossOfOutput,
    x: Tensor,
    y: Tensor,
    v: Sequence[Tensor] | Mapping[str, Tensor],
    *,
    names: Sequence[str] | None = None,
    order: Literal["forward-over-reverse", "reverse-over-forward"] = "forward-over-reverse",
) -> list[Tensor]:
    r"""Hessian-vector product with ``torch.func``: ``jvp(grad(L), (theta,), (v,))`` (forward-over-reverse).

    ``L(theta) = loss_of_output(functional_call(model, theta, (x,)), y)``; buffers are taken from the model.
    ``order="reverse-over-forward"`` computes ``grad(theta -> jvp(L, (theta,), (v,))[1])`` instead: the
    gradient of the directional derivative ``g(theta) . v``, the same ``Hv``.

    Args:
        model: the model; its current parameters are the point theta.
        loss_of_output: ``loss_of_output(output, y) -> scalar`` (e.g. ``F.cross_entropy``).
        x, y: the batch.
        v: one tensor per parameter, in ``model.named_parameters()`` order (or of ``names``), or a mapping from
            parameter name to tensor.
        names: the parameter names to differentiate w.r.t. (default: all with ``requires_grad``).
        order: ``"forward-over-reverse"`` (default) or ``"reverse-over-forward"``.

    Returns:
        ``Hv`` as a list in the order of ``names``.

    Note:
        Every call redoes the forward and backward passes, and random layers (dropout) draw new masks per call;
        put the model in ``eval()`` mode, or use
        :class:`~regopt.diagnostics.hessian_operator.HessianOperator`, which keeps one graph.
    """
    named = dict(model.named_parameters())
    if names is None:
        names = [n for n, p in named.items() if p.requires_grad] if not isinstance(v, Mapping) else list(v)
    names = list(names)
    tangents = tuple(v[n] for n in names) if isinstance(v, Mapping) else tuple(v)
    if len(tangents) != len(names):
        raise ValueError(f"v has {len(tangents)} tensors, the model has {len(names)} parameters to differentiate")
    primals = tuple(named[n].detach() for n in names)

    def loss(theta: tuple[Tensor, ...]) -> Tensor:
        return loss_of_output(functional_call(model, dict(zip(names, theta, strict=True)), (x,)), y)

    if order == "forward-over-reverse":
        hv = jvp(grad(loss), (primals,), (tangents,))[1]
    elif order == "reverse-over-forward":
        hv = grad(lambda theta: jvp(loss, (theta,), (tangents,))[1])(primals)
    else:
        raise ValueError(f"order must be 'forward-over-reverse' or 'reverse-over-forward', got {order!r}")
    return list(hv)
