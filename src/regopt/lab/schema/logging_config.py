"""Config section ``[logging]``: where a run reports its curves besides ``metrics.csv`` (TensorBoard, see
:mod:`regopt.lab.tensorboard_log`)."""

from __future__ import annotations

from regopt.lab.schema.base import Strict


class LoggingConfig(Strict):
    tensorboard: bool = False
    """Write TensorBoard event files under ``RUN_DIR/tensorboard/``: per epoch the losses, errors, lr, mean raw
    gradient norm and the diagnostics' state, at the epoch's last optimizer step; the resolved config as hparams
    with the final metrics. Needs ``pip install 'regopt[tensorboard]'``."""
