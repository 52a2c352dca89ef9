"""Terms of the objective the Trainer minimizes: J~ = J(theta; x, y) + sum of terms (the seed's eq. 7.1 and its
relatives).

Two contracts, one the simple case of the other:

- a **penalty** ``penalty(model) -> Tensor`` sees only the parameters: alpha * Omega(theta) for L2, L1, norm
  penalties, parameter sharing's tie penalty;
- an **objective term** ``term(batch) -> Tensor`` also sees the training batch: its inputs and targets (after the
  batch transforms), the model's output on them and the task loss. Tangent propagation (a penalty on the
  directional derivative of the output along known tangents at each input), representation sparsity and
  multi-task losses need it, as Lightning's ``training_step`` receives the batch for the same reason.

Both return a scalar added to the task loss before the backward pass; any object with
``state_dict``/``load_state_dict`` has its state checkpointed with the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn


@dataclass(frozen=True)
class TrainingBatch:
    """What an objective term may use: one training step's batch, the model's output on it and the task loss."""

    model: nn.Module
    x: Tensor
    """The inputs, after the batch transforms (augmentation, input noise)."""
    y: Tensor
    """The targets, after the batch transforms."""
    output: Any
    """``model(x)``: a tensor, or what a multi-output model returns."""
    task_loss: Tensor
    """``loss_fn(output, y)``, the data term J."""


Penalty = Callable[[nn.Module], Tensor]
"""``model -> alpha * Omega(theta)``: a term that needs only the parameters."""
ObjectiveTerm = Callable[[TrainingBatch], Tensor]
"""``batch -> scalar``: a term that may use the batch, the output and the task loss."""


def objective(
    batch: TrainingBatch, penalties: list[Penalty], terms: list[ObjectiveTerm], *, share: float = 1.0
) -> Tensor:
    """J~ = task loss + sum of penalties(model) + sum of terms(batch), in that order.

    ``share`` < 1 is a micro-batch's fraction n_i / n of the batch under gradient accumulation: the task loss and
    the terms (means over the micro-batch) are weighted by it, so the parts' gradients add up to the batch's, and
    the penalties are the caller's to pass with one part only."""
    total = batch.task_loss if share == 1.0 else batch.task_loss * share
    for penalty in penalties:
        total = total + penalty(batch.model)
    for term in terms:
        total = total + (term(batch) if share == 1.0 else term(batch) * share)
    return total


__all__ = ["ObjectiveTerm", "Penalty", "TrainingBatch", "objective"]
