"""``regopt predict RUN_DIR --data FILE``: the CLI side of :mod:`regopt.lab.predict` (parse, write, print)."""

from __future__ import annotations

import argparse

from rich.console import Console


def add_predict_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``predict`` subcommand's arguments."""
    p = sub.add_parser("predict", help="a trained run's predictions for a csv or npz file")
    p.add_argument("run", help="run directory (config.toml, checkpoint.pt, preprocessing.json)")
    p.add_argument("--data", required=True, help="csv or npz file in the layout of the run's training file")
    p.add_argument(
        "--weights",
        choices=["best", "final"],
        help="best.pt (the best validation epoch) or the final model in checkpoint.pt (default: best if kept)",
    )
    p.add_argument("--out", default="predictions.csv", help="where to write (default: predictions.csv)")
    p.set_defaults(handler=predict_command)


def predict_command(args: argparse.Namespace, console: Console) -> int:
    from regopt.lab.predict import predict, write_predictions

    result = predict(args.run, args.data, weights=args.weights or "auto")
    out = write_predictions(result, args.out)
    console.print(f"{out}: {len(result.rows)} predictions of {args.run} ({result.weights})", markup=False)
    return 0


__all__ = ["add_predict_parser", "predict_command"]
