"""A custom model whose forward does not return a (batch, output_dim) tensor is refused at build (issue 15, item 2)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from regopt.lab.config import CustomModelConfig
from regopt.lab.models import build_model
from regopt.lab.models.base import ModelError

USER_MODULE = """
import torch

class Dict(torch.nn.Module):
    def __init__(self, input_shape, output_dim):
        super().__init__()
        self.fc = torch.nn.Linear(input_shape[0], output_dim)

    def forward(self, x):
        return {"logits": self.fc(x)}

class Wide(Dict):
    def forward(self, x):
        return torch.cat([self.fc(x), self.fc(x)], dim=1)

class Noisy(Dict):
    def forward(self, x):
        return self.fc(x) + torch.randn(len(x), 1)

def dict_model(input_shape, output_dim):
    return Dict(input_shape, output_dim)

def wide_model(input_shape, output_dim):
    return Wide(input_shape, output_dim)

def noisy_model(input_shape, output_dim):
    return torch.nn.Sequential(Noisy(input_shape, output_dim), torch.nn.BatchNorm1d(output_dim))
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / "regopt_test_output_models.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "regopt_test_output_models"
    sys.modules.pop("regopt_test_output_models", None)


@pytest.mark.parametrize(
    ("function", "match"),
    [
        ("dict_model", r"^model\.target: .*dict_model' returned dict from forward, expected a Tensor of shape "),
        ("wide_model", r"^model\.target: .*wide_model' returned a Tensor of shape \(2, 6\) from forward, expected "),
    ],
)
def test_a_forward_that_returns_no_logits_tensor_is_refused_in_one_line(module: str, function: str, match: str) -> None:
    with pytest.raises(ModelError, match=match) as info:
        build_model(CustomModelConfig(name="custom", target=f"{module}:{function}"), (4,), 3)
    assert "\n" not in str(info.value)


def test_the_check_leaves_the_model_and_the_random_state_as_they_were(module: str) -> None:
    torch.manual_seed(0)
    model = build_model(CustomModelConfig(name="custom", target=f"{module}:noisy_model"), (4,), 3)
    after_build = torch.rand(1)
    torch.manual_seed(0)
    model_again = build_model(CustomModelConfig(name="custom", target=f"{module}:noisy_model"), (4,), 3)
    assert model.training
    batch_norm = model[1]
    assert int(batch_norm.num_batches_tracked) == 0 and torch.equal(batch_norm.running_mean, torch.zeros(3))
    torch.manual_seed(0)
    torch.nn.Linear(4, 3)  # what the factory itself draws
    assert torch.equal(after_build, torch.rand(1))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model_again.parameters(), strict=True))
