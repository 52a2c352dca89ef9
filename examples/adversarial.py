"""Adversarial training in a plain PyTorch loop: FGSM/PGD attacks, the mixed loss, robust accuracy, and VAT.

    python examples/adversarial.py

Four MLPs train on the 8x8 digits from the same initialization with the same batches: on the clean loss, on
Goodfellow et al.'s mixed loss ``0.5 * J(x) + 0.5 * J(x_fgsm)``, on the loss of 50 labelled digits only, and on
that plus the virtual adversarial loss of all training digits without their labels (Miyato et al. 2018). Each
line printed is one model: clean test accuracy, then accuracy under FGSM and under 20-step PGD at eps = 0.1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from regopt.adversarial import FGSM, PGD, AdversarialTraining, VirtualAdversarial, robust_accuracy

EPS = 0.1


def load_data(train_size: int = 1200):
    """Digits as 1x8x8 images in [0, 1], shuffled with a fixed seed: a training part and the rest for testing."""
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:train_size], y[:train_size], x[train_size:], y[train_size:]


def make_model() -> nn.Module:
    torch.manual_seed(0)  # the same initialization for every model
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def train(kind: str, epochs: int = 20) -> nn.Module:
    x, y, _, _ = load_data()
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    mixed = AdversarialTraining(model, F.cross_entropy, FGSM(EPS, clamp=(0.0, 1.0)), ratio=0.5)
    vat = VirtualAdversarial(alpha=1.0, eps=1.0, generator=torch.Generator().manual_seed(0))
    labelled = torch.arange(50)  # for "labelled 50" (+ VAT): only these labels are used
    order = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for index in torch.randperm(len(x), generator=order).split(64):
            if kind == "clean":
                loss = F.cross_entropy(model(x[index]), y[index])
            elif kind == "adversarial":
                loss = mixed(x[index], y[index])  # (1 - ratio) * J(x) + ratio * J(x_adv)
            else:  # semi-supervised: labelled loss (+ VAT on an unlabelled batch)
                loss = F.cross_entropy(model(x[labelled]), y[labelled])
                if kind.endswith("VAT"):
                    loss = loss + vat(model, x[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


def main(epochs: int = 20) -> dict[str, dict[str, float]]:
    _, _, x_test, y_test = load_data()
    attacks = {
        "clean": None,
        "FGSM": FGSM(EPS, clamp=(0.0, 1.0)),
        "PGD": PGD(EPS, steps=20, clamp=(0.0, 1.0), generator=torch.Generator().manual_seed(0)),
    }
    results = {}
    for kind in ("clean", "adversarial", "labelled 50", "labelled 50 + VAT"):
        model = train(kind, epochs)
        results[kind] = {name: robust_accuracy(model, x_test, y_test, attack) for name, attack in attacks.items()}
        r = results[kind]
        print(f"{kind:<18} clean {r['clean']:.3f}  FGSM(eps={EPS}) {r['FGSM']:.3f}  PGD(eps={EPS}) {r['PGD']:.3f}")
    return results


if __name__ == "__main__":
    main()
