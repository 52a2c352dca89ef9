"""``torch.<Class>`` -> a class of ``torch.optim.lr_scheduler``, as ``[schedule] name = "torch.OneCycleLR"`` refers
to them, and the options each takes.

Every scheduler of the module is offered except those a TOML config cannot describe (:data:`REFUSED`: they take
a Python function or other schedulers) and ``ReduceLROnPlateau``, which is ``name = "plateau"`` (the lab feeds it
the metric it judges). A scheduler's options are its constructor's keyword arguments, read from its signature,
less the ones regopt supplies (``optimizer``; ``last_epoch``, which a resume restores from the checkpoint) and
optional ones that take a function (``CyclicLR``'s ``scale_fn``). This module sits below the config schema,
which checks a config's keys against it; :mod:`regopt.lab.registry` builds the scheduler.
"""

from __future__ import annotations

import inspect

from torch.optim import lr_scheduler

TORCH_PREFIX = "torch."
"""How a config names a torch scheduler: ``torch.`` then the class name."""
SUPPLIED = ("optimizer", "last_epoch")
"""Constructor arguments regopt passes itself: the run's optimizer, and the step count a resume restores."""
REFUSED: dict[str, str] = {
    "LambdaLR": 'takes lr_lambda, a Python function, which a config cannot hold (name = "linear" is Algorithm '
    "8.1's LambdaLR)",
    "MultiplicativeLR": "takes lr_lambda, a Python function, which a config cannot hold",
    "SequentialLR": "chains other schedulers, which a config cannot build (warmup_steps or warmup_epochs put a "
    "linear warmup before any schedule)",
    "ChainedScheduler": "chains other schedulers, which a config cannot build",
    "ReduceLROnPlateau": 'is name = "plateau", which feeds it the metric it judges (monitor) after each epoch',
}
"""Schedulers of torch.optim.lr_scheduler a config cannot name, and why."""
PER_STEP: dict[str, str] = {
    "OneCycleLR": "its cycle counts optimizer steps",
    "CyclicLR": "its cycles count optimizer steps (step_size_up)",
}
"""Schedulers torch documents as stepped after every batch: they need ``interval = "step"``, and they start from
their own base learning rate, so they take no warmup."""

LENGTH_KEYS: dict[str, tuple[str, ...]] = {"OneCycleLR": ("total_steps", "epochs", "steps_per_epoch")}
"""Schedulers whose length a config may leave out, and the keys that give it: given none, regopt makes the
schedule span the whole run (``total_steps`` = the run's steps), so its rates depend on the run's length."""


def _schedulers() -> dict[str, type]:
    found = {}
    for name, value in vars(lr_scheduler).items():
        if name.startswith("_") or not isinstance(value, type) or value is lr_scheduler.LRScheduler:
            continue
        if issubclass(value, lr_scheduler.LRScheduler) or value is lr_scheduler.ReduceLROnPlateau:
            found[name] = value
    return dict(sorted(found.items()))


SCHEDULERS: dict[str, type] = {name: cls for name, cls in _schedulers().items() if name not in REFUSED}
"""Class name -> scheduler class, for every scheduler a config may name as ``torch.<name>``."""


def _takes_a_function(parameter: inspect.Parameter) -> bool:
    return "Callable" in str(parameter.annotation)


def scheduler_options(name: str) -> list[str]:
    """The keyword arguments a config may give ``torch.<name>`` (``name`` one of :data:`SCHEDULERS`)."""
    parameters = inspect.signature(SCHEDULERS[name]).parameters.values()
    return [p.name for p in parameters if p.name not in SUPPLIED and not _takes_a_function(p)]


def required_options(name: str) -> list[str]:
    """The options of ``torch.<name>`` without a default, which a config must give."""
    parameters = inspect.signature(SCHEDULERS[name]).parameters
    return [key for key in scheduler_options(name) if parameters[key].default is inspect.Parameter.empty]


def takes_text(name: str, key: str) -> bool:
    """Whether option ``key`` of ``torch.<name>`` takes a string (``mode``, ``anneal_strategy``): its default is one
    or its annotation says so. torch does not check types, and a string where it counts (``milestones = "2,4"``)
    would silently schedule nothing."""
    parameter = inspect.signature(SCHEDULERS[name]).parameters[key]
    return isinstance(parameter.default, str) or "str" in str(parameter.annotation)


def unknown_scheduler(name: str) -> str:
    """Why ``name`` (a ``[schedule] name`` beginning ``torch.``) names no scheduler a config can use."""
    cls = name[len(TORCH_PREFIX) :]
    if cls in REFUSED:
        return f"{name} {REFUSED[cls]}"
    some = ", ".join(TORCH_PREFIX + n for n in ("OneCycleLR", "MultiStepLR", "CosineAnnealingWarmRestarts"))
    return f"unknown torch scheduler {name!r}: torch.<Class> names a class of torch.optim.lr_scheduler, e.g. {some}"


__all__ = [
    "LENGTH_KEYS",
    "PER_STEP",
    "REFUSED",
    "SCHEDULERS",
    "SUPPLIED",
    "TORCH_PREFIX",
    "required_options",
    "scheduler_options",
    "takes_text",
    "unknown_scheduler",
]
