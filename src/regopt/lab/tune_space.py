"""The search space of ``regopt tune``: its dimensions, and how a study remembers the space it was made with.

A dimension is written ``key=kind:args`` (``regularize.l2.alpha=loguniform:1e-6:1e-1``, ``optimizer.lr=uniform:
0.01:0.3``, ``train.batch_size=int:16:128``, ``model.widths=choice:[64],[128,128]``). Each has one canonical
spelling, :attr:`SearchParam.spec` (``1e-5`` and ``0.00001`` are both ``1e-05``), which a study stores in its user
attributes when it is created (:data:`SPACE_ATTR`). A resumed study compares the space it is given with the stored
one before any trial runs: Optuna cannot mix trials drawn from different spaces (a changed ``log`` setting raises
deep inside a trial; a new key leaves the old trials without it), and a table of trials from two spaces answers no
single question. :func:`space_differences` says what differs, key by key.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from regopt.lab.config import ConfigError, parse_value

KINDS = ("loguniform", "uniform", "int", "choice")
SPACE_ATTR = "search_space"
"""The study user attribute holding ``{key: spec}`` of the space the study was made with."""


@dataclass(frozen=True)
class SearchParam:
    """One dimension of the search space: a dotted config key and how to sample it."""

    key: str
    kind: str
    args: tuple[Any, ...]

    @classmethod
    def parse(cls, text: str) -> SearchParam:
        key, sep, spec = text.partition("=")
        kind, _, rest = spec.partition(":")
        if not sep or not key or kind not in KINDS:
            raise ConfigError(f"--param {text!r}: expected key=kind:args with kind one of {list(KINDS)}")
        if kind == "choice":
            args = tuple(parse_value(v) for v in _split_choices(rest))
            if not args:
                raise ConfigError(f"--param {text!r}: choice needs at least one value")
            return cls(key, kind, args)
        parts = rest.split(":")
        try:
            low, high = (int(p) for p in parts) if kind == "int" else (float(p) for p in parts)
        except ValueError:
            raise ConfigError(f"--param {text!r}: expected {kind}:low:high with numbers") from None
        if not low < high or (kind == "loguniform" and low <= 0):
            raise ConfigError(f"--param {text!r}: need low < high{' and low > 0' if kind == 'loguniform' else ''}")
        return cls(key, kind, (low, high))

    @property
    def spec(self) -> str:
        """The canonical ``kind:args`` text: equal for equal dimensions, however they were spelled."""
        return f"{self.kind}:" + (",".join if self.kind == "choice" else ":".join)(toml_literal(a) for a in self.args)

    @property
    def distribution(self) -> BaseDistribution:
        """The Optuna distribution :meth:`sample` suggests from (a choice is sampled as the index of its value)."""
        if self.kind == "choice":
            return CategoricalDistribution(list(range(len(self.args))))
        low, high = self.args
        if self.kind == "int":
            return IntDistribution(low, high)
        return FloatDistribution(low, high, log=self.kind == "loguniform")

    @property
    def points(self) -> range | None:
        """The values :meth:`sample` can return in Optuna's representation, or ``None`` for a continuous range."""
        if self.kind == "choice":
            return range(len(self.args))
        return range(self.args[0], self.args[1] + 1) if self.kind == "int" else None

    def sample(self, trial: optuna.Trial) -> Any:
        if self.kind == "loguniform":
            return trial.suggest_float(self.key, *self.args, log=True)
        if self.kind == "uniform":
            return trial.suggest_float(self.key, *self.args)
        if self.kind == "int":
            return trial.suggest_int(self.key, *self.args)
        index = trial.suggest_categorical(self.key, list(range(len(self.args))))
        return self.args[index]

    def value(self, stored: Any) -> Any:
        """The config value of Optuna's stored parameter ``stored`` (a choice's index becomes its value)."""
        return self.args[stored] if self.kind == "choice" and stored is not None else stored


def _split_choices(text: str) -> list[str]:
    """Split ``a,[1,2],b`` on commas outside brackets."""
    out, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += char
    return [c for c in [*out, current] if c]


def toml_literal(value: Any) -> str:
    """``value`` as a TOML literal (what ``--set key=...`` accepts)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    return repr(value)


def space_spec(space: Sequence[SearchParam]) -> dict[str, str]:
    """``{key: spec}``: what a study stores of its space (:data:`SPACE_ATTR`)."""
    return {p.key: p.spec for p in space}


def grid_size(space: Sequence[SearchParam]) -> float:
    """How many distinct points the space holds (``inf`` when a dimension is continuous)."""
    return math.prod(math.inf if p.points is None else len(p.points) for p in space)


def grid(space: Sequence[SearchParam]) -> Iterator[tuple[Any, ...]]:
    """Every point of an all-discrete space, in Optuna's representation, one value per dimension in order."""
    return itertools.product(*(p.points or () for p in space))


def space_differences(stored: Mapping[str, str], space: Sequence[SearchParam]) -> list[str]:
    """What differs between a study's stored ``{key: spec}`` and ``space``, one phrase per key."""
    return _differences(stored, space_spec(space))


def _differences(stored: Mapping[str, str], given: Mapping[str, str]) -> list[str]:
    changed = [f"{k} was {stored[k]} and is now {given[k]}" for k in given if k in stored and stored[k] != given[k]]
    new = [f"{k}={given[k]} is new" for k in given if k not in stored]
    missing = [f"{k}={stored[k]} is missing" for k in stored if k not in given]
    return [*changed, *new, *missing]


def _distribution_spec(distribution: BaseDistribution) -> str:
    if isinstance(distribution, FloatDistribution):
        return f"{'loguniform' if distribution.log else 'uniform'}:{distribution.low!r}:{distribution.high!r}"
    if isinstance(distribution, IntDistribution):
        return f"int:{distribution.low!r}:{distribution.high!r}"
    assert isinstance(distribution, CategoricalDistribution)
    return f"choice of {len(distribution.choices)} values"


def legacy_differences(trials: Sequence[optuna.trial.FrozenTrial], space: Sequence[SearchParam]) -> list[str]:
    """:func:`space_differences` for a study made before spaces were stored, judged from its trials' distributions
    (where a choice is known only by its number of values)."""
    stored: dict[str, str] = {}
    for trial in trials:
        stored.update({k: _distribution_spec(d) for k, d in trial.distributions.items()})
    if not stored:  # a new study, or one whose trials never drew a point
        return []
    return _differences(stored, {p.key: _distribution_spec(p.distribution) for p in space})
