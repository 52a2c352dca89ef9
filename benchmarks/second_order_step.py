"""Time of one ``step(closure)`` of regopt's LBFGS against ``torch.optim.LBFGS`` (the anchor).

The timed step is the first (after ``--warm-steps`` untimed ones, default none). Both run the same algorithm
(history 10, strong Wolfe line search, ``max_iter=20`` iterations per step, torch's tolerances) from the same
start, and their iterates agree bitwise, so they call the closure the same number of times; the difference is the
optimizer's own work (direction, line search bookkeeping, parameter copies). Each row reports the median step
time, the median time spent inside the closure (forward + backward), the difference ("optimizer overhead"), the
ratio torch / regopt of the step times (median over rounds of the per-round ratio: above 1, regopt is faster)
and the closure calls per step. Rounds build fresh parameters with the same seed and alternate which optimizer
goes first.

Workloads (float32, ``torch.set_num_threads(--threads)``):

* logistic regression, 200 points x 5 features (6 parameters): the optimizer's Python overhead dominates;
* MLP 40-256-256-10 (79K parameters), cross-entropy on 1024 fixed random points, full batch.

Usage::

    .venv/bin/python benchmarks/second_order_step.py              # about 30 s on 2 cores
    .venv/bin/python benchmarks/second_order_step.py --repeats 3  # quicker
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from regopt.optim import LBFGS


def logistic(seed: int) -> tuple[list[nn.Parameter], Callable[[], torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(200, 5, generator=gen)
    y = (x @ torch.randn(5, generator=gen) + 0.5 * torch.randn(200, generator=gen) > 0).float()
    w, b = nn.Parameter(torch.zeros(5)), nn.Parameter(torch.zeros(1))

    def loss() -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + 1e-3 * (w @ w)

    return [w, b], loss


def mlp(seed: int) -> tuple[list[nn.Parameter], Callable[[], torch.Tensor]]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(40, 256), nn.Tanh(), nn.Linear(256, 256), nn.Tanh(), nn.Linear(256, 10))
    gen = torch.Generator().manual_seed(seed + 1)
    x, y = torch.randn(1024, 40, generator=gen), torch.randint(0, 10, (1024,), generator=gen)

    def loss() -> torch.Tensor:
        return nn.functional.cross_entropy(model(x), y)

    return list(model.parameters()), loss


WORKLOADS = {"logistic regression (6 params)": logistic, "MLP 40-256-256-10 (79K params), batch 1024": mlp}


def make(kind: str, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if kind == "regopt":
        return LBFGS(params, history=10)
    return torch.optim.LBFGS(params, history_size=10, line_search_fn="strong_wolfe")


def time_step(kind: str, build, seed: int, warm_steps: int) -> tuple[float, float, int]:
    """One timed step after ``warm_steps`` untimed ones: (step s, closure s, closure calls)."""
    params, loss_fn = build(seed)
    opt = make(kind, params)
    spent = [0.0, 0]

    def closure() -> torch.Tensor:
        start = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        spent[0] += time.perf_counter() - start
        spent[1] += 1
        return loss

    for _ in range(warm_steps):
        opt.step(closure)
    spent[:] = [0.0, 0]
    start = time.perf_counter()
    opt.step(closure)
    return time.perf_counter() - start, spent[0], int(spent[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warm-steps", type=int, default=0, help="untimed steps before the timed one")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} cores, {args.repeats} rounds")
    print()
    header = "| workload | optimizer | step ms median | closure ms | overhead ms | torch / regopt step | calls/step |"
    print(header)
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, build in WORKLOADS.items():
        results: dict[str, list[tuple[float, float, int]]] = {"regopt": [], "torch": []}
        for round_ in range(args.repeats):
            order = ["regopt", "torch"] if round_ % 2 == 0 else ["torch", "regopt"]
            for kind in order:
                results[kind].append(time_step(kind, build, seed=round_, warm_steps=args.warm_steps))
        ratio = statistics.median(t[0] / r[0] for r, t in zip(results["regopt"], results["torch"], strict=True))
        for kind in ("regopt", "torch"):
            step = statistics.median(r[0] for r in results[kind]) * 1e3
            closure = statistics.median(r[1] for r in results[kind]) * 1e3
            calls = statistics.median(r[2] for r in results[kind])
            shown = f"{ratio:.2f}" if kind == "regopt" else "1 (anchor)"
            print(f"| {name} | {kind} | {step:.2f} | {closure:.2f} | {step - closure:.2f} | {shown} | {calls:g} |")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
