"""regopt: regularization and optimization for training deep models, for PyTorch.

The techniques of Goodfellow, Bengio & Courville, *Deep Learning* (2016), chapters 7-8, as building blocks
that drop into any PyTorch loop, a small lab (``regopt.lab``) that trains and compares models from a TOML
config, and a command line (``regopt``).
"""

from regopt.curriculum import Curriculum, continuation_schedule, smoothed_loss
from regopt.init import initialize
from regopt.monitor import Monitor
from regopt.optim import (
    SGD,
    AdaGrad,
    Adam,
    AdamW,
    CoordinateDescent,
    DeltaBarDelta,
    PolyakAveraging,
    RMSProp,
    decay_groups,
    linear_decay,
)
from regopt.pretraining import freeze, greedy_supervised_pretraining, grow_mlp, unfreeze

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "AdaGrad",
    "Adam",
    "AdamW",
    "CoordinateDescent",
    "Curriculum",
    "DeltaBarDelta",
    "Monitor",
    "PolyakAveraging",
    "RMSProp",
    "__version__",
    "continuation_schedule",
    "decay_groups",
    "freeze",
    "greedy_supervised_pretraining",
    "grow_mlp",
    "initialize",
    "linear_decay",
    "smoothed_loss",
    "unfreeze",
]
