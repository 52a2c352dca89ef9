"""Optimizers of the chapter (Algorithms 8.1-8.7), delta-bar-delta, averaging, coordinate descent, schedules,
sharpness-aware minimization (SAM), and the methods of sec. 8.6 that take a ``closure``: conjugate gradients,
BFGS, L-BFGS (line searches) and Newton, Hessian-free (curvature).

Each first-order optimizer is a ``torch.optim.Optimizer`` whose update is written once over flat buffers
(:mod:`regopt.optim.flat`), line by line as the chapter's pseudo-code; the line-search methods share the loop of
:mod:`regopt.optim.closure_loop` and take a ``closure`` as ``torch.optim.LBFGS``.
"""

from regopt.optim.adagrad import AdaGrad
from regopt.optim.adam import Adam, AdamW
from regopt.optim.averaging import PolyakAveraging
from regopt.optim.bfgs import BFGS
from regopt.optim.conjugate_gradient import ConjugateGradient, conjugate_gradient
from regopt.optim.coordinate import CoordinateDescent
from regopt.optim.delta_bar_delta import DeltaBarDelta
from regopt.optim.flat import FlatOptimizer
from regopt.optim.hessian_free import HessianFree
from regopt.optim.lbfgs import LBFGS
from regopt.optim.line_search import strong_wolfe
from regopt.optim.newton import Newton
from regopt.optim.param_groups import decay_groups
from regopt.optim.rmsprop import RMSProp
from regopt.optim.sam import SAM, differentiates_closure, needs_closure
from regopt.optim.schedules import linear_decay
from regopt.optim.sgd import SGD

__all__ = [
    "BFGS",
    "LBFGS",
    "SAM",
    "SGD",
    "AdaGrad",
    "Adam",
    "AdamW",
    "ConjugateGradient",
    "CoordinateDescent",
    "DeltaBarDelta",
    "FlatOptimizer",
    "HessianFree",
    "Newton",
    "PolyakAveraging",
    "RMSProp",
    "conjugate_gradient",
    "decay_groups",
    "differentiates_closure",
    "linear_decay",
    "needs_closure",
    "strong_wolfe",
]
