"""Command line: ``regopt run | compare | report | tune | lr-find | diagnose | predict | demo | list``.

The CLI parses, prints and exits; training lives in :mod:`regopt.lab`. Any unusable input (config, data file,
run directory, checkpoint) prints one line ``regopt: error: ...`` to stderr and exits with status 2, without a
traceback and without touching what is already on disk.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from regopt import __version__
from regopt.cli_list import list_command
from regopt.cli_lr_find import add_lr_find_parser
from regopt.cli_predict import add_predict_parser
from regopt.cli_report import add_report_parser
from regopt.cli_warnings import install_warning_handler

USAGE_ERROR = 2


def _run(args: argparse.Namespace, console: Console) -> int:
    from regopt.cli_summary import run_summary_lines
    from regopt.lab.config import load_config
    from regopt.lab.runs import run

    config = load_config(args.config, [*args.set, *(["logging.tensorboard=true"] if args.tensorboard else [])])
    if _rank() != 0:  # under torchrun: rank 0 speaks for the run (the ranks' monitors raise the same alarms)
        args.quiet = True
        logging.getLogger("regopt").setLevel(logging.ERROR)
    if not args.quiet:
        console.print(f"[bold]regopt run[/] {args.config} -> {Path(args.out) / config.name}")
    result = run(config, out=args.out, resume=args.resume, force=args.force, progress=not args.quiet)
    if _rank() == 0:
        for line in run_summary_lines(result.path, result.summary):
            console.print(line, markup=False, highlight=False)
    return 0


def _rank() -> int:
    """This process's rank when a launcher (torchrun) started it as one of several; 0 otherwise."""
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0


def _compare(args: argparse.Namespace, console: Console) -> int:
    from regopt.lab.compare import collect_runs, compare_tables
    from regopt.lab.report import plot_compare

    runs, skipped = collect_runs(args.runs)  # RunDirError (exit 2) only when no run is left
    for note in skipped:
        print(f"regopt: note: skipped {note}", file=sys.stderr)
    for table in compare_tables([(r.label, r.summary) for r in runs]):
        console.print(table)
    out = Path(args.out) if args.out else runs[0].path.parent / "compare.png"
    plot_compare([(r.label, r.history) for r in runs], out, metrics=[r.metric for r in runs])
    console.print(f"figure: {out}", markup=False)
    return 0


def _tune(args: argparse.Namespace, console: Console) -> int:
    from regopt.lab.config import read_raw_config
    from regopt.lab.tune import best_text, trial_rows, tune

    raw = read_raw_config(args.config, args.set)  # data.path relative to the config file, as `run` takes it
    result = tune(
        raw,
        args.param,
        trials=args.trials,
        out=args.out,
        storage=args.storage,
        metric=args.metric,
        prune=not args.no_prune,
        seed=args.seed,
        study=args.study,
        force=args.force,
        workers=args.workers,
    )
    rows = trial_rows(result.study, result.space)
    table = Table(title=f"{result.path}: {len(rows)} trials")
    columns = ["trial", "state", *[p.key for p in result.space], "value", "final_train_error", "final_val_error"]
    columns += ["error"] if any(row.get("error") for row in rows) else []
    for column in columns:
        table.add_column(column, justify="left" if column in ("state",) else "right")
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns])
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(best_text(result))
    console.print(f"study: {result.path}; trials.csv" + (", curve.png" if (result.path / "curve.png").exists() else ""))
    return 0


def _diagnose(args: argparse.Namespace, console: Console) -> int:
    if args.example:
        from regopt.lab.gallery.registry import GALLERY

        result = GALLERY[args.example.replace("-", "_")](Path(args.out), False)
        for key, value in result.numbers.items():
            console.print(f"  {key}: {_cell(value)}")
        for file in result.files:
            console.print(f"  wrote {file}")
        return 0
    from regopt.lab.diagnose_run import diagnose

    r = diagnose(args.run, probe_size=args.probe, top_k=args.top)
    table = Table(
        title=f"{r['run']} at step {r['step']} ({r['parameters']} parameters, {r['probe_examples']} examples)"
    )
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows = [
        ("loss", r["loss"]),
        ("top eigenvalues", ", ".join(f"{v:.4g}" for v in r["top_eigenvalues"])),
        ("min eigenvalue" + (" (saddle direction)" if r["saddle_direction"] else ""), r["min_eigenvalue"]),
        ("trace (Hutchinson)", r["trace"]),
        ("stable lr, any direction (2/lambda_max)", r["stable_lr_any_direction"]),
        ("stable lr along the gradient (2 g'g/g'Hg)", r["stable_lr_along_gradient"]),
        ("lr of the run's last epoch (eps)", r["current_lr"]),
        ("criterion 0.5 eps^2 g'Hg - eps g'g at that lr", r["criterion_at_current_lr"]),
        ("gradient norm", r["gradient_norm"]),
        ("gradient noise tr(Sigma)", r["gradient_noise_trace"]),
        ("noise scale B_simple", r["noise_scale"]),
        *((f"gradient SNR at batch {b}", snr) for b, snr in r["snr_by_batch_size"].items()),
    ]
    for name, value in rows:
        table.add_row(name, _cell(value))
    console.print(table)
    for figure in r["figures"]:
        console.print(f"wrote {figure}")
    return 0


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _demo(args: argparse.Namespace, console: Console) -> int:
    from regopt.lab.gallery.base import one_thread
    from regopt.lab.gallery.index_page import write_index
    from regopt.lab.gallery.registry import GALLERY

    out = Path(args.out)
    results = {}
    for name in args.only or list(GALLERY):
        console.print(f"[bold]demo[/] {name}: {(GALLERY[name].__doc__ or '').strip()}")
        with one_thread():  # the gallery's models are tiny: a second thread only contends (see one_thread)
            result = results[name] = GALLERY[name](out, not args.quiet)
        for key, value in result.numbers.items():
            console.print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
        for file in result.files:
            console.print(f"  wrote {file}")
    console.print(f"wrote {write_index(results, out)}", markup=False, highlight=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regopt", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"regopt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="train one config into runs/<name>/")
    p.add_argument("config", help="TOML config file")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set optimizer.lr=0.1 (repeatable)",
    )
    p.add_argument("--out", default="runs", help="parent directory of the run directory (default: runs)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    p.add_argument("--force", action="store_true", help="replace an existing run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="write TensorBoard events to RUN_DIR/tensorboard/ (= --set logging.tensorboard=true)",
    )
    p.set_defaults(handler=_run)

    p = sub.add_parser("compare", help="overlay the curves of runs and tabulate them")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", help="figure path (default: compare.png beside the first run)")
    p.set_defaults(handler=_compare)

    p = sub.add_parser("tune", help="search hyperparameters (e.g. alpha) with Optuna; resumable")
    p.add_argument("config", help="TOML config file")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=KIND:ARGS",
        required=True,
        help="search dimension, e.g. regularize.l2.alpha=loguniform:1e-6:1e-1 (repeatable); kinds: "
        "loguniform:lo:hi, uniform:lo:hi, int:lo:hi, choice:a,b,c",
    )
    p.add_argument("--trials", type=int, default=20, help="finished trials the study should hold (default 20)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--out", default="runs", help="parent of the <name>-tune directory (default: runs)")
    p.add_argument(
        "--storage",
        help="Optuna storage URL (default: SQLite in the tune directory); postgresql://USER@HOST/DB lets several "
        "workers and machines share the study",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes on the study (default 1; more need a database --storage such as postgresql://); "
        "the same command on another machine joins the study",
    )
    p.add_argument("--metric", default="best_val_error", choices=["best_val_error", "final_val_error"])
    p.add_argument("--no-prune", action="store_true", help="never stop hopeless trials early")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler")
    p.add_argument("--study", metavar="NAME", help="study name; its directory is <out>/NAME-tune (default: name)")
    p.add_argument("--force", action="store_true", help="replace an existing study of that name and its trials")
    p.set_defaults(handler=_tune)

    add_lr_find_parser(sub)

    p = sub.add_parser("diagnose", help="curvature, gradient noise and stable lr of a run; or a seed example")
    p.add_argument("run", nargs="?", help="run directory (with config.toml and checkpoint.pt)")
    p.add_argument(
        "--example",
        choices=["ill-conditioning", "saddle", "cliff"],
        help="reproduce one of the chapter's worked examples instead",
    )
    p.add_argument("--probe", type=int, default=512, help="training examples the Hessian is taken on (default 512)")
    p.add_argument("--top", type=int, default=3, help="how many top eigenvalues (default 3)")
    p.add_argument("--out", default="runs/diagnose", help="directory for --example figures")
    p.set_defaults(handler=_diagnose)

    add_predict_parser(sub)
    add_report_parser(sub)

    p = sub.add_parser("demo", help="run the gallery of the chapter's figures on bundled data")
    p.add_argument("--out", default="runs/demo", help="directory for the gallery (default: runs/demo)")
    p.add_argument("--only", action="append", metavar="ENTRY", help="run only this entry (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_demo)

    p = sub.add_parser("list", help="config sections, datasets, models, optimizers, schedules and demo entries")
    p.add_argument("--config", action="store_true", help="print the config reference: every key, type and default")
    p.set_defaults(handler=list_command)
    return parser


def _input_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean "this input cannot be used" (all carry a one-line message)."""
    from regopt.lab.checkpoint import CheckpointError
    from regopt.lab.experiment import BUILD_ERRORS
    from regopt.lab.runs import RunDirError

    return (*BUILD_ERRORS, RunDirError, CheckpointError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "diagnose" and not args.run and not args.example:
        parser.error("diagnose: give a run directory (e.g. regopt diagnose runs/NAME) or --example NAME")
    if args.command == "diagnose" and args.run and args.example:
        parser.error(f"diagnose: give a run directory ({args.run}) or --example {args.example}, not both")
    if args.command == "demo":
        from regopt.lab.gallery.registry import GALLERY

        for entry in args.only or []:
            if entry not in GALLERY:
                parser.error(f"--only: unknown gallery entry {entry!r}; entries are {list(GALLERY)}")
    from regopt.lab.memory import retain_freed_memory_unless_disabled

    install_warning_handler()  # --quiet keeps them: they are warnings, not progress
    retain_freed_memory_unless_disabled()  # training reuses its freed temporaries instead of page-faulting them in
    console = Console(soft_wrap=True)
    try:
        return args.handler(args, console)
    except _input_errors() as err:
        if _rank() == 0:  # every rank of a torchrun run finds the same fault in the same config
            print(f"regopt: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except FloatingPointError as err:  # regopt.diagnostics.TrainingDiverged: the message says where and why
        print(f"regopt: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("regopt: interrupted; the last checkpoint is kept (continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
