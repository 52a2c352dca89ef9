"""Config section ``[distributed]``: how a run launched by ``torchrun`` uses its processes (see
:mod:`regopt.lab.distributed`). A run started without a launcher ignores it."""

from __future__ import annotations

from typing import Literal

from regopt.lab.schema.base import Strict


class DistributedConfig(Strict):
    strategy: Literal["ddp", "fsdp"] = "ddp"
    """How the processes share the model; either way each trains on its slice of every batch and
    ``train.batch_size`` stays the global batch. ``"ddp"`` keeps a whole replica on each process and averages the
    gradients (``DistributedDataParallel``). ``"fsdp"`` shards the parameters, gradients and optimizer state
    across the processes (FSDP2 ``fully_shard``): memory per process falls with their number, at the cost of
    gathering the weights for every forward and backward pass; checkpoints still hold the whole model."""
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """The ``torch.distributed`` backend: ``"auto"`` takes nccl on CUDA and gloo on the CPU."""
    sync_batchnorm: bool = False
    """Convert BatchNorm layers to ``torch.nn.SyncBatchNorm``, so each normalizes by the statistics of the whole
    global batch, as one process would (torch implements it on CUDA only). Without it each process normalizes
    by its own slice and the running statistics are those of the first process."""
