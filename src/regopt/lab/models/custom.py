"""User models named by an import path, ``"package.module:function"``."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from regopt.lab.config import CustomModelConfig
from regopt.lab.models.base import ModelError


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def resolve_target(target: str) -> Callable[..., Any]:
    """Import ``"package.module:function"`` and return the callable it names.

    Raises:
        ModelError: when the target is malformed, the module cannot be imported, the attribute is missing,
            or it is not callable.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ModelError(f"model.target: expected 'package.module:function', got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # a user module may fail to import in any way; report it in one line
        raise ModelError(f"model.target: cannot import {module_name!r}: {_first_line(err)}") from None
    try:
        fn = getattr(module, attr)
    except AttributeError:
        raise ModelError(f"model.target: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(fn):
        raise ModelError(f"model.target: {target!r} is not callable (it is of type {type(fn).__name__})")
    return fn


def build_custom(cfg: CustomModelConfig, input_shape: tuple[int, ...], output_dim: int) -> nn.Module:
    """Call ``function(input_shape, output_dim, **cfg.kwargs)`` and check that it returns an ``nn.Module``.

    Example (``mymodels.py`` on ``sys.path``, then ``target = "mymodels:tiny"`` in the config)::

        import math
        import torch

        def tiny(input_shape, output_dim, width=32):
            return torch.nn.Sequential(
                torch.nn.Flatten(),
                torch.nn.Linear(math.prod(input_shape), width),
                torch.nn.ReLU(),
                torch.nn.Linear(width, output_dim),
            )

    Raises:
        ModelError: for an unusable target (see :func:`resolve_target`), keyword arguments the function does
            not accept, a return value that is not an ``nn.Module``, or a module whose forward does not return
            a Tensor of shape ``(batch, output_dim)`` (see :func:`check_output`). Errors raised inside the function
            itself propagate unchanged, with their traceback.
    """
    fn = resolve_target(cfg.target)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins and extension callables have no signature
        signature = None
    if signature is not None:
        try:
            signature.bind(input_shape, output_dim, **cfg.kwargs)
        except TypeError as err:
            raise ModelError(
                f"model.kwargs: {cfg.target!r} cannot be called as function(input_shape, output_dim, **kwargs): {err}"
            ) from None
    model = fn(input_shape, output_dim, **cfg.kwargs)
    if not isinstance(model, nn.Module):
        raise ModelError(f"model.target: {cfg.target!r} returned {type(model).__name__}, expected a torch.nn.Module")
    check_output(model, cfg.target, input_shape, output_dim)
    return model


def check_output(model: nn.Module, target: str, input_shape: tuple[int, ...], output_dim: int) -> None:
    """Run ``model`` once on a batch of 2 zeros and check it returns a Tensor of shape ``(2, output_dim)``.

    The pass runs in ``eval()`` mode without gradients and with torch's random state saved and restored, so the
    model (BatchNorm statistics included) and the run's random stream are as if it had not happened. A forward
    that raises is left for training to report (a model may expect inputs other than float zeros).

    Raises:
        ModelError: when the output is not a Tensor (a dict, a tuple) or has another shape.
    """
    expected = (2, output_dim)
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model.eval()
            output = model(torch.zeros(2, *input_shape))
    except Exception:  # the model's own errors surface in training, with their traceback
        return
    finally:
        model.train(was_training)
    if not isinstance(output, torch.Tensor):
        raise ModelError(
            f"model.target: {target!r} returned {type(output).__name__} from forward, expected a Tensor of shape "
            f"{expected} (one row of outputs per example)"
        )
    if tuple(output.shape) != expected:
        raise ModelError(
            f"model.target: {target!r} returned a Tensor of shape {tuple(output.shape)} from forward, expected "
            f"{expected} (batch of 2, output_dim {output_dim})"
        )
