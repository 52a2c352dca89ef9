"""Parameter tying and sharing, sparse representations, and ridge on an under-constrained problem, in plain
PyTorch (Goodfellow et al. 2016, sec. 7.3, 7.9, 7.10).

    python examples/regularize_tying_sparsity.py
"""

from __future__ import annotations

import torch
from torch import nn

from regopt.regularize import (
    ActivationL1,
    Tying,
    activation_sparsity,
    gram_condition_number,
    pseudo_inverse_solution,
    ridge_solution,
)


def main(steps: int = 300) -> dict[str, float]:
    torch.manual_seed(0)
    x = torch.randn(256, 10)
    y = (x[:, :3].sum(dim=1, keepdim=True) > 0).float()

    # Tying: two models on related tasks (the second sees noisy labels), their weights pulled together by
    # alpha ||w_A - w_B||^2; compare the distance between them with and without the penalty.
    noisy = torch.where(torch.rand_like(y) < 0.2, 1 - y, y)

    def tied_gap(alpha: float) -> float:
        torch.manual_seed(2)
        model_a, model_b = nn.Linear(10, 1), nn.Linear(10, 1)
        tying = Tying(alpha, [(model_a.weight, model_b.weight)])
        opt = torch.optim.SGD([*model_a.parameters(), *model_b.parameters()], lr=0.1)
        for _ in range(steps):
            opt.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(model_a(x), y)
            loss = loss + nn.functional.binary_cross_entropy_with_logits(model_b(x[:32]), noisy[:32]) + tying()
            loss.backward()
            opt.step()
        return (model_a.weight - model_b.weight).norm().item()

    # Sharing: one module used twice, so its parameters are counted (and updated) once.
    shared = nn.Linear(32, 32)
    deep = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(32, 1))
    shared_count = sum(p.numel() for p in deep.parameters())

    # Sparse representations: alpha * mean |h| on the hidden ReLU outputs.
    def train(alpha: float) -> float:
        torch.manual_seed(1)
        net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))
        penalty = ActivationL1(alpha, [net[1]])
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(steps):
            opt.zero_grad()
            (nn.functional.binary_cross_entropy_with_logits(net(x), y) + penalty()).backward()
            opt.step()
        penalty.remove()
        return activation_sparsity(net, x, [net[1]])

    # Under-constrained: 20 examples, 50 features; X'X is singular, X'X + alpha I is not.
    wide_x, wide_y = torch.randn(20, 50, dtype=torch.float64), torch.randn(20, 1, dtype=torch.float64)
    distance = (ridge_solution(wide_x, wide_y, 1e-8) - pseudo_inverse_solution(wide_x, wide_y)).norm().item()
    numbers = {
        "tying: ||w_A - w_B|| untied": tied_gap(0.0),
        "tying: ||w_A - w_B|| tied (alpha 0.1)": tied_gap(0.1),
        "sharing: parameters with one shared 32x32 layer": float(shared_count),
        "sparsity: zero activations without penalty": train(0.0),
        "sparsity: zero activations with ActivationL1(0.01)": train(0.01),
        "ridge: cond(X'X)": gram_condition_number(wide_x),
        "ridge: cond(X'X + 0.1 I)": gram_condition_number(wide_x, 0.1),
        "ridge(alpha=1e-8) distance to the pseudo-inverse solution": distance,
    }
    for name, value in numbers.items():
        print(f"{name}: {value:.4g}")
    return numbers


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
