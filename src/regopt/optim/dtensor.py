"""DTensor parameters (FSDP2 ``fully_shard``, tensor parallel) in the flat buffers: each rank updates its shard.

A DTensor parameter's storage belongs to its parallel wrapper (FSDP2 all-gathers from it and writes into it), so
the flat buffers never re-home it. A bucket of DTensor parameters instead holds a flat *copy* of their local shards
(``p.to_local()``): each step copies the shards and their gradients' shards in, runs the same vector update, and
copies theta back out. Every regopt update is elementwise, so updating each rank's shard alone is exactly the
update of the whole tensor, with no communication.

That holds when the local tensor is a piece (``Shard``) or a copy (``Replicate``) of the parameter and the local
gradient is the matching piece of the true gradient. A ``Partial`` parameter, or a gradient placed differently
from its parameter (e.g. a partial sum not yet reduced), would give a wrong update, so the optimizer raises naming the
parameter instead (:func:`placement_problem`).

The per-parameter state (``optimizer.state[p]["s"]``, ...) is a DTensor over the flat state's view with the
parameter's placements, so ``torch.distributed.checkpoint`` saves and loads it sharded like torch.optim's.
"""

from __future__ import annotations

from torch import Tensor
from torch.distributed.tensor import DTensor, Partial
from torch.optim import Optimizer


def is_dtensor(t: Tensor) -> bool:
    """True for a DTensor (or a parameter wrapping one)."""
    return isinstance(t, DTensor)


def local(t: Tensor) -> Tensor:
    """The rank's local tensor of a DTensor (sharing its storage), ``t`` itself otherwise."""
    return t.to_local() if isinstance(t, DTensor) else t


def placement_problem(p: Tensor) -> str | None:
    """Why an elementwise update of ``p``'s local shard would not be exact, or ``None`` when it is."""
    if not isinstance(p, DTensor):
        return None
    if any(isinstance(placement, Partial) for placement in p.placements):
        return (
            f"is a DTensor with placements {p.placements}: a Partial parameter holds no shard of its value, so no "
            "elementwise update of it is defined; redistribute it to Shard or Replicate"
        )
    g = p.grad
    if isinstance(g, DTensor) and g.placements != p.placements:
        return (
            f"has placements {p.placements} but its gradient {g.placements}: its local gradient is not the "
            "gradient of its local shard; redistribute the gradient first"
        )
    return None


def check_placements(optimizer: Optimizer, params: list[Tensor]) -> None:
    """Raise ``ValueError`` naming the first of ``params`` (as ``param_groups[i]['params'][j]``) whose local shard
    no elementwise update fits (see :func:`placement_problem`)."""
    for p in params:
        problem = placement_problem(p)
        if problem is not None:
            where = next(
                f"param_groups[{i}]['params'][{j}]"
                for i, group in enumerate(optimizer.param_groups)
                for j, q in enumerate(group["params"])
                if q is p
            )
            raise ValueError(f"{type(optimizer).__name__}: {where} (shape {tuple(p.shape)}) {problem}")


def like(view: Tensor, p: Tensor) -> Tensor:
    """``view`` (a state buffer's slice, shaped as ``p``'s local shard) as a DTensor placed like ``p``; ``view``
    itself when ``p`` is a plain tensor. The DTensor shares ``view``'s storage."""
    if not isinstance(p, DTensor):
        return view
    return DTensor.from_local(view, p.device_mesh, p.placements, run_check=False, shape=p.shape, stride=p.stride())
