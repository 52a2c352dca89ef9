"""What the wiring tables' factories may use (:data:`~regopt.lab.schema.regularize.REGULARIZERS`,
:data:`~regopt.lab.schema.diagnostics.DIAGNOSTICS`): the run's model, optimizer, data and task loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

if TYPE_CHECKING:
    from torch.optim import Optimizer

    from regopt.lab.data import Dataset
    from regopt.monitor import Monitor


@dataclass
class WiringContext:
    """The run a factory builds a hook for. ``optimizer`` is ``None`` while the model itself is being changed
    (noise layers; the optimizer is built afterwards); ``output`` maps a multi-output model's output to the one
    the task is judged by (``None``: the output itself); ``built`` holds the monitors built so far, by key (read
    it when called, so a factory may refer to one built after it)."""

    model: nn.Module
    optimizer: Optimizer | None
    data: Dataset
    loss_fn: Callable[[Any, Tensor], Tensor] | None = None
    output: Callable[[Any], Tensor] | None = None
    batch_size: int | None = None
    built: dict[str, Monitor] = field(default_factory=dict)

    def lr(self) -> float:
        """The optimizer's current learning rate (of its first group)."""
        assert self.optimizer is not None
        return float(self.optimizer.param_groups[0]["lr"])
