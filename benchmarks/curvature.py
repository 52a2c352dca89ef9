"""Curvature estimators against curvlinops (issue 20): trace, top eigenvalues and spectral density of a network
Hessian, regopt's ``HessianOperator`` (block products through ``matmat``) against curvlinops's
``HessianLinearOperator`` (the maintained curvature-operator library for PyTorch), same model and batch in one
process: MLP 40-256-256-10 (ReLU, 79K parameters), cross-entropy on a batch of 1024, float32, 2 threads.

Each timed call builds its operator afresh (so the first forward and backward are paid inside) and is timed as
the median of interleaved repeats (the order of the two libraries flipped each repeat):

- **trace**: Hutchinson with ``--samples`` Rademacher probes (``hessian_trace`` vs ``hutchinson_trace``), and
  Hutch++ with the same number of products (``hessian_trace(method="hutch++")`` vs ``hutchpp_trace``). The same
  estimators: equal accuracy in distribution; each repeat draws new probes, and the spread of the estimates over
  repeats is printed as a check.
- **top-3 eigenvalues**: regopt's Lanczos (``top_eigenvalues(k=3, tol)``) vs scipy's ``eigsh(k=3, which="LA",
  tol)`` on curvlinops's ``to_scipy()``, errors against a float64 Lanczos run converged to 1e-10 on the same
  model in float64.
- **spectral density**: stochastic Lanczos quadrature with ``--runs`` runs of ``--steps`` products each:
  ``spectral_density`` (runs in lockstep as one block) vs ``lanczos_approximate_spectrum(ncv=steps,
  num_repeats=runs)`` given the spectrum's boundaries (so it does not run ``eigsh`` for them; without them it
  costs more).

Also regopt's one-vector-at-a-time ``matvec`` against its ``matmat`` per product, at the Hutchinson trace.

curvlinops is an optional benchmark dependency (``pip install -e '.[bench]'``); without it only regopt's rows
are printed. Usage::

    .venv/bin/python benchmarks/curvature.py            # ~6 minutes on 2 busy cores
    .venv/bin/python benchmarks/curvature.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from regopt.diagnostics import HessianOperator, hessian_trace, spectral_density, top_eigenvalues

try:
    import curvlinops
    from scipy.sparse.linalg import eigsh
except ImportError:  # optional
    curvlinops = None


def mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def timed(fn: Callable[[int], Any], repeat: int) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn(repeat)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small model, few products")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=99, help="products per trace estimate (default 99)")
    parser.add_argument("--runs", type=int, default=5, help="SLQ runs (default 5)")
    parser.add_argument("--steps", type=int, default=30, help="Lanczos steps per SLQ run (default 30)")
    parser.add_argument("--tol", type=float, default=1e-4, help="eigenvalue tolerance of both (default 1e-4)")
    parser.add_argument("--only", default="", help="run only the estimators whose name contains this (e.g. trace)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    widths, batch = ([40, 64, 64, 10], 256) if args.quick else ([40, 256, 256, 10], 1024)
    if args.quick:
        args.samples, args.runs, args.steps, args.repeats = 30, 3, 10, 2
    torch.manual_seed(0)
    model = mlp(widths)
    x, y = torch.randn(batch, 40), torch.randint(0, 10, (batch,))
    params = [p for p in model.parameters() if p.requires_grad]
    dim = sum(p.numel() for p in params)
    print(f"MLP {widths}, {dim} parameters, batch {batch}, float32, {args.threads} threads, {args.repeats} repeats")

    model64 = copy.deepcopy(model).double()
    ref_op = HessianOperator(model64, F.cross_entropy, x.double(), y)
    reference = top_eigenvalues(ref_op, k=3, tol=1e-10, iterations=400)
    print(f"reference top-3 (float64 Lanczos to 1e-10): {[f'{v:.6g}' for v in reference.tolist()]}")

    def op() -> HessianOperator:
        return HessianOperator(model, F.cross_entropy, x, y)

    def cl_op() -> Any:
        return curvlinops.HessianLinearOperator(
            model, nn.CrossEntropyLoss(), params, [(x, y)], check_deterministic=False
        )

    def rel_err(values: Any) -> float:
        got = torch.sort(torch.as_tensor(values, dtype=torch.float64), descending=True).values
        return float(((got - reference) / reference).abs().max())

    bounds = (float(reference.min()), float(reference.max()))  # low end refined below
    low = float(spectral_density(op(), num_runs=1, lanczos_steps=args.steps)[0][0])
    bounds = (low, bounds[1])

    def ours_matvec_trace(seed: int) -> float:
        operator, total = op(), 0.0
        for i in range(args.samples):
            z = torch.randint(0, 2, (dim,), generator=torch.Generator().manual_seed(1000 * seed + i)).float() * 2 - 1
            total += float(z @ operator.matvec(z))
        return total / args.samples

    tasks: dict[str, dict[str, Callable[[int], Any]]] = {
        "trace, Hutchinson": {
            "regopt": lambda s: hessian_trace(op(), args.samples, seed=1000 * s),
            "curvlinops": lambda s: float(curvlinops.hutchinson_trace(cl_op(), args.samples)),
            "regopt matvec": ours_matvec_trace,
        },
        "trace, Hutch++": {
            "regopt": lambda s: hessian_trace(op(), args.samples, seed=1000 * s, method="hutch++"),
            "curvlinops": lambda s: float(curvlinops.hutchpp_trace(cl_op(), args.samples)),
        },
        "top-3 eigenvalues": {
            "regopt": lambda s: top_eigenvalues(op(), k=3, tol=args.tol, seed=s).tolist(),
            "curvlinops": lambda s: eigsh(cl_op().to_scipy(), k=3, which="LA", tol=args.tol)[0].tolist(),
        },
        "spectral density": {
            "regopt": lambda s: spectral_density(op(), num_runs=args.runs, lanczos_steps=args.steps, seed=s),
            "curvlinops": lambda s: curvlinops.lanczos_approximate_spectrum(
                cl_op(), ncv=args.steps, num_repeats=args.runs, boundaries=bounds
            ),
        },
    }
    tasks = {name: rows for name, rows in tasks.items() if args.only in name}
    if curvlinops is None:
        print("curvlinops is not installed (pip install -e '.[bench]'): regopt only")
        for rows in tasks.values():
            rows.pop("curvlinops", None)
    print()
    print("| estimator | library | products | median s (min) | curvlinops / regopt | result (over repeats) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, rows in tasks.items():
        times: dict[str, list[float]] = {lib: [] for lib in rows}
        results: dict[str, list[Any]] = {lib: [] for lib in rows}
        for r in range(args.repeats):
            order = list(rows) if r % 2 == 0 else list(rows)[::-1]
            for lib in order:
                seconds, out = timed(rows[lib], r)
                times[lib].append(seconds)
                results[lib].append(out)
        base = statistics.median(times["curvlinops"]) if "curvlinops" in times else None
        for lib in rows:
            med = statistics.median(times[lib])
            ratio = f"{base / med:.2f}x" if base is not None else "-"
            outs = results[lib]
            if name.startswith("trace"):
                spread = statistics.stdev(outs) if len(outs) > 1 else 0.0
                result = f"{statistics.mean(outs):.4g} +- {spread:.2g}"
                products = str(args.samples)
            elif name.startswith("top"):
                result = f"max rel. error {max(rel_err(o) for o in outs):.1e}"
                products = "until tol" if lib == "regopt" else "eigsh"
            else:
                products = str(args.runs * args.steps)
                result = f"{args.runs} runs x {args.steps} steps"
            print(f"| {name} | {lib} | {products} | {med:.2f} ({min(times[lib]):.2f}) | {ratio} | {result} |")


if __name__ == "__main__":
    main()
