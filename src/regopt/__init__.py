"""regopt: regularization and optimization for training deep models, for PyTorch.

The techniques of Goodfellow, Bengio & Courville, *Deep Learning* (2016), chapters 7-8, as building blocks
that drop into any PyTorch loop, a small lab (``regopt.lab``) that trains and compares models from a TOML
config, and a command line (``regopt``).

The subpackages (``regopt.regularize``, ``regopt.diagnostics``, ...) are attributes of the package, imported on
first use (PEP 562), so ``import regopt`` stays fast: ``regopt.diagnostics.IllConditioningMonitor`` works after
a plain ``import regopt``. ``docs/python.md`` lists where every public name lives.
"""

import importlib
import typing

from regopt.curriculum import Curriculum, continuation_schedule, smoothed_loss
from regopt.init import initialize
from regopt.monitor import Monitor
from regopt.optim import (
    SAM,
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

SUBMODULES = (
    "adversarial",
    "cli",
    "curriculum",
    "diagnostics",
    "ensemble",
    "init",
    "lab",
    "monitor",
    "optim",
    "pretraining",
    "regularize",
)
"""The package's modules and subpackages, reachable as attributes of ``regopt`` (imported on first access)."""


def __getattr__(name: str) -> typing.Any:
    """Import subpackage ``name`` on first access (PEP 562): ``regopt.regularize`` after ``import regopt``."""
    if name in SUBMODULES:
        return importlib.import_module(f"regopt.{name}")
    raise AttributeError(f"module 'regopt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *SUBMODULES})


__all__ = [
    "SAM",
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
