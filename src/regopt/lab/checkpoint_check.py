"""Check a checkpoint's structure against the trainer it is about to be loaded into, before any of it is used.

``torch.load(weights_only=True)`` guarantees that reading a checkpoint runs no code, not that what it read has the
layout :meth:`regopt.lab.trainer.Trainer.state_dict` writes: a damaged or hand-edited file can hold the epoch as a
string, an RNG state of another dtype, a tensor where the history belongs, or another model's weights. Loading such
a file would fail somewhere inside torch or training (a traceback, or torch's multi-line size-mismatch report), or
worse, half-way through restoring the trainer. :func:`check_trainer_state` compares every field with what this
trainer would write (keys present, types, RNG states as ``uint8`` tensors of the right length, the model's tensor
names and shapes) and raises :class:`~regopt.lab.checkpoint.CheckpointError` with one line naming the first field
that does not fit, e.g. ``runs/x/checkpoint.pt: position.epoch is a str, expected an int``.
"""

from __future__ import annotations

import ast
import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import Tensor

from regopt._checks import is_int, is_real
from regopt.lab.checkpoint import CheckpointError

TRAINER_KEYS = (
    "model",
    "optimizer",
    "scheduler",
    "hook_states",
    "position",
    "elapsed",
    "stop_reason",
    "history",
    "rng",
)
"""The top-level keys of :meth:`regopt.lab.trainer.Trainer.state_dict`."""

_WEIGHT_KEYS = ("weights", "best_weights")
"""Keys under which a monitor's state holds a copy of the model's weights (LiveWeights, EarlyStopping)."""


def _kind(value: object) -> str:
    """How a value is named in a message: ``a str``, ``an int``, ``a Tensor``, ``None``."""
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


class _Checker:
    """Raises one :class:`CheckpointError` line for the first field that does not fit; fields named by dotted path."""

    def __init__(self, path: str | Path, prefix: str = "") -> None:
        self.path, self.prefix = path, prefix

    def fail(self, field: str, problem: str) -> NoReturn:
        raise CheckpointError(f"{self.path}: {self.prefix}{field} {problem}")

    def get(self, state: Mapping[str, Any], key: str, field: str) -> Any:
        if key not in state:
            self.fail(field, "is missing")
        return state[key]

    def mapping(self, value: Any, field: str) -> Mapping[Any, Any]:
        if not isinstance(value, Mapping):
            self.fail(field, f"is {_kind(value)}, expected a dict")
        return value

    def integer(self, value: Any, field: str, *, low: int = 0, high: int | None = None) -> None:
        if not is_int(value):
            self.fail(field, f"is {_kind(value)}, expected an int")
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            self.fail(field, f"is {value}, expected {bounds}")

    def real(self, value: Any, field: str) -> None:
        if not is_real(value):
            self.fail(field, f"is {_kind(value)}, expected a number")

    def text(self, value: Any, field: str) -> None:
        if not isinstance(value, str):
            self.fail(field, f"is {_kind(value)}, expected a str")

    def byte_state(self, value: Any, field: str, length: int) -> None:
        """An RNG state: a 1-D ``uint8`` tensor of the generator's length."""
        if not isinstance(value, Tensor):
            self.fail(field, f"is {_kind(value)}, expected a uint8 tensor of {length} bytes")
        if value.dtype != torch.uint8 or value.dim() != 1 or value.numel() != length:
            shape = tuple(value.shape)
            self.fail(field, f"is a {value.dtype} tensor of shape {shape}, expected a uint8 tensor of {length} bytes")

    def weights(self, value: Any, field: str, model: Mapping[str, Tensor]) -> None:
        """Tensor names and shapes equal to the model's ``state_dict``."""
        value = self.mapping(value, field)
        missing = [name for name in model if name not in value]
        if missing:
            self.fail(f"{field}.{missing[0]}", f"is missing (this config's model has {len(model)} tensors)")
        unexpected = [name for name in value if name not in model]
        if unexpected:
            self.fail(f"{field}.{unexpected[0]}", "is not a tensor of this config's model")
        for name, tensor in model.items():
            saved = value[name]
            if not isinstance(saved, Tensor):
                self.fail(f"{field}.{name}", f"is {_kind(saved)}, expected a tensor")
            if tuple(saved.shape) != tuple(tensor.shape):
                self.fail(
                    f"{field}.{name}",
                    f"has shape {tuple(saved.shape)}, this config's model has {tuple(tensor.shape)}",
                )


def check_model_state(value: Any, model: torch.nn.Module, path: str | Path, field: str = "model") -> None:
    """:class:`CheckpointError` unless ``value`` holds exactly ``model``'s tensor names, with its shapes."""
    _Checker(path).weights(value, field, model.state_dict())


def check_trainer_state(state: Mapping[str, Any], trainer: Any, path: str | Path, prefix: str = "") -> None:
    """:class:`CheckpointError` (one line) unless ``state`` has the layout ``trainer.state_dict()`` writes and
    fits ``trainer``: every key present, every type right, RNG states of the right dtype and length, the model's
    tensors (and any copies of them held by monitors) with this model's names and shapes, as many optimizer groups
    and monitor states as the trainer has. ``prefix`` names where ``state`` lies in the file (``training_state.``)."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: {prefix.rstrip('.') or 'the checkpoint'} is {_kind(state)}, expected a dict")
    check = _Checker(path, prefix)
    for key in TRAINER_KEYS:
        check.get(state, key, key)
    model = trainer.model.state_dict()
    check.weights(state["model"], "model", model)
    _check_optimizer(check, state["optimizer"], trainer.optimizer)
    scheduler = state["scheduler"]
    if scheduler is not None:
        check.mapping(scheduler, "scheduler")
    elif trainer.scheduler is not None:
        check.fail("scheduler", "is None, but this config has a learning-rate schedule")
    _check_hook_states(check, state["hook_states"], trainer.stateful(), model)
    position = check.mapping(state["position"], "position")
    for key in ("epoch", "batch", "step"):
        check.integer(check.get(position, key, f"position.{key}"), f"position.{key}")
    check.real(state["elapsed"], "elapsed")
    check.text(state["stop_reason"], "stop_reason")
    _check_history(check, state["history"])
    _check_rng(check, state["rng"], trainer)


def _check_optimizer(check: _Checker, value: Any, optimizer: torch.optim.Optimizer, field: str = "optimizer") -> None:
    """The keys this optimizer's ``state_dict`` has; for torch's layout (``state``, ``param_groups``) as many groups
    and parameters as this optimizer, numbers where its hyperparameters are numbers, and per-parameter state tensors
    of their parameter's shape (state over all parameters at once, as L-BFGS's directions, has their total number
    as its last dimension). Block coordinate descent's layout before issue 19 (``inner``: one state per block)
    has each block's state checked against its inner optimizer; any other layout is left to the optimizer's
    ``load_state_dict``."""
    value = check.mapping(value, field)
    inners = getattr(optimizer, "inners", None)
    if isinstance(inners, list) and "inner" in value:
        for key in ("order", "current_block", "generator"):
            check.get(value, key, f"{field}.{key}")
        saved = value["inner"]
        if not isinstance(saved, list) or len(saved) != len(inners):
            check.fail(f"{field}.inner", f"is {_kind(saved)}, expected a list of {len(inners)} optimizer states")
        for i, (inner_state, inner) in enumerate(zip(saved, inners, strict=True)):
            _check_optimizer(check, inner_state, inner, f"{field}.inner[{i}]")
        return
    fresh = optimizer.state_dict()
    for key in fresh:
        check.get(value, key, f"{field}.{key}")
    if "state" not in fresh or "param_groups" not in fresh:
        return
    groups = value["param_groups"]
    if not isinstance(groups, list):
        check.fail(f"{field}.param_groups", f"is {_kind(groups)}, expected a list")
    if len(groups) != len(optimizer.param_groups):
        count = len(optimizer.param_groups)
        check.fail(f"{field}.param_groups", f"has {len(groups)} groups, this config's optimizer has {count}")
    for i, (group, ours) in enumerate(zip(groups, optimizer.param_groups, strict=True)):
        where = f"{field}.param_groups[{i}]"
        group = check.mapping(group, where)
        params = check.get(group, "params", f"{where}.params")
        if not isinstance(params, list) or len(params) != len(ours["params"]):
            check.fail(f"{where}.params", f"does not list this config's {len(ours['params'])} parameters")
        for key, default in ours.items():
            if key != "params" and key in group and is_real(default) and not is_real(group[key]):
                check.fail(f"{where}.{key}", f"is {_kind(group[key])}, expected a number")
    parameters = [p for ours in optimizer.param_groups for p in ours["params"]]
    total = sum(p.numel() for p in parameters)  # state over all parameters at once ends in this many (L-BFGS's d)
    state = check.mapping(value["state"], f"{field}.state")
    for index, entry in state.items():
        if not is_int(index) or not 0 <= index < len(parameters):
            check.fail(
                f"{field}.state", f"has an entry {index!r}, this config's optimizer has {len(parameters)} parameters"
            )
        entry = check.mapping(entry, f"{field}.state[{index}]")
        shape = tuple(parameters[index].shape)
        for name, tensor in entry.items():
            per_element = isinstance(tensor, Tensor) and tensor.is_floating_point() and tensor.dim() > 0
            if per_element and tuple(tensor.shape) != shape and tensor.shape[-1] != total:
                where = f"{field}.state[{index}].{name}"
                check.fail(where, f"has shape {tuple(tensor.shape)}, its parameter has {shape}")


def _check_hook_states(check: _Checker, value: Any, hooks: list[Any], model: Mapping[str, Tensor]) -> None:
    if not isinstance(value, list):
        check.fail("hook_states", f"is {_kind(value)}, expected a list of {len(hooks)} dicts")
    if len(value) != len(hooks):
        check.fail("hook_states", f"holds {len(value)} states, this config's trainer has {len(hooks)} stateful hooks")
    for i, (saved, hook) in enumerate(zip(value, hooks, strict=True)):
        field = f"hook_states[{i}]"
        saved = check.mapping(saved, field)
        fresh = hook.state_dict()
        for key, ours in fresh.items():
            if key not in saved:
                continue  # older checkpoints may lack newer keys; the hook decides
            theirs, where = saved[key], f"{field}.{key}"
            if key in _WEIGHT_KEYS and theirs is not None:
                check.weights(theirs, where, model)
            elif isinstance(ours, bool) and not isinstance(theirs, bool):
                check.fail(where, f"is {_kind(theirs)}, expected a bool")
            elif is_real(ours) and not is_real(theirs):
                check.fail(where, f"is {_kind(theirs)}, expected a number")
            elif isinstance(ours, str) and not isinstance(theirs, str):
                check.fail(where, f"is {_kind(theirs)}, expected a str")
            elif isinstance(ours, (Tensor, list, Mapping)) and not isinstance(theirs, type(ours)):
                check.fail(where, f"is {_kind(theirs)}, expected {_kind(ours)}")
        for key in _WEIGHT_KEYS:
            if key in saved and key not in fresh and saved[key] is not None:
                check.weights(saved[key], f"{field}.{key}", model)


def _check_history(check: _Checker, value: Any) -> None:
    if not isinstance(value, list):
        check.fail("history", f"is {_kind(value)}, expected a list of dicts of numbers")
    for i, row in enumerate(value):
        row = check.mapping(row, f"history[{i}]")
        for key, number in row.items():
            if not isinstance(key, str):
                check.fail(f"history[{i}]", f"has a key {key!r}, expected metric names")
            if number is not None and not isinstance(number, (int, float)):
                check.fail(f"history[{i}].{key}", f"is {_kind(number)}, expected a number")


def _check_rng(check: _Checker, value: Any, trainer: Any) -> None:
    rng = check.mapping(value, "rng")
    order_state = trainer.batch_order.generator.get_state().numel()
    check.byte_state(check.get(rng, "epoch_shuffle", "rng.epoch_shuffle"), "rng.epoch_shuffle", order_state)
    check.byte_state(check.get(rng, "torch", "rng.torch"), "rng.torch", torch.get_rng_state().numel())
    numpy = check.mapping(check.get(rng, "numpy", "rng.numpy"), "rng.numpy")
    kind = check.get(numpy, "kind", "rng.numpy.kind")
    if kind != "MT19937":
        check.fail("rng.numpy.kind", f"is {kind!r}, expected 'MT19937'")
    keys = check.get(numpy, "keys", "rng.numpy.keys")
    if not isinstance(keys, Tensor) or keys.dtype != torch.int64 or tuple(keys.shape) != (624,):
        described = f"a {keys.dtype} tensor of shape {tuple(keys.shape)}" if isinstance(keys, Tensor) else _kind(keys)
        check.fail("rng.numpy.keys", f"is {described}, expected an int64 tensor of 624 keys")
    if bool(((keys < 0) | (keys >= 2**32)).any()):
        check.fail("rng.numpy.keys", "holds values outside 0..2**32-1")
    check.integer(check.get(numpy, "pos", "rng.numpy.pos"), "rng.numpy.pos", high=624)
    check.integer(check.get(numpy, "has_gauss", "rng.numpy.has_gauss"), "rng.numpy.has_gauss", high=1)
    gauss = check.get(numpy, "gauss", "rng.numpy.gauss")
    check.real(gauss, "rng.numpy.gauss")
    if not math.isfinite(gauss):
        check.fail("rng.numpy.gauss", f"is {gauss}, expected a finite number")
    python = check.get(rng, "python", "rng.python")
    check.text(python, "rng.python")
    try:
        random.Random().setstate(ast.literal_eval(python))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        check.fail("rng.python", "is not a state of Python's random module")
    if "cuda" in rng:
        cuda = rng["cuda"]
        if not isinstance(cuda, list) or not all(isinstance(s, Tensor) and s.dtype == torch.uint8 for s in cuda):
            check.fail("rng.cuda", f"is {_kind(cuda)}, expected a list of uint8 tensors")


__all__ = ["TRAINER_KEYS", "check_model_state", "check_trainer_state"]
