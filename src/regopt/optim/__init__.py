"""Optimizers of the chapter (Algorithms 8.1-8.7), delta-bar-delta, averaging, coordinate descent, SAM, schedules.

Each optimizer is a ``torch.optim.Optimizer`` whose update is written once over flat buffers
(:mod:`regopt.optim.flat`), line by line as the chapter's pseudo-code.
"""

from regopt.optim.adagrad import AdaGrad
from regopt.optim.adam import Adam, AdamW
from regopt.optim.averaging import PolyakAveraging
from regopt.optim.coordinate import CoordinateDescent
from regopt.optim.delta_bar_delta import DeltaBarDelta
from regopt.optim.flat import FlatOptimizer
from regopt.optim.param_groups import decay_groups
from regopt.optim.rmsprop import RMSProp
from regopt.optim.sam import SAM, needs_closure
from regopt.optim.schedules import linear_decay
from regopt.optim.sgd import SGD

__all__ = [
    "SAM",
    "SGD",
    "AdaGrad",
    "Adam",
    "AdamW",
    "CoordinateDescent",
    "DeltaBarDelta",
    "FlatOptimizer",
    "PolyakAveraging",
    "RMSProp",
    "decay_groups",
    "linear_decay",
    "needs_closure",
]
