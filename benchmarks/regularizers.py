"""Measured effect of each regularizer on small training sets, against the same run with none.

Two settings, both chosen to over-fit (training error reaches 0 well before the last epoch):

* ``digits``: 200 of scikit-learn's 8x8 digits (as 64-vectors), MLP [256, 256], SGD lr 0.05 momentum 0.9,
  batch 32, 100 epochs;
* ``mnist1d``: 1000 MNIST-1D training examples, MLP [100, 100], SGD lr 0.05 momentum 0.9, batch 50, 60 epochs.

The data split is fixed (``data.seed = 0``: the same training, validation and test examples in every run); the
training ``seed`` (initialization, batch order, dropout and noise draws) varies over 0, 1, 2. Each regularizer
is switched on alone, at one strength picked beforehand by ``--sweep``, which trains every candidate strength
with seeds 100 and 101 (never the reported ones) and marks the one whose evaluated model has the lowest mean
validation error; ``chosen`` in the grids below records that pick. The test split plays no part in it.

Reported per (setting, regularizer), mean ± sample std over the seeds: test error; best validation error
(lowest over the epochs); the generalization gap of the evaluated model (validation minus training error, both
measured in eval mode on the full splits at the last epoch; with early stopping at the restored epoch); the
training wall time. "vs none" is the difference of mean test error from the baseline; the verdict is "helps"
if the improvement exceeds the baseline's std, "hurts" if it is worse by more than that, and "no clear effect"
otherwise. Runs use one torch thread by default, which makes every error number reproducible on a machine and
is also the fastest for these small models on a shared 2-core box.

Usage::

    .venv/bin/python benchmarks/regularizers.py               # full run, 3 seeds, ~3 minutes on 2 cores
    .venv/bin/python benchmarks/regularizers.py --quick       # smoke run: 1 seed, 3 epochs, ~10 seconds
    .venv/bin/python benchmarks/regularizers.py --only digits
    .venv/bin/python benchmarks/regularizers.py --sweep       # the strength sweep behind ``chosen``, ~5 minutes
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import torch

from regopt.lab.config import apply_overrides, validate
from regopt.lab.runs import RunResult, run

SWEEP_SEEDS = (100, 101)
QUICK_EPOCHS = 3


@dataclass(frozen=True)
class Regularizer:
    """One technique: candidate strengths (each a list of ``--set`` style overrides) and the chosen one."""

    name: str
    candidates: tuple[tuple[str, ...], ...]
    chosen: int

    @property
    def overrides(self) -> tuple[str, ...]:
        return self.candidates[self.chosen]


@dataclass(frozen=True)
class Setting:
    name: str
    base: dict[str, Any]
    regularizers: tuple[Regularizer, ...]

    def describe(self) -> str:
        b = self.base
        data = ", ".join(f"{k}={v}" for k, v in b["data"].items() if k != "name")
        model = ", ".join(f"{k}={v}" for k, v in b["model"].items() if k != "name")
        opt = ", ".join(f"{k}={v}" for k, v in b["optimizer"].items() if k != "name")
        return (
            f"{b['data']['name']} ({data}); {b['model']['name']} ({model}); {b['optimizer']['name']} ({opt}); "
            f"constant lr, batch {b['train']['batch_size']}, {b['train']['epochs']} epochs"
        )


Grid = dict[str, tuple[tuple[str, ...], int]]
"""Per technique: the candidate values swept and the index of the one chosen."""


def _regularizers(grid: Grid, augment: Regularizer) -> tuple[Regularizer, ...]:
    """The regularizers of one setting from its grid; ``chosen`` is what ``--sweep`` found best."""

    def one(name: str, key: str, template: str | tuple[str, ...]) -> Regularizer:
        values, chosen = grid[key]
        parts = (template,) if isinstance(template, str) else template
        return Regularizer(name, tuple(tuple(t.format(v) for t in parts) for v in values), chosen)

    r = "regularize."
    return (
        one("L2", "l2", r + "l2.alpha={}"),
        one("L1 (proximal)", "l1", (r + "l1.alpha={}", r + "l1.proximal=true")),
        one("elastic net", "elastic_net", (r + "elastic_net.alpha={}", r + "elastic_net.l1_ratio=0.5")),
        one("max-norm", "max_norm", r + "max_norm.c={}"),
        one("dropout", "dropout", "model.dropout_hidden={}"),
        one("input noise", "input_noise", r + "input_noise.std={}"),
        one("hidden noise", "hidden_noise", r + "hidden_noise.std={}"),
        one("weight noise", "weight_noise", r + "weight_noise.std={}"),
        one("label smoothing", "label_smoothing", r + "label_smoothing={}"),
        augment,
        one("activation L1", "activation_l1", r + "activation_l1.alpha={}"),
        Regularizer("early stopping", ((r + "early_stopping.patience=10", r + "early_stopping.restore_best=true"),), 0),
        one("Polyak averaging (EMA)", "averaging", "averaging.decay={}"),
    )


AI, AS = "regularize.augment_image.", "regularize.augment_signal."
DIGITS: Grid = {
    "l2": (("1e-4", "1e-3", "3e-3", "1e-2"), 2),
    "l1": (("1e-5", "1e-4", "3e-4", "1e-3", "3e-3", "1e-2"), 4),
    "elastic_net": (("1e-4", "1e-3", "3e-3"), 1),
    "max_norm": (("0.5", "1.0", "2.0", "3.0"), 1),
    "dropout": (("0.2", "0.3", "0.5"), 1),
    "input_noise": (("0.05", "0.1", "0.2", "0.3", "0.5"), 3),
    "hidden_noise": (("0.1", "0.3", "0.5", "1.0"), 1),
    "weight_noise": (("0.01", "0.03", "0.1"), 0),
    "label_smoothing": (("0.05", "0.1", "0.2"), 0),
    "activation_l1": (("1e-5", "1e-4", "1e-3", "3e-3", "1e-2"), 2),
    "averaging": (("0.9", "0.99", "0.999"), 2),
}
DIGITS_AUGMENT = Regularizer(
    "augmentation (image)",
    (
        (AI + "shift=0.125",),
        (AI + "rotate=10",),
        (AI + "rotate=10", AI + "shift=0.125"),
        (AI + "rotate=10", AI + "scale=[0.9, 1.1]"),
    ),
    3,
)
MNIST1D: Grid = {
    "l2": (("1e-4", "1e-3", "3e-3", "1e-2"), 2),
    "l1": (("1e-5", "1e-4", "3e-4", "1e-3"), 2),
    "elastic_net": (("1e-4", "1e-3", "3e-3"), 0),
    "max_norm": (("0.5", "1.0", "2.0", "3.0"), 1),
    "dropout": (("0.2", "0.3", "0.5"), 1),
    "input_noise": (("0.1", "0.2", "0.5", "1.0"), 1),
    "hidden_noise": (("0.05", "0.1", "0.3", "0.5"), 0),
    "weight_noise": (("0.01", "0.03", "0.1"), 1),
    "label_smoothing": (("0.02", "0.05", "0.1", "0.2"), 1),
    "activation_l1": (("1e-5", "1e-4", "1e-3"), 0),
    "averaging": (("0.9", "0.99", "0.999"), 0),
}
MNIST1D_AUGMENT = Regularizer(
    "augmentation (signal)",
    (
        (AS + "shift=1",),
        (AS + "shift=3",),
        (AS + "shift=6",),
        (AS + "shift=10",),
        (AS + "shift=6", AS + "scale=[0.9, 1.1]", AS + "noise=0.1"),
    ),
    1,
)

SETTINGS = {
    "digits": Setting(
        "digits",
        {
            "data": {"name": "digits", "train_size": 200, "seed": 0},
            "model": {"name": "mlp", "widths": [256, 256]},
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
            "train": {"epochs": 100, "batch_size": 32},
        },
        _regularizers(DIGITS, DIGITS_AUGMENT),
    ),
    "mnist1d": Setting(
        "mnist1d",
        {
            "data": {"name": "mnist1d", "train_size": 1000, "seed": 0},
            "model": {"name": "mlp", "widths": [100, 100]},
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
            "train": {"epochs": 60, "batch_size": 50},
        },
        _regularizers(MNIST1D, MNIST1D_AUGMENT),
    ),
}
BASELINE = Regularizer("none", ((),), 0)


# ------------------------------------------------------------------------------------------------- runs
@dataclass
class Outcome:
    test_error: float
    best_val_error: float
    val_error: float  # of the evaluated model: the last epoch, or the restored one with early stopping
    gap: float
    wall_s: float
    epochs: int


def train_one(setting: Setting, overrides: tuple[str, ...], seed: int, out: str, epochs: int | None) -> Outcome:
    raw = {"name": f"{setting.name}-{seed}", "seed": seed, **setting.base}
    if epochs is not None:
        raw = apply_overrides(raw, [f"train.epochs={epochs}"])
    result: RunResult = run(validate(apply_overrides(raw, list(overrides))), out=out, force=True, progress=False)
    s = result.summary
    row = result.history[-1]
    stopping = s.get("early_stopping")
    if stopping and stopping["restored_best"] and stopping["best_epoch"] is not None:
        row = next(r for r in result.history if r["epoch"] == stopping["best_epoch"])  # the tested weights
    return Outcome(
        test_error=s["test_error"],
        best_val_error=s["best_val_error"],
        val_error=row["val_error"],
        gap=row["val_error"] - row["train_error"],
        wall_s=s["wall_time_s"],
        epochs=s["epochs"],
    )


def label(reg: Regularizer, overrides: tuple[str, ...] | None = None) -> str:
    parts = overrides if overrides is not None else reg.overrides
    shown = [p.removeprefix("regularize.") for p in parts if not p.endswith("proximal=true")]
    shown = [p for p in shown if not p.endswith(("l1_ratio=0.5", "restore_best=true"))]
    return ", ".join(shown).replace("=", " = ") or "-"


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def pm(values: list[float], digits: int = 3) -> str:
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def verdict(diff: float, baseline_std: float) -> str:
    if diff < -baseline_std:
        return "helps"
    if diff > baseline_std:
        return "hurts"
    return "no clear effect"


def measure(setting: Setting, seeds: list[int], out: str, epochs: int | None) -> str:
    """Train every regularizer of ``setting`` on every seed; return its markdown table."""
    results: dict[str, list[Outcome]] = {}
    for reg in (BASELINE, *setting.regularizers):
        results[reg.name] = []
        for seed in seeds:
            o = train_one(setting, reg.overrides, seed, out, epochs)
            results[reg.name].append(o)
            print(
                f"  {setting.name} / {reg.name} / seed {seed}: test {o.test_error:.3f}, {o.wall_s:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    base_mean, base_std = mean_std([o.test_error for o in results["none"]])
    lines = [
        "| regularizer | strength | test error | vs none | verdict | best val error | gap (val - train) | wall s |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    notes = []
    for reg in (BASELINE, *setting.regularizers):
        outs = results[reg.name]
        tests = [o.test_error for o in outs]
        diff = statistics.fmean(tests) - base_mean
        is_base = reg is BASELINE
        lines.append(
            f"| {reg.name} | {label(reg)} | {pm(tests)} | {'' if is_base else f'{diff:+.3f}'} | "
            f"{'' if is_base else verdict(diff, base_std)} | {pm([o.best_val_error for o in outs])} | "
            f"{pm([o.gap for o in outs])} | {pm([o.wall_s for o in outs], 1)} |"
        )
        if any(p.startswith("regularize.early_stopping") for p in reg.overrides):
            notes.append(f"early stopping ran {', '.join(str(o.epochs) for o in outs)} epochs (seeds {seeds})")
    return "\n".join(lines) + "".join(f"\n\nNote: {n}." for n in notes)


def sweep(setting: Setting, out: str, epochs: int | None, seeds: tuple[int, ...]) -> str:
    """Every candidate strength on the sweep seeds; the lowest mean validation error is marked."""
    lines = [
        f"Sweep on {setting.name}, seeds {list(seeds)}: validation error of the evaluated model (mean), test "
        "error shown for reference only",
        "",
        "| regularizer | strength | val error | test error | lowest val | chosen |",
        "|---|---|---:|---:|---|---|",
    ]
    for reg in (BASELINE, *setting.regularizers):
        rows = []
        for i, cand in enumerate(reg.candidates):
            outs = [train_one(setting, cand, seed, out, epochs) for seed in seeds]
            val, test = (statistics.fmean(o.val_error for o in outs), statistics.fmean(o.test_error for o in outs))
            rows.append((i, cand, val, test))
            print(f"  sweep {setting.name} / {reg.name} / {label(reg, cand)}: val {rows[-1][2]:.3f}", file=sys.stderr)
        best = min(rows, key=lambda r: r[2])[0]
        for i, cand, val, test in rows:
            lines.append(
                f"| {reg.name} | {label(reg, cand)} | {val:.3f} | {test:.3f} | {'yes' if i == best else ''} | "
                f"{'yes' if i == reg.chosen else ''} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1 (default 3)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: 1 seed, {QUICK_EPOCHS} epochs")
    parser.add_argument("--only", choices=sorted(SETTINGS), help="run one setting")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--sweep", action="store_true", help=f"sweep the candidate strengths on seeds {SWEEP_SEEDS}")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    torch.set_num_threads(args.threads)
    seeds = [0] if args.quick else list(range(args.seeds))
    epochs = QUICK_EPOCHS if args.quick else None
    settings = [SETTINGS[args.only]] if args.only else list(SETTINGS.values())
    start = time.perf_counter()
    print(
        f"Regularizers on small training sets, {date.today().isoformat()}"
        f"{' (--quick: NOT representative)' if args.quick else ''}:\n\n"
        f"- machine: torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}, "
        f"Python {platform.python_version()}, {platform.platform()}\n"
        f"- data split fixed (data.seed = 0); training seeds {seeds if not args.sweep else list(SWEEP_SEEDS)}; "
        "mean ± sample std over seeds\n"
        "- verdict: 'helps' if mean test error improves on none by more than none's std, 'hurts' if worse by "
        "more, else 'no clear effect'\n"
    )
    with tempfile.TemporaryDirectory(prefix="regopt-bench-") as out:
        for setting in settings:
            print(f"### {setting.name}: {setting.describe()}\n")
            if args.sweep:
                print(sweep(setting, out, epochs, (0,) if args.quick else SWEEP_SEEDS) + "\n", flush=True)
            else:
                print(measure(setting, seeds, out, epochs) + "\n", flush=True)
    print(f"Total time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
