"""``regopt predict`` and ``regopt.lab.load_run``: a trained run's model with its own preprocessing.

The references are computed by hand: the standardization from preprocessing.json's statistics in numpy, the
model being the run's own trained model object; the run's train error is its metrics.csv's last row."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import datasets

import regopt.lab
from regopt.cli import main
from regopt.lab import runs
from regopt.lab.config import read_toml, validate
from regopt.lab.data import load_dataset
from regopt.lab.predict import predict
from regopt.lab.runs import RunResult, read_metrics, run
from tests.conftest import small_raw

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = ["setosa", "versicolor", "virginica"]


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "plot_curves", lambda *args, **kwargs: None)


def iris() -> tuple[np.ndarray, list[str]]:
    bunch = datasets.load_iris()
    return np.asarray(bunch.data, dtype=np.float64), [SPECIES[t] for t in bunch.target]


def write_csv(path: Path, x: np.ndarray, labels: list[str] | None, header: list[str] = FEATURES) -> Path:
    rows = [[repr(float(v)) for v in row] + ([labels[i]] if labels is not None else []) for i, row in enumerate(x)]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header + (["species"] if labels is not None else []))
        writer.writerows(rows)
    return path


def train(tmp_path: Path, **sections: dict) -> RunResult:
    x, labels = iris()
    data = write_csv(tmp_path / "iris.csv", x, labels)
    raw = {
        "name": "iris",
        "data": {"name": "csv", "path": str(data), "label_column": "species"},
        "model": {"name": "mlp", "widths": [8]},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "train": {"epochs": 4, "batch_size": 16},
        **sections,
    }
    return run(validate(raw), out=tmp_path / "runs")


def read_predictions(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def by_hand(result: RunResult, x: np.ndarray) -> np.ndarray:
    """Softmax of the run's own model on (x - mean) / std with preprocessing.json's statistics, in numpy."""
    stats = json.loads((result.path / "preprocessing.json").read_text())["standardize"]
    standardized = (x.astype(np.float32).astype(np.float64) - np.array(stats["mean"])) / np.array(stats["std"])
    model = result.experiment.model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(standardized.astype(np.float32))).double()
    return torch.softmax(logits, dim=1).numpy()


def test_predict_writes_probabilities_and_the_labels_of_their_argmax(tmp_path: Path) -> None:
    result = train(tmp_path)
    x, _ = iris()
    shuffled = tmp_path / "new.csv"  # columns in another order, no label column: matched by name
    order = [2, 0, 3, 1]
    write_csv(shuffled, x[:, order], None, header=[FEATURES[j] for j in order])
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(result.path), "--data", str(shuffled), "--out", str(out)]) == 0
    rows = read_predictions(out)
    assert list(rows[0]) == [f"p_{s}" for s in SPECIES] + ["predicted"]
    p = np.array([[float(row[f"p_{s}"]) for s in SPECIES] for row in rows])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    expected = by_hand(result, x)
    np.testing.assert_allclose(p, expected, rtol=0, atol=1e-6)  # the same float32 forward pass, up to summation order
    assert [row["predicted"] for row in rows] == [SPECIES[k] for k in expected.argmax(axis=1)]


@pytest.mark.parametrize(
    "sections",
    [
        {},
        {  # the final model is the evaluated one: Nesterov's theta and the Polyak averages, not the raw parameters
            "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
            "averaging": {"decay": 0.9},
        },
    ],
    ids=["sgd", "nesterov_polyak"],
)
def test_predictions_on_the_training_rows_reproduce_the_runs_train_error(tmp_path: Path, sections: dict) -> None:
    result = train(tmp_path, **sections)
    x, labels = iris()
    data = load_dataset(result.experiment.config.data)  # the run's splits, standardized as it trained on them
    _, preprocess, _ = regopt.lab.load_run(result.path)
    prepared = preprocess(x).numpy()
    index = {row.tobytes(): i for i, row in enumerate(prepared)}
    rows = [index[row.tobytes()] for row in data.x_train.numpy()]  # bitwise the training inputs
    train_csv = write_csv(tmp_path / "train.csv", x[rows], [labels[i] for i in rows])
    out = tmp_path / "p.csv"
    assert main(["predict", str(result.path), "--data", str(train_csv), "--out", str(out), "--weights", "final"]) == 0
    predicted = [row["predicted"] for row in read_predictions(out)]
    error = np.mean([p != labels[i] for p, i in zip(predicted, rows, strict=True)])
    assert error == read_metrics(result.path / "metrics.csv")[-1]["train_error"]


def test_npz_input_and_load_run_round_trip(tmp_path: Path) -> None:
    result = train(tmp_path)
    x, _ = iris()
    np.savez(tmp_path / "new.npz", x=x)
    out = tmp_path / "p.csv"
    assert main(["predict", str(result.path), "--data", str(tmp_path / "new.npz"), "--out", str(out)]) == 0
    p = np.array([[float(row[f"p_{s}"]) for s in SPECIES] for row in read_predictions(out)])
    np.testing.assert_allclose(p, by_hand(result, x), rtol=0, atol=1e-6)

    model, preprocess, config = regopt.lab.load_run(result.path)
    assert config == validate(read_toml(result.path / "config.toml"))
    assert preprocess.features == tuple(FEATURES) and preprocess.classes == tuple(SPECIES)
    assert not model.training
    for (name, a), b in zip(model.state_dict().items(), result.experiment.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert model(preprocess(torch.from_numpy(x))).shape == (150, 3)


def _mismatch(tmp_path: Path, run_dir: Path) -> dict[str, tuple[list[str], str]]:
    x, labels = iris()
    renamed = write_csv(tmp_path / "renamed.csv", x, labels, header=["sepal_len", *FEATURES[1:]])
    extra = write_csv(tmp_path / "extra.csv", np.c_[x, x[:, :1]], None, header=[*FEATURES, "id"])
    np.savez(tmp_path / "narrow.npz", x=x[:, :3])
    return {
        "renamed column": ([str(renamed)], "no column 'sepal_length'"),
        "extra column": ([str(extra)], "column 'id' is not one the run was trained on"),
        "feature count": ([str(tmp_path / "narrow.npz")], "examples of shape (3,); the run was trained on"),
        "no best.pt": ([str(renamed), "--weights", "best"], "no best.pt"),
        "not a run": ([str(renamed)], "not a run directory"),
    }


def test_a_file_or_run_that_does_not_fit_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    result = train(tmp_path)
    for what, (args, message) in _mismatch(tmp_path, result.path).items():
        run_dir = tmp_path if what == "not a run" else result.path
        out = tmp_path / "never.csv"
        assert main(["predict", str(run_dir), "--data", *args, "--out", str(out)]) == 2, what
        err = capsys.readouterr().err
        assert err.startswith("regopt: error: ") and err.count("\n") == 1 and message in err, (what, err)
        assert not out.exists()


@pytest.mark.parametrize(
    "sections",
    [
        {  # multi-task: the prediction is the digit head's
            "data": {"name": "digits", "train_size": 300},
            "model": {"name": "mlp", "widths": [16]},
            "multitask": {"tasks": ["digit", "parity"]},
        },
        {  # greedy pretraining: the final checkpoint holds the grown network of the last stage
            "model": {"name": "mlp", "widths": [8, 8]},
            "pretraining": {"epochs_per_stage": 1},
        },
        {  # noise layers and dropout: off in eval mode, as when the run evaluated
            "model": {"name": "mlp", "widths": [16], "dropout_hidden": 0.5},
            "regularize": {"hidden_noise": {"std": 0.5}, "weight_noise": {"std": 0.1}},
        },
    ],
    ids=["multitask", "pretraining", "noise"],
)
def test_the_final_model_of_a_built_in_run_reproduces_its_train_error(tmp_path: Path, sections: dict) -> None:
    raw = small_raw(**sections)
    raw["train"] = {"epochs": 2, "batch_size": 32, "evaluate_test": False}
    result = run(validate(raw), out=tmp_path)
    data = result.experiment.data  # a built-in dataset: the model's inputs are the data's own
    np.savez(tmp_path / "train.npz", x=data.x_train.numpy())
    predictions = predict(result.path, tmp_path / "train.npz")
    assert predictions.weights == "checkpoint.pt"
    predicted = np.array([row["predicted"] for row in predictions.rows])
    error = np.mean(predicted != data.y_train.numpy())
    assert error == read_metrics(result.path / "metrics.csv")[-1]["train_error"]


def test_a_regression_run_on_npz_predicts_its_values_for_a_csv_without_column_names(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -1.0]
    np.savez(tmp_path / "train.npz", x=x, y=x @ [1.0, 0.2, 3.0] + 0.1 * rng.normal(size=120))
    raw = {
        "name": "reg",
        "data": {"name": "npz", "path": str(tmp_path / "train.npz")},
        "model": {"name": "mlp", "widths": [8]},
        "optimizer": {"name": "sgd", "lr": 0.05},
        "train": {"epochs": 3, "batch_size": 16},
    }
    result = run(validate(raw), out=tmp_path / "runs")
    write_csv(tmp_path / "new.csv", x[:10], None, header=["u", "v", "w"])  # an npz run has no names: by position
    out = tmp_path / "p.csv"
    assert main(["predict", str(result.path), "--data", str(tmp_path / "new.csv"), "--out", str(out)]) == 0
    rows = read_predictions(out)
    assert list(rows[0]) == ["predicted"]
    stats = json.loads((result.path / "preprocessing.json").read_text())["standardize"]
    standardized = (x[:10].astype(np.float32).astype(np.float64) - stats["mean"]) / stats["std"]
    with torch.no_grad():
        expected = result.experiment.model.eval()(torch.from_numpy(standardized.astype(np.float32)))
    assert [float(row["predicted"]) for row in rows] == expected[:, 0].double().tolist()  # the same forward pass

    write_csv(tmp_path / "narrow.csv", x[:10, :2], None, header=["u", "v"])
    assert main(["predict", str(result.path), "--data", str(tmp_path / "narrow.csv"), "--out", str(out)]) == 2
    assert "2 feature columns; the run was trained on 3" in capsys.readouterr().err
