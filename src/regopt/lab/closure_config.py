"""What a run's config may combine with an optimizer that needs a closure, refused by key in one line each.

Every closure optimizer (SAM, L-BFGS, BFGS, CG, Newton, HessianFree: :func:`regopt.optim.needs_closure`) re-runs
forward and backward inside its step, where torch's GradScaler can neither unscale the gradients nor skip an
overflowed step, so ``train.precision = "fp16"`` is refused. Newton and HessianFree differentiate the closure's
loss themselves (:func:`regopt.optim.differentiates_closure`): they need the whole batch's graph in one piece and
compute their step from it, so they also refuse accumulation, a compiled model, gradient clipping, torchrun, and the
ill-conditioning check on the training step (its backward would consume that graph); see
:mod:`regopt.lab.train_step`.
"""

from __future__ import annotations

from torch.optim import Optimizer

from regopt.lab.config import ConfigError, RunConfig
from regopt.lab.distributed import World
from regopt.optim import differentiates_closure, needs_closure


def check_closure_config(config: RunConfig, optimizer: Optimizer, world: World | None) -> None:
    """Raise :class:`ConfigError` naming the first key that cannot go with ``optimizer``'s closure."""
    name = config.optimizer.name
    if config.train.precision == "fp16" and needs_closure(optimizer):
        raise ConfigError(
            f'train.precision: "fp16" cannot drive optimizer {name!r}, which needs a closure '
            '(torch\'s GradScaler does not support closures); use "bf16" or "32"'
        )
    if not differentiates_closure(optimizer):
        return
    why = f"optimizer {name!r} differentiates the whole batch's loss itself"
    if config.train.accumulate > 1:
        raise ConfigError(f"train.accumulate: {config.train.accumulate} micro-batches, but {why}; use 1")
    if config.train.compile:
        raise ConfigError(
            f"train.compile: optimizer {name!r} differentiates the loss twice (for curvature), which torch.compile "
            "does not support; set compile = false"
        )
    for key in ("clip_grad_norm", "clip_grad_value"):
        if getattr(config.train, key) is not None:
            raise ConfigError(f"train.{key}: clipping cannot act on the step of {name!r}: {why}; leave it unset")
    if world is not None:
        raise ConfigError(
            f"optimizer.name: {name!r} cannot train under torchrun: its autograd.grad bypasses "
            "DistributedDataParallel's all-reduce; run it in one process"
        )
    if config.multitask is not None and optimizer.param_groups[0].get("curvature") == "ggn":
        raise ConfigError(
            f"multitask: the Gauss-Newton curvature of {name!r} needs the model's output as one tensor, and the "
            'multi-task model has one per task; set optimizer.curvature = "hessian"'
        )
    conditioning = config.diagnostics.ill_conditioning
    if conditioning is not None and conditioning.probe_size is None:
        raise ConfigError(
            f"diagnostics.ill_conditioning: with {name!r} the check needs a probe batch (its backward on the "
            "training step would consume the graph the optimizer differentiates); set probe_size"
        )


__all__ = ["check_closure_config"]
