"""Gallery entry ``warmup_and_plateau`` on a reduced budget: one RMSProp lr, three schedules; a constant rate is
stuck at chance, the same rate after a warmup trains, and the plateau schedule lowers the rate too late."""

from __future__ import annotations

import json

from regopt.lab.config import load_config
from regopt.lab.gallery.base import gallery_config
from regopt.lab.gallery.registry import GALLERY
from regopt.lab.gallery.warmup_and_plateau import COLLAPSED, ENTRY, VARIANTS, warmup_and_plateau
from regopt.lab.runs import read_metrics
from tests.lab.gallery_checks import check_files, first_table_rows

EPOCHS = 14  # of 20; the warmup keeps its share: 448 of 896 steps


def summary(out, name: str) -> dict:
    return json.loads((out / ENTRY / name / "summary.json").read_text())


def test_registered_after_optimizers_with_a_description():
    names = list(GALLERY)
    assert names.index(ENTRY) == names.index("optimizers") + 1
    assert (GALLERY[ENTRY].__doc__ or "").strip()


def test_constant_is_stuck_at_chance_warmup_trains_plateau_reduces_too_late(tmp_path):
    """One test, so that pytest-xdist runs the entry once."""
    out, result = tmp_path, warmup_and_plateau(tmp_path, False, epochs=EPOCHS)
    check_files(result, out, ENTRY, ["lr_and_val_error.png", "table.md", "lr_find.png"])
    constant, warmup, plateau = (summary(out, name) for name in VARIANTS)
    assert constant["final_val_error"] >= COLLAPSED and not constant.get("diverged")
    assert warmup["final_val_error"] <= 0.75 and warmup["best_val_error"] <= constant["best_val_error"] - 0.25
    lrs = [row["lr"] for row in read_metrics(out / ENTRY / "plateau" / "metrics.csv")]
    assert lrs[0] == 0.01 and min(lrs) <= 0.001  # it reduced the rate at least once
    assert plateau["final_val_error"] >= warmup["final_val_error"] + 0.1
    rows = {row[0]: row for row in first_table_rows(out / ENTRY / "table.md")}
    assert rows["constant lr"][-1] == "stuck at chance" and rows["linear warmup, then constant"][-1] == "trains"
    # each variant is a run directory (regopt run reproduces it) differing from the shipped config in its schedule
    shipped = gallery_config(ENTRY)
    warm = load_config(out / ENTRY / "warmup" / "config.toml")
    assert warm.schedule.warmup_steps == shipped.schedule.warmup_steps * EPOCHS // shipped.train.epochs
    for name in VARIANTS:
        saved = load_config(out / ENTRY / name / "config.toml")
        assert saved.optimizer == shipped.optimizer and saved.model == shipped.model and saved.seed == shipped.seed
    assert load_config(out / ENTRY / "constant" / "config.toml").schedule.name == "constant"
    assert load_config(out / ENTRY / "plateau" / "config.toml").schedule.name == "plateau"
