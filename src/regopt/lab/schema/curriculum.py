"""Config section ``[curriculum]``: curriculum learning (sec. 8.7.6), continuation over the training data."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from regopt.curriculum import Curriculum
from regopt.lab.schema.base import Seed, Strict, Width
from regopt.lab.schema.defaults import default_of


class CurriculumConfig(Strict):
    """Train on the easiest ``start_fraction`` of the examples first and add harder ones epoch by epoch until
    all are used from epoch ``epochs_to_full`` (counted from 0). Difficulty is each example's loss under a
    reference MLP (``reference_widths``) trained for ``reference_epochs`` epochs on the same training split with
    Adam and the run's batch size, from ``reference_seed``; see :class:`regopt.curriculum.Curriculum`."""

    epochs_to_full: Annotated[int, Field(ge=0)]
    """First epoch (from 0) that uses every example; 0 means no curriculum."""
    start_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = default_of(Curriculum, "start_fraction")
    """Fraction of the examples (the easiest) used in epoch 0."""
    pacing: Literal["linear", "root", "step"] = default_of(Curriculum, "pacing")
    """How the fraction grows: linearly, as a square root (faster at first) or in one step at epochs_to_full."""
    order: Literal["easy_first", "hard_first"] = "easy_first"
    """``hard_first`` is the anti-curriculum: the same schedule over the hardest examples."""
    same_steps: bool = False
    """Cycle the epoch's examples (reshuffled each pass) up to the training set's size, so every epoch takes as
    many optimizer steps as plain training; ``false`` takes them once (fewer steps in early epochs)."""
    reference_widths: list[Width] = Field(default_factory=lambda: [32], min_length=0, max_length=16)
    """Hidden widths of the reference MLP that scores difficulty."""
    reference_epochs: PositiveInt = 3
    """Epochs the reference MLP trains before scoring."""
    reference_seed: Seed = 100
    """Seed of the reference MLP's initialization and batch order."""
