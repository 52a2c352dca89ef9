"""regopt lr-find: the curvature rates against a quadratic's known Hessian, the range test's divergence against
2 / lambda_max, the trainer restored bit for bit, and the command end to end."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import tomli_w
import torch
import torch.nn.functional as F
from torch import nn

from regopt.cli import main
from regopt.lab.config import load_config, read_toml, validate
from regopt.lab.data import Dataset
from regopt.lab.experiment import build_experiment
from regopt.lab.lr_find import (
    CurvatureRates,
    LRFindResult,
    curvature_rates,
    find_lr,
    lr_sweep,
    trainer_curvature_rates,
)
from regopt.lab.lr_find_report import recommend
from regopt.lab.trainer import Trainer
from regopt.optim import SGD, Adam
from tests.conftest import small_raw


def regression(n: int = 512, d: int = 8, dtype: torch.dtype = torch.float32, seed: int = 0):
    """Linear regression data with feature scales 1..30 (condition number ~30) and label noise 0.3."""
    gen = torch.Generator().manual_seed(seed)
    scales = torch.logspace(0, math.log10(30.0), d, dtype=torch.float64).sqrt()
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) * scales
    y = x @ torch.randn(d, 1, generator=gen, dtype=torch.float64) + 0.3 * torch.randn(
        n, 1, generator=gen, dtype=torch.float64
    )
    return x.to(dtype), y.to(dtype)


def mse_hessian(x: torch.Tensor) -> torch.Tensor:
    """The Hessian of mean((x w + b - y)^2) in (w, b), nn.Linear's parameter order: 2 [x 1]'[x 1] / n, float64."""
    xa = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    return 2 * xa.T @ xa / len(x)


def flat_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, extra=None) -> torch.Tensor:
    model.zero_grad()
    loss = F.mse_loss(model(x), y) + (extra(model) if extra else 0)
    loss.backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double()


def regression_trainer(batch_size: int = 64, lr: float = 0.01, penalties=()) -> Trainer:
    x, y = regression()
    data = Dataset("quadratic", "regression", x, y, x[:64], y[:64], x[:64], y[:64], num_classes=None)
    torch.manual_seed(0)
    model = nn.Linear(x.shape[1], 1)
    return Trainer(model, SGD(model.parameters(), lr=lr), data, epochs=1, batch_size=batch_size, penalties=penalties)


def test_curvature_rates_are_exact_on_a_quadratic():
    """float64 linear regression, H = 2 [x 1]'[x 1] / n: both rates equal the hand formulas to rounding."""
    x, y = regression(dtype=torch.float64)
    torch.manual_seed(1)
    model = nn.Linear(x.shape[1], 1).double()
    hessian = mse_hessian(x)
    g = flat_grad(model, x, y)
    rates = curvature_rates(model, F.mse_loss, x, y, tol=1e-12)
    lambda_max = float(torch.linalg.eigvalsh(hessian)[-1])
    assert rates.along_gradient == pytest.approx(float(2 * g @ g / (g @ hessian @ g)), rel=1e-10)
    assert rates.any_direction == pytest.approx(2 / lambda_max, rel=1e-10)
    assert rates.lambda_max == pytest.approx(lambda_max, rel=1e-10)
    assert rates.along_gradient >= rates.any_direction  # a Rayleigh quotient is at most lambda_max


def test_trainer_curvature_rates_take_the_objective_with_its_penalties():
    """The trainer's objective includes an L2 penalty alpha ||W||^2: H gains 2 alpha on the weights (not the bias);
    float32 products, so a float32 tolerance."""
    alpha = 0.5

    def l2(model: nn.Module) -> torch.Tensor:
        return alpha * model.weight.pow(2).sum()

    trainer = regression_trainer(penalties=[l2])
    x, y = trainer.data.x_train[:256], trainer.data.y_train[:256]
    hessian = mse_hessian(x) + torch.diag(torch.tensor([2 * alpha] * x.shape[1] + [0.0], dtype=torch.float64))
    g = flat_grad(trainer.model, x, y, extra=l2)
    trainer.model.zero_grad(set_to_none=True)
    rates = trainer_curvature_rates(trainer, probe=256)
    assert rates.examples == 256
    assert rates.along_gradient == pytest.approx(float(2 * g @ g / (g @ hessian @ g)), rel=1e-4)
    assert rates.any_direction == pytest.approx(2 / float(torch.linalg.eigvalsh(hessian)[-1]), rel=1e-4)


def test_range_test_diverges_within_2x_of_2_over_lambda_max():
    """Plain minibatch SGD on the quadratic: the sweep stops (smoothed loss 4x its best) at an lr within a factor 2
    of 2 / lambda_max of the training loss, and its loss turned upward no earlier than 1 / lambda_max."""
    trainer = regression_trainer(batch_size=64)
    edge = 2 / float(torch.linalg.eigvalsh(mse_hessian(trainer.data.x_train))[-1])
    result = find_lr(trainer, steps=300, lr_min=1e-3, lr_max=10.0)
    assert result.stop_reason == "diverged"
    assert edge / 2 <= result.stop_lr <= 2 * edge, (result.stop_lr, edge)
    assert edge / 2 <= result.min_loss_lr <= result.stop_lr
    assert result.suggestion == pytest.approx(result.min_loss_lr / 10)
    assert result.lrs == pytest.approx(lr_sweep(1e-3, 10.0, 300)[: len(result.lrs)], rel=1e-12)
    # the smoothing is the bias-corrected EMA of the recorded losses
    average = 0.0
    for i, (loss, smooth) in enumerate(zip(result.losses, result.smoothed, strict=True)):
        average = 0.98 * average + 0.02 * loss
        assert smooth == pytest.approx(average / (1 - 0.98 ** (i + 1)), rel=1e-12)


def _tensors_equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_tensors_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_everything_is_restored_bit_for_bit():
    """Momentum SGD (optimizer state), dropout (the global RNG), Polyak averaging (a stateful hook), mid-epoch:
    after the curvature and a range test, the trainer's state is the one before, and training on gives the same
    bits as training without them."""
    raw = small_raw(
        model={"name": "mlp", "widths": [16], "dropout_hidden": 0.2}, averaging={"decay": 0.9, "start_step": 1}
    )

    def mid_epoch_trainer() -> Trainer:
        trainer = build_experiment(validate(raw)).trainer  # seeds torch, numpy and random from the config
        trainer.fit(max_steps=4)
        for x, y in list(trainer._batches())[:2]:  # leave it mid-epoch, with momentum and averages
            trainer.train_step(x, y)
            trainer.batch += 1
            trainer.step += 1
        return trainer

    first = mid_epoch_trainer()  # trained on without a range test (the global RNGs are shared: one at a time)
    first.fit(max_steps=30)
    second = mid_epoch_trainer()
    before = copy.deepcopy(second.state_dict())
    grads = [p.grad.clone() for p in second.model.parameters()]
    trainer_curvature_rates(second, probe=128)
    result = find_lr(second, steps=40, lr_min=1e-4, lr_max=100.0)
    assert len(result.lrs) > 10  # it did train
    after = second.state_dict()
    for key in ("model", "optimizer", "scheduler", "hook_states", "position", "rng", "history"):
        assert _tensors_equal(before[key], after[key]), key
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, second.model.parameters(), strict=True))
    second.fit(max_steps=30)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert [r["val_loss"] for r in first.history] == [r["val_loss"] for r in second.history]


def _result(suggestion: float, stop_reason: str = "diverged") -> LRFindResult:
    return LRFindResult([1e-3, 1.0], [1.0, 9.0], [1.0, 5.0], stop_reason, suggestion * 10, suggestion)


def _rates(any_direction: float, along_gradient: float) -> CurvatureRates:
    return CurvatureRates(along_gradient, any_direction, 2 / any_direction, 1.0, 1.0, 1.0, 8, 10)


def test_recommend_caps_plain_sgd_at_2_over_lambda_max_and_trusts_the_range_test_otherwise():
    params = [nn.Parameter(torch.zeros(2))]
    sgd, momentum, adam = SGD(params, lr=0.1), SGD(params, lr=0.1, momentum=0.9), Adam(params, lr=1e-3)
    below = recommend(_result(0.05), _rates(0.2, 0.5), sgd)
    assert (below.source, below.lr) == ("range test", 0.05)
    above = recommend(_result(0.5), _rates(0.2, 0.5), sgd)
    assert (above.source, above.lr) == ("2 / lambda_max", 0.2)
    assert "exceeds 2 / lambda_max" in above.reason
    for optimizer in (momentum, adam):
        pick = recommend(_result(0.5), _rates(0.2, 0.5), optimizer)
        assert (pick.source, pick.lr) == ("range test", 0.5)
        assert "plain SGD steps" in pick.reason
    flat = recommend(_result(0.05, "reached lr_max"), _rates(0.2, math.inf), sgd)
    assert any("never diverged" in n for n in flat.notes) and any("no curvature limit" in n for n in flat.notes)


def test_recommend_takes_the_full_step_for_methods_that_choose_their_own_step_length():
    from regopt.optim import LBFGS, SAM, ConjugateGradient, HessianFree, Newton

    params = [nn.Parameter(torch.zeros(2))]
    own = [
        Newton(params),
        HessianFree(params),
        LBFGS(params),
        ConjugateGradient(params),
        torch.optim.LBFGS(params, line_search_fn="strong_wolfe"),
    ]
    for optimizer in own:
        pick = recommend(_result(0.05), _rates(0.2, 0.5), optimizer)
        assert (pick.source, pick.lr) == ("full step", 1.0), type(optimizer).__name__
        assert "chooses its step length itself" in pick.reason
    fixed_steps = [
        ConjugateGradient(params, line_search=None),  # lr is the step: the range test applies
        torch.optim.LBFGS(params),
        SAM(params, SGD(params, lr=0.1, momentum=0.9)),  # the base's rate
    ]
    for optimizer in fixed_steps:
        assert recommend(_result(0.05), _rates(0.2, 0.5), optimizer).source == "range test"


def test_cli_writes_figure_csv_table_and_the_applied_copy(tmp_path, capsys):
    raw = small_raw(optimizer={"name": "sgd", "lr": 0.1})
    config = tmp_path / "tiny.toml"
    config.write_text(tomli_w.dumps(raw))
    original = config.read_bytes()
    out = tmp_path / "runs"
    assert (
        main(["lr-find", str(config), "--steps", "40", "--min", "1e-4", "--max", "100", "--out", str(out), "--apply"])
        == 0
    )
    printed = capsys.readouterr().out
    for row in ("range test", "2 g'g / g'Hg", "2 / lambda_max", "pick lr = "):
        assert row in printed
    folder = out / "tiny-lr-find"
    assert (folder / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    lines = (folder / "lr_find.csv").read_text().splitlines()
    assert lines[0] == "lr,loss,smoothed" and 10 < len(lines) <= 41
    assert float(lines[1].split(",")[0]) == pytest.approx(1e-4)
    assert config.read_bytes() == original
    applied = read_toml(tmp_path / "tiny.lr.toml")
    picked = float(printed.split("pick lr = ")[1].split()[0])
    assert applied["optimizer"]["lr"] == picked
    assert {**applied, "optimizer": raw["optimizer"]} == raw  # nothing else changed
    assert not (out / "tiny").exists()  # the run directory regopt run would make is left alone


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min", "1", "--max", "0.1"], "--max: 0.1 must be a finite learning rate above --min"),
        (["--steps", "5"], "--steps: 5 is too short a sweep"),
        (["--min", "0"], "--min: 0.0 is not a learning rate > 0"),
    ],
)
def test_bad_sweep_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    config = tmp_path / "tiny.toml"
    config.write_text(tomli_w.dumps(small_raw()))
    assert main(["lr-find", str(config), "--out", str(tmp_path / "runs"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("regopt: error: ") and message in err
    assert not (tmp_path / "runs").exists()


def test_missing_config_or_apply_onto_it_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["lr-find", str(tmp_path / "absent.toml"), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "absent.toml: no such config file" in err
    config = tmp_path / "tiny.toml"
    config.write_text(tomli_w.dumps(small_raw()))
    original = config.read_bytes()
    assert main(["lr-find", str(config), "--out", str(tmp_path / "runs"), "--apply", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--apply: " in err and "is the config itself" in err
    assert config.read_bytes() == original and not (tmp_path / "runs").exists()


def test_apply_elsewhere_makes_a_relative_data_path_absolute(tmp_path, capsys):
    """A copy beside the config keeps ``data.path = "d.npz"``; one written to another folder names the file by
    absolute path, so both copies load the same data."""
    gen = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=gen.normal(size=(200, 3)), y=(gen.random(200) > 0.5).astype(np.int64))
    raw = small_raw(data={"name": "npz", "path": "d.npz"}, optimizer={"name": "sgd", "lr": 0.1})
    config = tmp_path / "user.toml"
    config.write_text(tomli_w.dumps(raw))
    elsewhere = tmp_path / "other" / "picked.toml"
    common = ["--steps", "20", "--min", "1e-3", "--max", "10", "--out", str(tmp_path / "runs")]
    assert main(["lr-find", str(config), *common, "--apply"]) == 0
    assert main(["lr-find", str(config), *common, "--apply", str(elsewhere)]) == 0
    capsys.readouterr()
    beside, other = read_toml(tmp_path / "user.lr.toml"), read_toml(elsewhere)
    assert beside["data"]["path"] == "d.npz"
    assert other["data"]["path"] == str((tmp_path / "d.npz").resolve())
    assert beside["optimizer"]["lr"] == other["optimizer"]["lr"]  # the same sweep, the same pick
    assert load_config(tmp_path / "user.lr.toml").data.path == load_config(elsewhere).data.path
