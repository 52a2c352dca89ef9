"""The sampler of ``regopt tune``: TPE whose randomness is a function of the trial number, never repeating a point.

A plain ``TPESampler(seed=s)`` keeps its random state in the process: a study resumed in a new process starts the
sequence again, so trials 3-5 of a resumed 3 + 3 study were copies of trials 0-2. :class:`FreshPointSampler`
instead draws trial ``n``'s point with a fresh ``TPESampler`` seeded by ``hash(s, n)``: the point is a function
of the seed, the trial number and the finished trials before it (TPE's model, Bergstra et al. 2011, is fitted to
them; its first 10 points are uniform draws). A study resumed from the same history therefore proposes exactly
the points the uninterrupted study would have, and a study run 3 + 3 equals one run 6 straight when its trials
are deterministic (regopt's runs are, on one machine). It does not hold when an earlier call was interrupted (the
interrupted trial keeps its number as a failed trial, so later numbers shift) or with several workers at once.

A point equal to one already tried (a finished, pruned or failed trial; not one that was interrupted) is never
proposed again: the draw is repeated with the next seed ``hash(s, n, attempt)``, and when TPE keeps proposing
tried points of a small discrete space, an untried point is taken uniformly at random. ``tune`` stops the study
when a discrete space has no untried point left.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from regopt.lab.tune_space import SearchParam, grid

INTERRUPTED = "interrupted"
"""The error recorded for a trial that was stopped from outside (Ctrl-C, a killed process): its point may recur."""

GRID_LIMIT = 1_000_000
"""The most points of a discrete space searched for an untried one."""


def derived_seed(seed: int, *numbers: int) -> int:
    """A 32-bit seed that is a function of ``seed`` and ``numbers`` alone (same on every machine and Python)."""
    digest = hashlib.sha256(":".join(str(n) for n in (seed, *numbers)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def point_of(trial: FrozenTrial, keys: Sequence[str]) -> tuple[Any, ...]:
    """A trial's parameters, in Optuna's representation, in the order of ``keys``."""
    return tuple(trial.params.get(k) for k in keys)


def tried_points(study: optuna.Study, keys: Sequence[str]) -> set[tuple[Any, ...]]:
    """The points of every trial that ran to an outcome: finished, pruned, or failed (not interrupted)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    return {
        point_of(t, keys)
        for t in trials
        if t.state != TrialState.FAIL or t.user_attrs.get("error", INTERRUPTED) != INTERRUPTED
    }


class FreshPointSampler(BaseSampler):
    """TPE seeded per trial number, proposing each trial's whole point at once and never a tried one."""

    def __init__(self, space: Sequence[SearchParam], seed: int = 0, attempts: int = 20) -> None:
        self.space = sorted(space, key=lambda p: p.key)  # the order the user gave does not change the points
        self.seed, self.attempts = seed, attempts

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {p.key: p.distribution for p in self.space}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        keys = [p.key for p in self.space if p.key in search_space]
        if not keys:
            return {}
        tried = tried_points(study, keys)
        point: dict[str, Any] = {}
        for attempt in range(self.attempts):
            tpe = TPESampler(seed=derived_seed(self.seed, trial.number, attempt))
            point = {k: tpe.sample_independent(study, trial, k, search_space[k]) for k in keys}
            if tuple(point.values()) not in tried:
                return point
        space = [p for p in self.space if p.key in keys]
        untried = [q for q in itertools.islice(grid(space), GRID_LIMIT) if q not in tried]
        if untried:  # TPE keeps returning to tried points of a small discrete space
            return dict(zip(keys, random.Random(derived_seed(self.seed, trial.number)).choice(untried), strict=True))
        return point  # every point was tried: tune stops before asking, so only a caller of its own gets here

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        """A parameter outside the space (none in ``tune``): uniform, seeded by trial number and name."""
        name = int.from_bytes(hashlib.sha256(param_name.encode()).digest()[:4], "little")
        sampler = RandomSampler(seed=derived_seed(self.seed, trial.number, name))
        return sampler.sample_independent(study, trial, param_name, param_distribution)
