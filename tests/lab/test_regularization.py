"""[regularize] config keys reach the right Trainer phase and have their effect."""

from __future__ import annotations

import json

import pytest
import torch

from regopt.diagnostics import NonFiniteGuard
from regopt.lab.config import ConfigError, validate
from regopt.lab.experiment import build_experiment
from regopt.lab.models import count_parameters
from regopt.lab.runs import run
from regopt.regularize import (
    L1,
    L2,
    ActivationL1,
    EarlyStopping,
    ElasticNet,
    ImageAugment,
    InputNoise,
    MaxNorm,
    SignalAugment,
)
from regopt.regularize.noise import GaussianNoise
from tests.conftest import small_raw


def _trainer(regularize, **sections):
    return build_experiment(validate(small_raw(regularize=regularize, **sections))).trainer


@pytest.mark.parametrize(
    ("regularize", "phase", "kind"),
    [
        ({"l2": {"alpha": 1e-3}}, "penalties", L2),
        ({"l1": {"alpha": 1e-3}}, "penalties", L1),
        ({"elastic_net": {"alpha": 1e-3}}, "penalties", ElasticNet),
        ({"activation_l1": {"alpha": 1e-3}}, "penalties", ActivationL1),
        ({"max_norm": {"c": 2.0}}, "post_step", MaxNorm),
        ({"input_noise": {"std": 0.1}}, "batch_transforms", InputNoise),
        ({"early_stopping": {"patience": 3}}, "monitors", EarlyStopping),
    ],
)
def test_each_key_lands_in_its_phase(regularize, phase, kind):
    trainer = _trainer(regularize)
    assert [type(h) for h in getattr(trainer, phase) if not isinstance(h, NonFiniteGuard)] == [kind]


def test_augmentation_picks_images_or_signals_by_data():
    digits = _trainer({"augment_image": {"rotate": 10}}, data={"name": "digits", "train_size": 100})
    assert [type(t) for t in digits.batch_transforms] == [ImageAugment]
    signals = _trainer({"augment_signal": {"shift": 3}}, data={"name": "mnist1d", "train_size": 100})
    assert [type(t) for t in signals.batch_transforms] == [SignalAugment]
    with pytest.raises(ConfigError, match="augment_image: needs image data"):
        _trainer({"augment_image": {"rotate": 10}})
    with pytest.raises(ConfigError, match="augment_signal: needs 1-D signals"):
        _trainer(
            {"augment_signal": {"shift": 3}},
            data={"name": "digits", "image": True, "train_size": 100},
            model={"name": "cnn2d"},
        )


def test_model_level_noise_and_label_smoothing():
    trainer = _trainer({"hidden_noise": {"std": 0.1}, "label_smoothing": 0.1})
    assert any(isinstance(m, GaussianNoise) for m in trainer.model.modules())
    logits, y = torch.randn(8, 2), torch.randint(0, 2, (8,))
    expected = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1)
    assert trainer.loss_fn(logits, y) == pytest.approx(expected.item())
    trainer = _trainer({"weight_noise": {"std": 0.1}})
    assert any(hasattr(m, "parametrizations") for m in trainer.model.modules())
    with pytest.raises(ConfigError, match="hidden_noise: needs a Sequential"):
        _trainer({"hidden_noise": {"std": 0.1}}, model={"name": "gru"})
    with pytest.raises(ConfigError, match="label_smoothing: only for classification"):
        _trainer({"label_smoothing": 0.1}, data={"name": "polynomial"}, model={"name": "linear"})


def test_proximal_l1_gives_exact_zeros_and_max_norm_bounds_rows(tmp_path):
    trainer = _trainer(
        {"l1": {"alpha": 0.01, "proximal": True}, "max_norm": {"c": 1.0}}, train={"epochs": 5, "batch_size": 32}
    )
    trainer.fit()
    weights = [p for p in trainer.model.parameters() if p.dim() == 2]
    assert sum(int((w == 0).sum()) for w in weights) > 0
    assert all((w.norm(dim=1) <= 1.0 + 1e-5).all() for w in weights)


def test_early_stopping_stops_restores_and_then_uses_the_validation_data(tmp_path):
    raw = small_raw(
        data={"name": "digits", "train_size": 150},
        model={"name": "mlp", "widths": [128]},
        train={"epochs": 60, "batch_size": 32},
        regularize={"early_stopping": {"patience": 4, "monitor": "val_loss"}},
    )
    stopped = run(validate(raw), out=tmp_path)
    es = stopped.summary["early_stopping"]
    assert es["stopped_epoch"] == es["best_epoch"] + 4 < 60
    assert stopped.summary["epochs"] == es["stopped_epoch"]
    assert stopped.summary["final_epoch"] == es["best_epoch"]  # "final" = the restored weights, which are tested
    for then, algorithm in (("retrain", "7.2"), ("continue", "7.3")):
        raw["regularize"]["early_stopping"]["then"] = then
        raw["name"] = then
        summary = json.loads((run(validate(raw), out=tmp_path).path / "summary.json").read_text())
        assert summary["early_stopping"]["then"]["algorithm"].startswith(algorithm)
    assert summary["early_stopping"]["then"]["steps"] > 0


def test_parameter_sharing_reuses_one_module():
    shared = build_experiment(validate(small_raw(model={"name": "mlp", "widths": [32, 32, 32], "share_hidden": True})))
    plain = build_experiment(validate(small_raw(model={"name": "mlp", "widths": [32, 32, 32]})))
    assert count_parameters(plain.model) - count_parameters(shared.model) == 32 * 32 + 32  # fc3 is fc2
    assert shared.model.fc2 is shared.model.fc3
    shared.trainer.fit()  # trains with the shared module


def test_every_regularize_section_is_wired_by_the_table_and_nothing_else() -> None:
    """Issue 16: a regularizer is wired by one row of REGULARIZERS beside its schema; a section without a row
    (or a row without a section) would be silently ignored."""
    from regopt.lab.schema.regularize import REGULARIZERS, RegularizeConfig

    sections = {key for key in RegularizeConfig.model_fields if key != "label_smoothing"}
    assert sections == set(REGULARIZERS)
