"""regopt tune: search-space parsing, a study that resumes, and clean failures."""

from __future__ import annotations

import csv

import pytest
import tomli_w

from regopt.cli import main
from regopt.lab.config import ConfigError
from regopt.lab.tune import SearchParam, tune
from tests.conftest import small_raw


@pytest.mark.parametrize(
    ("text", "kind", "args"),
    [
        ("regularize.l2.alpha=loguniform:1e-6:1e-1", "loguniform", (1e-6, 1e-1)),
        ("optimizer.lr=uniform:0.01:0.3", "uniform", (0.01, 0.3)),
        ("train.batch_size=int:16:128", "int", (16, 128)),
        ("model.widths=choice:[64],[128,128]", "choice", ([64], [128, 128])),
    ],
)
def test_search_params_parse(text, kind, args):
    param = SearchParam.parse(text)
    assert (param.kind, param.args) == (kind, args)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("regularize.l2.alpha", "expected key=kind:args"),
        ("x=normal:0:1", "expected key=kind:args"),
        ("x=loguniform:0:1", "low > 0"),
        ("x=uniform:1:0", "low < high"),
        ("x=int:a:b", "with numbers"),
    ],
)
def test_bad_search_params_are_config_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        SearchParam.parse(text)


def _raw():
    raw = small_raw(train={"epochs": 2, "batch_size": 64})
    raw["regularize"] = {"l2": {"alpha": 0.0}}
    return raw


def test_study_runs_resumes_and_writes_its_files(tmp_path):
    result = tune(_raw(), ["regularize.l2.alpha=loguniform:1e-5:1e-1"], trials=3, out=tmp_path, prune=False)
    path = result.path
    assert (path / "study.db").is_file() and (path / "curve.png").is_file()
    assert sorted(p.name for p in (path / "trials").iterdir()) == ["trial-0000", "trial-0001", "trial-0002"]
    first = (path / "trials" / "trial-0000" / "metrics.csv").read_bytes()
    again = tune(_raw(), ["regularize.l2.alpha=loguniform:1e-5:1e-1"], trials=5, out=tmp_path, prune=False)
    assert len(again.study.trials) == 5  # two more, not five
    assert (path / "trials" / "trial-0000" / "metrics.csv").read_bytes() == first
    with open(path / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and all(1e-5 <= float(r["regularize.l2.alpha"]) <= 1e-1 for r in rows)
    # each trial's run directory holds the alpha that was sampled
    assert f"alpha = {rows[0]['regularize.l2.alpha']}" in (path / "trials" / "trial-0000" / "config.toml").read_text()


def test_a_search_key_the_config_rejects_fails_before_any_study(tmp_path):
    with pytest.raises(ConfigError, match=r"regularize\.l3"):
        tune(_raw(), ["regularize.l3.alpha=loguniform:1e-5:1e-1"], trials=2, out=tmp_path)
    assert not any(tmp_path.iterdir())


def test_cli_tune_prints_trials_and_rejects_bad_params(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(tomli_w.dumps(_raw()))
    assert (
        main(
            [
                "tune",
                str(config),
                "--param",
                "optimizer.lr=uniform:0.01:0.2",
                "--trials",
                "2",
                "--out",
                str(tmp_path / "runs"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "best trial" in out and "optimizer.lr" in out
    assert main(["tune", str(config), "--param", "optimizer.lr=gauss:0:1", "--out", str(tmp_path / "r2")]) == 2
    assert "expected key=kind:args" in capsys.readouterr().err
