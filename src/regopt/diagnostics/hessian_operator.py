r"""The Hessian of a model's loss on a batch as a matrix-free linear operator on the flattened parameters.

:class:`HessianOperator` wraps a model, a loss and a batch (``matvec``, ``matmat`` for a block of vectors,
``gradient``, ``loss``, ``dense``, ``dim``, ``num_products``); :mod:`regopt.diagnostics.curvature` runs Lanczos,
Hutchinson and spectral density on it. :class:`FlatCoordinates` is the flat-vector coordinate system it shares
with :class:`~regopt.diagnostics.ggn.GGNOperator`. The products themselves come from
:mod:`regopt.diagnostics.hvp`.

Under data parallelism (``torch.distributed``), ``HessianOperator(..., distributed=True)`` describes the
*global* batch: each rank computes the loss, gradient and ``H_i v`` on its own shard of ``n_i`` examples, and
they are all-reduced to ``sum_i n_i H_i v / sum_i n_i``, the Hessian of the mean loss over the union of the shards
(for a ``loss_fn`` that averages over its batch). Every rank gets the same bits, so Lanczos and Hutchinson,
whose random vectors come from seeded generators independent of the rank, run the same iteration everywhere
and return the same numbers.

The default, ``method="reverse"``, keeps the graph of ``g = grad L`` (``create_graph=True``) alive between
products at the same parameters, so each further product is one backward pass through that graph: Lanczos,
Hutchinson and power iteration take tens of products at one point and pay forward + first backward once.
``torch.func`` cannot keep that graph between calls (each ``jvp(grad(...))`` retraces forward and backward).
The graph is rebuilt when a parameter is modified in place (detected by tensor version counters) or on
:meth:`HessianOperator.refresh`.

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

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.func import functional_call, grad, vjp, vmap
from torch.nn.parallel import DistributedDataParallel

from regopt.diagnostics.hvp import LossOfOutput, _grad_of_grads, _zeros_for_none, hvp_func
from regopt.diagnostics.probes import balanced_step

__all__ = ["FlatCoordinates", "HessianOperator"]


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
