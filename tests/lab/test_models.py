"""Tests of regopt.lab.models: every built-in model from a table of configs, plus custom-model errors."""

from __future__ import annotations

import re
import sys
import textwrap
import types
import typing
from pathlib import Path

import pytest
import torch
from torch import nn

from regopt.lab.config import (
    Activation,
    Cnn1dConfig,
    Cnn2dConfig,
    CustomModelConfig,
    GruConfig,
    LinearModelConfig,
    MlpConfig,
    ModelConfig,
)
from regopt.lab.models import ACTIVATIONS, MODELS, ModelError, build_model, count_parameters

BATCH = 4

# (id, config, input_shape, output_dim)
CASES = [
    ("linear", LinearModelConfig(name="linear"), (9,), 1),
    ("logistic-image", LinearModelConfig(name="logistic"), (1, 8, 8), 10),
    ("mlp-default", MlpConfig(name="mlp"), (40,), 10),
    ("mlp-no-hidden", MlpConfig(name="mlp", widths=[]), (2,), 2),
    (
        "mlp-all-options",
        MlpConfig(
            name="mlp",
            widths=[16, 8, 4],
            activation="gelu",
            dropout_input=0.2,
            dropout_hidden=0.5,
            batch_norm=True,
        ),
        (64,),
        10,
    ),
    ("mlp-image", MlpConfig(name="mlp", widths=[8], activation="identity"), (1, 8, 8), 10),
    ("cnn1d", Cnn1dConfig(name="cnn1d"), (40,), 10),
    ("cnn1d-sequence", Cnn1dConfig(name="cnn1d", channels=8), (40, 1), 10),
    ("cnn1d-features", Cnn1dConfig(name="cnn1d", channels=4), (17, 3), 5),
    ("cnn1d-shortest", Cnn1dConfig(name="cnn1d", channels=4, activation="tanh"), (3,), 2),
    (
        "cnn1d-bn-dropout",
        Cnn1dConfig(name="cnn1d", channels=6, batch_norm=True, dropout_hidden=0.3, activation="elu"),
        (101,),
        3,
    ),
    ("cnn2d-digits", Cnn2dConfig(name="cnn2d"), (1, 8, 8), 10),
    (
        "cnn2d-bn-dropout",
        Cnn2dConfig(name="cnn2d", channels=[4, 4, 4, 4], batch_norm=True, dropout_hidden=0.5),
        (1, 8, 8),
        10,
    ),
    ("cnn2d-odd-rgb", Cnn2dConfig(name="cnn2d", channels=[4, 6], activation="leaky_relu"), (3, 5, 7), 4),
    ("cnn2d-1x1", Cnn2dConfig(name="cnn2d", channels=[3]), (2, 1, 1), 2),
    ("gru-flat", GruConfig(name="gru"), (40,), 10),
    ("gru-sequence", GruConfig(name="gru"), (40, 1), 10),
    ("gru-unidirectional", GruConfig(name="gru", bidirectional=False, hidden_size=5), (12,), 3),
    ("gru-deep-features", GruConfig(name="gru", num_layers=2, hidden_size=4), (10, 3), 2),
]


def _build(cfg: ModelConfig, shape: tuple[int, ...], out: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(cfg, shape, out)


@pytest.mark.parametrize(("cfg", "shape", "out"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_output_shape_and_finite_grads(cfg: ModelConfig, shape: tuple[int, ...], out: int) -> None:
    model = _build(cfg, shape, out)
    x = torch.randn(BATCH, *shape)
    y = model(x)
    assert y.shape == (BATCH, out)
    assert y.dtype == torch.float32
    (y * torch.randn_like(y)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    model.eval()
    with torch.no_grad():
        assert model(x[:1]).shape == (1, out)


@pytest.mark.parametrize(("cfg", "shape", "out"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_same_seed_same_initial_weights(cfg: ModelConfig, shape: tuple[int, ...], out: int) -> None:
    a, b, c = _build(cfg, shape, out), _build(cfg, shape, out), _build(cfg, shape, out, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())


def test_cnn1d_has_the_papers_parameter_count() -> None:
    model = build_model(Cnn1dConfig(name="cnn1d", channels=25), (40,), 10)
    conv1 = 1 * 25 * 5 + 25
    conv2 = 25 * 25 * 3 + 25
    conv3 = 25 * 25 * 3 + 25
    linear = 125 * 10 + 10
    assert count_parameters(model) == conv1 + conv2 + conv3 + linear == 5210
    assert model.head.in_features == 125


def test_cnn1d_matches_convbase_forward() -> None:
    """Same weights as a literal transcription of the paper's ConvBase.forward -> same output."""
    model = _build(Cnn1dConfig(name="cnn1d"), (40,), 10)
    x = torch.randn(3, 40)
    h = x.view(-1, 1, x.shape[-1])
    h = model.conv1(h).relu()
    h = model.conv2(h).relu()
    h = model.conv3(h).relu()
    expected = model.head(h.view(h.shape[0], -1))
    torch.testing.assert_close(model(x), expected)
    torch.testing.assert_close(model(x.unsqueeze(-1)), expected)


def test_mlp_dropout_random_in_train_deterministic_in_eval() -> None:
    model = _build(MlpConfig(name="mlp", widths=[32, 32], dropout_input=0.2, dropout_hidden=0.5), (40,), 10)
    x = torch.randn(8, 40)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


def test_mlp_layout_is_flat_and_named() -> None:
    model = build_model(
        MlpConfig(name="mlp", widths=[8, 8], dropout_input=0.1, dropout_hidden=0.1, batch_norm=True), (5,), 2
    )
    assert isinstance(model, nn.Sequential)
    names = [name for name, _ in model.named_children()]
    assert names == [
        "flatten", "dropout_input",
        "fc1", "bn1", "act1", "dropout1",
        "fc2", "bn2", "act2", "dropout2",
        "head",
    ]  # fmt: skip
    assert all(not list(child.children()) for child in model.children())  # no nesting


@pytest.mark.parametrize(
    ("cfg", "shape", "norm_type", "count"),
    [
        (MlpConfig(name="mlp", widths=[8, 8, 8]), (5,), nn.BatchNorm1d, 3),
        (Cnn1dConfig(name="cnn1d", channels=4), (40,), nn.BatchNorm1d, 3),
        (Cnn2dConfig(name="cnn2d", channels=[4, 4]), (1, 8, 8), nn.BatchNorm2d, 2),
    ],
    ids=["mlp", "cnn1d", "cnn2d"],
)
def test_batch_norm_flag_adds_norm_layers(
    cfg: ModelConfig, shape: tuple[int, ...], norm_type: type[nn.Module], count: int
) -> None:
    def norms(model: nn.Module) -> int:
        return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())

    plain = build_model(cfg, shape, 3)
    normed = build_model(cfg.model_copy(update={"batch_norm": True}), shape, 3)
    assert norms(plain) == 0
    assert sum(isinstance(m, norm_type) for m in normed.modules()) == norms(normed) == count


def test_cnn2d_pools_while_spatial_size_allows() -> None:
    model = build_model(Cnn2dConfig(name="cnn2d", channels=[4, 4, 4, 4]), (1, 8, 8), 10)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3  # 8 -> 4 -> 2 -> 1, then none
    assert model.head.in_features == 4


def test_gru_accepts_both_sequence_layouts() -> None:
    model = _build(GruConfig(name="gru"), (40,), 10)
    x = torch.randn(3, 40)
    torch.testing.assert_close(model(x), model(x.unsqueeze(-1)))
    assert model.head.in_features == 2 * 6


def test_gru_classifies_from_final_states() -> None:
    model = _build(GruConfig(name="gru", hidden_size=5), (12,), 3)
    x = torch.randn(2, 12, 1)
    output, _ = model.gru(x)
    final = torch.cat([output[:, -1, :5], output[:, 0, 5:]], dim=1)  # forward after step L, backward after 1
    torch.testing.assert_close(model(x), model.head(final))


@pytest.mark.parametrize("activation", typing.get_args(Activation))
def test_every_config_activation_has_a_module(activation: str) -> None:
    assert set(ACTIVATIONS) == set(typing.get_args(Activation))
    model = build_model(MlpConfig(name="mlp", widths=[4], activation=activation), (3,), 2)
    assert isinstance(model.act1, ACTIVATIONS[activation])


def test_models_lists_every_config_name() -> None:
    names = set()
    for cls in typing.get_args(typing.get_args(ModelConfig)[0]):
        names.update(typing.get_args(cls.model_fields["name"].annotation))
    assert set(MODELS) == names
    assert all(isinstance(text, str) and text and "\n" not in text for text in MODELS.values())


def test_share_hidden_never_ties_the_first_layer() -> None:
    """Issue 14, 3.6: with input width == hidden width, fc1 used to be fc2 is fc3."""
    model = build_model(MlpConfig(name="mlp", widths=[8, 8, 8], share_hidden=True), (8,), 3)
    assert model.fc1 is not model.fc2 and model.fc1 is not model.fc3
    assert model.fc2 is model.fc3
    assert count_parameters(model) == (8 * 8 + 8) * 2 + (8 * 3 + 3)


def test_share_hidden_ties_only_consecutive_equal_widths() -> None:
    model = build_model(MlpConfig(name="mlp", widths=[8, 8, 4, 4, 4], share_hidden=True), (8,), 3)
    assert len({id(model.fc1), id(model.fc2), id(model.fc3)}) == 3
    assert model.fc4 is model.fc5 and model.fc4 is not model.fc3


def test_count_parameters_counts_shared_tensors_once() -> None:
    layer = nn.Linear(3, 2)
    assert count_parameters(nn.Sequential(layer, layer)) == 3 * 2 + 2


# ------------------------------------------------------------------------------------------- bad shapes
@pytest.mark.parametrize(
    ("cfg", "shape", "out", "match"),
    [
        (
            Cnn2dConfig(name="cnn2d"),
            (64,),
            10,
            r"^model cnn2d needs image input of shape \(channels, height, width\), got \(64,\); "
            r"for digits set data\.image = true; .*use model cnn1d$",
        ),
        (Cnn1dConfig(name="cnn1d"), (2,), 10, r"^model cnn1d needs sequences of length >= 3"),
        (Cnn1dConfig(name="cnn1d"), (1, 8, 8), 10, r"^model cnn1d needs sequence input .*got \(1, 8, 8\)$"),
        (GruConfig(name="gru"), (1, 8, 8), 10, r"^model gru needs sequence input .*got \(1, 8, 8\)$"),
        (MlpConfig(name="mlp"), (), 10, r"^model mlp: input shape must be non-empty positive sizes"),
        (MlpConfig(name="mlp"), (4, 0), 10, r"^model mlp: input shape must be non-empty positive sizes"),
        (MlpConfig(name="mlp"), (4,), 0, r"^model mlp: output_dim must be positive, got 0$"),
        (MlpConfig(name="mlp"), (4.5,), 2, r"^model mlp: input_shape and output_dim must be integers"),
        (types.SimpleNamespace(name="transformer"), (4,), 2, r"^model\.name: unknown model 'transformer'"),
    ],
    ids=["cnn2d-flat", "cnn1d-short", "cnn1d-image", "gru-image", "empty", "zero", "out-0", "float", "name"],
)
def test_unusable_shapes_and_names_raise_model_error(
    cfg: ModelConfig, shape: tuple[int, ...], out: int, match: str
) -> None:
    with pytest.raises(ModelError, match=match) as info:
        build_model(cfg, shape, out)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------------------------- custom
USER_MODULE = """
import math
import torch

NOT_CALLABLE = 3

def tiny(input_shape, output_dim, width=8):
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(math.prod(input_shape), width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, output_dim),
    )

def returns_list(input_shape, output_dim):
    return [torch.nn.Linear(1, 1)]

def fails(input_shape, output_dim):
    raise RuntimeError("user bug")
"""


@pytest.fixture
def user_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write ``regopt_test_user_models`` (good) and ``regopt_test_broken_models`` (fails on import)."""
    (tmp_path / "regopt_test_user_models.py").write_text(textwrap.dedent(USER_MODULE))
    (tmp_path / "regopt_test_broken_models.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "regopt_test_user_models"
    for name in ("regopt_test_user_models", "regopt_test_broken_models"):
        sys.modules.pop(name, None)


def test_custom_model_is_built_with_kwargs(user_modules: str) -> None:
    cfg = CustomModelConfig(name="custom", target=f"{user_modules}:tiny", kwargs={"width": 16})
    model = _build(cfg, (1, 8, 8), 10)
    assert model[1].in_features == 64 and model[1].out_features == 16
    assert model(torch.randn(BATCH, 1, 8, 8)).shape == (BATCH, 10)
    again = _build(cfg, (1, 8, 8), 10)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters(), strict=True))


@pytest.mark.parametrize(
    ("target", "kwargs", "match"),
    [
        ("regopt_no_such_module_xyz:f", {}, r"^model\.target: cannot import 'regopt_no_such_module_xyz': "),
        (
            "regopt_test_broken_models:f",
            {},
            r"^model\.target: cannot import 'regopt_test_broken_models': RuntimeError: boom at import$",
        ),
        (
            "regopt_test_user_models:missing",
            {},
            r"^model\.target: module 'regopt_test_user_models' has no attribute 'missing'$",
        ),
        (
            "regopt_test_user_models:NOT_CALLABLE",
            {},
            r"^model\.target: 'regopt_test_user_models:NOT_CALLABLE' is not callable \(it is of type int\)$",
        ),
        (
            "regopt_test_user_models:returns_list",
            {},
            r"^model\.target: 'regopt_test_user_models:returns_list' returned list, "
            r"expected a torch\.nn\.Module$",
        ),
        (
            "regopt_test_user_models:tiny",
            {"depth": 3},
            r"^model\.kwargs: 'regopt_test_user_models:tiny' cannot be called as .*'depth'",
        ),
        ("no_colon_here", {}, r"^model\.target: expected 'package\.module:function', got 'no_colon_here'$"),
    ],
    ids=[
        "no-module",
        "import-fails",
        "no-attribute",
        "not-callable",
        "not-module",
        "bad-kwargs",
        "malformed",
    ],
)
def test_custom_model_errors(user_modules: str, target: str, kwargs: dict, match: str) -> None:
    # model_construct skips validation so the malformed target reaches the builder.
    cfg = CustomModelConfig.model_construct(name="custom", target=target, kwargs=kwargs)
    with pytest.raises(ModelError, match=match) as info:
        build_model(cfg, (4,), 2)
    assert "\n" not in str(info.value)


def test_errors_inside_a_custom_function_propagate_unchanged(user_modules: str) -> None:
    cfg = CustomModelConfig(name="custom", target=f"{user_modules}:fails")
    with pytest.raises(RuntimeError, match=re.escape("user bug")):
        build_model(cfg, (4,), 2)
