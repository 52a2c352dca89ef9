"""Adversarial training, robust accuracy and virtual adversarial training (Goodfellow et al. 2016, sec. 7.13).

Adversarial training minimizes a mix of the loss on clean and on adversarial examples (Goodfellow, Shlens &
Szegedy 2015)::

    J~(theta; x, y) = (1 - ratio) * J(theta; x, y) + ratio * J(theta; x_adv, y),   x_adv = attack(x, y)

with the adversarial examples regenerated against the current parameters at every step, and no gradient
through the attack. Two forms, the same objective:

- :class:`AdversarialTraining` (or :func:`adversarial_loss`) returns the mixed loss of a batch, for a plain
  loop: ``loss = adv(x, y); loss.backward()``. Every example counts clean and adversarially.
- :class:`AdversarialBatches` is a batch transform ``(x, y) -> (x', y')`` for regopt's Trainer (which computes
  ``loss_fn(model(x'), y')`` itself): a fraction ``ratio`` of each batch is replaced by its adversarial
  examples (Kurakin et al. 2017). The batch-mean loss is then ``(1 - k/n)`` clean plus ``k/n`` adversarial,
  ``k = round(ratio * n)``; as the Trainer's batches are shuffled, this is the mixed objective in expectation,
  at the cost of attacking only ``k`` examples per step. Put it *last* among the batch transforms, so the
  attack sees the batch the model will be trained on.

Virtual adversarial training (Miyato et al. 2018) needs no labels: the perturbation maximizes the change of the
model's own predicted distribution, found by power iteration, and the KL divergence it causes is the penalty
(:func:`virtual_adversarial_loss`, :class:`VirtualAdversarial`).

References:
    Goodfellow, Shlens & Szegedy (2015); Kurakin, Goodfellow & Bengio (2017), Adversarial machine learning at
    scale; Madry et al. (2018); Miyato, Maeda, Koyama & Ishii (2018), Virtual adversarial training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regopt._checks import check_alpha, check_int, check_real, is_finite_real
from regopt.adversarial.attacks import Attack, LossFn, eval_mode


def _check_ratio(ratio: float) -> float:
    ok = is_finite_real(ratio)
    if not ok or not 0 <= ratio <= 1:
        raise ValueError(f"ratio must be in [0, 1], got {ratio!r}")
    return float(ratio)


def adversarial_loss(
    model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, attack: Attack, ratio: float = 0.5
) -> Tensor:
    """``(1 - ratio) * loss_fn(model(x), y) + ratio * loss_fn(model(attack(model, loss_fn, x, y)), y)``.

    Goodfellow et al. (2015) used ``ratio = 0.5`` with FGSM; ``ratio = 1`` is Madry et al.'s training on
    adversarial examples only (usually with PGD). The attack runs first (in ``eval()`` mode, no parameter
    gradients); both forward passes then run in the model's current mode. ``ratio = 0`` skips the attack.

    Example::

        >>> from regopt.adversarial import FGSM
        >>> model = nn.Linear(4, 3)
        >>> loss = adversarial_loss(model, F.cross_entropy, torch.rand(8, 4), torch.randint(0, 3, (8,)), FGSM(0.1))
        >>> loss.backward()
    """
    ratio = _check_ratio(ratio)
    if ratio == 0:
        return loss_fn(model(x), y)
    x_adv = attack(model, loss_fn, x, y).detach()
    adversarial = loss_fn(model(x_adv), y)
    if ratio == 1:
        return adversarial
    return (1 - ratio) * loss_fn(model(x), y) + ratio * adversarial


class AdversarialTraining:
    """The mixed clean/adversarial training loss of a batch, for a plain loop (see the module docstring).

    Args:
        model: the model being trained.
        loss_fn: ``(output, y) -> scalar``, used both by the attack and for training.
        attack: ``attack(model, loss_fn, x, y) -> x_adv``, e.g. :class:`~regopt.adversarial.FGSM` or
            :class:`~regopt.adversarial.PGD`.
        ratio: weight of the adversarial loss, in [0, 1] (default 0.5, Goodfellow et al. 2015's alpha).

    Example::

        >>> from regopt.adversarial import FGSM
        >>> model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        >>> train_loss = AdversarialTraining(model, F.cross_entropy, FGSM(eps=0.1), ratio=0.5)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> loss = train_loss(torch.rand(8, 4), torch.randint(0, 3, (8,)))
        >>> optimizer.zero_grad(); loss.backward(); optimizer.step()
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, attack: Attack, ratio: float = 0.5) -> None:
        self.model, self.loss_fn, self.attack, self.ratio = model, loss_fn, attack, _check_ratio(ratio)

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        return adversarial_loss(self.model, self.loss_fn, x, y, self.attack, self.ratio)

    def __repr__(self) -> str:
        return f"AdversarialTraining(attack={self.attack!r}, ratio={self.ratio})"


class AdversarialBatches:
    """Batch transform for regopt's Trainer: replace ``round(ratio * n)`` examples of a batch by adversarial ones.

    ``(x, y) -> (cat(x[k:], attack(x[:k])), cat(y[k:], y[:k]))``: the clean part first, then the adversarial part
    (the Trainer's batches are already shuffled, so the first ``k`` are a random subset). The batch keeps its
    size; the mean loss over it weighs adversarial examples by ``k / n``, about ``ratio``.

    Args:
        model, loss_fn, attack, ratio: as for :class:`AdversarialTraining`; ``ratio`` is the fraction of
            adversarial examples in each batch.

    Example::

        from regopt.lab.trainer import Trainer
        transform = AdversarialBatches(model, F.cross_entropy, PGD(eps=0.1, steps=5, clamp=(0, 1)), ratio=0.5)
        Trainer(model, optimizer, data, epochs=20, batch_size=64, batch_transforms=[transform]).fit()
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, attack: Attack, ratio: float = 0.5) -> None:
        self.model, self.loss_fn, self.attack, self.ratio = model, loss_fn, attack, _check_ratio(ratio)

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        k = round(self.ratio * len(x))
        if k == 0:
            return x, y
        x_adv = self.attack(self.model, self.loss_fn, x[:k], y[:k]).detach()
        return torch.cat([x[k:], x_adv]), torch.cat([y[k:], y[:k]])

    def __repr__(self) -> str:
        return f"AdversarialBatches(attack={self.attack!r}, ratio={self.ratio})"


def robust_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: Attack | None,
    *,
    loss_fn: LossFn = F.cross_entropy,
    batch_size: int = 1024,
) -> float:
    """Fraction of ``(x, y)`` the model classifies correctly after ``attack`` (``None``: clean accuracy).

    Each batch is attacked (the attacker knows the model and the labels: a white-box attack), then classified
    in ``eval()`` mode; the model's modes are restored.

    Example::

        >>> from regopt.adversarial import FGSM, PGD
        >>> _ = torch.manual_seed(0)  # an attack can also flip a wrong answer to right: seed the example
        >>> model = nn.Linear(4, 3)
        >>> x, y = torch.rand(32, 4), torch.randint(0, 3, (32,))
        >>> robust_accuracy(model, x, y, None), robust_accuracy(model, x, y, PGD(0.1))  # 12 and 9 of 32 right
        (0.375, 0.28125)
    """
    check_int("batch_size", batch_size, 1)
    correct = 0
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            if attack is not None:
                xb = attack(model, loss_fn, xb, yb)
            with torch.no_grad():
                correct += int((model(xb).argmax(dim=1) == yb).sum())
    return correct / max(len(x), 1)


def _kl_from_logits(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """Mean over the batch of ``KL(softmax(p_logits) || softmax(q_logits))``."""
    log_p, log_q = F.log_softmax(p_logits, dim=1), F.log_softmax(q_logits, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()


def _unit(t: Tensor) -> Tensor:
    """Each example of ``t`` scaled to unit L2 norm."""
    return t / t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def _check_vat(eps: float, xi: float, power_iterations: int) -> None:
    check_real("eps", eps, positive=True)
    check_real("xi", xi, positive=True)
    check_int("power_iterations", power_iterations, 1)


def virtual_adversarial_loss(
    model: nn.Module,
    x: Tensor,
    eps: float,
    xi: float = 1e-6,
    power_iterations: int = 1,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Virtual adversarial loss ``KL(p(y|x) || p(y|x + r_adv))`` with ``||r_adv||_2 = eps`` (Miyato et al. 2018).

    Needs no labels: ``p(y|x) = softmax(model(x))`` is the model's own prediction, held constant. The
    direction ``r_adv`` that changes it most is the top eigenvector of the KL's Hessian at ``r = 0``, found by
    power iteration with finite differences of the gradient::

        d ~ N(0, I), normalized;   repeat power_iterations times:  d <- normalize(grad_r KL(p || p(x + r))|_{r = xi d})
        r_adv = eps * d

    and the loss ``KL(p || p(x + r_adv))`` is differentiable in the parameters (the mean over the batch).

    Args:
        model: a classifier returning logits; it runs in its current mode.
        x: a batch of inputs, labelled or not.
        eps: L2 norm of the virtual adversarial perturbation of each example (> 0).
        xi: the finite-difference step of the power iteration (> 0). Miyato et al. use 1e-6; in float32 the
            estimated direction is then noisy for some models, and implementations often take a larger ``xi``.
        power_iterations: number of power-iteration steps (1 suffices in practice, as in the paper).
        generator: a CPU ``torch.Generator`` for the random start ``d`` (default: torch's global RNG).

    Example::

        >>> model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))
        >>> loss = virtual_adversarial_loss(model, torch.randn(8, 4), eps=1.0)
        >>> bool(loss >= 0)
        True
    """
    _check_vat(eps, xi, power_iterations)
    x = x.detach()
    with torch.no_grad():
        p_logits = model(x)
    d = torch.randn(tuple(x.shape), generator=generator, dtype=x.dtype).to(x.device)
    d = _unit(d)
    with torch.enable_grad():
        for _ in range(power_iterations):
            r = (xi * d).requires_grad_(True)
            kl = _kl_from_logits(p_logits, model(x + r))
            (grad,) = torch.autograd.grad(kl, r, materialize_grads=True)
            d = _unit(grad.detach())
    return _kl_from_logits(p_logits, model(x + eps * d))


class VirtualAdversarial:
    """``alpha * virtual_adversarial_loss(model, x)`` as a penalty, for unlabeled or labeled batches.

    Plain loop: ``loss = task_loss + vat(model, x_unlabeled)``. In regopt's Trainer, whose penalties see only
    the model, pass the pair ``batch_transforms=[..., vat.remember]`` (stores the current batch's inputs,
    returns the batch unchanged) and ``penalties=[vat.penalty]`` (uses them).

    Args:
        alpha: weight of the penalty (>= 0).
        eps, xi, power_iterations, generator: as for :func:`virtual_adversarial_loss`.
    """

    def __init__(
        self,
        alpha: float,
        eps: float,
        xi: float = 1e-6,
        power_iterations: int = 1,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        check_alpha(alpha)
        _check_vat(eps, xi, power_iterations)
        self.alpha, self.eps, self.xi, self.power_iterations = float(alpha), eps, xi, power_iterations
        self.generator = generator
        self._x: Tensor | None = None

    def __call__(self, model: nn.Module, x: Tensor) -> Tensor:
        loss = virtual_adversarial_loss(model, x, self.eps, self.xi, self.power_iterations, generator=self.generator)
        return self.alpha * loss

    def remember(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Batch transform: keep ``x`` for :meth:`penalty`; the batch passes unchanged."""
        self._x = x
        return x, y

    def penalty(self, model: nn.Module) -> Tensor:
        """The penalty on the batch last seen by :meth:`remember`."""
        if self._x is None:
            raise RuntimeError("VirtualAdversarial.penalty needs a batch: add .remember to the batch transforms")
        return self(model, self._x)

    def __repr__(self) -> str:
        return f"VirtualAdversarial(alpha={self.alpha}, eps={self.eps}, xi={self.xi})"
