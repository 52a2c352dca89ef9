r"""Hessian-vector products ``Hv`` for any model and loss, without ever forming the Hessian H.

Two ways to get ``Hv = d/dt grad L(theta + t v) |_{t=0}``:

- :func:`hvp` -- reverse-over-reverse (Pearlmutter 1994): take ``g = grad L`` with ``create_graph=True``, then
  ``Hv = grad(g . v)``. Works on any closure ``loss_fn()``.
- :func:`hvp_func` -- forward-over-reverse with ``torch.func``: ``jvp(grad(L), (theta,), (v,))`` on a
  :func:`torch.func.functional_call` of the model. In JAX this is the recommended order.

:class:`HessianOperator` wraps a model, a loss and a batch as a matrix-free linear operator on the flattened
parameters (``matvec``, ``matmat`` for a block of vectors, ``gradient``, ``dim``, ``num_products``);
:mod:`regopt.diagnostics.curvature` runs Lanczos, Hutchinson and spectral density on it.

Under data parallelism (``torch.distributed``), ``HessianOperator(..., distributed=True)`` describes the
*global* batch: each rank computes the loss, gradient and ``H_i v`` on its own shard of ``n_i`` examples, and
they are all-reduced to ``sum_i n_i H_i v / sum_i n_i``, the Hessian of the mean loss over the union of the shards
(for a ``loss_fn`` that averages over its batch). Every rank gets the same bits, so Lanczos and Hutchinson,
whose random vectors come from seeded generators independent of the rank, run the same iteration everywhere
and return the same numbers.

The default, ``method="reverse"``, keeps the graph of ``g = grad L`` (``create_graph=True``) alive between
products at the same parameters, so each further product is one backward pass through that graph: Lanczos,
Hutchinson and power iteration take tens of products at one point and pay forward + first backward once, and
:func:`backward_with_hvp` reuses a training step's own backward. ``torch.func`` cannot keep that graph between
calls (each ``jvp(grad(...))`` retraces forward and backward). The graph is rebuilt when a parameter is
modified in place (detected by tensor version counters) or on :meth:`HessianOperator.refresh`. Each
implementation's cost in gradients, and the arithmetic floor that no exact product from scratch can beat, are
in BENCHMARKS.md, "Hessian-vector product implementations (regopt.diagnostics.hvp)".

Example:
    >>> import torch
    >>> from torch import nn
    >>> import torch.nn.functional as F
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    >>> x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    >>> op = HessianOperator(model, F.cross_entropy, x, y)
    >>> op.dim, op.matvec(torch.ones(op.dim)).shape, op.num_products
    (26, torch.Size([26]), 1)

References:
    Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation 6(1).
    Goodfellow, I., Bengio, Y. & Courville, A. (2016). Deep Learning, sec. 8.2.1 (ill-conditioning).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp, vjp, vmap
from torch.nn.parallel import DistributedDataParallel

from regopt.diagnostics.probes import balanced_step

__all__ = ["HessianOperator", "backward_with_hvp", "hvp", "hvp_func"]

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
        put the model in ``eval()`` mode, or use :class:`HessianOperator`, which keeps one graph.
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


class FlatCoordinates:
    """A curvature operator's coordinates: its parameters' entries in one flat vector (``params``, their
    ``numels`` and total ``dim`` are the operator's)."""

    params: list[Tensor]
    numels: list[int]
    dim: int

    def flatten(self, tensors: Sequence[Tensor]) -> Tensor:
        """Concatenate per-parameter tensors into one flat vector (the operator's coordinates)."""
        return torch.cat([t.reshape(-1) for t in tensors])

    def unflatten(self, flat: Tensor) -> list[Tensor]:
        """Split a flat vector into tensors shaped like ``params``."""
        if flat.shape != (self.dim,):
            raise ValueError(f"expected a flat vector of shape ({self.dim},), got {tuple(flat.shape)}")
        return [c.view_as(p) for c, p in zip(flat.split(self.numels), self.params, strict=True)]


class HessianOperator(FlatCoordinates):
    r"""The Hessian of ``loss_fn(model(x), y)`` w.r.t. the parameters, as a matrix-free operator on flat vectors.

    ``H`` is ``dim x dim`` with ``dim`` the number of parameter entries, flattened in ``params`` order (each
    tensor row-major, as ``torch.cat([p.reshape(-1) for p in params])``). :meth:`matvec` returns ``H v``,
    :meth:`matmat` ``H v_i`` for a block of vectors at once, :meth:`gradient` the flat gradient,
    :attr:`num_products` counts Hessian-vector products (a block of k counts k).

    Args:
        model: the model; its parameters *at the time of each call* are the point (after an in-place change,
            e.g. an optimizer step, the next call rebuilds the graph).
        loss_fn: ``loss_fn(output, y) -> scalar`` (e.g. ``F.cross_entropy``).
        x, y: the batch the loss is computed on.
        params: the parameters to differentiate w.r.t. (default: all of the model's with ``requires_grad``).
        method: ``"reverse"`` (default; double backward on a kept graph, see the module docstring for why) or
            ``"func"`` (``torch.func`` forward-over-reverse per product).
        distributed: all-reduce the loss, gradient and every product over the ranks of ``group``, each weighted
            by its shard's size ``len(x)``, so the operator is the Hessian on the global batch (default
            ``False``: this process's batch only). Constructing it and every call are then collective: all
            ranks must make them in the same order. A :class:`~torch.nn.parallel.DistributedDataParallel`
            model is unwrapped to its ``module`` (DDP's own gradient hooks do not see double backward).
        group: the process group (default: the default group); only with ``distributed=True``.

    Example:
        >>> model = nn.Linear(2, 1)
        >>> op = HessianOperator(model, nn.functional.mse_loss, torch.eye(2), torch.zeros(2, 1))
        >>> op.dim
        3
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossOfOutput,
        x: Tensor,
        y: Tensor,
        params: Sequence[Tensor] | None = None,
        *,
        method: Literal["reverse", "func"] = "reverse",
        distributed: bool = False,
        group: dist.ProcessGroup | None = None,
    ) -> None:
        if method not in ("reverse", "func"):
            raise ValueError(f"method must be 'reverse' or 'func', got {method!r}")
        if isinstance(model, DistributedDataParallel):
            model = model.module
        self.model, self.loss_fn, self.x, self.y, self.method = model, loss_fn, x, y, method
        chosen = list(model.parameters()) if params is None else list(params)
        self.params = [p for p in chosen if p.requires_grad]
        if not self.params:
            raise ValueError("no parameters with requires_grad=True to differentiate")
        ids = {id(p): n for n, p in model.named_parameters()}
        if method == "func" and any(id(p) not in ids for p in self.params):
            raise ValueError("method='func' needs params that are parameters of the model")
        self.names = [ids.get(id(p), "") for p in self.params]
        self.numels = [p.numel() for p in self.params]
        self.dim = sum(self.numels)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.num_products = 0
        self._graph: tuple[Tensor, tuple[Tensor | None, ...], tuple[int, ...]] | None = None
        self._vjp: tuple[Callable[..., tuple[tuple[Tensor, ...]]], tuple[int, ...]] | None = None
        self.distributed, self.group = distributed, group
        self._share = 1.0  # this rank's n_i / sum_i n_i
        if group is not None and not distributed:
            raise ValueError("group is only used with distributed=True")
        if distributed:
            if not dist.is_available() or not dist.is_initialized():
                raise RuntimeError(
                    "HessianOperator(distributed=True) needs torch.distributed initialized "
                    "(dist.init_process_group) on every rank"
                )
            sizes = torch.tensor([float(x.shape[0])], dtype=torch.float64, device=self.device)
            local = float(sizes[0])
            dist.all_reduce(sizes, group=group)
            if not float(sizes[0]) > 0:
                raise ValueError("HessianOperator(distributed=True): every rank's batch is empty")
            self._share = local / float(sizes[0])

    def _global(self, local: Tensor) -> Tensor:
        """``sum_i n_i t_i / sum_i n_i`` over the ranks (``local`` itself when not distributed)."""
        if not self.distributed:
            return local
        total = local * self._share
        dist.all_reduce(total, group=self.group)
        return total

    def refresh(self) -> None:
        """Drop the kept graphs (e.g. after changing ``x``, ``y`` or the parameters out of place)."""
        self._graph = self._vjp = None

    def _kept_graph(self) -> tuple[Tensor, tuple[Tensor | None, ...]]:
        versions = tuple(p._version for p in self.params)
        if self._graph is None or self._graph[2] != versions:
            self._graph = None  # free the old graph before building the new one
            with torch.enable_grad():
                loss = self.loss_fn(self.model(self.x), self.y)
                grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
            self._graph = (loss.detach(), grads, versions)
        return self._graph[0], self._graph[1]

    def loss(self) -> float:
        """The loss at the current parameters (on the global batch when distributed)."""
        return float(self._global(self._kept_graph()[0].to(torch.float64)))

    def gradient(self) -> Tensor:
        """The flat gradient ``g`` at the current parameters (detached; global when distributed)."""
        grads = self._kept_graph()[1]
        return self._global(self.flatten([g.detach() for g in _zeros_for_none(grads, self.params)]))

    def matvec(self, v: Tensor) -> Tensor:
        """``H v`` for a flat vector ``v`` of length :attr:`dim` (global when distributed)."""
        vs = self.unflatten(v.to(dtype=self.dtype, device=self.device))
        self.num_products += 1
        if self.method == "func":
            hv = hvp_func(self.model, self.loss_fn, self.x, self.y, vs, names=self.names)
        else:
            hv = _grad_of_grads(self._kept_graph()[1], self.params, vs)
        return self._global(self.flatten(hv))

    __matmul__ = matvec

    def _gradient_vjp(self) -> Callable[..., tuple[tuple[Tensor, ...]]] | None:
        """``u -> (H u,)`` as a ``torch.func.vjp`` of the gradient, kept like the graph (``None`` when some
        parameter is not the model's, so ``functional_call`` cannot reach it)."""
        if "" in self.names:
            return None
        versions = tuple(p._version for p in self.params)
        if self._vjp is None or self._vjp[1] != versions:
            self._vjp = None  # free the old graph first
            model, names, x, y, loss_fn = self.model, self.names, self.x, self.y, self.loss_fn

            def loss(theta: tuple[Tensor, ...]) -> Tensor:
                return loss_fn(functional_call(model, dict(zip(names, theta, strict=True)), (x,)), y)

            fn = vjp(grad(loss), tuple(p.detach() for p in self.params))[1]
            self._vjp = (fn, versions)
        return self._vjp[0]

    def matmat(self, vectors: Tensor, *, chunk_size: int | None = 32) -> Tensor:
        r"""``H v_i`` for a block of flat vectors at once: ``vectors`` is ``(k, dim)``, one vector per **row**
        (batch-first, as ``torch.func.vmap``), and so is the result (``(H V^T)^T = V H``, H symmetric).

        Reverse-over-reverse with ``torch.func``: the forward and first backward pass are traced once
        (``vjp(grad(L), theta)``, kept while the parameters are unchanged, like :meth:`matvec`'s graph), and
        ``vmap`` runs its backward for ``chunk_size`` vectors at a time, so memory stays bounded at about
        ``chunk_size`` times one product's. Measured faster than both ``vmap`` over ``jvp(grad(L))``
        (forward-over-reverse) and a batched backward through :meth:`matvec`'s autograd graph
        (``is_grads_batched``): BENCHMARKS.md, "Curvature estimators against curvlinops". Parameters that are
        not the model's fall back to that batched backward. Equal to stacked :meth:`matvec` calls up to rounding
        (for a model with random layers, such as dropout in training mode, each graph draws its own masks: use
        ``eval()``).

        Args:
            vectors: ``(k, dim)`` block, one vector per row.
            chunk_size: at most this many vectors per vectorized backward pass, split evenly (default 32;
                ``None``: all ``k`` at once).

        Returns:
            ``(k, dim)`` block whose row i is ``H v_i`` (all-reduced like :meth:`matvec` when distributed).
        """
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected a block of shape (k, {self.dim}), got {tuple(vectors.shape)}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
        vectors = vectors.to(dtype=self.dtype, device=self.device)
        k = vectors.shape[0]
        self.num_products += k
        blocks = [c.reshape(k, *p.shape) for c, p in zip(vectors.split(self.numels, dim=1), self.params, strict=True)]
        fn = self._gradient_vjp() if k else None
        step = balanced_step(k, chunk_size or max(k, 1))  # equal chunks: 33 by 32 -> 17 + 16
        if fn is not None:
            hv = list(vmap(fn, chunk_size=step)(tuple(blocks))[0])
        elif k:
            grads = self._kept_graph()[1]
            parts = [
                _grad_of_grads(grads, self.params, [b[i : i + step] for b in blocks], batch=min(step, k - i))
                for i in range(0, k, step)
            ]
            hv = [torch.cat(ps) for ps in zip(*parts, strict=True)]
        else:
            hv = blocks
        return self._global(torch.cat([h.reshape(k, n) for h, n in zip(hv, self.numels, strict=True)], dim=1))

    def dense(self) -> Tensor:
        """The full ``dim x dim`` Hessian, column by column (``dim`` products; for small models and tests)."""
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        return torch.stack([self.matvec(e) for e in eye], dim=1)
