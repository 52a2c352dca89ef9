"""Newton and HessianFree in the Trainer and from a config (issue 20): their closure returns the objective and
the output with graphs (no backward); a Trainer step equals a hand-written loop bit for bit, penalty included;
monitors read the gradient at theta from ``.grad``; runs lower the loss full-batch and resume to the same bits;
what cannot go with them (accumulation, clipping, the ill-conditioning check on the step, fp16) is refused by key
in one line."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regopt.diagnostics import clip_by_norm
from regopt.lab.closure_config import check_closure_config
from regopt.lab.config import ConfigError, validate
from regopt.lab.distributed import World
from regopt.lab.experiment import build_experiment
from regopt.lab.runs import run
from regopt.lab.trainer import Trainer
from regopt.optim import HessianFree, Newton, differentiates_closure, needs_closure
from tests.conftest import small_raw
from tests.lab.interruptions import assert_same_run, run_interrupted
from tests.lab.test_closure_optimizers import FirstGradients, moons, penalty

STEPS = 3


OPTIMIZERS = {
    "newton": lambda ps: Newton(ps, damping=0.1, saddle_free=True, line_search="backtracking"),
    "hessian_free": lambda ps: HessianFree(ps, curvature="ggn", damping=1.0),
    "hessian_free(hessian)": lambda ps: HessianFree(ps, curvature="hessian", damping=1.0, lr=0.5),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_a_trainer_step_equals_a_hand_written_loop_bit_for_bit(name: str) -> None:
    data = moons()
    n = len(data.x_train)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
    by_hand, initial = copy.deepcopy(model), copy.deepcopy(model)
    monitor = FirstGradients(model)
    optimizer = OPTIMIZERS[name](list(model.parameters()))
    assert needs_closure(optimizer) and differentiates_closure(optimizer)
    trainer = Trainer(
        model, optimizer, data, epochs=STEPS, batch_size=n, shuffle=False, penalties=[penalty], monitors=[monitor]
    )
    trainer.fit()

    reference = OPTIMIZERS[name](list(by_hand.parameters()))
    x, y = data.x_train, data.y_train
    expected = []
    for _ in range(STEPS):
        by_hand.zero_grad()
        loss = F.cross_entropy(by_hand(x), y) + penalty(by_hand)  # the objective at theta, penalty included
        expected.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(by_hand.parameters()))]))

        def closure() -> tuple[Tensor, Tensor]:
            output = by_hand(x)
            return F.cross_entropy(output, y) + penalty(by_hand), output

        reference.step(closure)
    for a, b in zip(model.parameters(), by_hand.parameters(), strict=True):
        assert torch.equal(a, b)
    assert len(monitor.seen) == STEPS
    for seen, g in zip(monitor.seen, expected, strict=True):  # .grad: the whole objective's gradient at theta
        torch.testing.assert_close(seen, g)
    moved = torch.cat([(p - q).flatten() for p, q in zip(model.parameters(), initial.parameters(), strict=True)])
    assert moved.abs().max() > 1e-2  # far above rounding: the steps did move the weights


@pytest.mark.parametrize(
    "optimizer",
    [
        {"name": "newton", "damping": 0.1, "saddle_free": True, "line_search": "backtracking"},
        {"name": "hessian_free", "damping": 1.0},
    ],
    ids=["newton", "hessian_free"],
)
def test_full_batch_from_a_config_lowers_the_loss_and_resumes(tmp_path: Path, optimizer: dict[str, Any]) -> None:
    raw = small_raw(optimizer=optimizer, train={"epochs": 6, "batch_size": 256, "evaluate_test": False})
    straight = run(validate(raw), out=tmp_path / "a")
    trainer = straight.experiment.trainer
    assert type(trainer.optimizer).__name__ == {"newton": "Newton", "hessian_free": "HessianFree"}[optimizer["name"]]
    assert trainer.step == 6  # the whole training set (256 examples) per epoch, one step each
    # newton 0.48 -> 0.17, hessian_free 0.62 -> 0.26 (full batch, one step an epoch)
    assert straight.history[-1]["train_loss"] < 0.6 * straight.history[0]["train_loss"]
    run_interrupted(validate(raw), tmp_path / "b", after_step=2)  # HF's damping and warm start resume
    assert_same_run(straight, run(validate(raw), out=tmp_path / "b", resume=True))


@pytest.mark.parametrize(
    ("sections", "match"),
    [
        ({"train": {"accumulate": 2}}, r"train\.accumulate: 2 micro-batches, but optimizer 'newton' differentiates"),
        ({"train": {"clip_grad_norm": 1.0}}, r"train\.clip_grad_norm: clipping cannot act on the step of 'newton'"),
        ({"train": {"clip_grad_value": 1.0}}, r"train\.clip_grad_value: clipping cannot act"),
        ({"diagnostics": {"ill_conditioning": {}}}, r"diagnostics\.ill_conditioning: with 'newton' .* set probe_size"),
        ({"train": {"precision": "fp16"}}, r"train\.precision: \"fp16\" cannot drive optimizer 'newton'"),
        ({"train": {"compile": True}}, r"train\.compile: optimizer 'newton' differentiates the loss twice"),
    ],
    ids=["accumulate", "clip_norm", "clip_value", "ill_conditioning", "fp16", "compile"],
)
def test_what_cannot_go_with_newton_is_refused_by_key_in_one_line(sections: dict[str, Any], match: str) -> None:
    train = {"epochs": 1, "batch_size": 256, **sections.pop("train", {})}
    raw = small_raw(optimizer={"name": "newton", "damping": 0.1}, train=train, **sections)
    with pytest.raises(ConfigError, match=match) as err:
        build_experiment(validate(raw))
    assert "\n" not in str(err.value)


def test_the_ill_conditioning_check_on_a_probe_batch_runs_with_newton(tmp_path: Path) -> None:
    raw = small_raw(
        optimizer={"name": "newton", "damping": 0.1, "saddle_free": True},
        train={"epochs": 2, "batch_size": 256, "evaluate_test": False},
        diagnostics={"ill_conditioning": {"probe_size": 64, "every": 1}},
    )
    result = run(validate(raw), out=tmp_path)
    assert len(result.experiment.diagnostics.monitors["ill_conditioning"].history) == 2  # type: ignore[attr-defined]


def test_a_trainer_refuses_clipping_and_accumulation_with_hessian_free() -> None:
    data = moons()
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"gradient transforms \(clipping\) cannot act on HessianFree's step"):
        Trainer(
            model, HessianFree(model.parameters()), data, epochs=1, batch_size=256, grad_transforms=[clip_by_norm(1)]
        )
    with pytest.raises(ValueError, match=r"accumulate = 2: HessianFree differentiates the whole batch's loss"):
        Trainer(model, HessianFree(model.parameters()), data, epochs=1, batch_size=256, accumulate=2)
    with pytest.raises(ValueError, match=r"HessianFree differentiates the loss twice, which a torch.compile'd model"):
        Trainer(model, HessianFree(model.parameters()), data, epochs=1, batch_size=256, compile_model=True)


def test_newton_under_a_world_of_ranks_is_refused_by_name() -> None:
    config = validate(small_raw(optimizer={"name": "newton", "damping": 0.1}, train={"batch_size": 256}))
    optimizer = Newton([nn.Parameter(torch.zeros(2))])
    with pytest.raises(ConfigError, match=r"optimizer\.name: 'newton' cannot train under torchrun: its autograd"):
        check_closure_config(config, optimizer, World(rank=0, size=2))
    check_closure_config(config, optimizer, None)  # one process: fine


def test_gauss_newton_with_the_multi_task_model_is_refused_and_the_hessian_trains(tmp_path: Path) -> None:
    data = {"name": "digits"}
    multitask = {"tasks": ["digit", "parity"]}
    train = {"epochs": 2, "batch_size": 2000, "evaluate_test": False}
    raw = small_raw(data=data, multitask=multitask, optimizer={"name": "hessian_free"}, train=train)
    with pytest.raises(ConfigError, match=r"multitask: the Gauss-Newton curvature of 'hessian_free' needs the model"):
        build_experiment(validate(raw))
    raw["optimizer"] = {"name": "hessian_free", "curvature": "hessian"}
    result = run(validate(raw), out=tmp_path)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_saddle_free_newton_trains_a_cnn_whose_hessian_is_singular(tmp_path: Path) -> None:
    # a 1-D CNN's Hessian with dead units (182 of 338 rows zero after a step): MKL's float32 eigh returned NaN on it
    # with one thread, so Newton raised "|H| + damping I is singular" at damping 0.1; the float64 eigh does not
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        raw = small_raw(
            data={"name": "mnist1d", "num_samples": 400},
            model={"name": "cnn1d", "channels": 4},
            optimizer={"name": "newton", "damping": 0.1, "saddle_free": True},
            train={"epochs": 2, "batch_size": 256, "evaluate_test": False},
        )
        result = run(validate(raw), out=tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert result.experiment.trainer.step == 2
    assert all(math.isfinite(row["train_loss"]) for row in result.history)
