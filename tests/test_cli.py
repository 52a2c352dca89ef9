"""The command line end to end: run, compare, list, demo, and every bad input as one line with exit 2."""

from __future__ import annotations

import pytest
import tomli_w

from regopt.cli import main
from regopt.lab.gallery import GALLERY
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
