"""Tests of regopt.lab.data: shapes and dtypes, deterministic disjoint splits, user files, bad input."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from regopt.lab.config import (
    CsvData,
    DigitsData,
    Mnist1dData,
    MoonsData,
    NpzData,
    PolynomialData,
    SpiralsData,
)
from regopt.lab.data import (
    DATASETS,
    DataError,
    Dataset,
    load_dataset,
    polynomial_curve,
    polynomial_features,
    polynomial_statistics,
)
from regopt.lab.data.mnist_1d import generate
from regopt.lab.data.splits import _quotas, choose, stream

SPLITS = ("train", "val", "test")


def tensors(ds: Dataset) -> dict[str, torch.Tensor]:
    return {f"{p}_{s}": getattr(ds, f"{p}_{s}") for s in SPLITS for p in ("x", "y")}


def sizes(ds: Dataset) -> tuple[int, int, int]:
    return len(ds.x_train), len(ds.x_val), len(ds.x_test)


def rows(x: torch.Tensor) -> list[bytes]:
    return [r.numpy().tobytes() for r in x.reshape(len(x), -1)]


# ----------------------------------------------------------------------------------- shapes and dtypes
BUILTIN = [
    # config, input_shape, output_dim, (train, val, test)
    (Mnist1dData(name="mnist1d"), (40,), 10, (3200, 800, 1000)),
    (Mnist1dData(name="mnist1d", as_sequence=True), (40, 1), 10, (3200, 800, 1000)),
    (DigitsData(name="digits"), (64,), 10, (1150, 288, 359)),
    (DigitsData(name="digits", image=True), (1, 8, 8), 10, (1150, 288, 359)),
    (MoonsData(name="moons"), (2,), 2, (640, 160, 200)),
    (SpiralsData(name="spirals", num_classes=4), (2,), 4, (640, 160, 200)),
    (PolynomialData(name="polynomial"), (9,), 1, (15, 100, 500)),
    (PolynomialData(name="polynomial", degree=3, train_size=7), (3,), 1, (7, 100, 500)),
]


@pytest.mark.parametrize(("cfg", "input_shape", "output_dim", "split_sizes"), BUILTIN, ids=str)
def test_builtin_shapes_and_dtypes(cfg: Any, input_shape: tuple, output_dim: int, split_sizes: tuple) -> None:
    ds = load_dataset(cfg)
    assert ds.name == cfg.name
    assert ds.input_shape == input_shape
    assert ds.output_dim == output_dim
    assert sizes(ds) == split_sizes
    for s in SPLITS:
        x, y = getattr(ds, f"x_{s}"), getattr(ds, f"y_{s}")
        assert x.dtype == torch.float32 and x.device.type == "cpu"
        assert tuple(x.shape[1:]) == input_shape
        assert torch.isfinite(x).all()
        if ds.task == "classification":
            assert y.dtype == torch.int64 and y.shape == (len(x),)
            assert int(y.min()) >= 0 and int(y.max()) < output_dim
        else:
            assert y.dtype == torch.float32 and y.shape == (len(x), output_dim)
    if ds.task == "classification":
        assert ds.num_classes == output_dim and ds.classes == tuple(range(output_dim))
    else:
        assert ds.num_classes is None and ds.classes is None


def test_digits_pixels_scaled_and_image_matches_flat() -> None:
    flat = load_dataset(DigitsData(name="digits"))
    image = load_dataset(DigitsData(name="digits", image=True))
    assert float(flat.x_train.min()) == 0.0 and float(flat.x_train.max()) == 1.0
    torch.testing.assert_close(image.x_train.reshape(len(image.x_train), 64), flat.x_train)
    assert torch.equal(image.y_test, flat.y_test)


def test_registry_lists_every_config_name() -> None:
    assert set(DATASETS) == {"mnist1d", "digits", "moons", "spirals", "polynomial", "npz", "csv"}
    assert all(isinstance(d, str) and d and "\n" not in d for d in DATASETS.values())


def test_dataset_to_summary_and_checks() -> None:
    ds = load_dataset(MoonsData(name="moons", num_samples=100))
    moved = ds.to("meta")
    assert all(t.device.type == "meta" for t in tensors(moved).values())
    assert moved.num_classes == 2 and ds.x_train.device.type == "cpu"
    assert "train 64 / val 16 / test 20" in repr(ds)
    with pytest.raises(DataError, match="int64 of shape"):
        Dataset("bad", "classification", ds.x_train, ds.y_train.float(), ds.x_val, ds.y_val,
                ds.x_test, ds.y_test, num_classes=2)  # fmt: skip
    with pytest.raises(DataError, match="x has 64 examples but y has 16"):
        Dataset("bad", "classification", ds.x_train, ds.y_val, ds.x_val, ds.y_val,
                ds.x_test, ds.y_test, num_classes=2)  # fmt: skip


# ----------------------------------------------------------------------------------------------- splits
SEEDED = [
    DigitsData(name="digits"),
    MoonsData(name="moons", num_samples=200),
    SpiralsData(name="spirals", num_samples=200),
    Mnist1dData(name="mnist1d"),
    PolynomialData(name="polynomial"),
]


@pytest.mark.parametrize("cfg", SEEDED, ids=lambda c: c.name)
def test_same_seed_same_tensors_other_seed_other_split(cfg: Any) -> None:
    a, b = load_dataset(cfg), load_dataset(cfg)
    c = load_dataset(cfg.model_copy(update={"seed": 1}))
    for key, t in tensors(a).items():
        assert torch.equal(t, tensors(b)[key]), key
    assert not torch.equal(a.x_train, c.x_train)
    assert not torch.equal(a.x_val, c.x_val)


def test_splits_disjoint_and_cover_the_pool() -> None:
    from sklearn.datasets import load_digits

    ds = load_dataset(DigitsData(name="digits", seed=3))
    everything = torch.from_numpy((load_digits().data / 16.0).astype(np.float32))
    parts = [rows(ds.x_train), rows(ds.x_val), rows(ds.x_test)]
    assert sum(map(len, parts)) == len(everything)
    assert Counter(r for part in parts for r in part) == Counter(rows(everything))  # a partition
    # the labels travel with their rows
    label = dict(zip(rows(everything), load_digits().target.tolist(), strict=True))
    assert [label[r] for r in parts[1]] == ds.y_val.tolist()


def test_mnist1d_validation_carved_from_train_test_is_its_own() -> None:
    x, _, x_test, y_test = generate(5000)
    ds = load_dataset(Mnist1dData(name="mnist1d", val_fraction=0.25, seed=2))
    assert sizes(ds) == (3000, 1000, 1000)
    torch.testing.assert_close(ds.x_test, torch.tensor(x_test).float())
    assert torch.equal(ds.y_test, torch.tensor(y_test))
    pool = set(rows(torch.tensor(x).float()))
    assert set(rows(ds.x_train)) | set(rows(ds.x_val)) == pool
    assert not set(rows(ds.x_train)) & set(rows(ds.x_val))


@pytest.mark.parametrize(
    "cfg", [DigitsData(name="digits"), Mnist1dData(name="mnist1d"), SpiralsData(name="spirals")], ids=str
)
def test_train_size_subsamples_train_and_keeps_val_and_test(cfg: Any) -> None:
    full = load_dataset(cfg)
    small = load_dataset(cfg.model_copy(update={"train_size": 50}))
    assert len(small.x_train) == 50
    for s in ("val", "test"):
        assert torch.equal(getattr(full, f"x_{s}"), getattr(small, f"x_{s}"))
        assert torch.equal(getattr(full, f"y_{s}"), getattr(small, f"y_{s}"))
    assert set(rows(small.x_train)) <= set(rows(full.x_train))
    # stratified: every class nearly in its share of 50
    counts = torch.bincount(small.y_train, minlength=full.output_dim)
    assert int(counts.max() - counts.min()) <= 2


def test_test_split_is_stratified_and_independent_of_val_fraction() -> None:
    a = load_dataset(DigitsData(name="digits"))
    b = load_dataset(DigitsData(name="digits", val_fraction=0.5))
    assert torch.equal(a.x_test, b.x_test) and len(b.x_val) == 719
    per_class = torch.bincount(torch.cat([a.y_train, a.y_val, a.y_test]))
    expected = per_class.double() * len(a.y_test) / per_class.sum()
    assert (torch.bincount(a.y_test).double() - expected).abs().max() < 1


@pytest.mark.parametrize(("counts", "k"), [([5, 5], 3), ([1, 1, 1], 2), ([178, 182, 177], 359), ([9, 1], 1)])
def test_quotas_sum_to_k_and_stay_within_counts(counts: list[int], k: int) -> None:
    q = _quotas(np.array(counts), k)
    assert q.sum() == k and (q >= 0).all() and (q <= np.array(counts)).all()
    assert np.all(np.abs(q - np.array(counts) * k / sum(counts)) < 1)


def test_choose_partitions_pool_and_uses_no_global_rng() -> None:
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    pool, labels = np.arange(10, 30), np.arange(40) % 2
    chosen, rest = choose(pool, 6, stream(-5, 1), labels)
    assert sorted([*chosen, *rest]) == list(pool) and len(chosen) == 6
    assert (labels[chosen] == 0).sum() == 3
    assert np.array_equal(np.random.get_state()[1], before)


# ------------------------------------------------------------------------------------ built-in specifics
def test_mnist1d_leaves_global_random_state_unchanged() -> None:
    generate.cache_clear()
    random.seed(123)
    np.random.seed(456)
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    ds = load_dataset(Mnist1dData(name="mnist1d", num_samples=300))  # generated now, not cached
    assert sizes(ds) == (192, 48, 60)
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert torch.equal(torch.get_rng_state(), torch_state)


@pytest.mark.parametrize(
    ("cfg", "per_class"),
    [
        (MoonsData(name="moons", num_samples=1000), [500, 500]),
        (SpiralsData(name="spirals", num_samples=999, num_classes=3), [333, 333, 333]),
        (SpiralsData(name="spirals", num_samples=10, num_classes=4), [3, 3, 2, 2]),
    ],
    ids=str,
)
def test_toy_data_balanced_classes(cfg: Any, per_class: list[int]) -> None:
    ds = load_dataset(cfg)
    assert torch.bincount(torch.cat([ds.y_train, ds.y_val, ds.y_test])).tolist() == per_class


def test_spirals_lie_on_their_arms_without_noise() -> None:
    ds = load_dataset(SpiralsData(name="spirals", num_samples=300, noise=0.0, num_classes=3))
    x, y = ds.x_train.double(), ds.y_train
    r = x.norm(dim=1)
    assert float(r.max()) <= 1.0 + 1e-6
    # angle of a point on arm k at radius r is 2 pi k/3 + 3 pi r (mod 2 pi)
    predicted = 2 * math.pi * y / 3 + 3 * math.pi * r
    gap = torch.remainder(torch.atan2(x[:, 1], x[:, 0]) - predicted + math.pi, 2 * math.pi) - math.pi
    assert float(gap.abs().max()) < 1e-4


def test_polynomial_features_standardized_on_train() -> None:
    cfg = PolynomialData(name="polynomial", degree=9, train_size=30)
    ds = load_dataset(cfg)
    torch.testing.assert_close(ds.x_train.mean(0), torch.zeros(9), atol=1e-5, rtol=0)
    torch.testing.assert_close(ds.x_train.std(0, correction=0), torch.ones(9), atol=1e-5, rtol=0)
    assert float(ds.x_val.mean(0).abs().max()) > 1e-3  # statistics are the training points', not val's
    # undoing the standardization gives x in [0, 1] and powers of it
    mean, std = polynomial_statistics(cfg)
    raw = ds.x_train.double() * std + mean
    assert float(raw[:, 0].min()) >= 0.0 and float(raw[:, 0].max()) <= 1.0
    torch.testing.assert_close(raw[:, 2], raw[:, 0] ** 3, atol=1e-5, rtol=1e-4)
    # noise is small: targets near sin(2 pi x)
    assert float((ds.y_train[:, 0].double() - torch.sin(2 * math.pi * raw[:, 0])).abs().max()) < 1.0


def test_polynomial_noise_free_and_val_test_fixed() -> None:
    cfg = PolynomialData(name="polynomial", noise=0.0, degree=2)
    ds, more = load_dataset(cfg), load_dataset(cfg.model_copy(update={"train_size": 40}))
    mean, std = polynomial_statistics(cfg)
    x = ds.x_test[:, 0].double() * std[0] + mean[0]
    torch.testing.assert_close(ds.y_test[:, 0].double(), torch.sin(2 * math.pi * x), atol=1e-5, rtol=0)
    mean40, std40 = polynomial_statistics(cfg.model_copy(update={"train_size": 40}))
    x40 = more.x_test[:, 0].double() * std40[0] + mean40[0]
    torch.testing.assert_close(x, x40)  # same test points whatever the training size


def test_polynomial_curve_and_features() -> None:
    cfg = PolynomialData(name="polynomial", degree=4)
    x, features, y = polynomial_curve(cfg, num_points=11)
    assert x.shape == (11,) and features.shape == (11, 4) and y.shape == (11, 1)
    torch.testing.assert_close(y[:, 0], torch.sin(2 * math.pi * x), atol=1e-6, rtol=0)
    mean, std = polynomial_statistics(cfg)
    torch.testing.assert_close(features, polynomial_features(x, 4, mean, std), atol=1e-6, rtol=0)
    torch.testing.assert_close(polynomial_features(torch.tensor([2.0]), 3), torch.tensor([[2.0, 4.0, 8.0]]))
    single = load_dataset(PolynomialData(name="polynomial", train_size=1))  # zero std does not divide by 0
    assert torch.isfinite(single.x_train).all()


# ------------------------------------------------------------------------------------------ user files
def test_npz_classification_round_trip(tmp_path: Path) -> None:
    n = 50
    x = np.zeros((n, 2, 3), dtype=np.float64)
    x[:, 0, 0] = np.arange(n)  # row id
    y = np.where(np.arange(n) % 2 == 0, -1, 7)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(NpzData(name="npz", path=tmp_path / "d.npz", test_fraction=0.2, val_fraction=0.25))
    assert ds.task == "classification" and ds.classes == (-1, 7) and ds.num_classes == 2
    assert ds.input_shape == (2, 3) and sizes(ds) == (30, 10, 10)
    ids = torch.cat([ds.x_train, ds.x_val, ds.x_test])[:, 0, 0].long()
    assert sorted(ids.tolist()) == list(range(n))
    labels = torch.cat([ds.y_train, ds.y_val, ds.y_test])
    original = torch.tensor(ds.classes)[labels]
    assert torch.equal(original, torch.from_numpy(y)[ids])


@pytest.mark.parametrize(
    ("y", "task", "expect_task", "output_dim"),
    [
        (np.linspace(0, 1, 40), "auto", "regression", 1),
        (np.ones((40, 3)) * np.arange(40)[:, None], "auto", "regression", 3),
        (np.arange(40) % 3, "regression", "regression", 1),
        (np.arange(40) % 3 + 0.0, "auto", "classification", 3),
        ((np.arange(40) % 2).astype(bool), "classification", "classification", 2),
    ],
)
def test_npz_task_inference(tmp_path: Path, y: np.ndarray, task: str, expect_task: str, output_dim: int) -> None:
    np.savez(tmp_path / "d.npz", x=np.arange(40.0), y=y)
    cfg = NpzData(name="npz", path=tmp_path / "d.npz", task=task, standardize=False)  # type: ignore[arg-type]
    ds = load_dataset(cfg)
    assert ds.task == expect_task and ds.output_dim == output_dim and ds.input_shape == (1,)
    if expect_task == "regression":
        ids = ds.x_train[:, 0].long()
        torch.testing.assert_close(ds.y_train, torch.from_numpy(y.reshape(40, -1)).float()[ids])


def test_csv_round_trip(tmp_path: Path) -> None:
    lines = ["a, label ,b"] + [f"{i},{i % 2},{i * 0.5}" for i in range(20)] + [""]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    ds = load_dataset(CsvData(name="csv", path=tmp_path / "d.csv", standardize=False))
    assert ds.task == "classification" and ds.input_shape == (2,) and sizes(ds) == (13, 3, 4)
    x, y = torch.cat([ds.x_train, ds.x_val, ds.x_test]), torch.cat([ds.y_train, ds.y_val, ds.y_test])
    assert sorted(x[:, 0].tolist()) == list(range(20))
    assert torch.equal(y, x[:, 0].long() % 2) and torch.equal(x[:, 1], x[:, 0] * 0.5)
    reg = load_dataset(CsvData(name="csv", path=tmp_path / "d.csv", label_column="b"))
    assert reg.task == "regression" and reg.y_train.shape == (13, 1)


# ------------------------------------------------------------------------------------------- bad input
def _npz(**arrays: Any) -> Any:
    return lambda p: np.savez(p, **arrays)


def _text(text: str) -> Any:
    return lambda p: p.write_text(text)


GOOD_X = np.zeros((10, 2))
BAD_NPZ = [
    (None, r"data\.path: no such file: .*d\.npz"),
    (lambda p: p.mkdir(), r"data\.path: not a file"),
    (lambda p: p.write_bytes(b"not a zip"), r"d\.npz: cannot read as \.npz"),
    (lambda p: np.save(p.with_suffix(".npy"), GOOD_X) or p.with_suffix(".npy").rename(p), r"single \.npy"),
    (_npz(x=GOOD_X, z=np.zeros(10)), r"no array 'y' in the archive \(arrays found: 'x', 'z'\)"),
    (_npz(y=np.zeros(10)), r"no array 'x' in the archive \(arrays found: 'y'\)"),
    (_npz(x=np.array([object()] * 10), y=np.zeros(10)), r"cannot read array 'x'"),
    (_npz(x=np.array(["a"] * 10), y=np.zeros(10)), r"array 'x' is not numeric \(dtype <U1\)"),
    (_npz(x=np.array([np.nan, np.nan, np.inf, *range(7)]), y=np.zeros(10)), r"'x' contains 2 NaN and 1 Inf"),
    (_npz(x=GOOD_X, y=np.array([*range(9), np.nan])), r"array 'y' contains 1 NaN value"),
    (_npz(x=GOOD_X, y=np.arange(9)), r"array 'x' has 10 examples but array 'y' has 9"),
    (_npz(x=np.zeros((2, 3)), y=np.arange(2)), r"too few examples to split: 2"),
    (_npz(x=np.zeros((0, 3)), y=np.zeros(0)), r"too few examples to split: 0"),
    (_npz(x=GOOD_X, y=np.full(10, 4)), r"2 or more classes; every label in array 'y' is 4"),
    (_npz(x=GOOD_X, y=np.zeros((10, 2, 2))), r"array 'y' must have shape \(n,\) or \(n, d\)"),
    (_npz(x=np.float64(1.0), y=np.zeros(10)), r"array 'x' must have examples along its first axis"),
]


@pytest.mark.parametrize(("make", "pattern"), BAD_NPZ)
def test_bad_npz_raises_data_error(tmp_path: Path, make: Any, pattern: str) -> None:
    path = tmp_path / "d.npz"
    if make is not None:
        make(path)
    with pytest.raises(DataError, match=pattern):
        load_dataset(NpzData(name="npz", path=path))


def test_npz_classification_needs_integer_single_labels(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=GOOD_X, y=np.arange(10) / 4)
    with pytest.raises(DataError, match=r"classification needs integer labels; array 'y' holds 0\.25"):
        load_dataset(NpzData(name="npz", path=tmp_path / "d.npz", task="classification"))
    np.savez(tmp_path / "d.npz", x=GOOD_X, y=np.zeros((10, 2)))
    with pytest.raises(DataError, match=r"one label per example; array 'y' has shape \(10, 2\)"):
        load_dataset(NpzData(name="npz", path=tmp_path / "d.npz", task="classification"))


HEADER = "a,b,label\n"
BAD_CSV = [
    (None, r"data\.path: no such file: .*d\.csv"),
    (_text(""), r"d\.csv: empty file, expected a header row"),
    (lambda p: p.write_bytes(b"a,label\n\xff\xfe,1\n"), r"d\.csv: cannot read as CSV"),
    (_text("a,b,target\n1,2,3\n"), r"no label column 'label' \(columns found: 'a', 'b', 'target'\)"),
    (_text("label\n1\n2\n"), r"no feature columns besides the label column 'label'"),
    (_text("a,label,label\n1,2,3\n"), r"label column 'label' appears 2 times"),
    (_text(HEADER + "1,2,0\n1,abc,1\n"), r"line 3, column 'b': not a number: 'abc'"),
    (_text(HEADER + ",2,0\n"), r"line 2, column 'a': empty value"),
    (_text(HEADER + "1,2,0\n1,2\n"), r"line 3 has 2 fields, the header has 3"),
    (_text(HEADER + "1,2,0\nnan,2,1\n3,4,1\n"), r"column 'a' contains 1 NaN value\(s\) \(first on line 3\)"),
    (_text(HEADER + "1,2,0\n1,2,inf\n"), r"column 'label' contains 1 Inf value"),
    (_text(HEADER + "1,2,0\n3,4,1\n"), r"too few examples to split: 2; need at least 3"),
]


@pytest.mark.parametrize(("make", "pattern"), BAD_CSV)
def test_bad_csv_raises_data_error(tmp_path: Path, make: Any, pattern: str) -> None:
    path = tmp_path / "d.csv"
    if make is not None:
        make(path)
    with pytest.raises(DataError, match=pattern):
        load_dataset(CsvData(name="csv", path=path))


@pytest.mark.parametrize(
    ("cfg", "pattern"),
    [
        (DigitsData(name="digits", train_size=1151), r"data\.train_size: 1151 is more than the 1150 train"),
        (MoonsData(name="moons", num_samples=2), r"moons: too few examples to split: 2"),
        (Mnist1dData(name="mnist1d", num_samples=5), r"data\.num_samples: 5 is too few for mnist1d"),
    ],
    ids=str,
)
def test_bad_sizes_raise_data_error(cfg: Any, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        load_dataset(cfg)


def test_data_error_is_one_line_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        load_dataset(CsvData(name="csv", path=tmp_path / "missing.csv"))
    assert isinstance(info.value, DataError) and "\n" not in str(info.value)


def test_image_shape_is_carried_by_the_dataset_not_guessed_from_its_name() -> None:
    """Issue 16: the wiring reads ``Dataset.image_shape``; digits stored flat still know they are 8x8 images."""
    import torch

    from regopt.lab.config import DigitsData
    from regopt.lab.data import DataError, Dataset, load_dataset

    assert load_dataset(DigitsData(name="digits")).image_shape == (1, 8, 8)
    assert load_dataset(DigitsData(name="digits", image=True)).image_shape == (1, 8, 8)
    x, y = torch.zeros(4, 3, 5, 5), torch.tensor([0, 1, 0, 1])
    assert Dataset("cubes", "classification", x, y, x, y, x, y, num_classes=2).image_shape == (3, 5, 5)
    flat = torch.zeros(4, 12)
    assert Dataset("flat", "classification", flat, y, flat, y, flat, y, num_classes=2).image_shape is None
    with pytest.raises(DataError, match=r"image_shape \(1, 5, 5\) does not hold inputs of shape \(12,\)"):
        Dataset("bad", "classification", flat, y, flat, y, flat, y, num_classes=2, image_shape=(1, 5, 5))
