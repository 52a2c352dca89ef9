"""Overhead of regopt's curvature diagnostics: Hessian-vector products, the ill-conditioning monitor, and the
Lanczos spectrum against PyHessian (Yao et al. 2020).

1. **HVP vs gradient.** One Hessian-vector product against one gradient (forward + backward) of cross-entropy
   on an MLP, float32, for each implementation: double backward from scratch (:func:`hvp`), ``torch.func``
   forward-over-reverse and reverse-over-forward (:func:`hvp_func`), one more product on the graph that
   :class:`HessianOperator` keeps, and ``g`` + ``Hg`` together from scratch (what the monitor pays per check on
   a probe batch; reusing the training step's gradient it pays that minus the gradient). Goal: <= 2.5x.
2. **Monitor overhead.** Wall time of 300 SGD steps on MNIST-1D with and without
   :class:`IllConditioningMonitor` (every 10 or 20 steps; reusing the training step's gradient, or on a probe
   batch), interleaved repeats with the order flipped every repeat, a fresh model from the same seed each run.
   Goal: <= 25% at every 10 steps. The runs with the monitor are checked to end with weights bit-identical to
   the run without it. Also: the accuracy of a finite-difference g'Hg (one gradient instead of a product).
   Then the same runs for the MNIST-1D paper's MLP 40-100-100-10, and whole lab runs (``regopt run``'s
   Trainer, per-epoch evaluation included) with and without ``[diagnostics.ill_conditioning] every = 10``.
3. **Spectrum vs PyHessian.** Top-1 and top-3 Hessian eigenvalues of a trained MLP on one batch: PyHessian's
   power iteration with deflation (the anchor, measured in the same run) against regopt's Lanczos, each at the
   loosest tolerance that reaches 1e-3 relative error on all k eigenvalues (errors against a float64 Lanczos
   run converged to 1e-10), timed as median of interleaved repeats. Goal: regopt >= 2x faster. Also
   Hutchinson's trace with the same number of samples (same algorithm in both; checks per-product overhead).
   PyHessian is installed for the benchmark only (``.venv/bin/python -m pip install pyhessian``); without it
   the section is skipped.

The script first calls :func:`regopt.lab.memory.retain_freed_memory`, as the ``regopt`` command does
(``--default-malloc`` keeps glibc's defaults; ``benchmarks/allocator.py`` compares the two).

Usage::

    .venv/bin/python benchmarks/diagnostics.py            # full run, ~3 minutes on 2 busy cores
    .venv/bin/python benchmarks/diagnostics.py --quick    # smoke run, ~10 seconds
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib
import itertools
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import date

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regopt.diagnostics import HessianOperator, IllConditioningMonitor, hessian_trace, hvp, hvp_func, top_eigenvalues
from regopt.lab.memory import retain_freed_memory

LR, MOMENTUM, TRAIN_BATCH = 0.05, 0.9, 128


def mlp(widths: list[int], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def mnist1d() -> tuple[Tensor, Tensor]:
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())
    return torch.as_tensor(data["x"], dtype=torch.float32), torch.as_tensor(data["y"], dtype=torch.int64)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function, ``repeats`` rounds, the order reversed every other round."""
    for f in fns.values():  # warm up
        f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        gc.collect()
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def ratio(times: dict[str, list[float]], name: str, base: str) -> float:
    """Median over repeats of the per-repeat ratio (cancels drift on a shared machine)."""
    return statistics.median(a / b for a, b in zip(times[name], times[base], strict=True))


def hvp_section(workloads: dict[str, tuple[list[int], int]], repeats: int) -> None:
    print("\n### One Hessian-vector product vs one gradient\n")
    print(
        "| model (params, batch) | gradient ms | double backward | torch.func fwd-over-rev | torch.func rev-over-fwd "
        "| kept graph, one more product | g + Hg from scratch (probe check) | reused g: Hg + graph, extra "
        "| matmul work, HVP from scratch / kept graph | least work of any exact HVP from scratch |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, (widths, batch) in workloads.items():
        hvp_row(label, widths, batch, repeats)
    print(
        "\nRatios are medians over repeats of (time of one call / time of one gradient in the same repeat). The "
        "'reused g' column is what a monitor check costs on top of the training step when it reuses that step's "
        "gradient: (g with create_graph + Hg) minus one plain gradient. The last column gives the multiply-adds "
        "of the matrix products of double backward over those of a gradient (see `matmul_work`), and the least an "
        "exact HVP needs from scratch (Pearlmutter's R-operator, computing nothing unneeded): where that exceeds "
        "2.5x, no exact HVP from scratch meets 2.5x a gradient on that MLP."
    )


def matmul_work(widths: list[int]) -> tuple[float, float, float]:
    """Matrix-product work of an exact HVP relative to a gradient, for an MLP: double backward from scratch, on a
    kept graph, and the least any exact method needs from scratch.

    Per linear layer of ``a x b`` weights (``a * b`` multiply-adds per example and product): a gradient takes the
    forward product, ``grad W`` and ``grad x`` (not for the first layer, whose input needs no gradient): 3 (2).
    The second backward of an HVP goes through three products (forward, ``grad W``, ``grad x``), each giving two
    (one for the first layer's forward and ``grad W``, none for its ``grad x``): 6 (2). From scratch: 9 (4).
    Pearlmutter's R-operator computes nothing unneeded: the forward ``W x``, ``grad x`` to carry the backward,
    the tangent ``W x' + V x``, and the tangents of ``grad W`` and ``grad x`` (two products each): 8; the first
    layer needs only ``W x``, ``V x`` and the tangent of ``grad W``: 3. No exact HVP from scratch does less.
    """
    sizes = [a * b for a, b in itertools.pairwise(widths)]
    grad = 2 * sizes[0] + 3 * sum(sizes[1:])
    second = 2 * sizes[0] + 6 * sum(sizes[1:])
    r_op = 3 * sizes[0] + 8 * sum(sizes[1:])
    return (grad + second) / grad, second / grad, r_op / grad


def hvp_row(label: str, widths: list[int], batch: int, repeats: int) -> None:
    model = mlp(widths)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(batch, widths[0], generator=gen), torch.randint(0, widths[-1], (batch,), generator=gen)
    params = list(model.parameters())
    v = [torch.randn(p.shape, generator=gen) for p in params]
    op = HessianOperator(model, F.cross_entropy, x, y)
    v_flat = op.flatten(v)

    def monitor_check() -> Tensor:
        fresh = HessianOperator(model, F.cross_entropy, x, y)
        return fresh.matvec(fresh.gradient())

    fns: dict[str, Callable[[], object]] = {
        "grad": lambda: torch.autograd.grad(F.cross_entropy(model(x), y), params),
        "double": lambda: hvp(lambda: F.cross_entropy(model(x), y), params, v),
        "fwd-rev": lambda: hvp_func(model, F.cross_entropy, x, y, v),
        "rev-fwd": lambda: hvp_func(model, F.cross_entropy, x, y, v, order="reverse-over-forward"),
        "kept": lambda: op.matvec(v_flat),
        "check": monitor_check,
    }
    times = interleaved(fns, repeats)
    n = sum(p.numel() for p in params)
    cells = [f"{ratio(times, k, 'grad'):.2f}x ({1e3 * statistics.median(times[k]):.1f} ms)" for k in list(fns)[1:]]
    cells.append(f"{ratio(times, 'check', 'grad') - 1:.2f}x")
    double, kept, least = matmul_work(widths)
    cells += [f"{double:.2f}x / {kept:.2f}x", f"{least:.2f}x"]
    grad_ms = 1e3 * statistics.median(times["grad"])
    print(f"| {label} ({n / 1e6:.2f}M, {batch}) | {grad_ms:.1f} | " + " | ".join(cells) + " |")


MonitorConfig = tuple[int | None, int] | None  # (probe batch size or None to reuse the training gradient, every)


def train_run(data: tuple[Tensor, Tensor], widths: list[int], steps: int, monitor_cfg: MonitorConfig):
    """``steps`` of SGD with momentum; with ``(probe, every)`` an IllConditioningMonitor watches."""
    x, y = data
    model = mlp(widths)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    monitor = None
    if monitor_cfg is not None:
        probe, every = monitor_cfg
        batch = None if probe is None else (x[:probe], y[:probe])
        monitor = IllConditioningMonitor(model, F.cross_entropy, batch, lambda: LR / (1 - MOMENTUM), every=every)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    per_epoch = len(x) // TRAIN_BATCH
    start = time.perf_counter()
    for step in range(1, steps + 1):
        i = (step - 1) % per_epoch
        idx = order[i * TRAIN_BATCH : (i + 1) * TRAIN_BATCH]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        if monitor is None or not monitor.backward(step, loss):  # the monitor's check steps: it runs backward
            loss.backward()
        opt.step()
        if monitor is not None:
            monitor.after_step(step, loss.detach())
    return time.perf_counter() - start, model, monitor


def monitor_section(data: tuple[Tensor, Tensor], widths: list[int], steps: int, repeats: int) -> nn.Module:
    configs: dict[str, MonitorConfig] = {
        "no monitor": None,
        "monitor, reusing the training gradient, every 10": (None, 10),
        "monitor, reusing the training gradient, every 20": (None, 20),
        "monitor, probe batch 128, every 10": (128, 10),
        "monitor, probe batch 128, every 20": (128, 20),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # alarms are summarized below
        _, plain, _ = train_run(data, widths, steps, None)
        watched = {mode: train_run(data, widths, steps, (mode, 10)) for mode in (None, 128)}
        identical = {
            mode: all(torch.equal(a, b) for a, b in zip(plain.parameters(), m.parameters(), strict=True))
            for mode, (_, m, _) in watched.items()
        }
        times = interleaved({k: (lambda c=c: train_run(data, widths, steps, c)) for k, c in configs.items()}, repeats)
    print(f"\n### Ill-conditioning monitor: {steps} SGD steps (batch {TRAIN_BATCH}) of MLP {widths} on MNIST-1D\n")
    print("| run | median s (min) | overhead vs no monitor |")
    print("|---|---:|---:|")
    for name in configs:
        overhead = "" if name == "no monitor" else f"{100 * (ratio(times, name, 'no monitor') - 1):+.1f}%"
        print(f"| {name} | {statistics.median(times[name]):.3f} ({min(times[name]):.3f}) | {overhead} |")
    print(
        f"\nWeights after training with the monitor bit-identical to without: {identical[None]} (reusing the "
        f"training gradient), {identical[128]} (probe batch)."
    )
    for mode, (_, _, monitor) in watched.items():
        assert monitor is not None
        last = monitor.history[-1]
        print(
            f"- {'reusing the training gradient' if mode is None else 'probe batch 128'}: {len(monitor.history)} "
            f"checks; last: curvature g'Hg/g'g = {last['curvature']:.3g}, stable lr {last['stable_lr']:.3g} vs "
            f"effective lr {LR / (1 - MOMENTUM):.3g}; alarms: {len(monitor.alarms)}"
            + (f" (first: {monitor.alarms[0]!r})." if monitor.alarms else ".")
        )
    return plain


def lab_run_section(widths_list: list[list[int]], epochs: int, repeats: int) -> None:
    """Wall time of a whole lab run (``build_experiment(...).trainer.fit()``, as ``regopt run`` trains: per-epoch
    evaluation included) with and without ``[diagnostics.ill_conditioning] every = 10``."""
    from regopt.lab.config import validate
    from regopt.lab.experiment import build_experiment

    def raw(widths: list[int], watched: bool) -> dict[str, object]:
        config: dict[str, object] = {
            "name": "monitor-overhead",
            "seed": 0,
            "data": {"name": "mnist1d"},
            "model": {"name": "mlp", "widths": widths},
            "optimizer": {"name": "sgd", "lr": LR, "momentum": MOMENTUM},
            "train": {"epochs": epochs, "batch_size": TRAIN_BATCH},
        }
        if watched:
            config["diagnostics"] = {"ill_conditioning": {"every": 10}}
        return config

    print(f"\n### Ill-conditioning monitor in a lab run: {epochs} epochs of MNIST-1D, per-epoch evaluation included\n")
    print("| model | steps | without s | with the monitor every 10 s | overhead (median; range) |")
    print("|---|---:|---:|---:|---:|")
    for widths in widths_list:
        times: dict[bool, list[float]] = {False: [], True: []}
        steps = 0
        for r in range(repeats):
            for watched in (False, True) if r % 2 == 0 else (True, False):
                trainer = build_experiment(validate(raw(widths, watched))).trainer
                gc.collect()
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    trainer.fit()
                times[watched].append(time.perf_counter() - start)
                steps = trainer.step
        overheads = [100 * o for o in sorted(b / a - 1 for a, b in zip(times[False], times[True], strict=True))]
        print(
            f"| MLP {widths} | {steps} | {statistics.median(times[False]):.3f} | {statistics.median(times[True]):.3f} "
            f"| {statistics.median(overheads):+.1f}% ({overheads[0]:+.1f}% to {overheads[-1]:+.1f}%) |"
        )


def finite_difference_accuracy(model: nn.Module, data: tuple[Tensor, Tensor]) -> None:
    """Relative error of g'Hg by finite differences of the gradient along g (float32), against float64."""
    x, y = data[0][:TRAIN_BATCH], data[1][:TRAIN_BATCH]
    names = [n for n, _ in model.named_parameters()]

    def grad_at(theta: list[Tensor], dtype: torch.dtype = torch.float32) -> tuple[list[Tensor], tuple[Tensor, ...]]:
        leaves = [t.detach().to(dtype).requires_grad_() for t in theta]
        out = torch.func.functional_call(model, dict(zip(names, leaves, strict=True)), (x.to(dtype),))
        return leaves, torch.autograd.grad(F.cross_entropy(out, y), leaves, create_graph=True)

    def dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
        return float(sum((u.detach().double() * v.detach().double()).sum() for u, v in zip(a, b, strict=True)))

    def exact_ghg(dtype: torch.dtype) -> float:
        leaves, grads = grad_at(theta, dtype)
        v = [t.detach() for t in grads]
        return dot(v, torch.autograd.grad(grads, leaves, grad_outputs=v))

    theta = [p.detach() for p in model.parameters()]
    exact = exact_ghg(torch.float64)
    g = [t.detach() for t in grad_at(theta)[1]]
    scale = math.sqrt(dot(theta, theta) / dot(g, g))
    cells = []
    for rel in (1e-2, 1e-3, 1e-4):
        h = rel * scale
        plus = grad_at([t + h * d for t, d in zip(theta, g, strict=True)])[1]
        minus = grad_at([t - h * d for t, d in zip(theta, g, strict=True)])[1]
        forward = (dot(g, plus) - dot(g, g)) / h
        central = (dot(g, plus) - dot(g, minus)) / (2 * h)
        cells.append(f"h = {rel:g} |theta|/|g|: {abs(forward / exact - 1):.1e} / {abs(central / exact - 1):.1e}")
    print(
        f"- g'Hg on a training batch of the trained MLP, relative error against float64: exact product in float32 "
        f"{abs(exact_ghg(torch.float32) / exact - 1):.1e}; finite differences of the gradient along g in float32 "
        f"(forward, one extra gradient / central, two): {'; '.join(cells)}."
    )


def spectrum_section(model: nn.Module, data: tuple[Tensor, Tensor], batch: int, repeats: int) -> None:
    try:
        import pyhessian

        pyh = importlib.import_module("pyhessian.hessian")  # the module (the package re-exports the class)
    except ImportError:
        print(
            "\n### Spectrum vs PyHessian\n\nPyHessian is not installed "
            "(`.venv/bin/python -m pip install pyhessian`): section skipped."
        )
        return
    x, y = data[0][:batch], data[1][:batch]
    exact_model = copy.deepcopy(model).double()
    exact = top_eigenvalues(
        HessianOperator(exact_model, F.cross_entropy, x.double(), y), k=3, tol=1e-10, iterations=300
    )
    counter = {"n": 0}
    original = pyh.hessian_vector_product

    def counting(*args: object) -> object:
        counter["n"] += 1
        return original(*args)

    pyh.hessian_vector_product = counting

    def run_pyhessian(k: int, tol: float) -> tuple[Tensor, int]:
        counter["n"] = 0
        torch.manual_seed(0)
        values, _ = pyh.hessian(model, F.cross_entropy, data=(x, y), cuda=False).eigenvalues(
            maxIter=1000, tol=tol, top_n=k
        )
        model.zero_grad(set_to_none=True)  # PyHessian leaves create_graph gradients in .grad
        return torch.tensor(values, dtype=torch.float64), counter["n"]

    def run_ours(k: int, tol: float) -> tuple[Tensor, int]:
        op = HessianOperator(model, F.cross_entropy, x, y)
        return top_eigenvalues(op, k=k, tol=tol, iterations=300), op.num_products

    def error(values: Tensor, k: int) -> float:
        return float(((values - exact[:k]).abs() / exact[:k].abs()).max())

    def loosest(run: Callable[[int, float], tuple[Tensor, int]], k: int, tols: list[float]) -> tuple[float, float, int]:
        for tol in tols:
            values, products = run(k, tol)
            if error(values, k) <= 1e-3:
                return tol, error(values, k), products
        return math.nan, math.nan, 0

    print(
        f"\n### Top Hessian eigenvalues vs PyHessian {getattr(pyhessian, '__version__', '0.1')} (MLP trained "
        f"{TRAIN_STEPS} steps, batch {batch}, float32)\n"
    )
    print(f"Exact (float64 Lanczos to 1e-10): top-3 = {', '.join(f'{v:.5g}' for v in exact.tolist())}\n")
    print("| k | method | tolerance for 1e-3 | products | max rel. error | median s | speedup |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyHessian's backward(create_graph=True) reference-cycle warning
        for k in (1, 3):
            ours = loosest(run_ours, k, [1e-1, 3e-2, 1e-2, 1e-3, 1e-4])
            theirs = loosest(run_pyhessian, k, [1e-2, 1e-3, 1e-4, 1e-5, 1e-6])
            times = interleaved(
                {
                    "ours": lambda k=k, t=ours[0]: run_ours(k, t),
                    "pyhessian": lambda k=k, t=theirs[0]: run_pyhessian(k, t),
                },
                repeats,
            )
            speedup = ratio(times, "pyhessian", "ours")
            for name, (tol, err, products) in (("PyHessian power iteration", theirs), ("regopt Lanczos", ours)):
                key = "pyhessian" if name.startswith("Py") else "ours"
                cell = f"**{speedup:.1f}x**" if key == "ours" else "1.0x"
                print(
                    f"| {k} | {name} | {tol:g} | {products} | {err:.1e} | {statistics.median(times[key]):.3f} "
                    f"| {cell} |"
                )
        # defaults, as a user would call them
        for k in (1, 3):
            v_theirs, p_theirs = run_pyhessian(k, 1e-3)
            v_ours, p_ours = run_ours(k, 1e-5)
            print(
                f"| {k} | defaults: PyHessian tol=1e-3 / regopt tol=1e-5 | - | {p_theirs} / {p_ours} | "
                f"{error(v_theirs, k):.1e} / {error(v_ours, k):.1e} | - | - |"
            )
        samples = 50

        def trace_theirs() -> float:
            torch.manual_seed(0)
            out = pyh.hessian(model, F.cross_entropy, data=(x, y), cuda=False).trace(maxIter=samples, tol=0.0)
            model.zero_grad(set_to_none=True)
            return float(sum(out) / len(out))

        def trace_ours() -> float:
            return hessian_trace(HessianOperator(model, F.cross_entropy, x, y), samples=samples)

        times = interleaved({"ours": trace_ours, "pyhessian": trace_theirs}, max(3, repeats // 2))
    pyh.hessian_vector_product = original
    print(
        f"\nHutchinson trace, {samples} Rademacher samples each (same algorithm): PyHessian "
        f"{statistics.median(times['pyhessian']):.3f} s, regopt {statistics.median(times['ours']):.3f} s "
        f"(PyHessian / regopt {ratio(times, 'pyhessian', 'ours'):.2f}x; estimates {trace_theirs():.4g} and "
        f"{trace_ours():.4g} from different random vectors)."
    )


TRAIN_STEPS = 300


def main() -> None:
    global TRAIN_STEPS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small models, few repeats")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steadier on a shared box)")
    parser.add_argument(
        "--default-malloc", action="store_true", help="keep glibc's malloc defaults (the CLI retains freed memory)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retained = not args.default_malloc and retain_freed_memory()
    repeats = 3 if args.quick else 11
    TRAIN_STEPS = 60 if args.quick else 300
    workloads = {
        "MLP 40-512-512-10": ([40, 512, 512, 10], 512),
        "MLP 784-1024-1024-10": ([784, 1024, 1024, 10], 512),
        "MLP 40-100-100-10 (the MNIST-1D paper's)": ([40, 100, 100, 10], 512),
        "MLP 784-128-10 (one wide-input layer)": ([784, 128, 10], 512),
    }
    if args.quick:
        workloads = {"MLP 40-128-128-10": ([40, 128, 128, 10], 128)}
    widths = [40, 128, 128, 10] if args.quick else [40, 512, 512, 10]
    print(f"## Diagnostics overhead, {date.today().isoformat()}\n")
    print(
        f"- machine: torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}, "
        f"os.cpu_count() = {os.cpu_count()}, Python {sys.version.split()[0]}, {platform.platform()}"
    )
    print(f"- {repeats} interleaved repeats (order reversed every other repeat); float32")
    print(
        "- allocator: freed memory retained, as the `regopt` command runs (regopt.lab.memory.retain_freed_memory)"
        if retained
        else "- allocator: the C library's malloc defaults"
    )
    total = time.perf_counter()
    hvp_section(workloads, repeats)
    data = mnist1d()
    trained = monitor_section(data, widths, TRAIN_STEPS, 3 if args.quick else 9)
    finite_difference_accuracy(trained, data)
    if not args.quick:  # the MNIST-1D paper's MLP: less of a step is in matrix products
        monitor_section(data, [40, 100, 100, 10], TRAIN_STEPS, 9)
    lab_run_section([[100], [100, 100], [512, 512]], 2 if args.quick else 8, 3 if args.quick else 7)
    spectrum_section(trained, data, 128 if args.quick else 512, 3 if args.quick else 5)
    print(f"\n(total {time.perf_counter() - total:.0f} s)")


if __name__ == "__main__":
    main()
