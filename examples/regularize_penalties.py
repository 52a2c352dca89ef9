"""Norm penalties and constraints in a plain PyTorch loop: L2, proximal L1, elastic net, max-norm.

    python examples/regularize_penalties.py

A penalty is ``model -> alpha * Omega(theta)``, added to the loss before ``backward()``; a constraint or a
proximal step is ``model -> None``, called after ``optimizer.step()``. Both act on the weight matrices only
(not biases), as chapter 7 recommends. Each line printed is one regularizer: test accuracy, the fraction of
weights that are exactly zero, and the largest norm of a unit's incoming weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from regopt.regularize import L1, L2, ElasticNet, MaxNorm, Selector

LR = 0.1


def load_data(train_size: int = 300):
    """Digits as 64-vectors in [0, 1]: a small training set (regularization matters) and the rest for testing."""
    digits = load_digits()
    x, y = torch.tensor(digits.data / 16.0, dtype=torch.float32), torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:train_size], y[:train_size], x[train_size:], y[train_size:]


def train(penalty=None, after_step=None, steps: int = 600) -> nn.Module:
    x, y, _, _ = load_data()
    torch.manual_seed(0)  # same initialization and batches for every regularizer
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)  # plain SGD: proximal L1 is then exact
    for _ in range(steps):
        index = torch.randint(len(x), (32,))
        loss = F.cross_entropy(model(x[index]), y[index])
        if penalty is not None:
            loss = loss + penalty(model)  # J~ = J + alpha * Omega(theta)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step(model)  # projection or soft-thresholding, after the step
    return model


def main(steps: int = 600) -> dict[str, dict[str, float]]:
    _, _, x_test, y_test = load_data()
    l1 = L1(3e-3, proximal=True)
    setups = {
        "none": {},
        "L2 (alpha=1e-2)": {"penalty": L2(1e-2)},
        "L1 proximal (alpha=3e-3)": {"after_step": lambda model: l1.shrink(model, lr=LR)},
        "elastic net (alpha=3e-3)": {"penalty": ElasticNet(3e-3, l1_ratio=0.5)},
        "max-norm (c=1)": {"after_step": MaxNorm(1.0)},
    }
    results = {}
    for name, hooks in setups.items():
        model = train(**hooks, steps=steps)
        weights = [p.detach() for _, p in Selector()(model)]
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        results[name] = {
            "test_accuracy": accuracy,
            "zeros": torch.cat([w.flatten() for w in weights]).eq(0).float().mean().item(),
            "max_unit_norm": max(w.norm(dim=1).max().item() for w in weights),
        }
        r = results[name]
        print(
            f"{name:<26} accuracy {accuracy:.3f}  exact zeros {r['zeros']:6.1%}  max unit norm {r['max_unit_norm']:.2f}"
        )
    return results


if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny model: one thread is fastest, and robust on a busy machine
    main()
