"""Initialization policies in a plain PyTorch script: the signal scale through depth, and what it does to training.

    python examples/initialization.py

``regopt.init.initialize(model, policy)`` re-draws every Linear/Conv weight of a model by one policy of
``torch.nn.init`` (Glorot/Xavier, He, LeCun, orthogonal, sparse, torch's default) and sets the biases (zero by
default). ``activation_statistics`` measures the std of each hidden layer's output and of the loss gradient with
respect to it. Printed: for a 20-layer ReLU MLP, the activation std at layers 1 and 20 and the gradient std at
layer 1 relative to layer 20 for each policy; then the training loss of that network on the digits after a
few hundred SGD steps from each initialization.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from regopt.init import POLICIES, activation_statistics, initialize

DEPTH, WIDTH = 20, 128


def load_data() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1797 digits as standardized 64-vectors."""
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    return x, torch.tensor(digits.target)


def make_model() -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(64, WIDTH), nn.ReLU()]
    for _ in range(DEPTH - 1):
        layers += [nn.Linear(WIDTH, WIDTH), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(WIDTH, 10))


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Plain SGD, batches of 64; returns the loss on the whole set at the end."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)  # the same batches for every policy
    for _ in range(steps):
        index = torch.randint(len(x), (64,), generator=generator)
        optimizer.zero_grad()
        F.cross_entropy(model(x[index]), y[index]).backward()
        optimizer.step()
    with torch.no_grad():
        return F.cross_entropy(model(x), y).item()


def main(steps: int = 200) -> dict[str, dict[str, float]]:
    x, y = load_data()
    print(
        f"{DEPTH}-layer ReLU MLP: act std layer 1 -> {DEPTH}, gradient std layer 1 / {DEPTH}, loss after {steps} steps"
    )
    results = {}
    for policy in POLICIES:
        torch.manual_seed(0)
        model = initialize(make_model(), policy)  # biases zero (bias=0.1 would start ReLUs active, sec. 8.4)
        stats = activation_statistics(model, x[:512], y[:512])
        first, last = stats[0], stats[-1]
        loss = train(model, x, y, steps)
        results[policy] = {
            "activation_ratio": last["activation_std"] / first["activation_std"],
            "gradient_ratio": first["gradient_std"] / last["gradient_std"],
            "loss": loss,
        }
        print(
            f"{policy:>15}: {first['activation_std']:9.3g} -> {last['activation_std']:9.3g}   "
            f"{results[policy]['gradient_ratio']:9.3g}   loss {loss:.3f}"
        )
    return results


if __name__ == "__main__":
    main()
