"""Mixed precision for the Trainer: ``torch.autocast`` around the forward pass, and for float16 a gradient scaler.

``"32"`` runs everything in float32. ``"bf16"`` runs the forward pass (and the loss) under
``torch.autocast(dtype=torch.bfloat16)`` on CPU or CUDA: matrix products in bfloat16, reductions and the loss in
float32, parameters, gradients and optimizer state in float32. bfloat16 has float32's exponent range, so gradients
need no scaling. ``"fp16"`` autocasts to float16, whose range (max 65504, smallest normal 6e-5) makes small
gradients underflow: the loss is multiplied by a scale S before the backward pass (``torch.amp.GradScaler``), the
gradients are divided by S before anyone reads them (:meth:`MixedPrecision.unscale`), and a step whose gradients
overflowed to inf or NaN is skipped: the optimizer is not called at all, so its state (moments, step counts) does
not advance, and S is halved; after 2000 clean steps S doubles.

Everything that reads gradients in the Trainer (monitors, the NaN guard, clipping, the optimizer) sees them
unscaled. On a skipped step the gradients are discarded (set to None) before the monitors' ``after_step``, so
the NaN guard judges the loss and the parameters, which a skipped step leaves finite, not the overflow the
scaler already handled.

References: Micikevicius et al. (2018), *Mixed Precision Training*; torch.amp documentation.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import torch
from torch.optim import Optimizer

Precision = Literal["32", "bf16", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class MixedPrecision:
    """Autocast and (for ``"fp16"``) loss scaling on ``device``; stateful (the scale) for exact resume.

    Args:
        precision: ``"32"``, ``"bf16"`` or ``"fp16"``.
        device: where the model runs (its type picks the autocast backend and the scaler's device).
    """

    def __init__(self, precision: Precision, device: torch.device | str) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self.device_type = torch.device(device).type
        self.dtype = _DTYPES.get(precision)
        self.scaler = torch.amp.GradScaler(self.device_type) if precision == "fp16" else None
        self.skipped_steps = 0

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context for the forward pass and the loss (a no-op for ``"32"``)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, of ``S * loss`` under float16's scaler."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: Optimizer) -> bool:
        """Divide the gradients by the scale, in place; returns whether the step will be taken (all finite)."""
        if self.scaler is None:
            return True
        self.scaler.unscale_(optimizer)
        found = self.scaler._found_inf_per_device(optimizer)  # set by unscale_ (what scaler.step consults)
        return not any(v.item() for v in found.values())

    def step(self, optimizer: Optimizer, finite: bool) -> None:
        """The optimizer step, skipped when ``finite`` is False (the scaler's verdict), then the scale update."""
        if self.scaler is None:
            optimizer.step()
            return
        if not finite:
            self.skipped_steps += 1
        self.scaler.step(optimizer)  # calls optimizer.step() only if the unscaled gradients are finite
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        scaler = self.scaler.state_dict() if self.scaler is not None else {}
        return {"precision": self.precision, "scaler": scaler, "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["precision"] != self.precision:
            raise ValueError(f"checkpoint was trained at precision {state['precision']}, not {self.precision}")
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.skipped_steps = int(state["skipped_steps"])


__all__ = ["PRECISIONS", "MixedPrecision", "Precision"]
