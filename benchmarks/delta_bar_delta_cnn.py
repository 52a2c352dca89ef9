"""Delta-bar-delta on the MNIST-1D paper's CNN in minibatch training: the old defaults, the new ones, and SGD.

The paper's recipe (Greydanus 2020; ``benchmarks/mnist1d_paper_loop.py``): ConvBase (5,210 parameters), batch 100
taken as consecutive slices of the 4000 training examples in their stored order, cross-entropy, 2500 steps;
test accuracy on the 1000 test examples at the end. Prints the final test accuracy per seed and, for
delta-bar-delta, the largest and the median per-weight rate at the end.

Jacobs' rule grows a rate by kappa when the gradient agrees in sign with its running average and shrinks it by
the fraction phi when it disagrees. With minibatch noise the signs agree about half the time, so most rates
settle near kappa / phi: 1e-3 with the old defaults (kappa 1e-4, phi 0.1), far too small to train; the weights
whose gradients keep their sign grow without bound unless ``max_rate`` caps them.

Usage::

    .venv/bin/python benchmarks/delta_bar_delta_cnn.py              # 6 settings x 3 seeds, about 3-5 minutes
    .venv/bin/python benchmarks/delta_bar_delta_cnn.py --seeds 42
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mnist1d_paper_loop import ConvBase

from regopt.lab.data.mnist_1d import generate
from regopt.optim import SGD, DeltaBarDelta
from regopt.optim.delta_bar_delta import RATE_BOUND

STEPS, BATCH, N_TRAIN = 2500, 100, 4000

Factory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SETTINGS: dict[str, Factory] = {
    "DeltaBarDelta, old defaults (lr 1e-2, kappa 1e-4, phi 0.1, theta 0.7, no bound)": lambda ps: DeltaBarDelta(
        ps, lr=1e-2, kappa=1e-4, phi=0.1, theta=0.7, max_rate=math.inf
    ),
    "DeltaBarDelta, new defaults": lambda ps: DeltaBarDelta(ps),
    "DeltaBarDelta, new defaults without the bound (max_rate=inf)": lambda ps: DeltaBarDelta(ps, max_rate=math.inf),
    "DeltaBarDelta, new defaults but Jacobs' theta 0.7": lambda ps: DeltaBarDelta(ps, theta=0.7),
    "SGD lr 0.1": lambda ps: SGD(ps, lr=0.1),
    "SGD lr 0.1, momentum 0.9": lambda ps: SGD(ps, lr=0.1, momentum=0.9),
}


def train(make: Factory, seed: int) -> tuple[float, float | None, float | None]:
    """(final test accuracy, largest rate, median rate) of one run of the paper's loop."""
    x, y, x_test, y_test = generate(5000)
    x_train, y_train = torch.tensor(x[:N_TRAIN], dtype=torch.float32), torch.tensor(y[:N_TRAIN], dtype=torch.long)
    x_test_t, y_test_t = torch.tensor(x_test, dtype=torch.float32), torch.tensor(y_test, dtype=torch.long)
    torch.manual_seed(seed)
    model = ConvBase()
    optimizer = make(model.parameters())
    for step in range(STEPS):
        bix = step * BATCH % N_TRAIN
        loss = nn.functional.cross_entropy(model(x_train[bix : bix + BATCH]), y_train[bix : bix + BATCH])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (model(x_test_t).argmax(-1) == y_test_t).float().mean().item()
    if not isinstance(optimizer, DeltaBarDelta):
        return accuracy, None, None
    rates = torch.cat([optimizer.state[p]["rate"].reshape(-1) for p in model.parameters()])
    return accuracy, rates.max().item(), rates.median().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="torch seeds of the initialization")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    defaults = DeltaBarDelta([nn.Parameter(torch.zeros(1))]).defaults
    shown = ", ".join(f"{k} {v}" for k, v in defaults.items() if k != "weight_decay")
    shown += f" (max_rate None: {RATE_BOUND:g} x lr)"
    print(
        f"MNIST-1D paper CNN (ConvBase), batch {BATCH}, {STEPS} steps, fixed order, {N_TRAIN} training examples; "
        f"seeds {args.seeds}; new DeltaBarDelta defaults: {shown}\n"
    )
    print("| optimizer | final test acc per seed | mean | largest rate (mean) | median rate (mean) |")
    print("|---|---|---:|---:|---:|")
    for name, make in SETTINGS.items():
        runs = [train(make, seed) for seed in args.seeds]
        accs = [100 * a for a, _, _ in runs]
        largest = "-" if runs[0][1] is None else f"{statistics.mean(r[1] for r in runs):.3g}"  # type: ignore[misc]
        median = "-" if runs[0][2] is None else f"{statistics.mean(r[2] for r in runs):.3g}"  # type: ignore[misc]
        per_seed = ", ".join(f"{a:.1f}" for a in accs)
        print(f"| {name} | {per_seed} | {statistics.mean(accs):.1f}% | {largest} | {median} |", flush=True)


if __name__ == "__main__":
    main()
