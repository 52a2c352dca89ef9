"""A run on several processes (``torchrun``): the process group, each rank's slice of a batch, and agreement.

``torchrun --nproc_per_node=N -m regopt run CONFIG`` starts N copies of ``regopt run`` with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their environment. :func:`join_launched_world`
reads them and initializes ``torch.distributed`` (gloo on the CPU, nccl on CUDA, ``[distributed] backend``
overrides); every process then builds the same experiment from the same seed and the Trainer

- cuts every global batch of ``train.batch_size`` examples into N consecutive slices, one per rank
  (:meth:`World.shard`): the union of the ranks' batches is exactly the one-process batch;
- weights each rank's loss by ``N n_r / n`` (``n_r`` its slice of the ``n`` examples), so that DDP's average of
  the ranks' gradients is the gradient of the whole batch's mean loss, even for unequal slices;
- evaluates each split in slices and adds the ranks' sums (:meth:`World.sum`), so every rank sees the same
  metrics row, and every monitor (early stopping, the NaN guard, plateaus) decides the same; a stop on one rank
  is a stop on all (:meth:`World.any`);
- lets rank 0 alone write the run directory (:func:`regopt.lab.atomic.writes_here`) and show progress.

Dropout and noise draw from each rank's own stream (rank 0's is the one-process stream); checkpoints hold every
rank's RNG state, so ``--resume`` under the same ``torchrun`` continues exactly.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from regopt.lab.models.base import ModelError

T = TypeVar("T")

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""The environment ``torchrun`` gives each process it starts."""


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of an initialized default process group."""

    rank: int
    size: int
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the one that writes files and shows progress."""
        return self.rank == 0

    @classmethod
    def current(cls) -> World | None:
        """The initialized default process group as a World, or None (none, or one of a single process)."""
        if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
            return None
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return cls(dist.get_rank(), dist.get_world_size(), local)

    def shard(self, x: Tensor) -> Tensor:
        """This rank's consecutive slice of the batch ``x`` (``torch.tensor_split``: sizes differ by at most 1,
        the first ranks take the larger ones); the slices of all ranks are ``x`` in order."""
        return torch.tensor_split(x, self.size)[self.rank]

    def sum(self, value: Tensor) -> Tensor:
        """The sum of ``value`` over the ranks (every rank gets the same bits)."""
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank."""
        value = torch.tensor([int(flag)], dtype=torch.int64, device=_collective_device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def gather(self, obj: T) -> list[T]:
        """``obj`` of every rank, in rank order (pickled: small objects only)."""
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def from_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on rank 0 only, its result (or the exception it raised) given to every rank: what one
        process decides about files that only it may see (a run directory on rank 0's machine)."""
        box: list[Any] = [None]
        if self.main:
            try:
                box[0] = (True, fn())
            except Exception as err:  # every rank raises it, so none waits for the others
                box[0] = (False, err if _picklable(err) else RuntimeError(str(err)))
        dist.broadcast_object_list(box, src=0)
        ok, value = box[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s RNG streams (dropout, noise): rank 0 keeps the run's ``seed``, so its draws are
    those of one process; the others get streams of their own."""
    return seed if rank == 0 else (seed * 1_000_003 + rank) % 2**63


def _picklable(obj: object) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True


def _collective_device() -> torch.device:
    """Where the backend wants small tensors: the local GPU for nccl, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def data_parallel(model: nn.Module) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` over the default process group (on its CUDA device if it has
    one); it shares ``model``'s parameters, which keep their names in checkpoints."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    ids = [device] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shard_parameters(model: nn.Module, device: torch.device) -> nn.Module:
    """FSDP2: ``fully_shard`` ``model`` (in place) over all ranks; its parameters become DTensors, each rank
    holding a slice, gathered for each forward and backward pass."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    fully_shard(model, mesh=init_device_mesh(device.type, (dist.get_world_size(),)))
    return model


def is_sharded(model: nn.Module) -> bool:
    """Whether FSDP2 shards ``model``'s parameters (its forward is then a collective)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def synced(model: nn.Module) -> bool:
    """Whether every BatchNorm of ``model`` is a ``SyncBatchNorm`` (normalizing by the whole global batch)."""
    return all(
        isinstance(m, nn.SyncBatchNorm) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    )


def check_slices(world: World, examples: int, batch_size: int, accumulate: int, batch_norm: bool) -> None:
    """Every rank's slice of every batch holds an example for each micro-batch (2 with BatchNorm): else
    :class:`ModelError` naming the batch that is too small."""
    need = world.size * accumulate * (2 if batch_norm else 1)
    sizes = {min(batch_size, examples), examples % batch_size}
    small = min(size for size in sizes if size > 0 and not (batch_norm and size == 1))
    if small < need:
        what = "BatchNorm needs 2 examples per slice" if batch_norm else "each rank needs an example"
        parts = f" x {accumulate} micro-batches" if accumulate > 1 else ""
        raise ModelError(
            f"train.batch_size: a batch of {small} examples cannot be cut into {world.size} ranks{parts} ({what}); "
            f"use batches of at least {need} examples"
        )


def launched() -> bool:
    """Whether a launcher (``torchrun``) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def backend_for(backend: str, device: str) -> str:
    """``"auto"``: nccl where the run's device is CUDA, gloo otherwise."""
    if backend != "auto":
        return backend
    return "nccl" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "gloo"


def join_launched_world(backend: str, device: str) -> tuple[World | None, bool]:
    """Initialize the default process group from the launcher's environment, if launched as one of several and
    not initialized already. Returns the World (None for one process) and whether this call created the group
    (its creator destroys it)."""
    if dist.is_initialized():
        return World.current(), False
    if not launched():
        return None, False
    missing = [name for name in LAUNCH_VARIABLES if name not in os.environ]
    if missing:
        raise ValueError(f"launched as one of several processes but {', '.join(missing)} is not set; use torchrun")
    chosen = backend_for(backend, device)
    if chosen == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(chosen)
    return World.current(), True


__all__ = [
    "LAUNCH_VARIABLES",
    "World",
    "backend_for",
    "check_slices",
    "data_parallel",
    "join_launched_world",
    "launched",
    "rank_seed",
    "synced",
]
