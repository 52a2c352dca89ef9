"""The demo gallery's registry: entry name -> function, in the order ``regopt demo`` runs them.

Each entry lives in the module of its name (``gallery/<entry>.py``, function ``<entry>``); this module imports
them all and nothing in the gallery imports it (the CLI and the tests do). ``regopt list`` shows each entry with
the file that holds it (:func:`entry_file`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path

from regopt.lab.gallery.base import GalleryResult
from regopt.lab.gallery.chapters import CHAPTERS, CLAIMS, chapter_of, rerun_command

ENTRIES = (
    "overfit",
    "optimizers",
    "warmup_and_plateau",
    "ill_conditioning",
    "saddle",
    "cliff",
    "second_order",
    # chapter 7
    "l1_vs_l2",
    "alpha_curve",
    "dropout",
    "augmentation",
    "early_stopping",
    "multitask",
    "underconstrained",
    # chapter 8: initialization and meta-algorithms
    "initialization",
    "batch_norm",
    "pretraining",
    "curriculum",
    "bagging",
    # chapter 7: adversarial training and tangent methods
    "adversarial",
    "tangent_prop",
)
"""The entries in the order ``regopt demo`` runs them: adding an entry is its file and its name here."""

GALLERY: dict[str, Callable[[Path, bool], GalleryResult]] = {
    name: getattr(importlib.import_module(f"regopt.lab.gallery.{name}"), name) for name in ENTRIES
}
"""Entry name -> function (``gallery/<name>.py`` defines ``<name>``), in :data:`ENTRIES` order."""


__all__ = ["CHAPTERS", "CLAIMS", "ENTRIES", "GALLERY", "chapter_of", "entry_file", "rerun_command"]


def entry_file(name: str) -> Path:
    """The file that defines entry ``name``, relative to the folder that holds the ``regopt`` package, e.g.
    ``regopt/lab/gallery/bagging.py`` (read from the function's module, which decorators keep)."""
    import regopt

    module = sys.modules[GALLERY[name].__module__]
    assert module.__file__ is not None
    return Path(module.__file__).resolve().relative_to(Path(regopt.__file__).resolve().parent.parent)
