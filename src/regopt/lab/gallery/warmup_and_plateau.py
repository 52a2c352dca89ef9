"""Gallery entry ``warmup_and_plateau``: a learning rate too high for the first steps, three ways.

The MLP of ``warmup_and_plateau.toml`` (widths [100, 100], ReLU, MNIST-1D, batches of 50) is trained by RMSProp
(Algorithm 8.5) at lr eps = 0.01 with rho = 0.9999, three times from the same initialization and batches:

- ``constant``: eps from the first step. RMSProp's r starts at 0, so after t steps it holds only a fraction
  1 - rho^t of the squared gradients' scale and each step is about 1/sqrt(1 - rho^t) times the steady-state
  step (100 times at t = 1, 10 times at t = 100). Those first steps wreck the ReLU network, which never
  recovers: its validation error stays at chance (0.9). (Adam's bias correction divides this factor out.)
- ``warmup``: the same eps reached through a linear warmup over the first 640 steps (``warmup_steps``, from
  0.01 eps), by which time r has grown; the network trains.
- ``plateau``: the same eps, divided by 10 whenever the validation loss did not improve in an epoch
  (``name = "plateau"``, ``patience = 0``). It judges whole epochs, so it lowers the rate only once the
  validation loss stalls, long after the first steps have done their damage: the error stays at chance.

A run that the non-finite guard stops (``diverged``) would be reported as such; at these settings none does,
the constant rate's failure is a network stuck at chance, not a NaN.

``lr_find.png`` is ``regopt lr-find`` on the same model, data and optimizer: the range test's loss against a
geometrically growing lr, its suggestion, the seed's stable rates for plain SGD, and this entry's lr.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from regopt.lab.gallery.base import GalleryResult, base_config, single_threaded, variant, write_table

ENTRY = "warmup_and_plateau"
CHANCE_ERROR = 0.9
"""Error rate of guessing on MNIST-1D's 10 balanced classes."""
COLLAPSED = 0.85
"""A final validation error at or above this is reported as a network stuck at chance."""
PLATEAU = {"name": "plateau", "monitor": "val_loss", "patience": 0, "factor": 0.1}
VARIANTS: dict[str, tuple[str, dict[str, Any] | None]] = {
    # run name: (label, [schedule] section; None keeps the shipped one, the warmup)
    "constant": ("constant lr", {"name": "constant"}),
    "warmup": ("linear warmup, then constant", None),
    "plateau": ("plateau (x0.1 when val loss stalls)", PLATEAU),
}
FINDER_STEPS = 100
"""Steps of the range test from 1e-5 to 1 (about 3 s)."""
HEADERS = ("schedule", "final val error", "best val error", "final lr", "lr reductions", "outcome")


def outcome(summary: dict[str, Any]) -> str:
    """``diverged`` (stopped by the non-finite guard), ``stuck at chance`` or ``trains``."""
    if summary.get("diverged"):
        return f"diverged ({summary.get('stop_reason', 'non-finite values')})"
    final = summary.get("final_val_error")  # None: not finite
    return "stuck at chance" if final is None or final >= COLLAPSED else "trains"


def _run(config: Any, folder: Path, progress: bool) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """A run's summary and history; a run the non-finite guard stops is read back from its directory."""
    import json

    from regopt.diagnostics import TrainingDiverged
    from regopt.lab.runs import read_metrics, run

    try:
        result = run(config, out=folder, force=True, progress=progress)
    except TrainingDiverged:
        path = folder / config.name
        return json.loads((path / "summary.json").read_text()), read_metrics(path / "metrics.csv")
    return result.summary, result.history


def reductions(history: list[dict[str, float]]) -> int:
    """How many times the learning rate fell from one epoch to the next."""
    return sum(later["lr"] < earlier["lr"] for earlier, later in itertools.pairwise(history))


def lr_finder_figure(base: dict[str, Any], folder: Path) -> tuple[Path, float]:
    """``regopt lr-find`` on this entry's model, data and RMSProp from its starting weights: Smith's range test
    (the loss of a short run whose lr grows geometrically) beside the seed's stable rates, with the entry's lr
    marked; saved as ``lr_find.png``. Returns the figure and the range test's suggestion."""
    from regopt.lab.experiment import build_experiment
    from regopt.lab.lr_find import find_lr, trainer_curvature_rates
    from regopt.lab.lr_find_report import plot_lr_find, recommend

    config = variant(base, ENTRY, "lr_find", {"schedule": {"name": "constant"}})
    trainer = build_experiment(config).trainer
    rates = trainer_curvature_rates(trainer, probe=512, seed=config.seed)
    result = find_lr(trainer, steps=FINDER_STEPS, lr_min=1e-5, lr_max=1.0)
    choice = recommend(result, rates, trainer.optimizer)
    path = folder / "lr_find.png"
    plot_lr_find(result, rates, choice, path, marks=[("this entry's constant lr", base["optimizer"]["lr"])])
    return path, result.suggestion


@single_threaded
def warmup_and_plateau(out: Path, progress: bool, *, epochs: int | None = None) -> GalleryResult:
    """RMSProp (rho 0.9999) at lr 0.01 on an MNIST-1D MLP: constant lr stuck at chance, warmup trains, plateau too late."""  # noqa: E501
    from regopt.lab.gallery.figures.schedules import plot_lr_and_error

    base = base_config(ENTRY, epochs)
    if epochs is not None:  # a smaller budget keeps the warmup's share of the run
        shipped = base_config(ENTRY)
        warmup = shipped["schedule"]["warmup_steps"] * epochs // shipped["train"]["epochs"]
        base["schedule"]["warmup_steps"] = warmup
    folder = Path(out) / ENTRY
    rows, curves = [], []
    for name, (label, schedule) in VARIANTS.items():
        config = variant(base, ENTRY, name, {"schedule": schedule} if schedule is not None else {})
        summary, history = _run(config, folder, progress)
        curves.append((label, history))
        last_lr = history[-1]["lr"] if history else float("nan")
        best, final = summary.get("best_val_error"), summary.get("final_val_error")
        rows.append((label, final, best, f"{last_lr:.2g}", reductions(history), outcome(summary)))

    figure = folder / "lr_and_val_error.png"
    lr = base["optimizer"]["lr"]
    title = f"RMSProp (rho = {base['optimizer']['rho']}) at lr {lr:g} on an MNIST-1D MLP: three schedules"
    plot_lr_and_error(curves, figure, title=title, chance=CHANCE_ERROR)
    digits = {"final val error": 3, "best val error": 3}
    table = write_table(folder / "table.md", HEADERS, rows, title="one lr, three schedules", digits=digits)
    files = [figure, table]
    finder, suggestion = lr_finder_figure(base, folder)
    files.append(finder)
    return GalleryResult(
        entry=ENTRY,
        files=files,
        numbers={
            "final val error, constant / warmup / plateau": " / ".join(f"{row[1]:.3f}" for row in rows),
            "outcome, constant lr": rows[0][5],
            "plateau's lr reductions": rows[2][4],
            "range test's suggestion (lr_find.png)": f"{suggestion:.2g}",
        },
    )
