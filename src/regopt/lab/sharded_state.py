"""Checkpoints of a model whose parameters FSDP2 shards: whole tensors on disk, shards in memory.

A run with ``[distributed] strategy = "fsdp"`` holds its parameters and optimizer state as DTensors, each rank a
slice. Its checkpoint is written as a one-process run's (:func:`gathered`: every DTensor all-gathered into the
whole tensor), so ``regopt predict``, ``regopt diagnose`` and a resume with any number of processes, or with DDP,
read it. Loading puts each whole tensor back as the slice the parameter's placements give this rank
(:func:`load_sharded_model`, :func:`load_sharded_optimizer`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributed.tensor import DTensor, distribute_tensor
from torch.optim import Optimizer


def gathered(obj: Any) -> Any:
    """``obj`` (nested dicts, lists and tuples) with every DTensor replaced by its whole tensor. Collective: every
    rank calls it on the same structure."""
    if isinstance(obj, DTensor):
        return obj.full_tensor()
    if isinstance(obj, Mapping):
        return {key: gathered(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(gathered(value) for value in obj)
    return obj


def _like(value: Tensor, param: Tensor) -> Tensor:
    """The whole tensor ``value`` as ``param``'s slice on this rank, when it is shaped like ``param``."""
    if isinstance(param, DTensor) and isinstance(value, Tensor) and value.shape == param.shape:
        return distribute_tensor(value.to(param.device), param.device_mesh, param.placements)
    return value


def load_sharded_model(model: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Load a whole-tensor state dict into a sharded ``model`` (every parameter and buffer by name)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise KeyError(f"state dict does not fit the model: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for name, target in own.items():
            value = _like(state[name], target)
            local = value.to_local() if isinstance(value, DTensor) else value
            (target.to_local() if isinstance(target, DTensor) else target).copy_(local)


def load_sharded_optimizer(optimizer: Optimizer, state: Mapping[str, Any]) -> None:
    """Load a whole-tensor ``optimizer.state_dict()`` (torch's layout) into an optimizer over sharded parameters:
    each state tensor shaped like its parameter becomes that parameter's slice."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    per_param = state.get("state", {})
    sliced = {
        index: {key: _like(value, params[int(index)]) for key, value in entry.items()}
        if isinstance(entry, Mapping) and 0 <= int(index) < len(params)
        else entry
        for index, entry in per_param.items()
    }
    optimizer.load_state_dict({**state, "state": sliced})


__all__ = ["gathered", "load_sharded_model", "load_sharded_optimizer"]
