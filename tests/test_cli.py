"""The command line end to end: run, compare, list, demo, and every bad input as one line with exit 2."""

from __future__ import annotations

import pytest
import tomli_w

from regopt.cli import main
from regopt.lab.gallery.registry import GALLERY
from tests.conftest import small_raw


def write_config(tmp_path, raw=None, name="config.toml"):
    path = tmp_path / name
    path.write_text(tomli_w.dumps(raw if raw is not None else small_raw()))
    return path


def test_run_then_compare(tmp_path, capsys):
    config = write_config(tmp_path)
    out = tmp_path / "runs"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    assert (
        main(
            [
                "run",
                str(config),
                "--out",
                str(out),
                "--quiet",
                "--set",
                "name=other",
                "--set",
                "optimizer.lr=0.05",
            ]
        )
        == 0
    )
    assert "optimizer.lr" not in capsys.readouterr().err
    assert "lr = 0.05" in (out / "other" / "config.toml").read_text()
    assert main(["compare", str(out / "tiny"), str(out / "other"), "--out", str(tmp_path / "cmp.png")]) == 0
    printed = capsys.readouterr().out
    assert "tiny" in printed and "other" in printed and "gap" in printed
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"


def test_list_names_everything_a_config_accepts(capsys):
    assert main(["list"]) == 0
    printed = capsys.readouterr().out
    for name in (
        "mnist1d",
        "digits",
        "moons",
        "spirals",
        "polynomial",
        "npz",
        "csv",
        "mlp",
        "cnn1d",
        "cnn2d",
        "gru",
        "sgd",
        "adam",
        "cosine",
        "linear",
        "overfit",
        "delta_bar_delta",
        "early_stopping",
        "label_smoothing",
        "ill_conditioning",
        "nonfinite_guard",
    ):
        assert name in printed


BAD_CASES = [
    # (what is wrong, raw config or None for a missing file, extra CLI args, expected message regex)
    ("unknown key", small_raw(train={"epochs": 2, "epocs": 3}), [], r"train\.epocs: unknown key"),
    (
        "wrong type",
        small_raw(train={"epochs": "many"}),
        [],
        r"train\.epochs: Input should be a valid integer",
    ),
    ("bad value", small_raw(train={"epochs": 0}), [], r"train\.epochs: Input should be greater than 0"),
    ("unknown model", small_raw(model={"name": "transformer"}), [], r"model: unknown name 'transformer'"),
    (
        "key of another model",
        small_raw(model={"name": "mlp", "channels": 3}),
        [],
        r"model\.channels: unknown key",
    ),
    ("unknown optimizer", small_raw(optimizer={"name": "lion", "lr": 0.1}), [], r"optimizer\.name: unknown"),
    (
        "optimizer option",
        small_raw(optimizer={"name": "adam", "lr": 0.1, "momentum": 0.9}),
        [],
        r"optimizer\.momentum: not an option of 'adam'",
    ),
    (
        "optimizer value",
        small_raw(optimizer={"name": "adam", "lr": 0.1, "betas": [0.9, 1.5]}),
        [],
        r"optimizer: adam: .*beta",
    ),
    ("missing data file", small_raw(data={"name": "npz", "path": "nowhere.npz"}), [], r"nowhere\.npz"),
    ("model does not fit data", small_raw(model={"name": "cnn2d"}), [], r"cnn2d needs image input"),
    ("bad override", small_raw(), ["--set", "train.epochs"], r"expected key=value"),
    ("override type", small_raw(), ["--set", "train.batch_size=big"], r"train\.batch_size"),
    ("missing config", None, [], r"no such config file"),
]


@pytest.mark.parametrize(("what", "raw", "extra", "message"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, what, raw, extra, message):
    config = write_config(tmp_path, raw) if raw is not None else tmp_path / "missing.toml"
    out = tmp_path / "runs"
    assert main(["run", str(config), "--out", str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("regopt: error: "), err
    assert "Traceback" not in err
    assert pytest.importorskip("re").search(message, err), err
    assert not out.exists()


def test_malformed_toml_is_one_line(tmp_path, capsys):
    path = tmp_path / "broken.toml"
    path.write_text("[train\nepochs = 3\n")
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "invalid TOML" in err and err.count("\n") == 1


def test_existing_run_and_bad_resume_are_refused_without_loss(tmp_path, capsys):
    config = write_config(tmp_path)
    out = tmp_path / "runs"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    metrics = (out / "tiny" / "metrics.csv").read_bytes()
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["run", str(config), "--out", str(out), "--quiet", "--resume", "--set", "seed=3"]) == 2
    assert "config differs from the run's config.toml at seed" in capsys.readouterr().err
    (out / "tiny" / "checkpoint.pt").write_bytes(b"garbage")
    assert main(["run", str(config), "--out", str(out), "--quiet", "--resume"]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert (out / "tiny" / "metrics.csv").read_bytes() == metrics


def test_compare_of_a_non_run_is_one_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "not a finished run directory" in capsys.readouterr().err


def test_demo_rejects_unknown_entry(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--only", "nope"])
    assert exit_info.value.code == 2
    assert "unknown gallery entry 'nope'" in capsys.readouterr().err


def test_demo_overfit_shows_a_generalization_gap(tmp_path, capsys):
    assert "overfit" in GALLERY
    assert main(["demo", "--only", "overfit", "--out", str(tmp_path), "--quiet"]) == 0
    import json

    summary = json.loads((tmp_path / "overfit" / "summary.json").read_text())
    assert summary["final_train_error"] < 0.01  # the MLP memorizes its 200 digits
    assert summary["generalization_gap"] > 0.03  # but not the validation digits
    assert (tmp_path / "overfit" / "curves.png").is_file()
    # a second demo run replaces its own output instead of refusing
    assert main(["demo", "--only", "overfit", "--out", str(tmp_path), "--quiet"]) == 0


def test_relative_data_path_is_relative_to_the_config_file(tmp_path, monkeypatch, capsys):
    import numpy as np

    project = tmp_path / "project"
    project.mkdir()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype("float32")
    np.savez(project / "points.npz", x=x, y=(x[:, 0] > 0).astype("int64"))
    config = write_config(project, small_raw(data={"name": "npz", "path": "points.npz"}))
    monkeypatch.chdir(tmp_path)  # run from elsewhere
    assert main(["run", str(config), "--out", "runs", "--quiet"]) == 0
    saved = (tmp_path / "runs" / "tiny" / "config.toml").read_text()
    assert str(project / "points.npz") in saved


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["diagnose"], "diagnose: give a run directory"),
        (["diagnose", "runs/x", "--example", "saddle"], "not both"),
    ],
    ids=["neither", "both"],
)
def test_diagnose_says_what_is_wrong_with_its_arguments(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    if argv == ["diagnose"]:
        assert "not both" not in err
        assert "a run directory" in err and "--example" in err


def test_list_shows_every_optimizer_and_section_the_config_accepts(capsys):
    from regopt.lab.config import RunConfig
    from regopt.lab.registry import OPTIMIZERS, WRAPPERS

    assert main(["list"]) == 0
    printed = capsys.readouterr().out
    for name in [*OPTIMIZERS, *WRAPPERS]:
        assert name in printed, name
    for section in RunConfig.model_fields:
        assert f"[{section}]" in printed or f"{section} " in printed, section
    assert "[averaging]" in printed and "coordinate" in printed


def test_list_config_prints_the_reference(capsys):
    from regopt.lab.schema.reference import markdown

    assert main(["list", "--config"]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == markdown().strip()
    for key in ("clip_grad_norm", "start_step", "label_column", "spike_factor", "eta_min"):
        assert key in printed


def _printed_run(tmp_path, capsys, monkeypatch, **summary_keys):
    """What ``regopt run`` prints for a run whose summary has ``summary_keys`` beside the usual figures."""
    import regopt.lab.runs as runs
    from regopt.lab.runs import RunResult

    summary = {
        "stop_reason": "completed 3 epochs",
        "error_metric": "error rate",
        "best_val_error": 0.5,
        "best_epoch": 2,
        "final_train_error": 0.4,
        "final_val_error": 0.5,
        "wall_time_s": 0.1,
        **summary_keys,
    }
    result = RunResult(path=tmp_path, summary=summary, history=[], experiment=None)  # type: ignore[arg-type]
    monkeypatch.setattr(runs, "run", lambda *args, **kwargs: result)
    assert main(["run", str(write_config(tmp_path)), "--out", str(tmp_path), "--quiet"]) == 0
    return capsys.readouterr().out


def test_run_prints_notes_and_diagnostics_alarms(tmp_path, capsys, monkeypatch):
    out = _printed_run(
        tmp_path,
        capsys,
        monkeypatch,
        error_metric="mse",
        data_notes=["task 'auto' chose regression: 214 distinct integer targets"],
        notes="restored the weights of epoch 2",
        diagnostics={
            "alarms": [{"step": 12, "monitor": "gradient_norms", "message": "gradient spike 44130 at step 12"}],
            "gradient_spikes": ["gradient spike 44130 at step 12"],
        },
    )
    assert "task 'auto' chose regression: 214 distinct integer targets" in out
    assert "restored the weights of epoch 2" in out
    assert out.count("gradient spike 44130 at step 12") == 1  # the alarms list, not again from gradient_spikes
    assert out.index("completed 3 epochs") < out.index("gradient spike")


def test_run_prints_alarm_lists_of_older_summaries(tmp_path, capsys, monkeypatch):
    diagnostics = {"plateaus": ["plateau from step 10 to 110"], "last_stable_lr": 0.12}
    assert "plateau from step 10 to 110" in _printed_run(tmp_path, capsys, monkeypatch, diagnostics=diagnostics)


def test_regopt_log_warnings_print_as_one_line(tmp_path, capsys, monkeypatch):
    import logging

    import regopt.lab.runs as runs
    from regopt.lab.runs import RunResult

    def fake_run(*args, **kwargs):
        logging.getLogger("regopt.diagnostics.gradients").warning("gradient spike at step %d:\nnorm %g", 12, 44130.0)
        logging.getLogger("regopt.lab").info("not shown")
        return RunResult(path=tmp_path, summary={"stop_reason": "x", "wall_time_s": 0.0}, history=[], experiment=None)  # type: ignore[arg-type]

    monkeypatch.setattr(runs, "run", fake_run)
    for _ in range(2):  # a second main() in one process installs no second handler
        assert main(["run", str(write_config(tmp_path)), "--out", str(tmp_path), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("regopt: warning: gradient spike at step 12: norm 44130\n") == 2, err
    assert "not shown" not in err


def test_import_regopt_reaches_every_subpackage_lazily():
    import subprocess
    import sys

    code = (
        "import sys, regopt\n"
        "assert 'regopt.adversarial' not in sys.modules and 'regopt.lab' not in sys.modules\n"
        "for name in ('regularize', 'optim', 'diagnostics', 'ensemble', 'adversarial', 'lab', 'init'):\n"
        "    assert getattr(regopt, name).__name__ == 'regopt.' + name, name\n"
        "assert regopt.diagnostics.IllConditioningMonitor.__name__ == 'IllConditioningMonitor'\n"
        "assert 'regularize' in dir(regopt)\n"
        "try:\n"
        "    regopt.nonexistent\n"
        "except AttributeError as err:\n"
        "    assert 'nonexistent' in str(err)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
