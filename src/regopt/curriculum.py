"""Continuation methods and curriculum learning (sec. 8.7.6): start from an easier problem, move to the real one.

*Continuation* builds a series of objectives J^(0), ..., J^(n) = J, each easier to minimize than the next, and
minimizes them in turn, each from the solution of the previous. The book's example is *blurring*: J^(i)(theta) =
E_{theta' ~ N(theta, sigma_i^2 I)} J(theta'), which averages away small local minima; with sigma decreasing to 0
the minimizer is tracked from the blurred bowl into (one hopes) the global basin of J (Mobahi & Fisher 2015).
Here: :func:`smoothed_loss` (a Monte Carlo estimate of the blurred loss, differentiable in theta) and
:func:`continuation_schedule` (sigma_0, ..., 0).

*Curriculum learning* (Bengio et al. 2009) is continuation over the data: train first on easy examples, then
mix in harder ones until the whole training set is used. Here: :func:`difficulty_by_loss` and
:func:`difficulty_by_margin` score examples with a reference model, and :class:`Curriculum` gives each
epoch's examples (the easiest fraction(epoch) of them, shuffled).

Example, a plain loop::

    difficulty = difficulty_by_loss(reference_model, None, x_train, y_train)  # None: the default loss
    curriculum = Curriculum(difficulty, start_fraction=0.2, epochs_to_full=10)
    g = torch.Generator().manual_seed(0)
    for epoch in range(20):
        x, y = curriculum_subset(x_train, y_train, curriculum, epoch, generator=g)  # easiest, shuffled
        for start in range(0, len(x), 64):
            loss = F.cross_entropy(model(x[start:start + 64]), y[start:start + 64])
            ...
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

__all__ = [
    "Curriculum",
    "continuation_schedule",
    "curriculum_subset",
    "difficulty_by_loss",
    "difficulty_by_margin",
    "smoothed_loss",
]

Pacing = Literal["linear", "root", "step"]
LossFn = Callable[[Tensor, Tensor], Tensor]


@torch.no_grad()
def _outputs(model: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def difficulty_by_loss(
    model: nn.Module, loss_fn: LossFn | None, x: Tensor, y: Tensor, *, batch_size: int = 4096
) -> Tensor:
    """Per-example loss of a reference ``model`` (in eval mode, without gradients): larger is harder.

    The arguments come in regopt's order for functions of a model, a loss and data, ``(model, loss_fn, x, y)``
    (as :func:`smoothed_loss`, :func:`regopt.adversarial.fgsm`, :func:`regopt.diagnostics.gradient_noise`).

    Args:
        model: a trained reference model (a smaller or earlier model, the "teacher" of Hacohen & Weinshall 2019).
        loss_fn: ``(output, y) -> per-example losses`` (unreduced; extra axes are averaged), e.g.
            ``functools.partial(F.cross_entropy, reduction="none")``, or ``None`` for the default: unreduced
            cross-entropy for integer ``y``, squared error averaged over outputs otherwise.
        x, y: the examples to score.
        batch_size: examples per forward pass.

    Returns:
        A float tensor of shape ``(n,)``.

    Example:
        >>> model = nn.Linear(2, 2)
        >>> difficulty_by_loss(model, None, torch.zeros(3, 2), torch.tensor([0, 1, 0])).shape
        torch.Size([3])
    """
    if isinstance(loss_fn, Tensor) or not isinstance(x, Tensor):
        raise TypeError(
            "difficulty_by_loss: arguments are (model, loss_fn, x, y); pass loss_fn=None for the default loss "
            "(the earlier order (model, x, y, loss_fn) is gone)"
        )
    output = _outputs(model, x, batch_size)
    if loss_fn is not None:
        losses = loss_fn(output, y)
    elif y.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
        losses = F.cross_entropy(output, y, reduction="none")
    else:
        losses = F.mse_loss(output, y.reshape(output.shape), reduction="none")
    if losses.dim() == 0 or losses.shape[0] != len(x):
        raise ValueError(f"loss_fn: expected per-example losses of shape ({len(x)}, ...), got {tuple(losses.shape)}")
    return losses.reshape(len(x), -1).mean(dim=1).float()


def difficulty_by_margin(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 4096) -> Tensor:
    """Minus the classification margin of a reference ``model``: ``max_{k != y} z_k - z_y`` for logits z.

    Negative for examples classified correctly with room to spare (easy), positive for misclassified ones
    (hard). Shape ``(n,)``.
    """
    logits = _outputs(model, x, batch_size).float()
    true = logits.gather(1, y.reshape(-1, 1)).squeeze(1)
    others = logits.scatter(1, y.reshape(-1, 1), float("-inf")).amax(dim=1)
    return others - true


class Curriculum:
    """Which examples to train on at each epoch: the easiest ``fraction(epoch)`` of them, shuffled.

    With ``s = start_fraction`` and ``T = epochs_to_full``, epochs counted from 0::

        linear  fraction(e) = s + (1 - s) e / T                 (Bengio et al. 2009; Hacohen & Weinshall 2019)
        root    fraction(e) = sqrt(s^2 + (1 - s^2) e / T)       (faster at first; Platanios et al. 2019)
        step    fraction(e) = s for e < T                       (easy examples only, then all: Bengio et al.
                                                                 2009's two-stage "switch epoch" curriculum)

    each capped at 1, so every example is used from epoch T on. The epoch's examples are the
    ``ceil(fraction * n)`` with the lowest difficulty (ties broken by position), in a random order. The schedule
    is a pure function of the epoch, so a resumed run needs only its epoch number (and its generator).

    Args:
        difficulty: a score per training example, shape ``(n,)``; lower is easier (e.g. from
            :func:`difficulty_by_loss`).
        start_fraction: fraction of the examples used at epoch 0, in (0, 1].
        epochs_to_full: first epoch at which all examples are used (>= 0; 0 means no curriculum).
        pacing: ``"linear"``, ``"root"`` or ``"step"``.

    Example:
        >>> c = Curriculum(torch.tensor([0.5, 0.1, 0.9, 0.3]), start_fraction=0.5, epochs_to_full=2)
        >>> [c.fraction(e) for e in range(3)], sorted(c.indices(0).tolist())
        ([0.5, 0.75, 1.0], [1, 3])
    """

    def __init__(
        self, difficulty: Tensor, *, start_fraction: float = 0.2, epochs_to_full: int, pacing: Pacing = "linear"
    ) -> None:
        difficulty = torch.as_tensor(difficulty)
        if difficulty.dim() != 1 or len(difficulty) == 0:
            raise ValueError(f"difficulty: expected a non-empty 1-D tensor, got shape {tuple(difficulty.shape)}")
        if not torch.isfinite(difficulty).all():
            raise ValueError("difficulty: contains NaN or infinite scores")
        if not 0.0 < start_fraction <= 1.0:
            raise ValueError(f"start_fraction: must be in (0, 1], got {start_fraction}")
        if epochs_to_full < 0:
            raise ValueError(f"epochs_to_full: must be >= 0, got {epochs_to_full}")
        if pacing not in ("linear", "root", "step"):
            raise ValueError(f"pacing: expected 'linear', 'root' or 'step', got {pacing!r}")
        self.difficulty = difficulty.detach().cpu()
        self.order = torch.argsort(self.difficulty, stable=True)  # easiest first
        self.start_fraction, self.epochs_to_full, self.pacing = start_fraction, epochs_to_full, pacing

    def __len__(self) -> int:
        return len(self.order)

    def fraction(self, epoch: int) -> float:
        """Fraction of the training set used at ``epoch`` (from 0)."""
        if epoch < 0:
            raise ValueError(f"epoch: must be >= 0, got {epoch}")
        s, t = self.start_fraction, self.epochs_to_full
        if epoch >= t:
            return 1.0
        if self.pacing == "linear":
            return s + (1.0 - s) * epoch / t
        if self.pacing == "root":
            return math.sqrt(s * s + (1.0 - s * s) * epoch / t)
        return s

    def size(self, epoch: int) -> int:
        """Number of examples used at ``epoch``: ``ceil(fraction(epoch) * n)``, at least 1."""
        n = len(self.order)
        return min(n, max(1, math.ceil(self.fraction(epoch) * n - 1e-9)))

    def indices(self, epoch: int, generator: torch.Generator | None = None) -> Tensor:
        """Indices of the epoch's examples (the easiest ``size(epoch)``), shuffled by ``generator``."""
        chosen = self.order[: self.size(epoch)]
        return chosen[torch.randperm(len(chosen), generator=generator)]


def curriculum_subset(
    x: Tensor, y: Tensor, curriculum: Curriculum, epoch: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """The epoch's training examples ``(x[i], y[i])`` in the curriculum's shuffled order.

    For loops that draw batches from fixed tensors: call it at the start of each epoch and iterate over the
    result in order. (A batch transform cannot do this job: it sees one batch, not which examples are drawn.)
    """
    if len(x) != len(curriculum) or len(y) != len(curriculum):
        raise ValueError(f"x and y: expected {len(curriculum)} examples (one per score), got {len(x)} and {len(y)}")
    index = curriculum.indices(epoch, generator).to(x.device)
    return x[index], y[index]


def smoothed_loss(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    *,
    sigma: float,
    samples: int = 8,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Monte Carlo estimate of the blurred loss E_{eps ~ N(0, I)} loss_fn(f(x; theta + sigma eps), y).

    Each of ``samples`` draws perturbs every trainable parameter by sigma times standard normal noise and calls
    the model with the perturbed tensors (``torch.func.functional_call``; the model's own parameters are not
    modified). The result is differentiable in theta, so ``backward()`` gives an unbiased estimate of the
    gradient of the blurred objective. ``sigma = 0`` is the plain loss (one call).

    Args:
        model: the model; its parameters with ``requires_grad`` are perturbed, buffers are used as they are.
        loss_fn: ``(output, y) -> scalar``.
        x, y: a batch.
        sigma: standard deviation of the weight perturbation (>= 0).
        samples: number of perturbations averaged (>= 1).
        generator: random source of the noise (on the parameters' device), or torch's global RNG.

    Example (continuation: blur a lot, then less, down to the real objective)::

        for sigma in continuation_schedule(1.0, 10):
            for _ in range(100):
                optimizer.zero_grad()
                smoothed_loss(model, F.cross_entropy, x, y, sigma=sigma, samples=8).backward()
                optimizer.step()

    References:
        Mobahi & Fisher (2015), "A theoretical analysis of optimization by Gaussian continuation"; Goodfellow,
        Bengio & Courville (2016), sec. 8.7.6.
    """
    if sigma < 0:
        raise ValueError(f"sigma: must be >= 0, got {sigma}")
    if samples < 1:
        raise ValueError(f"samples: must be >= 1, got {samples}")
    if sigma == 0:
        return loss_fn(model(x), y)
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    total: Tensor | None = None
    for _ in range(samples):
        perturbed = {
            name: p + sigma * torch.randn(p.shape, generator=generator, dtype=p.dtype, device=p.device)
            for name, p in params.items()
        }
        loss = loss_fn(functional_call(model, perturbed, (x,)), y)
        total = loss if total is None else total + loss
    assert total is not None
    return total / samples


def continuation_schedule(sigma0: float, stages: int, *, shape: Literal["linear", "cosine"] = "linear") -> list[float]:
    """Blur levels sigma_0 = ``sigma0`` > sigma_1 > ... > sigma_{stages-1} = 0 for :func:`smoothed_loss`.

    ``linear``: sigma_k = sigma0 (1 - k / (stages - 1)); ``cosine``: sigma0 (1 + cos(pi k / (stages - 1))) / 2,
    which lingers at both ends. The last stage is the unblurred objective.

    Example:
        >>> continuation_schedule(1.0, 5)
        [1.0, 0.75, 0.5, 0.25, 0.0]
    """
    if sigma0 <= 0:
        raise ValueError(f"sigma0: must be > 0, got {sigma0}")
    if stages < 2:
        raise ValueError(f"stages: must be >= 2 (sigma0 ... 0), got {stages}")
    if shape not in ("linear", "cosine"):
        raise ValueError(f"shape: expected 'linear' or 'cosine', got {shape!r}")
    last = stages - 1
    if shape == "linear":
        return [sigma0 * (1.0 - k / last) for k in range(stages)]
    return [sigma0 * 0.5 * (1.0 + math.cos(math.pi * k / last)) for k in range(stages)]
