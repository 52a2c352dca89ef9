"""regopt diagnose RUN on a scheduled run: the lr it reports and judges is the run's last one, not the initial one."""

from __future__ import annotations

import json

import tomli_w

from regopt.cli import main
from regopt.lab.runs import read_metrics
from tests.conftest import small_raw


def test_diagnose_uses_the_last_lr_of_a_scheduled_run(tmp_path, capsys):
    raw = small_raw(schedule={"name": "exponential", "gamma": 0.1})  # lr 0.1, 0.01, 0.001 over 3 epochs
    config = tmp_path / "c.toml"
    config.write_text(tomli_w.dumps(raw))
    assert main(["run", str(config), "--out", str(tmp_path), "--quiet"]) == 0
    run_dir = tmp_path / "tiny"
    last_lr = read_metrics(run_dir / "metrics.csv")[-1]["lr"]
    assert abs(last_lr - 1e-3) < 1e-12

    capsys.readouterr()
    assert main(["diagnose", str(run_dir), "--probe", "64"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "last epoch" in line)
    assert "0.001 " in row, row
    r = json.loads((run_dir / "diagnose" / "diagnose.json").read_text())
    assert abs(r["current_lr"] - last_lr) <= 1e-12 * last_lr
    # the criterion 0.5 eps^2 g'Hg - eps g'g at that lr: eps g'g (eps / stable_lr - 1), stable_lr = 2 g'g / g'Hg
    gg = r["gradient_norm"] ** 2
    expected = last_lr * gg * (last_lr / r["stable_lr_along_gradient"] - 1)
    assert abs(r["criterion_at_current_lr"] - expected) <= 1e-3 * abs(expected)
