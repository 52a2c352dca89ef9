"""User data (csv, npz): task inference, standardization with training statistics, text labels, and the
file's identity (absolute path and sha256) carried by the run directory's config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w
import torch
from sklearn import datasets

from regopt.lab.config import CsvData, NpzData, load_config, to_toml_dict, validate
from regopt.lab.data import DataError, load_dataset
from regopt.lab.runs import run


def write_csv(path: Path, x: np.ndarray, y: Any, names: list[str], label: str = "label") -> Path:
    lines = [",".join([*names, label])]
    lines += [",".join([*(repr(float(v)) for v in row), str(t)]) for row, t in zip(x, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def sklearn_csv(path: Path, loader: Any, label: str = "label") -> Path:
    bunch = loader()
    names = [str(n).replace(" ", "_") for n in bunch.feature_names]
    target = bunch.target
    if target.dtype.kind == "f" and np.all(target == np.round(target)):
        target = target.astype(np.int64)  # diabetes: integers 25..346, written as integers
    return write_csv(path, bunch.data, target, names, label)


def all_splits(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([ds.x_train, ds.x_val, ds.x_test]), torch.cat([ds.y_train, ds.y_val, ds.y_test])


# ------------------------------------------------------------------------------------- task = "auto"
def test_auto_calls_diabetes_regression_and_says_why(tmp_path: Path) -> None:
    path = sklearn_csv(tmp_path / "diabetes.csv", datasets.load_diabetes, label="target")
    ds = load_dataset(CsvData(name="csv", path=path, label_column="target"))
    assert ds.task == "regression" and ds.output_dim == 1
    assert any("task 'auto' chose regression" in n and "214 distinct integer values" in n for n in ds.notes)


@pytest.mark.parametrize(
    ("y", "expect", "why"),
    [
        (np.arange(120) % 3, "classification", "3 distinct integer values"),  # iris-like
        (np.arange(120) % 50, "classification", "50 distinct integer values"),  # the bound itself
        (np.arange(120) % 51, "regression", "51 distinct integer values"),  # one over the bound
        (np.r_[np.zeros(60), np.ones(59), 2], "regression", "once"),  # the value 2 occurs once: not a class
        (np.linspace(0, 1, 120), "regression", "not all integers"),
    ],
)
def test_auto_rule(tmp_path: Path, y: np.ndarray, expect: str, why: str) -> None:
    np.savez(tmp_path / "d.npz", x=np.arange(120.0), y=y)
    ds = load_dataset(NpzData(name="npz", path=tmp_path / "d.npz"))
    assert ds.task == expect
    (note,) = [n for n in ds.notes if n.startswith("task 'auto'")]
    assert f"chose {expect}" in note and why in note, note


def test_explicit_task_is_not_second_guessed(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.arange(120.0), y=np.arange(120) % 60)
    ds = load_dataset(NpzData(name="npz", path=tmp_path / "d.npz", task="classification"))
    assert ds.task == "classification" and ds.num_classes == 60
    assert not [n for n in ds.notes if n.startswith("task 'auto'")]


# ----------------------------------------------------------------------------------------- standardize
def test_standardize_uses_training_statistics_only(tmp_path: Path) -> None:
    path = sklearn_csv(tmp_path / "wine.csv", datasets.load_wine)
    text = path.read_text().splitlines()
    text[0] += ",constant"
    text[1:] = [line + ",5.0" for line in text[1:]]  # a constant feature must stay finite
    path.write_text("\n".join(text) + "\n")
    raw = load_dataset(CsvData(name="csv", path=path, standardize=False))
    std = load_dataset(CsvData(name="csv", path=path))  # the default for tabular data
    assert std.preprocessing is not None and raw.preprocessing is not None
    stats = std.preprocessing["standardize"]
    mean = torch.tensor(stats["mean"], dtype=torch.float64)
    scale = torch.tensor(stats["std"], dtype=torch.float64)
    train64 = raw.x_train.double()
    torch.testing.assert_close(mean, train64.mean(0))
    torch.testing.assert_close(scale[:-1], train64[:, :-1].std(0, unbiased=False))
    assert scale[-1] == 1.0  # constant feature: centred, not divided by zero
    everything = all_splits(raw)[0].double()
    assert (mean - everything.mean(0)).abs().max() > 1e-3  # the val/test rows did not enter the mean
    for a, b in ((raw.x_train, std.x_train), (raw.x_val, std.x_val), (raw.x_test, std.x_test)):
        torch.testing.assert_close(b.double(), (a.double() - mean) / scale, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(std.x_train.double().mean(0), torch.zeros(14, dtype=torch.float64), atol=1e-5, rtol=0)
    assert torch.equal(std.y_train, raw.y_train) and torch.isfinite(std.x_test).all()
    assert "standardized 14 features with training-split statistics" in " ".join(std.notes)
    assert std.preprocessing["features"][0] == "alcohol" and std.preprocessing["classes"] == [0, 1, 2]
    assert raw.preprocessing["standardize"] is None
    from regopt.lab.data.preprocessing import apply_preprocessing, write_preprocessing

    written = write_preprocessing(std, tmp_path / "run")
    assert written == tmp_path / "run" / "preprocessing.json"
    saved = json.loads(written.read_text())
    assert saved == json.loads(json.dumps(std.preprocessing))
    again = apply_preprocessing(raw.x_test.numpy(), saved)  # new inputs prepared from the saved file
    torch.testing.assert_close(torch.from_numpy(again), std.x_test, atol=1e-5, rtol=1e-5)


def _wine_run(tmp_path: Path, csv: Path, standardize: bool) -> dict[str, Any]:
    raw = {
        "name": f"wine-{standardize}",
        "seed": 0,
        "data": {"name": "csv", "path": str(csv), "standardize": standardize},
        "model": {"name": "logistic"},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "train": {"epochs": 5, "batch_size": 32},
    }
    return run(validate(raw), out=tmp_path / "runs").summary


def test_standardized_wine_learns_raw_wine_does_not(tmp_path: Path) -> None:
    csv = sklearn_csv(tmp_path / "wine.csv", datasets.load_wine)
    raw, std = _wine_run(tmp_path, csv, False), _wine_run(tmp_path, csv, True)
    # measured: raw 0.72, standardized 0.06 (36 test examples); the bounds leave several examples of slack
    assert std["test_error"] <= 0.15 and raw["test_error"] >= 0.3, (raw["test_error"], std["test_error"])


def test_npz_images_are_not_standardized_by_default(tmp_path: Path) -> None:
    x = np.arange(40 * 2 * 3, dtype=np.float64).reshape(40, 2, 3)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(40) % 2)
    ds = load_dataset(NpzData(name="npz", path=tmp_path / "d.npz"))
    assert sorted(all_splits(ds)[0][:, 0, 0].tolist()) == x[:, 0, 0].tolist()
    assert any("not standardized" in n for n in ds.notes)
    on = load_dataset(NpzData(name="npz", path=tmp_path / "d.npz", standardize=True))
    assert on.preprocessing is not None and np.shape(on.preprocessing["standardize"]["mean"]) == (2, 3)
    torch.testing.assert_close(on.x_train.mean(0), torch.zeros(2, 3), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------- text labels
IRIS_NAMES = ("setosa", "versicolor", "virginica")


def test_csv_text_labels_become_sorted_classes(tmp_path: Path) -> None:
    iris = datasets.load_iris()
    names = [IRIS_NAMES[t] for t in iris.target]
    path = write_csv(tmp_path / "iris.csv", iris.data, names, ["a", "b", "c", "d"], label="species")
    ds = load_dataset(CsvData(name="csv", path=path, label_column="species", standardize=False))
    assert ds.task == "classification" and ds.classes == IRIS_NAMES
    x, y = all_splits(ds)
    lookup = {tuple(np.float32(row).tolist()): t for row, t in zip(iris.data, iris.target, strict=True)}
    assert [lookup[tuple(row)] for row in x.tolist()] == y.tolist()
    assert ds.preprocessing is not None and ds.preprocessing["classes"] == list(IRIS_NAMES)


def test_npz_text_labels(tmp_path: Path) -> None:
    y = np.array(["b", "a", "c", "a"] * 10)
    np.savez(tmp_path / "d.npz", x=np.arange(40.0), y=y)
    ds = load_dataset(NpzData(name="npz", path=tmp_path / "d.npz", standardize=False))
    assert ds.classes == ("a", "b", "c")
    x, labels = all_splits(ds)
    assert [ds.classes[k] for k in labels.tolist()] == [y[int(i)] for i in x[:, 0].tolist()]


@pytest.mark.parametrize(
    ("text", "kwargs", "pattern"),
    [
        ("a,label\n1,x\n2,y\n3,x\n4,y\n", {"task": "regression"}, r"column 'label' holds text \('x'\); regression"),
        ("a,label\n1,0\n2,1\n3,two\n4,1\n", {}, r"column 'label' mixes numbers and text \(line 4: 'two'\)"),
        ("a,label\n1,x\n2,\n3,x\n", {}, r"line 3, column 'label': empty value"),
        ("a,b,label\n1,2,x\n1,red,y\n", {}, r"line 3, column 'b': not a number: 'red'.*only the label column"),
    ],
)
def test_bad_text_raises_data_error(tmp_path: Path, text: str, kwargs: dict[str, Any], pattern: str) -> None:
    (tmp_path / "d.csv").write_text(text)
    with pytest.raises(DataError, match=pattern):
        load_dataset(CsvData(name="csv", path=tmp_path / "d.csv", **kwargs))


@pytest.mark.parametrize(("cell", "column"), [("0.5e", "b"), ("", "a"), ("inf", "b")])
def test_one_bad_cell_deep_in_a_large_file_is_named_by_line_and_column(tmp_path: Path, cell: str, column: str) -> None:
    """The 10^7-row case of issue 15 at 10^5 rows: the bad cell is found wherever it lies, not sampled."""
    rows = 100_000
    bad = 87_654  # 0-based data row; the header is line 1
    lines = [f"{i % 97 / 10},{i % 89 / 10},{i % 2}" for i in range(rows)]
    lines[bad] = f"{cell},1.5,0" if column == "a" else f"1.5,{cell},0"
    (tmp_path / "big.csv").write_text("a,b,label\n" + "\n".join(lines) + "\n")
    line = bad + 2
    where = rf"line {line}, column '{column}'"
    if cell == "inf":
        where = rf"column 'b' contains 1 Inf value\(s\) \(first on line {line}\)"
    with pytest.raises(DataError, match=rf"big\.csv: {where}"):
        load_dataset(CsvData(name="csv", path=tmp_path / "big.csv"))


@pytest.mark.parametrize(
    "text",
    [
        "a,b,label\n1,2.5,0\n-3e2,4,1\n5,6,0\n7,8,1\n9,10,0\n11,12,1\n13,14,0\n15,16,1\n17,18,0\n19,20,1\n",
        '\ufeffa,"b",label\r\n"1", 2.5 ,0\r\n-3e2,4,1\r\n\r\n5,6,0\r\n7,8,1\r\n9,10,0\r\n11,12,1\r\n13,14,0\r\n'
        "15,16,1\r\n17,18,0\r\n19,20,1\r\n",
    ],
    ids=["plain", "bom-quotes-crlf-blank-line"],
)
def test_the_fast_reader_gives_what_the_row_by_row_reader_gives(
    tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from regopt.lab.data import csvfile

    (tmp_path / "d.csv").write_text(text, encoding="utf-8", newline="")
    cfg = CsvData(name="csv", path=tmp_path / "d.csv")
    assert csvfile._read_numbers_fast(tmp_path / "d.csv", "label") is not None  # the fast path is taken
    fast = load_dataset(cfg)
    monkeypatch.setattr(csvfile, "_read_numbers_fast", lambda path, label: None)
    careful = load_dataset(cfg)
    assert fast.preprocessing == careful.preprocessing and fast.classes == careful.classes == (0.0, 1.0)
    for split in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(fast, split), getattr(careful, split)), split


# ----------------------------------------------------------------------------- the file's identity
def test_run_dir_config_reruns_from_anywhere_and_notices_a_changed_file(tmp_path: Path, monkeypatch: Any) -> None:
    project, elsewhere, other = tmp_path / "project", tmp_path / "elsewhere", tmp_path / "other"
    for d in (project, elsewhere, other):
        d.mkdir()
    csv = sklearn_csv(project / "wine.csv", datasets.load_wine)
    raw = {
        "name": "wine",
        "data": {"name": "csv", "path": "wine.csv"},
        "model": {"name": "logistic"},
        "train": {"epochs": 2, "batch_size": 32},
    }
    (project / "run.toml").write_text(tomli_w.dumps(raw))
    monkeypatch.chdir(elsewhere)
    config = load_config(project / "run.toml")
    assert isinstance(config.data, CsvData) and config.data.path == csv.resolve() and config.data.sha256
    assert validate(to_toml_dict(config)) == config  # the sha256 survives a write and a read
    first = run(config, out="runs")
    saved = first.path.resolve() / "config.toml"
    assert "sha256" in saved.read_text() and str(csv.resolve()) in saved.read_text()

    monkeypatch.chdir(other)  # rerun from the run directory's config, from yet another folder
    again = load_config(saved)
    assert again == config
    assert run(again, out="runs").summary["final_val_error"] == first.summary["final_val_error"]

    csv.write_text(csv.read_text().replace("\n1", "\n2", 1))  # change one value
    with pytest.raises(DataError) as info:
        run(load_config(saved), out="runs2")
    message = str(info.value)
    assert "\n" not in message and "data.path" in message and str(csv.resolve()) in message
    assert config.data.sha256 in message and "data.sha256" in message
    assert not (other / "runs2").exists()


def test_set_data_path_takes_a_new_hash(tmp_path: Path, monkeypatch: Any) -> None:
    a = write_csv(tmp_path / "a.csv", np.arange(30.0)[:, None], np.arange(30) % 2, ["x"])
    b = write_csv(tmp_path / "b.csv", np.arange(30.0)[:, None], np.arange(30) % 3, ["x"])
    (tmp_path / "run.toml").write_text(tomli_w.dumps({"data": {"name": "csv", "path": "a.csv"}}))
    first = load_config(tmp_path / "run.toml")
    (tmp_path / "saved.toml").write_text(tomli_w.dumps(to_toml_dict(first)))
    monkeypatch.chdir(tmp_path)
    moved = load_config(tmp_path / "saved.toml", ["data.path=b.csv"])
    assert isinstance(moved.data, CsvData) and isinstance(first.data, CsvData)
    assert moved.data.path == b.resolve() and first.data.path == a.resolve()
    assert moved.data.sha256 not in (None, first.data.sha256)
    assert load_dataset(moved.data).num_classes == 3
