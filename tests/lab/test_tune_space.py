"""regopt tune: the study stores its search space; a different one is refused in one line before any trial runs,
with the way out (a new study beside it, or replacing it) (issue 14, trap 2.2)."""

from __future__ import annotations

import optuna
import pytest
import tomli_w

from regopt.cli import main
from regopt.lab.config import ConfigError
from regopt.lab.tune import tune
from tests.lab.tune_helpers import ALPHA, skip_figures, tune_raw


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch):
    skip_figures(monkeypatch)


def _raw():
    return tune_raw()


def _states(path):
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{path / 'study.db'}")
    return [t.state.name for t in study.trials]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            ["regularize.l2.alpha=uniform:1e-5:1e-1"],
            r"regularize\.l2\.alpha was loguniform:1e-05:0\.1 and is now uniform:1e-05:0\.1",
        ),
        (
            ["regularize.l2.alpha=loguniform:1e-4:1e-1"],
            r"regularize\.l2\.alpha was loguniform:1e-05:0\.1 and is now loguniform:0\.0001:0\.1",
        ),
        ([ALPHA, "optimizer.lr=uniform:0.01:0.3"], r"optimizer\.lr=uniform:0\.01:0\.3 is new"),
        (["optimizer.lr=uniform:0.01:0.3"], r"regularize\.l2\.alpha=loguniform:1e-05:0\.1 is missing"),
    ],
)
def test_a_different_search_space_is_refused_before_any_trial(tmp_path, params, message):
    first = tune(_raw(), [ALPHA], trials=1, out=tmp_path)
    before = (first.path / "trials.csv").read_bytes()
    with pytest.raises(ConfigError, match=message) as err:
        tune(_raw(), params, trials=3, out=tmp_path)
    text = str(err.value)
    assert "\n" not in text and "--study NAME" in text and "--force" in text
    assert _states(first.path) == ["COMPLETE"]  # nothing ran, nothing left RUNNING
    assert (first.path / "trials.csv").read_bytes() == before


def test_the_same_space_in_another_order_or_spelling_resumes(tmp_path):
    lr = "optimizer.lr=uniform:0.01:0.3"
    tune(_raw(), [ALPHA, lr], trials=1, out=tmp_path)
    again = tune(_raw(), [lr, "regularize.l2.alpha=loguniform:0.00001:0.1"], trials=2, out=tmp_path)
    assert len(again.study.trials) == 2


def test_a_new_study_beside_it_or_force_replaces_it(tmp_path):
    first = tune(_raw(), [ALPHA], trials=2, out=tmp_path)
    other = tune(_raw(), ["optimizer.lr=uniform:0.01:0.3"], trials=1, out=tmp_path, study="lr")
    assert other.path == tmp_path / "lr-tune" and first.path == tmp_path / "tiny-tune"
    assert _states(first.path) == ["COMPLETE", "COMPLETE"]
    replaced = tune(_raw(), ["optimizer.lr=uniform:0.01:0.3"], trials=1, out=tmp_path, force=True)
    assert replaced.path == first.path and len(replaced.study.trials) == 1
    assert "optimizer.lr" in replaced.study.trials[0].params
    assert sorted(p.name for p in (first.path / "trials").iterdir()) == ["trial-0000"]
    assert "regularize.l2.alpha" not in (first.path / "trials.csv").read_text()


def test_bad_study_names_are_config_errors(tmp_path):
    for name in ("", "a/b", ".."):
        with pytest.raises(ConfigError, match="study"):
            tune(_raw(), [ALPHA], trials=1, out=tmp_path, study=name)
    assert not any(tmp_path.iterdir())


def test_a_study_made_before_the_space_was_stored_is_checked_against_its_trials(tmp_path):
    path = tmp_path / "tiny-tune"
    path.mkdir()
    legacy = optuna.create_study(study_name="tiny", storage=f"sqlite:///{path / 'study.db'}")
    legacy.add_trial(
        optuna.trial.create_trial(
            params={"regularize.l2.alpha": 1e-3},
            distributions={"regularize.l2.alpha": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True)},
            value=0.2,
        )
    )
    with pytest.raises(ConfigError, match=r"was loguniform:1e-05:0\.1 and is now uniform:1e-05:0\.1"):
        tune(_raw(), ["regularize.l2.alpha=uniform:1e-5:1e-1"], trials=2, out=tmp_path)
    assert len(tune(_raw(), [ALPHA], trials=2, out=tmp_path).study.trials) == 2


def test_cli_says_in_one_line_that_the_space_differs(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(tomli_w.dumps(_raw()))
    argv = ["tune", str(config), "--trials", "1", "--out", str(tmp_path / "runs")]
    assert main([*argv, "--param", ALPHA]) == 0
    capsys.readouterr()
    assert main([*argv, "--param", "regularize.l2.alpha=uniform:1e-5:1e-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("regopt: error: ") and "regularize.l2.alpha was" in err
