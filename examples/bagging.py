"""Bagging and model averaging in plain PyTorch: 8 MLPs trained at once on bootstrap resamples of 300 digits.

    python examples/bagging.py

``Bagging`` stacks the 8 members' weights into tensors of shape (8, ...) and trains them with one optimizer
(any elementwise one: regopt's or torch's), each member on its own resample of the training set. Printed: the
held-out accuracy of each member, of their average and of their majority vote, the out-of-bag error (an
estimate of the held-out error from the training set alone), and plain model averaging of independently
trained models with ``average_models``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from regopt.ensemble import Bagging, average_models
from regopt.optim import Adam


def load_data(train_size: int = 300):
    """Digits as 64-vectors in [0, 1]: a small training set and the rest for testing."""
    digits = load_digits()
    x, y = torch.tensor(digits.data / 16.0, dtype=torch.float32), torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:train_size], y[:train_size], x[train_size:], y[train_size:]


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def accuracy(predictions: torch.Tensor, y: torch.Tensor) -> float:
    return (predictions == y).float().mean().item()


def main(epochs: int = 40, k: int = 8) -> dict[str, float]:
    torch.set_num_threads(1)  # tiny models: one thread is fastest, and fair to a shared machine
    x, y, x_test, y_test = load_data()

    # Bagging: k resamples of (x, y) with replacement, k members trained at once by torch.func.vmap.
    bag = Bagging(make_model, k=k, seed=0)
    bag.fit(x, y, epochs=epochs, batch_size=30, optimizer_factory=lambda params: Adam(params, lr=3e-3))
    members = [accuracy(p, y_test) for p in bag.member_predictions(x_test)]
    results = {
        "mean member": sum(members) / k,
        "best member": max(members),
        "ensemble (mean probability)": accuracy(bag.predict(x_test, how="mean"), y_test),
        "ensemble (majority vote)": accuracy(bag.predict(x_test, how="vote"), y_test),
        "out-of-bag estimate (training set only)": 1 - bag.oob_error(x, y),
    }

    # Plain model averaging: k models trained one after the other on the whole training set, differing
    # only in their initialization and batch order, then their probabilities averaged.
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        model = make_model()
        optimizer = Adam(model.parameters(), lr=3e-3)
        for _ in range(epochs):
            for index in torch.randperm(len(x)).split(30):
                loss = F.cross_entropy(model(x[index]), y[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        models.append(model)
    results["model averaging (whole training set)"] = accuracy(average_models(models, x_test).argmax(1), y_test)

    print(f"{'':<40} accuracy")
    for name, value in results.items():
        print(f"{name:<40} {value:.3f}")
    return results


if __name__ == "__main__":
    main()
