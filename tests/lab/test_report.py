"""Run figures and tables: one panel for regression, tables that stay readable at 80 columns."""

from __future__ import annotations

from rich.console import Console

from regopt.lab.report import plot_curves, rich_table

REGRESSION = [
    {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_error": 1 / e, "val_error": 1.2 / e}
    for e in (1, 2, 3)
]
CLASSIFICATION = [{**row, "train_error": row["train_loss"] / 4, "val_error": row["val_loss"] / 3} for row in REGRESSION]


def test_regression_curves_draw_one_panel_classification_two(tmp_path):
    regression = plot_curves(REGRESSION, tmp_path / "r.png", error_label="mse")
    assert len(regression.axes) == 1  # loss and "error" are the same MSE: one panel, not two identical ones
    assert regression.axes[0].get_ylabel() == "MSE (mean squared error)"
    classification = plot_curves(CLASSIFICATION, tmp_path / "c.png", error_label="error rate")
    assert [ax.get_ylabel() for ax in classification.axes] == ["error rate (fraction misclassified)", "loss"]
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def render(table, width=80) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text()


def test_rich_table_headers_that_differ_in_their_tail_stay_distinct_at_80_columns():
    eps = (0.05, 0.1, 0.2)
    headers = ("model", "clean accuracy", *(f"FGSM eps={e}" for e in eps), *(f"PGD eps={e}" for e in eps), "train s")
    rows = [(name, 0.97, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 12.3) for name in ("clean", "FGSM-trained", "PGD-trained")]
    text = render(rich_table(headers, rows, digits=dict.fromkeys(headers[1:-1], 3) | {"train s": 1}))
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= 80
    lines = text.splitlines()
    header = "\n".join(lines[: next(i for i, line in enumerate(lines) if "0.970" in line)])
    for e in eps:
        assert header.count(str(e)) == 2, (e, text)  # once under FGSM, once under PGD
    for cell in ("0.970", "0.050", "12.3", "FGSM-trained", "PGD-trained"):
        assert cell in text, text


# ------------------------------------------------------------------------------------------- regopt compare
def fake_run(folder, name, metric="error rate", best=0.1):
    """A finished run directory as `regopt run` leaves it (summary.json and metrics.csv), without training."""
    import json

    path = folder / name
    path.mkdir(parents=True)
    summary = {
        "name": name,
        "error_metric": metric,
        "best_val_error": best,
        "final_val_error": best + 0.01,
        "final_train_error": best / 2,
        "generalization_gap": best / 2 + 0.01,
        "test_error": best + 0.02,
        "epochs": 20,
        "wall_time_s": 12.34,
    }
    (path / "summary.json").write_text(json.dumps(summary))
    lines = ["epoch,step,lr,train_loss,train_error,val_loss,val_error,seconds"]
    lines += [f"{e},{10 * e},0.1,{1 / e},{best / e},{1.2 / e},{best + 0.1 / e},{e}" for e in (1, 2, 3)]
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    return path


def test_compare_skips_what_is_not_a_run_with_one_note_each(tmp_path, capsys):
    from regopt.cli import main

    runs = tmp_path / "runs"
    fake_run(runs, "a")
    fake_run(runs, "b", best=0.2)
    (runs / "compare.png").write_bytes(b"\x89PNG")
    (runs / "tiny-tune" / "trials").mkdir(parents=True)
    (runs / "tiny-tune" / "study.db").write_bytes(b"")
    (runs / "diagnose").mkdir()
    pruned = runs / "trial-0003"
    pruned.mkdir()
    (pruned / "config.toml").write_text('name = "trial-0003"\n')
    (pruned / "metrics.csv").write_text("epoch,step\n1,10\n")
    paths = sorted(str(p) for p in runs.iterdir())
    assert main(["compare", *paths, "--out", str(tmp_path / "cmp.png")]) == 0
    captured = capsys.readouterr()
    notes = captured.err.splitlines()
    assert len(notes) == 4 and all(line.startswith("regopt: note: skipped ") for line in notes), notes
    assert any("compare.png: not a directory" in n for n in notes)
    assert any("tiny-tune: a tune study" in n for n in notes)
    assert any("diagnose: diagnose output" in n for n in notes)
    assert any("trial-0003: a run that did not finish" in n for n in notes)
    assert "0.1000" in captured.out and "0.2000" in captured.out

    (runs / "a" / "summary.json").unlink()
    (runs / "b" / "summary.json").unlink()
    assert main(["compare", *paths]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("regopt: error: none of the 6 paths is a finished run"), err


def test_compare_keeps_error_rate_and_mse_apart(tmp_path, capsys):
    from regopt.cli import main

    fake_run(tmp_path, "wine", best=0.03)
    fake_run(tmp_path, "diabetes", metric="mse", best=3000.5)
    assert main(["compare", str(tmp_path / "wine"), str(tmp_path / "diabetes"), "--out", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    rate, mse = out.index("run comparison: error rate"), out.index("run comparison: mse")
    assert rate < out.index("wine") < mse < out.index("diabetes")
    assert "3000.5000" in out[mse:] and "3000.5000" not in out[:mse]

    from regopt.lab.compare import collect_runs
    from regopt.lab.report import plot_compare

    runs, _ = collect_runs([tmp_path / "wine", tmp_path / "diabetes"])
    fig = plot_compare([(r.label, r.history) for r in runs], tmp_path / "c.png", metrics=[r.metric for r in runs])
    assert sorted(ax.get_ylabel() for ax in fig.axes) == [
        "MSE (mean squared error)",
        "error rate (fraction misclassified)",
    ]


def test_long_run_names_stay_distinguishable_at_80_columns(tmp_path):
    from regopt.lab.compare import collect_runs, compare_tables

    tails = ["l2-alpha-0.001", "l2-alpha-0.01", "l2-alpha-0.1", "l1-alpha-0.01-proximal"]
    names = [f"breast-cancer-standardized-mlp-256-256-{tail}" for tail in tails]
    runs, _ = collect_runs([fake_run(tmp_path, name) for name in names])
    (table,) = compare_tables([(r.label, r.summary) for r in runs])
    text = render(table)
    assert max(len(line) for line in text.splitlines()) <= 80
    rows = [line for line in text.splitlines() if "0.1000" in line]
    assert len(rows) == 4
    for tail, row in zip(tails, rows, strict=True):
        assert tail in row, (tail, text)  # the distinguishing tail, whole, on its own row
    assert "breast-cancer-standardized-mlp-256-256-" in text  # the shared prefix, once, in the title
    for cell in ("0.1000", "0.1100", "0.0500", "0.0600", "0.1200", "20", "12.3"):
        assert all(cell in row for row in rows), (cell, text)


def test_run_names_are_whole_where_they_fit_and_numbers_keep_their_dot(tmp_path):
    from regopt.lab.compare import collect_runs, compare_tables

    names = ["moons-sgd-lr-0.1", "moons-sgd-lr-0.01"]
    runs, _ = collect_runs([fake_run(tmp_path, name) for name in names])
    (table,) = compare_tables([(r.label, r.summary) for r in runs])
    wide = render(table, width=120)
    assert all(name in wide for name in names) and "…" not in wide
    long = [f"{'a-very-long-common-prefix-' * 3}{name}" for name in names]
    runs, _ = collect_runs([fake_run(tmp_path / "long", name) for name in long])
    (table,) = compare_tables([(r.label, r.summary) for r in runs])
    narrow = render(table, width=80)
    assert "…0.1 " in narrow and "…0.01 " in narrow, narrow  # cut at the '-', never inside the number
