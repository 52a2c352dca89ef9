"""Diagnostics of chapter 8's optimization challenges: curvature, conditioning and the loss landscape.

Everything here works on a plain ``nn.Module``, a loss function and a batch, in any training loop; monitors are
:class:`regopt.Monitor` objects.

- :mod:`~regopt.diagnostics.hvp`: Hessian-vector products (double backward and ``torch.func``);
  :mod:`~regopt.diagnostics.hessian_operator`: :class:`HessianOperator`, the Hessian of a model's loss on a batch
  as a matrix-free operator.
- :mod:`~regopt.diagnostics.ggn`: :class:`GGNOperator`, the generalized Gauss-Newton matrix ``J' H_L J``
  (positive semi-definite) with the same protocol.
- :mod:`~regopt.diagnostics.curvature`: Lanczos top/bottom eigenvalues, stochastic Lanczos quadrature spectral
  density; :mod:`~regopt.diagnostics.trace`: Hutchinson and Hutch++ trace, the diagonal estimate (block products).
- :mod:`~regopt.diagnostics.conditioning`: the chapter's ill-conditioning criterion
  ``0.5 * eps^2 * g'Hg > eps * g'g`` per step, and :class:`IllConditioningMonitor` tracking it in training.
- :mod:`~regopt.diagnostics.gradients`, :mod:`~regopt.diagnostics.guards`, :mod:`~regopt.diagnostics.plateau`:
  cliffs and exploding gradients (norms, spikes, clipping), NaN/Inf guards, plateaus and saddles.
- :mod:`~regopt.diagnostics.noise`: inexact gradients (per-example gradients, noise scale, SNR vs batch size).
- :mod:`~regopt.diagnostics.noise_scale`: the gradient noise scale from two batch sizes (per-rank and global
  gradients under data parallelism), and :class:`NoiseScaleMonitor` reporting it every epoch of a DDP run.
- :mod:`~regopt.diagnostics.long_term`: gradient norms with respect to an RNN's hidden state over time.
- :mod:`~regopt.diagnostics.symmetry`, :mod:`~regopt.diagnostics.landscape`: weight-space symmetry, 1-D
  interpolation and 2-D filter-normalized loss surfaces.
"""

from regopt.diagnostics.clipping import clip_by_norm, clip_by_value
from regopt.diagnostics.conditioning import IllConditioningMonitor, IllConditioningWarning, step_curvature
from regopt.diagnostics.curvature import (
    condition_number_estimate,
    hessian_trace,
    lanczos,
    min_eigenvalue,
    power_iteration,
    spectral_density,
    spectral_quadrature,
    top_eigenvalues,
)
from regopt.diagnostics.ggn import GGNOperator
from regopt.diagnostics.gradients import GradientMonitor, GradientSpike, gradient_norms
from regopt.diagnostics.guards import NonFiniteGuard, TrainingDiverged
from regopt.diagnostics.hessian_operator import HessianOperator
from regopt.diagnostics.hvp import hvp, hvp_func
from regopt.diagnostics.landscape import filter_normalized_direction, interpolate, loss_surface_2d
from regopt.diagnostics.long_term import hidden_state_gradient_norms
from regopt.diagnostics.noise import batch_size_curve, gradient_noise, gradient_snr, per_example_gradients
from regopt.diagnostics.noise_scale import NoiseScaleEstimate, NoiseScaleHook, noise_scale_terms, rank_gradient_norms
from regopt.diagnostics.noise_scale_monitor import NoiseScaleMonitor
from regopt.diagnostics.plateau import PlateauEvent, PlateauMonitor
from regopt.diagnostics.symmetry import (
    check_symmetries,
    count_equivalent_arrangements,
    permute_hidden_units,
    rescale_relu_unit,
)
from regopt.diagnostics.trace import hessian_diagonal

__all__ = [
    "GGNOperator",
    "GradientMonitor",
    "GradientSpike",
    "HessianOperator",
    "IllConditioningMonitor",
    "IllConditioningWarning",
    "NoiseScaleEstimate",
    "NoiseScaleHook",
    "NoiseScaleMonitor",
    "NonFiniteGuard",
    "PlateauEvent",
    "PlateauMonitor",
    "TrainingDiverged",
    "batch_size_curve",
    "check_symmetries",
    "clip_by_norm",
    "clip_by_value",
    "condition_number_estimate",
    "count_equivalent_arrangements",
    "filter_normalized_direction",
    "gradient_noise",
    "gradient_norms",
    "gradient_snr",
    "hessian_diagonal",
    "hessian_trace",
    "hidden_state_gradient_norms",
    "hvp",
    "hvp_func",
    "interpolate",
    "lanczos",
    "loss_surface_2d",
    "min_eigenvalue",
    "noise_scale_terms",
    "per_example_gradients",
    "permute_hidden_units",
    "power_iteration",
    "rank_gradient_norms",
    "rescale_relu_unit",
    "spectral_density",
    "spectral_quadrature",
    "step_curvature",
    "top_eigenvalues",
]
