"""Config section ``[diagnostics]``: monitors that make the optimization challenges visible during training, and
how each is built (:data:`DIAGNOSTICS`: adding a diagnostic touches this file; its monitor lives in
``regopt.diagnostics``, and :mod:`regopt.lab.diagnosis` builds the table's monitors and writes their reports)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field, PositiveInt

from regopt.diagnostics import GradientMonitor, IllConditioningMonitor, NonFiniteGuard, PlateauMonitor
from regopt.diagnostics.noise_scale_monitor import NoiseScaleMonitor
from regopt.lab.schema.base import Strict
from regopt.lab.schema.defaults import default_of
from regopt.lab.schema.wiring import WiringContext
from regopt.monitor import Monitor


class GradientNormsConfig(Strict):
    """Global gradient norm every ``every`` steps; a spike is a norm above ``spike_factor`` x the running
    median of the last ``window`` (cliffs and exploding gradients)."""

    every: PositiveInt = default_of(GradientMonitor, "every")
    window: PositiveInt = default_of(GradientMonitor, "window")
    spike_factor: Annotated[float, Field(gt=1.0)] = default_of(GradientMonitor, "spike_factor")


class IllConditioningConfig(Strict):
    """The chapter's criterion 0.5 eps^2 g'Hg - eps g'g for the step just taken, every ``every`` steps; an alarm
    after ``patience`` positive checks while the gradient norm rises and the loss stalls."""

    every: PositiveInt = default_of(IllConditioningMonitor, "every")
    patience: PositiveInt = default_of(IllConditioningMonitor, "patience")
    probe_size: PositiveInt | None = None
    """None: judge the training step's own minibatch gradient, reusing its backward (~2 gradients per check,
    +24% at every 10 steps in benchmarks/diagnostics.py). A number: a fixed probe batch of that many training
    examples instead (steadier from check to check; ~3 gradients per check)."""


class PlateauConfig(Strict):
    """A plateau or saddle: over ``window`` steps the loss moves by less than ``loss_tol`` (relative) or by no
    more than its own minibatch noise explains (``noise_z`` standard errors); see
    :class:`regopt.diagnostics.PlateauMonitor`."""

    window: Annotated[int, Field(ge=2)] = default_of(PlateauMonitor, "window")
    loss_tol: Annotated[float, Field(ge=0.0)] = default_of(PlateauMonitor, "loss_tol")
    noise_z: Annotated[float, Field(ge=0.0)] = default_of(PlateauMonitor, "noise_z")
    """A change of the loss within this many standard errors of its own step-to-step noise counts as none (for a
    loss whose noise is below 2% of it; a noisier window is not judged). 0: judge by loss_tol alone."""
    grad_tol: Annotated[float, Field(gt=0.0)] | None = default_of(PlateauMonitor, "grad_tol")
    """None: the gradient is reported, not judged (a minibatch gradient's norm stays well above zero on a
    plateau, e.g. 0.06 at chance level). A number: also require every gradient norm in the window below it
    (full-batch training)."""


class GradientNoiseScaleConfig(Strict):
    """The gradient noise scale B_simple = tr(Sigma) / ||G||^2 of every epoch (McCandlish et al. 2018), from the
    ranks' own gradients and their DDP average: almost free, and only under ``torchrun`` (2+ processes, a batch
    that splits evenly). Written to ``gradient_noise_scale.csv``; the last epoch's in the summary."""


class DiagnosticsConfig(Strict):
    nonfinite_guard: bool = True
    """Stop at the first step with a non-finite loss, gradient or weight, naming the layer; keep the last good
    checkpoint."""
    gradient_norms: GradientNormsConfig | None = None
    ill_conditioning: IllConditioningConfig | None = None
    plateau: PlateauConfig | None = None
    gradient_noise_scale: GradientNoiseScaleConfig | None = None


# ------------------------------------------------------------------------------------------------- wiring
def _guard(enabled: bool, ctx: WiringContext) -> Monitor:
    def stable_lr() -> float | None:  # the ill-conditioning monitor's last finite estimate, if it runs
        conditioning = ctx.built.get("ill_conditioning")
        last = conditioning.last_stable_lr() if isinstance(conditioning, IllConditioningMonitor) else None
        return last[1] if last is not None else None

    return NonFiniteGuard(ctx.model, lr_fn=ctx.lr, stable_lr_fn=stable_lr)  # called only when enabled


def _gradient_norms(c: GradientNormsConfig, ctx: WiringContext) -> Monitor:
    return GradientMonitor(ctx.model, every=c.every, window=c.window, spike_factor=c.spike_factor)


def _ill_conditioning(c: IllConditioningConfig, ctx: WiringContext) -> Monitor:
    if c.probe_size is None:  # the step actually taken: the Trainer lets the monitor run that backward
        return IllConditioningMonitor(ctx.model, lr_fn=ctx.lr, every=c.every, patience=c.patience, warn=False)
    probe = (ctx.data.x_train[: c.probe_size], ctx.data.y_train[: c.probe_size])
    return IllConditioningMonitor(ctx.model, ctx.loss_fn, probe, ctx.lr, every=c.every, patience=c.patience, warn=False)


def _plateau(c: PlateauConfig, ctx: WiringContext) -> Monitor:
    return PlateauMonitor(ctx.model, window=c.window, loss_tol=c.loss_tol, noise_z=c.noise_z, grad_tol=c.grad_tol)


def _gradient_noise_scale(c: GradientNoiseScaleConfig, ctx: WiringContext) -> Monitor:
    from regopt.lab.config import ConfigError  # the schema is imported by config.py
    from regopt.lab.distributed import World

    world = World.current()
    where = "diagnostics.gradient_noise_scale"
    if world is None:
        raise ConfigError(
            f"{where}: measured from the ranks' gradients under torchrun (2+ processes); in one process "
            "use regopt.diagnostics.gradient_noise"
        )
    if ctx.batch_size is None or ctx.batch_size % world.size:
        raise ConfigError(f"{where}: train.batch_size ({ctx.batch_size}) must split evenly into {world.size} ranks")
    return NoiseScaleMonitor(len(ctx.data.x_train), ctx.batch_size, world.size)


DIAGNOSTICS: dict[str, Callable[[Any, WiringContext], Monitor]] = {
    "nonfinite_guard": _guard,
    "gradient_norms": _gradient_norms,
    "ill_conditioning": _ill_conditioning,
    "plateau": _plateau,
    "gradient_noise_scale": _gradient_noise_scale,
}
"""``[diagnostics]`` key -> factory ``(section, context) -> monitor``, in the order the Trainer asks them (the
guard first). A key whose section is absent (or ``false``) adds nothing. Adding a diagnostic: its monitor in
``regopt.diagnostics`` with a ``report()``, then its section class, its field and one row here."""
