"""Noise as a regularizer (sec. 7.5) and dropout (sec. 7.12) in a plain PyTorch loop.

    python examples/regularize_noise_dropout.py

Noise on the inputs is a batch transform ``(x, y) -> (x, y)`` applied to training batches only; noise on the
hidden units and on the weights wraps the model (it is off in ``eval()`` mode); label smoothing is a loss
function. The dropout network is then evaluated two ways: one pass in eval mode (the weight-scaling rule) and
the average of 50 random subnetworks (Monte Carlo dropout).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from regopt.regularize import InputNoise, add_hidden_noise, add_weight_noise, compare_inference, smoothed_cross_entropy


def load_data(train_size: int = 300):
    """Digits as 64-vectors in [0, 1]: a small training set and the rest for testing."""
    digits = load_digits()
    x, y = torch.tensor(digits.data / 16.0, dtype=torch.float32), torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:train_size], y[:train_size], x[train_size:], y[train_size:]


def make_model(dropout: float = 0.0) -> nn.Sequential:
    torch.manual_seed(0)  # the same initialization for every variant
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, 10))


def train(model: nn.Module, steps: int, transform=None, loss_fn=F.cross_entropy) -> nn.Module:
    x, y, _, _ = load_data()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = torch.Generator().manual_seed(1)
    model.train()  # noise layers and dropout are active in training mode only
    for _ in range(steps):
        index = torch.randint(len(x), (32,), generator=batches)
        xb, yb = x[index], y[index]
        if transform is not None:
            xb, yb = transform(xb, yb)
        loss = loss_fn(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def main(steps: int = 500) -> dict[str, float]:
    _, _, x_test, y_test = load_data()
    variants = {
        "plain": lambda: train(make_model(), steps),
        "input noise (std 0.2)": lambda: train(make_model(), steps, transform=InputNoise(0.2)),
        "hidden noise (std 0.5)": lambda: train(add_hidden_noise(make_model(), 0.5), steps),
        "weight noise (std 0.02)": lambda: train(add_weight_noise(make_model(), 0.02), steps),
        "label smoothing (0.1)": lambda: train(make_model(), steps, loss_fn=smoothed_cross_entropy(0.1)),
        "dropout (p=0.5)": lambda: train(make_model(dropout=0.5), steps),
    }
    results = {}
    for name, fit in variants.items():
        model = fit()
        with torch.no_grad():
            results[name] = (model(x_test).argmax(1) == y_test).float().mean().item()
        print(f"{name:<24} test accuracy {results[name]:.3f}")
    inference = compare_inference(model, x_test, y_test, samples=50, seed=0)  # the dropout network, trained last
    print(
        f"dropout inference: weight scaling error {inference['weight_scaling_error']:.3f}, "
        f"MC dropout (50 samples) error {inference['mc_error']:.3f}, agreement {inference['agreement']:.1%}"
    )
    return {**results, **{f"inference {key}": value for key, value in inference.items()}}


if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny model: one thread is fastest, and robust on a busy machine
    main()
