"""A run on user data writes what a later user needs beside the model: ``preprocessing.json`` (the training
split's standardization statistics and the class names), the loader's decisions among the summary's notes, and a
``config.toml`` naming the file by absolute path and sha256 — also for configs built in Python with
``validate`` rather than read with ``load_config``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn import datasets

from regopt.cli import main
from regopt.lab import runs
from regopt.lab.config import file_sha256, read_toml, validate
from regopt.lab.data import apply_preprocessing, load_dataset
from regopt.lab.runs import RunDirError, run


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "plot_curves", lambda *args, **kwargs: None)


def iris_csv(path: Path) -> Path:
    """Iris with its species as text labels ('setosa', ...)."""
    bunch = datasets.load_iris()
    names = [str(n) for n in bunch.target_names]
    rows = [",".join([*(repr(float(v)) for v in x), names[t]]) for x, t in zip(bunch.data, bunch.target, strict=True)]
    path.write_text("\n".join(["a,b,c,d,species", *rows]) + "\n")
    return path


def raw_config(path: Path, **train: int) -> dict:
    return {
        "name": "iris",
        "data": {"name": "csv", "path": str(path), "label_column": "species"},
        "model": {"name": "mlp", "widths": [8]},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "train": {"epochs": 2, "batch_size": 32, **train},
    }


def test_run_writes_preprocessing_notes_and_data_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv = iris_csv(tmp_path / "iris.csv")
    monkeypatch.chdir(tmp_path)
    config = validate(raw_config(Path("iris.csv")))  # relative, and no sha256: as a Python caller writes it
    result = run(config, out=tmp_path / "runs")
    saved = read_toml(result.path / "config.toml")["data"]
    assert saved["path"] == str(csv.resolve()) and saved["sha256"] == file_sha256(csv)
    prep = json.loads((result.path / "preprocessing.json").read_text())
    assert prep["classes"] == ["setosa", "versicolor", "virginica"]
    data = load_dataset(validate(read_toml(result.path / "config.toml")).data)  # the run's own data, reloaded
    assert data.preprocessing is not None and data.preprocessing["standardize"] == prep["standardize"]
    assert np.abs(data.x_train.mean(dim=0).numpy()).max() < 1e-5  # training statistics: mean 0 on the train split
    raw = np.asarray(datasets.load_iris().data)
    expect = (raw - raw.mean(axis=0)) / raw.std(axis=0)  # all rows' statistics differ from the training split's
    assert not np.allclose(apply_preprocessing(raw, prep), expect, atol=1e-3)
    assert any("standardized" in note for note in result.summary["notes"])


def test_resume_names_a_changed_data_file(tmp_path: Path) -> None:
    csv = iris_csv(tmp_path / "iris.csv")
    config = validate(raw_config(csv))
    run(config, out=tmp_path / "runs")
    csv.write_text(csv.read_text().replace("setosa", "Setosa", 1))
    changed = validate(raw_config(csv, epochs=3))
    with pytest.raises(RunDirError, match=r"data\.sha256: the data file has changed since the run started"):
        run(changed, out=tmp_path / "runs", resume=True)


def test_resume_of_a_run_dir_without_a_recorded_hash(tmp_path: Path) -> None:
    """A run directory written before hashes were recorded still resumes (and lengthens)."""
    csv = iris_csv(tmp_path / "iris.csv")
    result = run(validate(raw_config(csv)), out=tmp_path / "runs")
    saved = result.path / "config.toml"
    saved.write_text("\n".join(line for line in saved.read_text().splitlines() if not line.startswith("sha256")))
    longer = run(validate(raw_config(csv, epochs=3)), out=tmp_path / "runs", resume=True)
    assert longer.summary["epochs"] == 3


def test_cli_prints_the_data_notes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    iris_csv(tmp_path / "iris.csv")
    (tmp_path / "c.toml").write_text(
        'name = "iris"\n[data]\nname = "csv"\npath = "iris.csv"\nlabel_column = "species"\n'
        '[model]\nname = "mlp"\nwidths = [8]\n[train]\nepochs = 1\n'
    )
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert any(line.startswith("note: ") and "standardized" in line for line in out.splitlines())
