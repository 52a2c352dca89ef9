"""What the meta-algorithm entries share: MNIST-1D, the plain MLPs of ``initialization``, the rate their
configs use (Adam, lr 1e-3, batches of 100), and the continuation demo of ``curriculum``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

BATCH, LR = 100, 1e-3


def mnist1d() -> Any:
    from regopt.lab.config import Mnist1dData
    from regopt.lab.data import load_dataset

    return load_dataset(Mnist1dData(name="mnist1d"))


def mlp(
    widths: Sequence[int], inputs: int = 40, outputs: int = 10, activation: type[nn.Module] = nn.ReLU
) -> nn.Sequential:
    from collections import OrderedDict

    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, width in enumerate(widths, start=1):
        layers[f"fc{i}"], layers[f"act{i}"] = nn.Linear(inputs, width), activation()
        inputs = width
    layers["head"] = nn.Linear(inputs, outputs)
    return nn.Sequential(layers)


def wiggly(w: Tensor) -> Tensor:
    """f(w) = w^2 + 2 sin(5 w): minima at -0.302 (global), 0.906, 2.112, -1.509, ..."""
    return w**2 + 2 * torch.sin(5 * w)


def continuation_demo(start: float = 2.5, stages: int = 10, steps: int = 50) -> dict[str, Any]:
    """Gradient descent on f, and on the blurred f with sigma from 1 to 0 (:func:`smoothed_loss`)."""
    from regopt.curriculum import continuation_schedule, smoothed_loss

    class Scalar(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.tensor(start, dtype=torch.float64))

        def forward(self, x: Any) -> Tensor:
            return self.w

    def descend(sigmas: list[float]) -> list[float]:
        model, generator = Scalar(), torch.Generator().manual_seed(0)
        no_data = torch.empty(0, dtype=torch.float64)  # the scalar model ignores its input
        optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
        path = [start]
        for sigma in sigmas:
            for _ in range(steps):
                optimizer.zero_grad()
                loss = smoothed_loss(
                    model, lambda w, _: wiggly(w), no_data, no_data, sigma=sigma, samples=8, generator=generator
                )
                loss.backward()
                optimizer.step()
            path.append(model.w.item())
        return path

    sigmas = continuation_schedule(1.0, stages)
    grid = torch.linspace(-3, 3, 6001, dtype=torch.float64)
    plain, path = descend([0.0] * stages), descend(sigmas)
    return {
        "start": start,
        "sigmas": sigmas,
        "plain": plain,
        "path": path,
        "steps": steps,
        "global": grid[wiggly(grid).argmin()].item(),
        "f_plain": wiggly(torch.tensor(plain[-1])).item(),
        "f_path": wiggly(torch.tensor(path[-1])).item(),
    }
