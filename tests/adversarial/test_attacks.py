"""FGSM and PGD: they raise the loss, stay in the eps ball and the valid range, and leave the model as found."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from regopt.adversarial import FGSM, PGD, eval_mode, fgsm, input_gradient, pgd

TOL = 1e-6


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.Dropout(0.2), nn.Tanh(), nn.Linear(32, 4))


def batch(seed: int = 1, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 4, 4, generator=g), torch.randint(0, 4, (n,), generator=g)


def per_example_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with eval_mode(model), torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


ATTACKS = {
    "fgsm": lambda eps, clamp=None: FGSM(eps, clamp=clamp),
    "pgd_linf": lambda eps, clamp=None: PGD(eps, steps=10, clamp=clamp, generator=torch.Generator().manual_seed(0)),
    "pgd_linf_no_start": lambda eps, clamp=None: PGD(eps, steps=10, random_start=False, clamp=clamp),
    "pgd_l2": lambda eps, clamp=None: PGD(
        eps, norm="l2", steps=10, clamp=clamp, generator=torch.Generator().manual_seed(0)
    ),
}
NORM = {"fgsm": "linf", "pgd_linf": "linf", "pgd_linf_no_start": "linf", "pgd_l2": "l2"}


def distance(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_raises_the_loss(name):
    model, (x, y) = make_model(), batch()
    eps = 0.1 if NORM[name] == "linf" else 0.4
    x_adv = ATTACKS[name](eps)(model, F.cross_entropy, x, y)
    clean, adversarial = per_example_loss(model, x, y), per_example_loss(model, x_adv, y)
    assert adversarial.mean() > clean.mean() + 0.05
    assert (adversarial > clean).float().mean() > 0.95  # (almost) every example got worse


@pytest.mark.parametrize("name", list(ATTACKS))
@pytest.mark.parametrize("clamp", [None, (0.0, 1.0)])
def test_attack_stays_in_the_eps_ball_and_the_valid_range(name, clamp):
    model, (x, y) = make_model(), batch()
    eps = 0.3 if NORM[name] == "linf" else 1.5
    x_adv = ATTACKS[name](eps, clamp)(model, F.cross_entropy, x, y)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert (distance(x_adv - x, NORM[name]) <= eps + TOL).all()
    if clamp is not None:
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    else:
        assert x_adv.min() < 0.0 or x_adv.max() > 1.0  # the ball reaches outside [0, 1]


def test_fgsm_is_the_sign_step_and_l2_pgd_reaches_the_sphere():
    model, (x, y) = make_model(), batch()
    with eval_mode(model):
        expected = x + 0.05 * input_gradient(model, F.cross_entropy, x, y).sign()
    assert torch.equal(fgsm(model, F.cross_entropy, x, y, 0.05), expected)
    x_adv = pgd(model, F.cross_entropy, x, y, 0.5, norm="l2", steps=10, random_start=False)
    assert torch.allclose((x_adv - x).flatten(1).norm(dim=1), torch.full((len(x),), 0.5), atol=1e-4)


def test_pgd_is_at_least_as_strong_as_fgsm():
    model, (x, y) = make_model(), batch(n=256)
    x_fgsm = fgsm(model, F.cross_entropy, x, y, 0.2)
    x_pgd = pgd(model, F.cross_entropy, x, y, 0.2, steps=20, generator=torch.Generator().manual_seed(0))
    assert per_example_loss(model, x_pgd, y).mean() >= per_example_loss(model, x_fgsm, y).mean()


@pytest.mark.parametrize("name", list(ATTACKS))
@pytest.mark.parametrize("training", [True, False])
def test_model_mode_and_gradients_are_left_untouched(name, training):
    model, (x, y) = make_model(), batch()
    model.train(training)
    model[2].eval()  # a mixed state must come back as it was
    modes = [m.training for m in model.modules()]
    before = [p.detach().clone() for p in model.parameters()]
    ATTACKS[name](0.1)(model, F.cross_entropy, x, y)
    assert [m.training for m in model.modules()] == modes
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    # existing gradients are not changed either
    F.cross_entropy(model(x), y).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    ATTACKS[name](0.1)(model, F.cross_entropy, x, y)
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters(), strict=True))


def test_attack_runs_in_eval_mode():
    seen = []

    class Spy(nn.Module):
        def forward(self, x):
            seen.append(self.training)
            return x.flatten(1)[:, :4]

    model = Spy().train()
    x, y = batch()
    fgsm(model, F.cross_entropy, x, y, 0.1)
    pgd(model, F.cross_entropy, x, y, 0.1, steps=3)
    assert seen == [False] * 4 and model.training


def test_zero_eps_returns_the_input_and_seeded_pgd_is_reproducible():
    model, (x, y) = make_model(), batch()
    assert torch.equal(fgsm(model, F.cross_entropy, x, y, 0.0), x)
    assert torch.equal(pgd(model, F.cross_entropy, x, y, 0.0), x)
    a = PGD(0.1, steps=3, generator=torch.Generator().manual_seed(5))(model, F.cross_entropy, x, y)
    b = PGD(0.1, steps=3, generator=torch.Generator().manual_seed(5))(model, F.cross_entropy, x, y)
    assert torch.equal(a, b)


def test_repr_and_default_step_size():
    assert repr(FGSM(0.1, clamp=(0, 1))) == "FGSM(eps=0.1, clamp=(0.0, 1.0))"
    attack = PGD(0.2, steps=5)
    assert attack.step_size == pytest.approx(0.1)
    assert repr(attack) == "PGD(eps=0.2, norm='linf', step_size=0.1, steps=5, random_start=True, clamp=None)"


BAD = [
    (lambda: FGSM(-0.1), "eps must be a finite number >= 0, got -0.1"),
    (lambda: FGSM(float("nan")), "eps must be a finite number >= 0, got nan"),
    (lambda: FGSM(0.1, clamp=(1.0, 0.0)), "clamp must be None or a pair (low, high) with low <= high"),
    (lambda: PGD(0.1, norm="l1"), "norm must be one of ('linf', 'l2'), got 'l1'"),
    (lambda: PGD(0.1, steps=0), "steps must be an integer >= 1, got 0"),
    (lambda: PGD(0.1, step_size=0.0), "step_size must be None or a finite number > 0, got 0.0"),
    (lambda: PGD(0.1, generator="seed"), "generator must be None or a CPU torch.Generator"),
]


@pytest.mark.parametrize(("make", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()
