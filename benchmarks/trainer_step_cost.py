"""Per-step cost of ``Trainer.train_step`` against the same hand-written step, in microseconds.

Logistic regression on MNIST-1D (the model whose own step is cheapest, so the Trainer's bookkeeping shows),
plain ``torch.optim.SGD``, one thread, batches of 100. Both steps run 2000 times per repeat, interleaved (the
order flipped every repeat), 15 repeats; the table gives the best repeat of each and their difference.

    .venv/bin/python benchmarks/trainer_step_cost.py
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from regopt.lab.config import Mnist1dData
from regopt.lab.data import load_dataset
from regopt.lab.trainer import Trainer

STEPS, REPEATS = 2000, 15


def main() -> None:
    torch.set_num_threads(1)
    data = load_dataset(Mnist1dData(name="mnist1d"))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = Trainer(model, optimizer, data, epochs=1, batch_size=100)
    x, y = data.x_train[:100], data.y_train[:100]

    def hand() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def with_trainer() -> torch.Tensor:
        return trainer.train_step(x, y)

    best = {"hand-written": float("inf"), "Trainer.train_step": float("inf")}
    steps = {"hand-written": hand, "Trainer.train_step": with_trainer}
    for repeat in range(REPEATS):
        for name in sorted(steps, reverse=repeat % 2 == 1):
            started = time.perf_counter()
            for _ in range(STEPS):
                steps[name]()
            best[name] = min(best[name], (time.perf_counter() - started) / STEPS * 1e6)
    print("| step | best µs per step |\n|---|---:|")
    for name, value in best.items():
        print(f"| {name} | {value:.2f} |")
    print(f"| difference | {best['Trainer.train_step'] - best['hand-written']:.2f} |")


if __name__ == "__main__":
    main()
