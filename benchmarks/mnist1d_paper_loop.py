"""The MNIST-1D paper's own training loop, transcribed, to find what its CNN's 94% depends on.

``train_model`` in github.com/greydanus/mnist1d (Greydanus 2020) trains ConvBase (3 strided convolutions of 25
channels, 5,210 parameters) with ``torch.optim.Adam(lr=1e-2)`` for 6000 steps of batch 100 taken as consecutive
slices of the training set in its stored order, ``x_train[bix:bix + 100]`` with ``bix = step * 100 % n``, the same
order every epoch. This script runs that loop on the data of ``mnist1d.data.make_dataset`` (its defaults: 4000
training, 1000 test examples), outside regopt's lab, with or without a fresh shuffle every epoch and on all 4000
training examples or the first 3800 (the lab keeps 200 for validation), and prints the final and best test
accuracy (evaluated every 250 steps) per seed.

Usage::

    .venv/bin/python benchmarks/mnist1d_paper_loop.py                  # 4 settings x 3 seeds, about 90 s
    .venv/bin/python benchmarks/mnist1d_paper_loop.py --seeds 42 0 1 --n 4000 --order fixed
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import Tensor, nn

from regopt.lab.data.mnist_1d import generate

STEPS, BATCH, LR, EVAL_EVERY = 6000, 100, 1e-2, 250


class ConvBase(nn.Module):
    """The paper's ``ConvBase`` (github.com/greydanus/mnist1d, ``models.py``)."""

    def __init__(self, output_size: int = 10, channels: int = 25, linear_in: int = 125) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.linear = nn.Linear(linear_in, output_size)

    def forward(self, x: Tensor) -> Tensor:
        x = x.view(-1, 1, x.shape[-1])
        h = self.conv3(self.conv2(self.conv1(x).relu()).relu()).relu()
        return self.linear(h.view(h.shape[0], -1))


def train(seed: int, n: int, shuffle: bool) -> tuple[float, float, float]:
    """The paper's loop; returns (final test accuracy, best test accuracy at an evaluation, seconds)."""
    x, y, x_test, y_test = generate(5000)
    x_train, y_train = torch.tensor(x[:n], dtype=torch.float32), torch.tensor(y[:n], dtype=torch.long)
    x_test_t, y_test_t = torch.tensor(x_test, dtype=torch.float32), torch.tensor(y_test, dtype=torch.long)
    torch.manual_seed(seed)
    model = ConvBase()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    order = torch.arange(n)
    accuracies = []
    start = time.perf_counter()
    for step in range(STEPS + 1):
        bix = step * BATCH % n
        if shuffle and bix == 0:
            order = torch.randperm(n)
        index = order[bix : bix + BATCH]
        loss = nn.functional.cross_entropy(model(x_train[index]), y_train[index])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % EVAL_EVERY == 0:
            with torch.no_grad():
                accuracies.append((model(x_test_t).argmax(-1) == y_test_t).float().mean().item())
    return accuracies[-1], max(accuracies), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 0, 1], help="torch seeds (paper: 42)")
    parser.add_argument("--n", type=int, nargs="+", default=[4000, 3800], help="training examples used")
    parser.add_argument("--order", choices=["fixed", "shuffled"], nargs="+", default=["fixed", "shuffled"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"The MNIST-1D paper's loop, ConvBase, Adam lr {LR}, batch {BATCH}, {STEPS} steps; seeds {args.seeds}\n")
    print("| batch order | training examples | final test acc per seed | mean final | best at an evaluation (mean) |")
    print("|---|---:|---|---:|---:|")
    for order in args.order:
        for n in args.n:
            runs = [train(seed, n, shuffle=order == "shuffled") for seed in args.seeds]
            finals = [100 * final for final, _, _ in runs]
            best = statistics.mean(100 * b for _, b, _ in runs)
            per_seed = ", ".join(f"{f:.1f}" for f in finals)
            print(f"| {order} | {n} | {per_seed} | {statistics.mean(finals):.1f}% | {best:.1f}% |")


if __name__ == "__main__":
    main()
