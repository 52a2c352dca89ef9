"""Config section ``[distributed]``: how a run launched by ``torchrun`` uses its processes (see
:mod:`regopt.lab.distributed`). A run started without a launcher ignores it."""

from __future__ import annotations

from typing import Literal

from regopt.lab.schema.base import Strict


class DistributedConfig(Strict):
    strategy: Literal["ddp"] = "ddp"
    """How the processes share the model: ``"ddp"`` keeps a replica on each and averages the gradients
    (``torch.nn.parallel.DistributedDataParallel``). Under ``torchrun`` each process trains on its slice of every
    batch; ``train.batch_size`` stays the global batch."""
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """The ``torch.distributed`` backend: ``"auto"`` takes nccl on CUDA and gloo on the CPU."""
    sync_batchnorm: bool = False
    """Convert BatchNorm layers to ``torch.nn.SyncBatchNorm``, so each normalizes by the statistics of the whole
    global batch, as one process would (torch implements it on CUDA only). Without it each process normalizes
    by its own slice and the running statistics are those of the first process."""
