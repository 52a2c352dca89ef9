"""TensorBoard event files for a run (``[logging] tensorboard = true``, ``regopt run --tensorboard``).

:class:`TensorBoardLog` writes under ``RUN_DIR/tensorboard/``, once per epoch, every value at the epoch's last
optimizer step (``global_step`` = the ``step`` column of ``metrics.csv``, so runs with different batch sizes
line up by updates taken; the ``epoch`` tag maps steps back to epochs):

- ``loss/train``, ``loss/val``, ``error/train``, ``error/val``, ``lr``, ``epoch``: the epoch's ``metrics.csv`` row;
- ``grad_norm``: the mean over the epoch's steps of the raw global gradient norm ``||g||_2`` (before clipping,
  read in :meth:`~regopt.monitor.Monitor.after_backward`; one norm per step on the device, one sync per epoch);
- with ``[diagnostics]`` monitors, their state at the end of the epoch: ``ill_conditioning/criterion`` and
  ``ill_conditioning/stable_lr`` (the epoch's last check: 0.5 eps^2 g'Hg - eps g'g and 2 g'g/g'Hg),
  ``gradient_norms/grad_norm`` and ``gradient_norms/spikes`` (the epoch's last recorded norm, spikes so far),
  ``plateau/in_plateau`` (1 while a plateau is open) and ``plateau/events``.

At the end of the run :func:`log_hparams` records the resolved config (flattened to dotted keys) as hparams with
the summary's final metrics (``best_val_error``, ``final_*``, ``test_*``, ``generalization_gap``).

A resumed run appends to the same directory: its writer opens with ``purge_step`` = the step after the last
epoch the checkpoint holds, so TensorBoard drops whatever a killed process logged past that point, and each step
appears once per tag. Event files are flushed after every epoch, like ``metrics.csv``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor

from regopt.diagnostics import GradientMonitor, IllConditioningMonitor, NoiseScaleMonitor, PlateauMonitor
from regopt.diagnostics.norms import global_grad_norm
from regopt.lab.atomic import writes_here
from regopt.lab.config import ConfigError, RunConfig, to_toml_dict
from regopt.lab.run_dir import _flatten
from regopt.monitor import Monitor

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from regopt.lab.trainer import Trainer

TENSORBOARD = "tensorboard"
"""The run directory's folder of event files."""

_ROW_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "train_error": "error/train",
    "val_error": "error/val",
    "lr": "lr",
    "epoch": "epoch",
}
"""``metrics.csv`` column -> TensorBoard tag."""

FINAL_METRICS = ("best_val_error", "final_train_error", "final_val_error", "final_train_loss", "final_val_loss",
                 "generalization_gap", "test_loss", "test_error")  # fmt: skip
"""Summary keys recorded as the hparams' metrics (those the run has)."""


def summary_writer_class() -> type[SummaryWriter]:
    """torch's ``SummaryWriter``; :class:`ConfigError` (one line naming the extra) without the tensorboard package."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "logging.tensorboard: needs the tensorboard package: pip install 'regopt[tensorboard]'"
        ) from None
    return SummaryWriter


class TensorBoardLog(Monitor):
    """Writes a run's per-epoch scalars as TensorBoard events under ``log_dir`` (see the module docstring).

    Args:
        trainer: the run's trainer (its history rows and model are read at each epoch).
        log_dir: the event files' folder, created at the first epoch's end.

    Raises:
        ConfigError: the tensorboard package is not installed (checked here, before anything is written).
    """

    def __init__(self, trainer: Trainer, log_dir: Path) -> None:
        self.writer_class = summary_writer_class()
        self.trainer, self.log_dir = trainer, log_dir
        self.writer: SummaryWriter | None = None
        self._norm_sum: Tensor | float = 0.0  # sum of this epoch's raw gradient norms (on the device)
        self._norm_count = 0

    def after_backward(self, step: int) -> None:
        norm = global_grad_norm(self.trainer.model)
        if norm is not None:
            self._norm_sum = self._norm_sum + norm
            self._norm_count += 1

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> tuple[bool, str]:
        step = int(metrics["step"])
        if not writes_here():  # a rank other than 0 of a distributed run
            self._norm_sum, self._norm_count = 0.0, 0
            return False, ""
        writer = self._open()
        for column, tag in _ROW_TAGS.items():
            if column in metrics:
                writer.add_scalar(tag, float(metrics[column]), step)
        if self._norm_count:
            writer.add_scalar("grad_norm", float(self._norm_sum) / self._norm_count, step)
        self._norm_sum, self._norm_count = 0.0, 0
        for tag, value in self._diagnostics(step).items():
            writer.add_scalar(tag, value, step)
        writer.flush()  # a killed run keeps every epoch its checkpoint holds (the resume appends after those)
        return False, ""

    def _open(self) -> SummaryWriter:
        """The writer, opened at the first epoch this process logs: it purges any events at or past the first step
        after the previous epoch (logged by a killed process after the checkpoint it resumed from)."""
        if self.writer is None:
            history = self.trainer.history
            first = int(history[-2]["step"]) + 1 if len(history) >= 2 else 1
            self.writer = self.writer_class(str(self.log_dir), purge_step=first)
        return self.writer

    def _diagnostics(self, step: int) -> dict[str, float]:
        """The diagnostics monitors' state at the end of this epoch (checks made during it)."""
        history = self.trainer.history
        since = int(history[-2]["step"]) if len(history) >= 2 else 0
        values: dict[str, float] = {}
        for monitor in self.trainer.monitors:
            if isinstance(monitor, IllConditioningMonitor):
                rows = [r for r in monitor.history if since < r["step"] <= step]
                if rows:
                    values["ill_conditioning/criterion"] = rows[-1]["criterion"]
                    values["ill_conditioning/stable_lr"] = rows[-1]["stable_lr"]
            elif isinstance(monitor, GradientMonitor):
                norms = [norm for s, norm, *_ in monitor.history if since < s <= step]
                if norms:
                    values["gradient_norms/grad_norm"] = norms[-1]
                values["gradient_norms/spikes"] = float(len(monitor.spikes))
            elif isinstance(monitor, NoiseScaleMonitor) and monitor.history:
                values["gradient_noise_scale/b_simple"] = monitor.noise_scale
            elif isinstance(monitor, PlateauMonitor):
                values["plateau/in_plateau"] = float(monitor.in_plateau)
                values["plateau/events"] = float(len(monitor.events))
        return values

    def log_hparams(self, config: RunConfig, summary: Mapping[str, Any]) -> None:
        """Record the resolved config as hparams with the summary's final metrics (scalars at the last step), in
        the event files of the run itself, then close the writer."""
        from torch.utils.tensorboard.summary import hparams

        if not writes_here():
            return
        metrics = {k: float(summary[k]) for k in FINAL_METRICS if isinstance(summary.get(k), (int, float))}
        params = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in flat_config(config).items()}
        writer, step = self._open(), self.trainer.step
        file_writer = writer._get_file_writer()  # add_hparams would open a second run in a subfolder
        for part in hparams(params, metrics):
            file_writer.add_summary(part, step)
        for key, value in metrics.items():
            writer.add_scalar(key, value, step)
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def state_dict(self) -> dict[str, Any]:
        """The current epoch's gradient norms so far, so a run resumed mid-epoch logs the same mean."""
        return {"grad_norm_sum": float(self._norm_sum), "grad_norm_count": self._norm_count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._norm_sum = float(state.get("grad_norm_sum", 0.0))
        self._norm_count = int(state.get("grad_norm_count", 0))


def flat_config(config: RunConfig) -> dict[str, Any]:
    """The resolved config as ``{"optimizer.lr": 0.1, ...}`` (None-valued keys omitted)."""
    return _flatten(to_toml_dict(config))


def log_hparams(monitors: list[Monitor], config: RunConfig, summary: Mapping[str, Any]) -> None:
    """:meth:`TensorBoardLog.log_hparams` for the run's TensorBoard log among ``monitors``, if it has one."""
    for monitor in monitors:
        if isinstance(monitor, TensorBoardLog):
            monitor.log_hparams(config, summary)


__all__ = ["TENSORBOARD", "TensorBoardLog", "flat_config", "log_hparams", "summary_writer_class"]
