"""Config -> Trainer wiring: evaluation views (Nesterov's theta, Polyak averages), coordinate descent."""

from __future__ import annotations

import pytest
import torch

from regopt.lab.config import ConfigError, validate
from regopt.lab.experiment import build_experiment
from regopt.optim import CoordinateDescent, PolyakAveraging
from tests.conftest import small_raw


def _manual_val_loss(experiment) -> float:
    model, data = experiment.model, experiment.data
    model.eval()
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(data.x_val), data.y_val).item()
    model.train()
    return loss


def test_nesterov_runs_are_evaluated_at_theta_not_the_interim_point():
    config = validate(small_raw(optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True}))
    experiment = build_experiment(config)
    trainer = experiment.trainer
    trainer.fit()
    at_interim = _manual_val_loss(experiment)
    optimizer = trainer.optimizer
    with torch.no_grad():
        for p in experiment.model.parameters():
            p.sub_(0.9 * optimizer.state[p]["v"])
    at_theta = _manual_val_loss(experiment)
    with torch.no_grad():
        for p in experiment.model.parameters():
            p.add_(0.9 * optimizer.state[p]["v"])
    reported = trainer.history[-1]["val_loss"]
    assert reported == pytest.approx(at_theta, rel=1e-5)
    assert abs(at_theta - at_interim) > 1e-6  # the view made a difference


def test_averaging_config_evaluates_the_averaged_weights():
    config = validate(small_raw(averaging={"decay": 0.5}))
    experiment = build_experiment(config)
    trainer = experiment.trainer
    (averaging,) = [h for h in trainer.post_step if isinstance(h, PolyakAveraging)]
    trainer.fit()
    assert averaging.num_averaged == trainer.step
    with averaging.averaged():
        expected = _manual_val_loss(experiment)
    assert trainer.evaluate(experiment.data.x_val, experiment.data.y_val)[0] == pytest.approx(expected, rel=1e-6)
    assert trainer.evaluate(experiment.data.x_val, experiment.data.y_val)[0] != pytest.approx(
        _manual_val_loss(experiment), rel=1e-6
    )


def test_coordinate_descent_from_config_updates_one_layer_per_step():
    config = validate(small_raw(optimizer={"name": "coordinate", "inner": "adam", "lr": 0.01}))
    experiment = build_experiment(config)
    optimizer = experiment.trainer.optimizer
    assert isinstance(optimizer, CoordinateDescent)
    model = experiment.model
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    before = [layer.weight.detach().clone() for layer in layers]
    experiment.trainer.train_step(experiment.data.x_train[:32], experiment.data.y_train[:32])
    changed = [not torch.equal(layer.weight, b) for layer, b in zip(layers, before, strict=True)]
    assert changed == [True, False]


@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        ({"name": "coordinate", "inner": "adam", "lr": 0.01, "momentum": 0.9}, r"optimizer\.momentum: not an option"),
        ({"name": "coordinate", "inner": "lion", "lr": 0.01}, r"unknown optimizer 'lion'"),
        ({"name": "rmsprop", "lr": 0.01, "nesterov": True}, r"Invalid nesterov: True \(needs momentum > 0\)"),
    ],
)
def test_optimizer_config_errors(optimizer, message):
    with pytest.raises(ConfigError, match=message):
        build_experiment(validate(small_raw(optimizer=optimizer)))


def test_weight_decay_skips_biases_by_default_and_on_request_does_not():
    raw = small_raw(optimizer={"name": "adamw", "lr": 0.01, "weight_decay": 0.1})
    groups = build_experiment(validate(raw)).trainer.optimizer.param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert all(p.dim() == 2 for p in groups[0]["params"]) and all(p.dim() == 1 for p in groups[1]["params"])
    raw["optimizer"]["no_decay_bias_norm"] = False
    (group,) = build_experiment(validate(raw)).trainer.optimizer.param_groups
    assert group["weight_decay"] == 0.1


def test_init_policy_from_config_sets_every_layer():
    raw = small_raw(model={"name": "mlp", "widths": [512, 512]}, init={"policy": "he_normal", "bias": 0.1})
    model = build_experiment(validate(raw)).model
    hidden = model.fc2.weight
    assert abs(hidden.std().item() - (2 / 512) ** 0.5) < 0.003  # He: std sqrt(2 / fan_in)
    assert torch.all(model.fc1.bias == 0.1) and torch.all(model.head.bias == 0.1)
    with pytest.raises(ConfigError, match=r"init\.policy"):
        validate(small_raw(init={"policy": "magic"}))
