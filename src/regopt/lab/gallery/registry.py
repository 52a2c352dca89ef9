"""The demo gallery's registry: entry name -> function, in the order ``regopt demo`` runs them.

Each entry lives in the module of its name (``gallery/<entry>.py``, function ``<entry>``); this module imports
them all and nothing in the gallery imports it (the CLI and the tests do). ``regopt list`` shows each entry with
the file that holds it (:func:`entry_file`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from regopt.lab.gallery.adversarial import adversarial
from regopt.lab.gallery.alpha_curve import alpha_curve
from regopt.lab.gallery.augmentation import augmentation
from regopt.lab.gallery.bagging import bagging
from regopt.lab.gallery.base import GalleryResult
from regopt.lab.gallery.batch_norm import batch_norm
from regopt.lab.gallery.cliff import cliff
from regopt.lab.gallery.curriculum import curriculum
from regopt.lab.gallery.dropout import dropout
from regopt.lab.gallery.early_stopping import early_stopping
from regopt.lab.gallery.ill_conditioning import ill_conditioning
from regopt.lab.gallery.initialization import initialization
from regopt.lab.gallery.l1_vs_l2 import l1_vs_l2
from regopt.lab.gallery.multitask import multitask
from regopt.lab.gallery.optimizers import optimizers
from regopt.lab.gallery.overfit import overfit
from regopt.lab.gallery.pretraining import pretraining
from regopt.lab.gallery.saddle import saddle
from regopt.lab.gallery.tangent_prop import tangent_prop
from regopt.lab.gallery.underconstrained import underconstrained

GALLERY: dict[str, Callable[[Path, bool], GalleryResult]] = {
    "overfit": overfit,
    "optimizers": optimizers,
    "ill_conditioning": ill_conditioning,
    "saddle": saddle,
    "cliff": cliff,
    # chapter 7
    "l1_vs_l2": l1_vs_l2,
    "alpha_curve": alpha_curve,
    "dropout": dropout,
    "augmentation": augmentation,
    "early_stopping": early_stopping,
    "multitask": multitask,
    "underconstrained": underconstrained,
    # chapter 8: initialization and meta-algorithms
    "initialization": initialization,
    "batch_norm": batch_norm,
    "pretraining": pretraining,
    "curriculum": curriculum,
    "bagging": bagging,
    # chapter 7: adversarial training and tangent methods
    "adversarial": adversarial,
    "tangent_prop": tangent_prop,
}
"""Entry name -> function, in the order ``regopt demo`` runs them."""


def entry_file(name: str) -> Path:
    """The file that defines entry ``name``, relative to the folder that holds the ``regopt`` package, e.g.
    ``regopt/lab/gallery/bagging.py`` (read from the function's module, which decorators keep)."""
    import regopt

    module = sys.modules[GALLERY[name].__module__]
    assert module.__file__ is not None
    return Path(module.__file__).resolve().relative_to(Path(regopt.__file__).resolve().parent.parent)
