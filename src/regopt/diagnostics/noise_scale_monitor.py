r"""The gradient noise scale of every epoch of a data-parallel run, from the all-reduce DDP does anyway.

Each rank's gradient averages its ``b`` examples of the step; DDP's average over the ``k`` ranks is a gradient of
``B = k b`` examples. :class:`~regopt.diagnostics.noise_scale.NoiseScaleHook` takes both squared norms in DDP's own
communication hook, and this monitor turns each epoch's steps into one estimate of

    B_simple = tr(Sigma) / ||G||^2,

the batch size above which larger batches stop paying off (McCandlish et al. 2018). Only steps whose batch splits
evenly into ``k`` slices of ``b`` count (the last, smaller batch of an epoch is left out: its slices differ).

References:
    McCandlish, S., Kaplan, J., Amodei, D. & OpenAI Dota Team (2018). An empirical model of large-batch
    training. arXiv:1812.06162, App. A.1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import nn

from regopt.diagnostics.noise_scale import NoiseScaleHook
from regopt.monitor import Monitor, MonitorReport


class NoiseScaleMonitor(Monitor):
    """Per-epoch ``B_simple`` of a DDP run; see the module docstring.

    Args:
        examples: training examples per epoch.
        batch_size: the global batch (``k b``).
        world_size: ``k``, the number of ranks.

    The Trainer calls :meth:`attach_data_parallel` with its DDP model before the first step. Every rank keeps
    the same history (each epoch's :meth:`after_epoch` is collective: one all-reduce of two numbers).
    """

    def __init__(self, examples: int, batch_size: int, world_size: int) -> None:
        if world_size < 2 or batch_size % world_size:
            raise ValueError(
                f"the gradient noise scale needs a batch ({batch_size}) that splits evenly into {world_size} ranks"
            )
        self.examples, self.batch_size, self.world_size = examples, batch_size, world_size
        self.hook = NoiseScaleHook(batch_size // world_size)
        self.history: list[dict[str, float]] = []
        self._steps_this_epoch = 0

    def attach_data_parallel(self, model: nn.Module) -> None:
        """Install the measuring communication hook on the run's ``DistributedDataParallel`` model."""
        self.hook.register(model)  # type: ignore[arg-type]

    def _full_batches(self) -> int:
        return self.examples // self.batch_size

    def after_backward(self, step: int) -> None:
        self._steps_this_epoch += 1
        if self._steps_this_epoch > self._full_batches():  # the epoch's last, smaller batch: uneven slices
            self.hook.discard_step()

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> tuple[bool, str]:
        result = self.hook.result()
        self.history.append({"epoch": epoch, "step": metrics["step"], **result})
        self.hook.reset()
        self._steps_this_epoch = 0
        return False, ""

    @property
    def noise_scale(self) -> float:
        """The latest epoch's ``B_simple`` (``nan`` before the first epoch ends)."""
        return self.history[-1]["noise_scale"] if self.history else math.nan

    def report(self) -> MonitorReport:
        """``gradient_noise_scale.csv``: one row per epoch; findings: the last epoch's ``B_simple``."""
        findings: dict[str, Any] = {}
        if self.history:
            last = self.history[-1]
            findings["gradient_noise_scale"] = {
                "b_simple": last["noise_scale"],
                "epoch": last["epoch"],
                "batch_size": self.batch_size,
                "per_rank_batch": self.batch_size // self.world_size,
            }
        return MonitorReport(tables={"gradient_noise_scale.csv": list(self.history)}, findings=findings)

    def state_dict(self) -> dict[str, Any]:
        """The history, and the epoch's steps so far (rank 0's partial sums: a resume mid-epoch restarts the other
        ranks' sums from rank 0's)."""
        estimate = self.hook.estimate
        self.hook._flush()
        return {
            "history": [dict(row) for row in self.history],
            "steps_this_epoch": self._steps_this_epoch,
            "partial": [float(estimate._norm_sq), float(estimate._trace), int(estimate.steps)],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.history = [dict(row) for row in state["history"]]
        self._steps_this_epoch = int(state["steps_this_epoch"])
        estimate = self.hook.estimate
        estimate._norm_sq, estimate._trace, estimate.steps = state["partial"]
        estimate.steps = int(estimate.steps)


__all__ = ["NoiseScaleMonitor"]
