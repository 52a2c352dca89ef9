"""What a run with ``[distributed] strategy = "fsdp"`` supports, checked before anything is built.

FSDP2 turns every parameter into a DTensor slice. The optimizers (elementwise on the local slices), penalties,
gradient clipping, the NaN guard, gradient-norm and plateau monitors, early stopping without restoring, and
input, hidden and label noise work on it unchanged, and a run gives the single-process weights to float rounding
(``tests/lab/test_torchrun.py``). What keeps a whole copy of the weights, needs an operation DTensor lacks, or
swaps the model is refused here with the alternative, rather than failing mid-run or saving a wrong checkpoint.
"""

from __future__ import annotations

from regopt.lab.config import ConfigError, RunConfig

_USE_DDP = 'or use [distributed] strategy = "ddp"'


def unsupported_with_fsdp(config: RunConfig) -> list[tuple[str, str]]:
    """``(key, why)`` for each part of ``config`` a sharded run does not support."""
    found: list[tuple[str, str]] = []
    regularize = config.regularize
    if regularize.max_norm is not None:
        found.append(("regularize.max_norm", "DTensor has no renorm_ for the projection"))
    if regularize.weight_noise is not None:
        found.append(("regularize.weight_noise", "the noisy copy of the weights is taken from the whole tensor"))
    if regularize.tangent_prop is not None:
        found.append(("regularize.tangent_prop", "its forward-mode pass (torch.func) does not trace FSDP's gathers"))
    stopping = regularize.early_stopping
    if stopping is not None and (stopping.restore_best or stopping.then != "none"):
        found.append(
            ("regularize.early_stopping", "keeping the best weights copies whole tensors; set restore_best = false")
        )
    if config.averaging is not None:
        found.append(("averaging", "Polyak averages are not yet checkpointed whole by the lab"))
    if config.train.keep_best:
        found.append(("train.keep_best", "best.pt copies the whole weights"))
    if config.train.compile:
        found.append(("train.compile", "compiling FSDP2's gathers is not tested here"))
    if config.pretraining is not None:
        found.append(("pretraining", "each stage builds a new, unsharded network"))
    diagnostics = config.diagnostics
    if diagnostics.ill_conditioning is not None:
        found.append(("diagnostics.ill_conditioning", "its Hessian-vector products need the whole parameters"))
    if diagnostics.gradient_noise_scale is not None:
        found.append(("diagnostics.gradient_noise_scale", "it reads DDP's all-reduce, which FSDP2 does not run"))
    return found


def check_fsdp(config: RunConfig) -> None:
    """:class:`ConfigError` naming the first part of ``config`` a sharded run does not support."""
    found = unsupported_with_fsdp(config)
    if found:
        key, why = found[0]
        more = f" (and {', '.join(k for k, _ in found[1:])})" if len(found) > 1 else ""
        raise ConfigError(f'{key}: not supported with [distributed] strategy = "fsdp": {why}{more}; {_USE_DDP}')


__all__ = ["check_fsdp", "unsupported_with_fsdp"]
