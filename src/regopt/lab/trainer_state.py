"""What a :class:`~regopt.lab.trainer.Trainer` saves and restores: everything a resumed run needs to continue
exactly (weights, optimizer, schedule, every stateful hook, the position, the batch order's generator and every
RNG, the history). Checkpoints hold tensors, numbers and strings only, so ``torch.load(weights_only=True)`` reads
them; :mod:`regopt.lab.checkpoint_check` validates one against a trainer before any of it is used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from regopt.lab.batch_order import BatchOrder
from regopt.lab.checkpoint import save_checkpoint
from regopt.lab.distributed import World, rank_seed
from regopt.lab.precision import MixedPrecision
from regopt.lab.rng_state import capture_rng, restore_rng
from regopt.lab.sharded_state import gathered, load_sharded_model, load_sharded_optimizer
from regopt.monitor import Monitor


def upgraded(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` in today's layout: checkpoints from before issue 16 name the hook states ``monitors``."""
    if "monitors" in state and "hook_states" not in state:
        state = {k: v for k, v in state.items() if k != "monitors"} | {"hook_states": state["monitors"]}
    return state


class TrainerCheckpoint:
    """The Trainer's checkpointing, as a base class (the attributes are the Trainer's)."""

    model: nn.Module
    optimizer: Optimizer
    scheduler: LRScheduler | None
    monitors: list[Monitor]
    batch_transforms: list[Any]
    penalties: list[Any]
    terms: list[Any]
    grad_transforms: list[Any]
    post_step: list[Any]
    batch_order: BatchOrder
    epoch: int
    batch: int
    step: int
    elapsed: float
    stop_reason: str
    history: list[dict[str, float]]
    checkpoint_path: Path | None
    precision: MixedPrecision
    world: World | None
    sharded: bool

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly: weights, optimizer, schedule, hook states,
        position (epoch, batch, step), the batch order's generator and every RNG, and the history so far.
        Under a world every rank calls it (it gathers each rank's RNG state under ``rng_ranks``)."""
        ranks = {"rng_ranks": self.world.gather(capture_rng())} if self.world is not None else {}
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "hook_states": [h.state_dict() for h in self.stateful()],
            "position": {"epoch": self.epoch, "batch": self.batch, "step": self.step},
            "elapsed": self.elapsed,
            "stop_reason": self.stop_reason,
            "history": [dict(row) for row in self.history],
            "rng": {"epoch_shuffle": self.batch_order.epoch_state, **capture_rng()},
            **ranks,
        }
        return gathered(state) if self.sharded else state  # FSDP2: whole tensors, as one process saves them

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (also from checkpoints that name the hook states
        ``monitors``, as before issue 16)."""
        state = upgraded(state)
        if self.sharded:  # FSDP2: each whole tensor back as this rank's slice
            load_sharded_model(self.model, state["model"])
            load_sharded_optimizer(self.optimizer, state["optimizer"])
        else:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        hook_states = state["hook_states"]
        stateful = self.stateful()
        if len(hook_states) != len(stateful):
            raise ValueError(f"checkpoint has {len(hook_states)} stateful hooks, trainer has {len(stateful)}")
        for hook, hook_state in zip(stateful, hook_states, strict=True):
            hook.load_state_dict(hook_state)
        position = state["position"]
        self.epoch, self.batch, self.step = position["epoch"], position["batch"], position["step"]
        self.elapsed, self.stop_reason = state["elapsed"], state["stop_reason"]
        self.history = [dict(row) for row in state["history"]]
        self.batch_order.epoch_state = state["rng"]["epoch_shuffle"]
        restore_rng(state["rng"])
        if self.world is not None and self.world.rank > 0:  # this rank's own streams
            ranks = state.get("rng_ranks")
            if isinstance(ranks, list) and len(ranks) == self.world.size:
                restore_rng(ranks[self.world.rank])
            else:  # saved by one process, or by another number of them: fresh streams from where rank 0 is
                torch.manual_seed(rank_seed(int(torch.randint(2**62, (1,)).item()), self.world.rank))

    def stateful(self) -> list[Any]:
        """Monitors, and every penalty, objective term, transform or post-step action with ``state_dict`` and
        ``load_state_dict`` (e.g. Polyak averages), in a fixed order: all of their state goes into checkpoints."""
        hooks = [*self.batch_transforms, *self.penalties, *self.terms, *self.grad_transforms, *self.post_step]
        extra = [h for h in hooks if hasattr(h, "state_dict") and hasattr(h, "load_state_dict")]
        scaler = [self.precision] if self.precision.scaler is not None else []  # fp16's loss scale
        return [*self.monitors, *extra, *scaler]

    def save_checkpoint(self) -> None:
        """Write :meth:`state_dict` to ``checkpoint_path`` atomically (nothing without a path; under a world every
        rank calls it and rank 0 writes)."""
        if self.checkpoint_path is not None:
            state = self.state_dict()
            if self.world is None or self.world.main:
                save_checkpoint(state, self.checkpoint_path)
