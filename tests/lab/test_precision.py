"""Mixed precision and compile (issue 17, item 4): ``[train] precision`` autocasts the forward pass, keeps float32
parameters and optimizer state, and under float16's gradient scaler a step whose gradients overflow leaves every
optimizer's state, step count and parameters untouched (torch's fused SGD has had exactly that bug); monitors and
the NaN guard see unscaled gradients; ``[train] compile`` keeps checkpoints loadable by an uncompiled model."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from regopt.lab.checkpoint import load_checkpoint
from regopt.lab.config import validate
from regopt.lab.experiment import build_experiment, build_run_model
from regopt.lab.optimizer_table import OPTIMIZERS, takes_closure
from regopt.lab.runs import run
from regopt.monitor import Monitor
from tests.conftest import small_raw


def raw_with(precision: str, optimizer: dict[str, Any] | None = None, **train: Any) -> dict[str, Any]:
    settings = {"epochs": 3, "batch_size": 32, "precision": precision, "evaluate_test": False, **train}
    return small_raw(
        data={"name": "mnist1d", "train_size": 256},
        model={"name": "mlp", "widths": [32]},
        optimizer=optimizer or {"name": "adam", "lr": 1e-2},
        train=settings,
    )


def test_bf16_trains_with_float32_parameters_and_state() -> None:
    experiment = build_experiment(validate(raw_with("bf16")))
    history = experiment.fit()
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"]
    plain = build_experiment(validate(raw_with("32"))).fit()
    assert history[-1]["train_loss"] != plain[-1]["train_loss"]  # autocast changed the arithmetic ...
    assert history[-1]["train_loss"] == pytest.approx(plain[-1]["train_loss"], rel=0.05)  # ... not the training
    tensors = [*experiment.model.parameters()]
    for p, state in experiment.trainer.optimizer.state.items():  # the moments s, r (a step count may be float64)
        tensors += [v for v in state.values() if isinstance(v, Tensor) and v.shape == p.shape]
    assert len(tensors) == 3 * len([*experiment.model.parameters()])
    assert {t.dtype for t in tensors} == {torch.float32}


def same(a: Any, b: Any) -> bool:
    """Nested state dicts equal, tensors bit for bit."""
    if isinstance(a, Tensor):
        return isinstance(b, Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


SKIP_CASES = [{"name": name} for name in OPTIMIZERS if not takes_closure(name)] + [  # closures: refused in fp16
    {"name": "torch.sgd", "momentum": 0.9, "fused": True},
    {"name": "torch.adam", "fused": True},
    {"name": "coordinate", "inner": "adam"},
]


@pytest.mark.parametrize("optimizer", SKIP_CASES, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_an_overflowed_fp16_step_leaves_the_optimizer_untouched(optimizer: dict[str, Any]) -> None:
    """Two clean steps build the state; in the third an inf enters one gradient: the scaler skips it. The
    optimizer's state (its moments and step counts) and the weights stay as they were, the scale halves, the
    NaN guard (on by default) does not stop training, and the next clean step trains on."""
    lr = 1e-2 if optimizer["name"] != "torch.adadelta" else 1.0
    experiment = build_experiment(validate(raw_with("fp16", {**optimizer, "lr": lr})))
    trainer = experiment.trainer
    trainer.fit(max_steps=2)
    state = copy.deepcopy(trainer.optimizer.state_dict())
    weights = [p.detach().clone() for p in trainer.model.parameters()]
    scale = trainer.precision.scaler.get_scale()  # type: ignore[union-attr]
    first = next(trainer.model.parameters())
    handle = first.register_hook(lambda g: torch.full_like(g, math.inf))
    try:
        trainer.fit(max_steps=3)
    finally:
        handle.remove()
    assert trainer.precision.skipped_steps == 1 and trainer.step == 3
    assert trainer.precision.scaler.get_scale() == scale / 2  # type: ignore[union-attr]
    assert same(trainer.optimizer.state_dict(), state)
    for p, before in zip(trainer.model.parameters(), weights, strict=True):
        assert torch.equal(p, before)
    trainer.fit(max_steps=4)
    assert not torch.equal(next(trainer.model.parameters()), weights[0])


class GradientNorm(Monitor):
    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.norms = model, []

    def after_backward(self, step: int) -> None:
        self.norms.append(float(torch.cat([p.grad.flatten() for p in self.model.parameters()]).norm()))


def test_monitors_see_unscaled_gradients_under_fp16() -> None:
    norms = {}
    for precision in ("32", "fp16"):
        experiment = build_experiment(validate(raw_with(precision)))
        monitor = GradientNorm(experiment.model)
        experiment.trainer.monitors.append(monitor)
        experiment.trainer.fit(max_steps=1)
        norms[precision] = monitor.norms[0]
    assert experiment.trainer.precision.scaler.get_scale() == 2.0**16  # type: ignore[union-attr]
    assert norms["fp16"] == pytest.approx(norms["32"], rel=0.02)  # float16 rounding, not the 65536 scale


def test_an_fp16_run_reports_its_skipped_steps_and_scale(tmp_path: Path) -> None:
    summary = run(validate(raw_with("fp16", epochs=1)), out=tmp_path).summary
    assert summary["precision"] == "fp16"
    assert summary["fp16_skipped_steps"] == 0 and summary["fp16_loss_scale"] == 2.0**16


def test_the_loss_scale_is_checkpointed() -> None:
    trainer = build_experiment(validate(raw_with("fp16"))).trainer
    trainer.fit(max_steps=1)
    trainer.precision.scaler.update(new_scale=1024.0)  # type: ignore[union-attr]
    trainer.precision.skipped_steps = 3
    fresh = build_experiment(validate(raw_with("fp16"))).trainer
    fresh.load_state_dict(trainer.state_dict())
    assert fresh.precision.scaler.get_scale() == 1024.0 and fresh.precision.skipped_steps == 3  # type: ignore[union-attr]


def test_a_bf16_run_resumes_to_the_same_bits(tmp_path: Path) -> None:
    raw = raw_with("bf16")
    raw["model"] = {"name": "mlp", "widths": [32], "dropout_hidden": 0.2}
    straight = run(validate(raw), out=tmp_path / "a")
    short = copy.deepcopy(raw)
    short["train"]["epochs"] = 1
    run(validate(short), out=tmp_path / "b")
    resumed = run(validate(raw), out=tmp_path / "b", resume=True)
    assert straight.summary["precision"] == "bf16" and "fp16_skipped_steps" not in straight.summary
    assert [r["val_loss"] for r in straight.history] == [r["val_loss"] for r in resumed.history]
    for a, b in zip(straight.experiment.model.parameters(), resumed.experiment.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_compiled_model_trains_resumes_exactly_and_its_checkpoint_loads_uncompiled(tmp_path: Path) -> None:
    raw = raw_with("32", compile=True, epochs=2)
    raw["model"]["dropout_hidden"] = 0.2  # compiled dropout draws from torch's RNG, which the checkpoint restores
    result = run(validate(raw), out=tmp_path / "a")
    assert result.experiment.trainer.forward_model is not result.experiment.model  # the compiled wrapper ran
    short = copy.deepcopy(raw)
    short["train"]["epochs"] = 1
    run(validate(short), out=tmp_path / "b")
    resumed = run(validate(raw), out=tmp_path / "b", resume=True)
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in result.history]
    config = validate(raw)
    model = build_run_model(config, result.experiment.data, torch.device("cpu"))
    checkpoint = load_checkpoint(result.path / "checkpoint.pt")
    model.load_state_dict(checkpoint["model"])  # strict: no "_orig_mod." keys
    model.eval()
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(result.experiment.data.x_val), result.experiment.data.y_val)
    assert float(loss) == pytest.approx(result.history[-1]["val_loss"], rel=1e-4)
