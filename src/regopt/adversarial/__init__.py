"""Adversarial examples and adversarial training (Goodfellow et al. 2016, sec. 7.13).

Attacks (white-box, on the input gradient; the model's modes and parameter gradients are left as found)::

    x_adv = fgsm(model, loss_fn, x, y, eps, clamp=(0, 1))                       # one sign step
    x_adv = pgd(model, loss_fn, x, y, eps, norm="linf" | "l2", steps=10)         # projected gradient ascent
    attack = FGSM(eps) / PGD(eps, ...)                                          # the same, as objects

Training and evaluation::

    loss = AdversarialTraining(model, loss_fn, attack, ratio=0.5)(x, y)         # plain loop: mixed loss
    Trainer(..., batch_transforms=[AdversarialBatches(model, loss_fn, attack)])  # regopt's Trainer
    robust_accuracy(model, x, y, attack)                                         # accuracy under attack
    virtual_adversarial_loss(model, x_unlabeled, eps)                            # VAT, no labels needed
"""

from regopt.adversarial.attacks import FGSM, PGD, eval_mode, fgsm, input_gradient, pgd
from regopt.adversarial.training import (
    AdversarialBatches,
    AdversarialTraining,
    VirtualAdversarial,
    adversarial_loss,
    robust_accuracy,
    virtual_adversarial_loss,
)

__all__ = [
    "FGSM",
    "PGD",
    "AdversarialBatches",
    "AdversarialTraining",
    "VirtualAdversarial",
    "adversarial_loss",
    "eval_mode",
    "fgsm",
    "input_gradient",
    "pgd",
    "robust_accuracy",
    "virtual_adversarial_loss",
]
