"""Optimizers that need a closure in the Trainer (issue 20): SAM re-runs the step's forward and backward (same
batch, penalty, clipping) and equals a hand-written loop bit for bit; monitors' ``after_backward`` see the gradient
at theta; accumulation still takes the whole batch's step; a SAM run resumes to the bits of an uninterrupted one;
``torch.lbfgs`` trains full-batch from a config; float16 with a closure optimizer is refused in one line."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regopt.diagnostics import clip_by_norm
from regopt.lab.config import ConfigError, validate
from regopt.lab.experiment import build_experiment
from regopt.lab.runs import run
from regopt.lab.trainer import Trainer
from regopt.monitor import Monitor
from regopt.optim import BFGS, LBFGS, SAM, SGD, ConjugateGradient
from tests.conftest import small_raw
from tests.lab.interruptions import assert_same_run, interrupt_train_step, run_interrupted

BATCH, EPOCHS, ALPHA, CLIP, RHO = 32, 2, 1e-3, 0.5, 0.1


def penalty(model: nn.Module) -> Tensor:
    return ALPHA * sum(p.pow(2).sum() for p in model.parameters())  # type: ignore[return-value]


def flat_grad(model: nn.Module) -> Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])  # type: ignore[union-attr]


class FirstGradients(Monitor):
    """Records the gradient ``after_backward`` sees at each step."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.seen = model, []

    def after_backward(self, step: int) -> None:
        self.seen.append(flat_grad(self.model).clone())


def moons() -> Any:
    return build_experiment(validate(small_raw())).data  # 256 training examples of moons (8 batches of 32)


def sam_trainer(data: Any, model: nn.Module, **options: Any) -> tuple[Trainer, FirstGradients]:
    optimizer = SAM(model.parameters(), SGD(model.parameters(), lr=0.1, momentum=0.9), rho=RHO)
    monitor = FirstGradients(model)
    trainer = Trainer(
        model,
        optimizer,
        data,
        epochs=EPOCHS,
        batch_size=BATCH,
        shuffle=False,
        penalties=[penalty],
        grad_transforms=[clip_by_norm(CLIP)],
        monitors=[monitor],
        **options,
    )
    return trainer, monitor


def test_a_sam_trainer_run_equals_a_hand_written_loop_bit_for_bit() -> None:
    data = moons()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    by_hand = copy.deepcopy(model)
    trainer, monitor = sam_trainer(data, model)
    trainer.fit()

    optimizer = SAM(by_hand.parameters(), SGD(by_hand.parameters(), lr=0.1, momentum=0.9), rho=RHO)
    first: list[Tensor] = []

    def sam_step(x: Tensor, y: Tensor) -> None:
        calls = 0

        def closure() -> Tensor:
            nonlocal calls
            optimizer.zero_grad()
            loss = F.cross_entropy(by_hand(x), y) + penalty(by_hand)
            loss.backward()
            if calls == 0:
                first.append(flat_grad(by_hand).clone())
            calls += 1
            torch.nn.utils.clip_grad_norm_(by_hand.parameters(), CLIP)
            return loss

        optimizer.step(closure)
        assert calls == 2  # at theta, at theta + e

    for _ in range(EPOCHS):
        for start in range(0, len(data.x_train), BATCH):
            sam_step(data.x_train[start : start + BATCH], data.y_train[start : start + BATCH])

    assert trainer.step == EPOCHS * len(data.x_train) // BATCH == len(monitor.seen)
    for a, b in zip(model.parameters(), by_hand.parameters(), strict=True):
        assert torch.equal(a, b)
    for seen, expected in zip(monitor.seen, first, strict=True):  # the raw gradient at theta, not at theta + e
        assert torch.equal(seen, expected)
    assert max(g.norm() for g in first) > CLIP  # clipping did act on some of them


def test_accumulated_sam_takes_the_whole_batchs_step() -> None:
    data = moons()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    split = copy.deepcopy(model)
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    sam_trainer(data, model)[0].fit()
    sam_trainer(data, split, accumulate=4)[0].fit()
    weights, accumulated = (torch.cat([p.detach().flatten() for p in m.parameters()]) for m in (model, split))
    # 16 steps: the 4 parts' gradients summed in another order, a few ulps per step (as tests/lab/test_accumulate.py)
    torch.testing.assert_close(accumulated, weights, rtol=0, atol=1e-6)
    assert (weights - start).abs().max() > 1e-2  # far above the tolerance: the runs did move


def sam_raw(**train: Any) -> dict[str, Any]:
    settings = {"epochs": 3, "batch_size": 32, "evaluate_test": False, **train}
    optimizer = {"name": "sam", "base": "adam", "lr": 0.01, "rho": 0.05}
    return small_raw(model={"name": "mlp", "widths": [16], "dropout_hidden": 0.2}, optimizer=optimizer, train=settings)


def test_an_interrupted_sam_run_resumes_to_the_same_bits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = sam_raw(checkpoint_every=4, clip_grad_norm=1.0)
    straight = run(validate(raw), out=tmp_path / "a")
    assert straight.history[-1]["train_loss"] < 0.9 * straight.history[0]["train_loss"]  # 0.61 -> 0.49
    with monkeypatch.context() as patch:
        interrupt_train_step(patch, call=19)  # mid-epoch 2, three steps after the checkpoint at step 16
        with pytest.raises(KeyboardInterrupt):
            run(validate(raw), out=tmp_path / "b")
    state = torch.load(tmp_path / "b" / "tiny" / "checkpoint.pt", weights_only=True)
    assert state["position"]["step"] == 16  # the resume starts mid-run, from the base's (Adam's) moments
    assert state["optimizer"]["param_groups"][0]["sam"] == {"rho": 0.05, "adaptive": False}
    assert state["optimizer"]["state"][0]["s"].abs().sum() > 0
    resumed = run(validate(raw), out=tmp_path / "b", resume=True)
    assert_same_run(straight, resumed)


@pytest.mark.parametrize(
    ("optimizer", "cls"),
    [
        ({"name": "torch.lbfgs", "lr": 1.0, "max_iter": 5, "line_search_fn": "strong_wolfe"}, torch.optim.LBFGS),
        ({"name": "lbfgs", "max_iter": 5}, LBFGS),
        ({"name": "bfgs", "max_iter": 5}, BFGS),
        ({"name": "cg", "max_iter": 5}, ConjugateGradient),
    ],
    ids=["torch.lbfgs", "lbfgs", "bfgs", "cg"],
)
def test_line_search_methods_full_batch_from_a_config_lower_the_loss_and_resume(
    tmp_path: Path, optimizer: dict[str, Any], cls: type
) -> None:
    raw = small_raw(optimizer=optimizer, train={"epochs": 4, "batch_size": 256, "evaluate_test": False})
    straight = run(validate(raw), out=tmp_path / "a")
    trainer = straight.experiment.trainer
    assert isinstance(trainer.optimizer, cls)
    assert trainer.step == 4  # one batch of the whole training set (256 examples) per epoch, one step each
    assert straight.history[-1]["train_loss"] < 0.1 * straight.history[0]["train_loss"]  # 0.21 -> 0.002
    state = trainer.optimizer.state[next(trainer.model.parameters())]
    assert state["func_evals"] > 2 * 4  # each step evaluated the closure several times
    run_interrupted(validate(raw), tmp_path / "b", after_step=3)  # L-BFGS's state (flat d, history) resumes
    assert_same_run(straight, run(validate(raw), out=tmp_path / "b", resume=True))


@pytest.mark.parametrize(
    ("optimizer", "match"),
    [
        ({"name": "sam", "base": "adam", "lr": 0.01}, r"train\.precision: \"fp16\" cannot drive optimizer 'sam'"),
        ({"name": "torch.lbfgs"}, r"train\.precision: \"fp16\" cannot drive optimizer 'torch.lbfgs'"),
    ],
)
def test_fp16_with_a_closure_optimizer_is_refused_in_one_line(optimizer: dict[str, Any], match: str) -> None:
    raw = small_raw(optimizer=optimizer, train={"epochs": 1, "batch_size": 32, "precision": "fp16"})
    with pytest.raises(ConfigError, match=match) as err:
        build_experiment(validate(raw))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("optimizer", "match"),
    [
        ({"name": "sam", "base": "coordinate"}, r"optimizer\.base: sam cannot wrap 'coordinate', a wrapper"),
        ({"name": "sam", "base": "torch.lbfgs"}, r"optimizer\.base: sam cannot wrap 'torch.lbfgs', an optimizer"),
        ({"name": "coordinate", "inner": "torch.lbfgs"}, r"optimizer\.inner: coordinate cannot wrap"),
        ({"name": "sam", "rho": 0.0}, r"optimizer: sam: Invalid rho: 0.0 \(must be a finite number > 0\)"),
        ({"name": "sam", "rho": float("inf")}, r"optimizer\.rho: inf is not a finite number"),
        ({"name": "sam", "base": "adam", "momentum": 0.9}, r"optimizer\.momentum: not an option of 'adam'"),
    ],
)
def test_bad_sam_configs_name_their_key(optimizer: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_experiment(validate(small_raw(optimizer=optimizer)))


def test_a_config_sam_wraps_its_base_with_the_given_options() -> None:
    raw = small_raw(optimizer={"name": "sam", "base": "sgd", "lr": 0.05, "momentum": 0.5, "rho": 0.2})
    config = validate(raw)
    optimizer = build_experiment(config).trainer.optimizer
    assert isinstance(optimizer, SAM) and isinstance(optimizer.base_optimizer, SGD)
    assert optimizer.rho == 0.2 and optimizer.param_groups is optimizer.base_optimizer.param_groups
    assert optimizer.param_groups[0]["lr"] == 0.05 and optimizer.param_groups[0]["momentum"] == 0.5
    assert validate(small_raw(optimizer={"name": "sam", "base": "adam"})).optimizer.lr == 1e-3  # adam's default


def test_a_trainer_refuses_fp16_with_a_closure_optimizer() -> None:
    data = moons()
    model = nn.Linear(2, 2)
    optimizer = SAM(model.parameters(), SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match=r'precision "fp16" cannot train with SAM, which needs a closure'):
        Trainer(model, optimizer, data, epochs=1, batch_size=32, precision="fp16")
