"""Every random number generator a training run draws from, as a checkpoint can hold it (tensors, numbers and
strings only, so that ``torch.load(weights_only=True)`` reads it back): torch's global RNG, numpy's legacy
global RNG, Python's ``random``, and CUDA's when present."""

from __future__ import annotations

import ast
import random
from typing import Any, cast

import numpy as np
import torch


def capture_rng() -> dict[str, Any]:
    """The state of every global RNG."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state_to_tensors(cast(tuple[Any, ...], np.random.get_state())),
        "python": repr(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng` returned (CUDA's only where CUDA is present)."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(_numpy_state_from_tensors(state["numpy"]))
    random.setstate(ast.literal_eval(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state_to_tensors(state: tuple[Any, ...]) -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = state
    return {
        "kind": kind,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }


def _numpy_state_from_tensors(state: dict[str, Any]) -> tuple[Any, ...]:
    keys = state["keys"].numpy().astype(np.uint32)
    return (state["kind"], keys, state["pos"], state["has_gauss"], state["gauss"])
