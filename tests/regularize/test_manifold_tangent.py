"""Learned tangents (the manifold tangent classifier, Rifai et al. 2011): the contractive autoencoder's penalty
against autograd's Jacobian, the learned tangent of a known 1-D manifold, and TangentProp with learned tangents."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from regopt.regularize import (
    ContractiveAutoencoder,
    TangentProp,
    fit_contractive_autoencoder,
    learned_tangents,
)


def _tiny_cae(tied: bool = True) -> ContractiveAutoencoder:
    torch.manual_seed(0)
    cae = ContractiveAutoencoder(4, 3, tied=tied).double()
    with torch.no_grad():
        for p in cae.parameters():
            p.normal_()  # away from the initialization's small weights
    return cae


def _autograd_jacobians(cae: ContractiveAutoencoder, x: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.autograd.functional.jacobian(lambda xi: cae.encode(xi.unsqueeze(0))[0], xi) for xi in x])


@pytest.mark.parametrize("tied", [True, False])
def test_contraction_is_the_squared_frobenius_norm_of_the_encoder_jacobian(tied: bool) -> None:
    cae = _tiny_cae(tied)
    x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    reference = _autograd_jacobians(cae, x)  # (5, 3, 4), by torch.autograd.functional.jacobian
    assert reference.abs().max() > 0.01  # not a vanishing Jacobian
    torch.testing.assert_close(cae.jacobian(x), reference, rtol=1e-12, atol=1e-12)
    penalty = cae.contraction(x)
    torch.testing.assert_close(penalty, reference.pow(2).sum(dim=(1, 2)).mean(), rtol=1e-12, atol=0.0)
    penalty.backward()  # differentiable in the parameters
    assert cae.encoder.weight.grad is not None and cae.encoder.weight.grad.abs().max() > 0


def test_loss_is_reconstruction_plus_weighted_contraction() -> None:
    cae = _tiny_cae()
    x = torch.randn(6, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))  # any example shape
    flat = x.reshape(6, 4)
    h = torch.sigmoid(flat @ cae.encoder.weight.T + cae.encoder.bias)
    reconstruction = h @ cae.encoder.weight + cae.decoder_bias  # tied: W^T h + c
    expected = (reconstruction - flat).pow(2).mean() + 0.3 * _autograd_jacobians(cae, flat).pow(2).sum((1, 2)).mean()
    torch.testing.assert_close(cae.loss(x, 0.3), expected, rtol=1e-12, atol=0.0)
    assert cae(x).shape == x.shape


def _circle(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points on a unit circle in a random 2-plane of R^5, and the unit tangent at each."""
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(5, 2, generator=g))
    t = torch.rand(200, generator=g) * 2 * math.pi
    points = torch.stack([t.cos(), t.sin()], dim=1) @ basis.T
    tangents = torch.stack([-t.sin(), t.cos()], dim=1) @ basis.T
    return points, tangents


def test_learned_tangent_of_a_circle_follows_the_circle() -> None:
    x, true = _circle(seed=0)
    cae = fit_contractive_autoencoder(x, 8, contraction=0.01, epochs=300, batch_size=200, lr=2e-2, seed=0)
    learned = learned_tangents(cae, 1)(x)
    assert learned.shape == (1, 200, 5)
    alignment = (learned[0] * true).sum(dim=1).abs()  # |cos|: both are unit vectors
    # measured 0.95-0.998 over 3 circles x 3 seeds (0.979 here); a fixed direction (the leading principal
    # component) scores 0.61-0.63, a random direction about 0.4
    assert alignment.mean() > 0.9
    principal = torch.linalg.svd(x - x.mean(0)).Vh[0]
    assert (true @ principal).abs().mean() < 0.75  # the test needs a local tangent, not a global direction


def test_learned_tangents_are_orthonormal_and_shaped_like_the_batch() -> None:
    x = torch.rand(7, 1, 3, 3, generator=torch.Generator().manual_seed(3))
    cae = fit_contractive_autoencoder(x, 5, epochs=2, batch_size=4)
    tangents = learned_tangents(cae, 3)(x)
    assert tangents.shape == (3, 7, 1, 3, 3) and not tangents.requires_grad
    gram = torch.einsum("kni,lni->nkl", tangents.flatten(2), tangents.flatten(2))
    torch.testing.assert_close(gram, torch.eye(3).expand(7, 3, 3), atol=1e-5, rtol=0)
    assert all(p.grad is None for p in cae.parameters())  # the CAE is not differentiated


def test_tangent_prop_with_learned_tangents_is_differentiable() -> None:
    x, _ = _circle(seed=1)
    y = (x[:, 0] > 0).long()
    cae = fit_contractive_autoencoder(x, 8, contraction=0.01, epochs=20, batch_size=100, seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 2))
    tangent_prop = TangentProp(0.5, tangents_fn=learned_tangents(cae, 2))
    assert repr(tangent_prop) == "TangentProp(alpha=0.5, tangents_fn=learned_tangents(k=2))"
    penalty = tangent_prop(model, x[:32])
    assert penalty.item() > 0
    (F.cross_entropy(model(x[:32]), y[:32]) + penalty).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.zero_grad()
    penalty_only = tangent_prop(model, x[:32])
    penalty_only.backward()
    assert model[0].weight.grad.abs().max() > 0  # the penalty alone moves the first layer


def test_fit_is_reproducible_and_leaves_the_global_rng_alone() -> None:
    x = torch.rand(20, 4, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = fit_contractive_autoencoder(x, 3, epochs=3, batch_size=8, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    b = fit_contractive_autoencoder(x, 3, epochs=3, batch_size=8, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not a.training


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: ContractiveAutoencoder(0, 3), ValueError, r"input_dim must be a positive integer, got 0"),
        (lambda: ContractiveAutoencoder(4, 2.5), ValueError, r"hidden_dim must be a positive integer, got 2\.5"),
        (lambda: learned_tangents(ContractiveAutoencoder(4, 3), 4), ValueError, r"k must be an integer in \[1, 3\]"),
        (lambda: learned_tangents(ContractiveAutoencoder(2, 3), 0), ValueError, r"k must be an integer in \[1, 2\]"),
        (lambda: learned_tangents(nn.Linear(2, 2), 1), TypeError, r"cae must be a ContractiveAutoencoder"),
        (
            lambda: learned_tangents(ContractiveAutoencoder(4, 3), 1)(torch.zeros(2, 5)),
            ValueError,
            r"expected examples of 4 features, got \(2, 5\)",
        ),
        (lambda: fit_contractive_autoencoder(torch.zeros(3), 2), ValueError, r"x must be a non-empty float tensor"),
        (lambda: fit_contractive_autoencoder(torch.zeros(3, 2), 2, contraction=-1.0), ValueError, r"contraction"),
        (lambda: fit_contractive_autoencoder(torch.zeros(3, 2), 2, epochs=0), ValueError, r"epochs must be"),
    ],
)
def test_bad_arguments(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()
