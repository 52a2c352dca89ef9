"""``regopt lr-find CONFIG``: the range test and the curvature rates of a config's starting weights.

Builds the config's experiment, measures ``2 g'g / g'Hg`` and ``2 / lambda_max`` at its initial weights and runs
Smith's range test from the same weights (:mod:`regopt.lab.lr_find`), prints a table of the three rates with the
one to pick, and writes ``lr_find.png`` and ``lr_find.csv`` into ``OUT/<name>-lr-find/`` (beside the run
directory ``OUT/<name>/`` that ``regopt run`` would make, not inside it). ``--apply`` writes a copy of the config
with ``[optimizer] lr`` set to the pick (3 significant digits): ``<config stem>.lr.toml`` beside it, or PATH.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import tomli_w
from rich.console import Console
from rich.table import Table

USAGE_ERROR = 2


def add_lr_find_parser(sub: Any) -> None:
    """Register the ``lr-find`` subcommand on ``regopt``'s subparsers."""
    p = sub.add_parser("lr-find", help="range test and curvature rates of a config's starting weights; pick an lr")
    p.add_argument("config", help="TOML config file")
    p.add_argument("--steps", type=int, default=200, help="steps of the exponential sweep (default 200, >= 10)")
    p.add_argument("--min", type=float, default=1e-7, dest="lr_min", help="first lr of the sweep (default 1e-7)")
    p.add_argument("--max", type=float, default=10.0, dest="lr_max", help="last lr of the sweep (default 10)")
    p.add_argument("--probe", type=int, default=512, help="training examples the curvature is taken on (default 512)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--out", default="runs", help="parent of the <name>-lr-find directory (default: runs)")
    p.add_argument(
        "--apply",
        nargs="?",
        const="",
        metavar="PATH",
        help="write a copy of the config with the chosen lr (default path: <config stem>.lr.toml beside it)",
    )
    p.set_defaults(handler=lr_find_command)


def lr_find_command(args: argparse.Namespace, console: Console) -> int:
    from regopt.lab.config import load_config
    from regopt.lab.experiment import build_experiment
    from regopt.lab.lr_find import LRFindError, check_sweep, find_lr, trainer_curvature_rates
    from regopt.lab.lr_find_report import finding, plot_lr_find, rate_rows, recommend, write_lr_find_csv

    config_path = Path(args.config)
    try:
        check_sweep(args.lr_min, args.lr_max, args.steps)
        target = _apply_target(config_path, args.apply) if args.apply is not None else None
        config = load_config(config_path, args.set)
        experiment = build_experiment(config)
        trainer = experiment.trainer
        rates = trainer_curvature_rates(trainer, probe=args.probe, seed=config.seed)
        result = find_lr(trainer, steps=args.steps, lr_min=args.lr_min, lr_max=args.lr_max)
    except LRFindError as err:
        print(f"regopt: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    choice = recommend(result, rates, trainer.optimizer)

    table = Table(title=f"{config.name}: {len(result.lrs)} steps of the range test; {rates.examples} examples for g, H")
    for column, justify in (("rate", "left"), ("lr", "right"), ("what it is", "left"), ("pick", "center")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name, lr, meaning in rate_rows(result, rates):
        table.add_row(name, f"{lr:.4g}", meaning, "<-" if name.startswith(choice.source) else "")
    console.print(table)
    console.print(f"range test: {result.stop_reason} at lr {result.stop_lr:.4g}", markup=False)
    console.print(f"pick lr = {choice.lr:.3g} ({choice.source}): {choice.reason}", markup=False)
    for note in choice.notes:
        console.print(f"note: {note}", markup=False)

    out = Path(args.out) / f"{config.name}-lr-find"
    out.mkdir(parents=True, exist_ok=True)
    write_lr_find_csv(result, out / "lr_find.csv")
    plot_lr_find(result, rates, choice, out / "lr_find.png")
    console.print(f"{finding(result, rates, choice)}", markup=False)
    console.print(f"wrote {out / 'lr_find.png'}, {out / 'lr_find.csv'}", markup=False)
    if target is not None:
        _write_applied(config_path, args.set, float(f"{choice.lr:.3g}"), target)
        console.print(f"wrote {target} (optimizer.lr = {choice.lr:.3g})", markup=False)
    return 0


def _apply_target(config_path: Path, given: str) -> Path:
    """Where ``--apply`` writes; never the config itself."""
    from regopt.lab.lr_find import LRFindError

    target = Path(given) if given else config_path.with_name(f"{config_path.stem}.lr.toml")
    if target.exists() and config_path.exists() and target.resolve() == config_path.resolve():
        raise LRFindError(f"--apply: {target} is the config itself; give another path")
    return target


def _write_applied(config_path: Path, overrides: list[str], lr: float, target: Path) -> None:
    """The config as read (with ``--set`` overrides) and ``optimizer.lr = lr``, written atomically to ``target``.

    A relative ``data.path`` stays as written when the copy lies beside the config; elsewhere it becomes absolute.
    TOML comments are not kept (tomli_w writes the data)."""
    from regopt.lab.atomic import write_text
    from regopt.lab.config import apply_overrides, read_raw_config, read_toml

    raw = read_raw_config(config_path, overrides)  # data.path absolute
    original = apply_overrides(read_toml(config_path), overrides)
    same_folder = target.resolve().parent == config_path.resolve().parent
    data_path_set = any(item.partition("=")[0].strip() == "data.path" for item in overrides)
    if same_folder and not data_path_set and "data" in original:
        raw["data"] = original["data"]
    optimizer = raw.setdefault("optimizer", {})
    optimizer["lr"] = lr
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text(target, tomli_w.dumps(raw))
