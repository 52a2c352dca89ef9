"""Tangent vectors, tangent prop and tangent distance: limiting cases, references, and the effects claimed."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from regopt.regularize.tangent import TangentProp, signal_shift_tangent, tangent_vectors, transform_images
from regopt.regularize.tangent_distances import tangent_distance, tangent_distance_classify, tangent_distance_matrix


@pytest.fixture(scope="module")
def digits():
    from regopt.lab.config import DigitsData
    from regopt.lab.data import load_dataset

    return load_dataset(DigitsData(name="digits", image=True, train_size=200))


def padded_images(n: int = 6, seed: int = 0) -> torch.Tensor:
    """Random 10x10 images with a zero border of two pixels, so shifts and small rotations lose no ink."""
    g = torch.Generator().manual_seed(seed)
    return F.pad(torch.rand(n, 1, 6, 6, generator=g), (2, 2, 2, 2))


# ------------------------------------------------------------------------------------------ tangent vectors
def smooth_images(n: int = 4, seed: int = 0) -> torch.Tensor:
    """Random 6x6 images upsampled to 12x12 inside a zero border of 4 pixels: smooth, and nothing leaves the frame."""
    return F.pad(F.interpolate(padded_images(n, seed)[..., 2:-2, 2:-2], scale_factor=2, mode="bilinear"), (4,) * 4)


@pytest.mark.parametrize(("mode", "slope"), [("bicubic", 0.75), ("bilinear", 0.5)])
def test_shift_tangent_is_a_difference_of_neighbouring_pixels(mode, slope):
    """Bicubic: the slope 3/4 of torch's Keys kernel at the neighbours; bilinear: the central difference.

    In float64, so that what is left is the finite difference's own error, the same on every machine: bicubic
    3.7e-4 (h = 1e-3 times the jump of the spline's second derivative at a pixel), bilinear 1e-12. In float32 the
    warp's coordinate rounding divided by 2h adds ~2e-4 that depends on the CPU's kernels (5.8e-4 in all here)."""
    x = padded_images().double()
    shift_x, shift_y = tangent_vectors(x, ("shift_x", "shift_y"), mode=mode)
    padded = F.pad(x, (1, 1, 1, 1))
    expected_x = slope * (padded[..., 1:-1, :-2] - padded[..., 1:-1, 2:])  # slope * (x[u - 1] - x[u + 1])
    expected_y = slope * (padded[..., :-2, 1:-1] - padded[..., 2:, 1:-1])
    assert torch.allclose(shift_x, expected_x, atol=2e-3)
    assert torch.allclose(shift_y, expected_y, atol=2e-3)


@pytest.mark.parametrize(
    ("name", "amount"), [("shift_x", 0.01), ("shift_y", -0.01), ("rotate", 0.002), ("scale", -0.002)]
)
def test_tangent_predicts_a_small_transformation(name, amount):
    """T(x, s) = x + s v + O(s^2) for the (differentiable) bicubic transformation (measured: 1.4-2% off)."""
    x = smooth_images()
    (v,) = tangent_vectors(x, (name,))
    change = transform_images(x, name, amount) - x
    error = (change - amount * v).flatten(1).norm(dim=1) / change.flatten(1).norm(dim=1)
    assert (error < 0.05).all(), error
    assert v.abs().max() > 0.1


def test_bilinear_tangent_predicts_only_the_symmetric_change():
    x = smooth_images().double()  # float64: the identity below is exact, its rounding error ~ eps64 / h ~ 1e-12
    (v,) = tangent_vectors(x, ("shift_x",), mode="bilinear")
    one_sided = transform_images(x, "shift_x", 0.1, mode="bilinear") - x
    symmetric = transform_images(x, "shift_x", 0.1, mode="bilinear") - transform_images(
        x, "shift_x", -0.1, mode="bilinear"
    )
    # bilinear is linear in s on either side of 0: T(s) - T(-s) = 2 s v exactly (2.7e-13 here; float32's rounding
    # divided by h was 5e-5, half the old atol 1e-4, and CPU-dependent); a one-sided v would be off by 0.1 x the
    # second difference of x
    assert torch.allclose(symmetric, 0.2 * v, rtol=0, atol=1e-9)
    assert (one_sided - 0.1 * v).norm() > 0.3 * one_sided.norm()


def test_tangent_vectors_shapes_flat_inputs_and_detach():
    x = torch.rand(4, 1, 8, 8, requires_grad=True)
    tangents = tangent_vectors(x)
    assert tangents.shape == (3, 4, 1, 8, 8) and not tangents.requires_grad
    flat = tangent_vectors(x.detach().reshape(4, 64), image_shape=(1, 8, 8))
    assert flat.shape == (3, 4, 64) and torch.allclose(flat, tangents.reshape(3, 4, 64))
    assert tangent_vectors(x, ("scale",)).shape == (1, 4, 1, 8, 8)


@pytest.mark.parametrize("mode", ["circular", "zeros"])
def test_signal_shift_tangent(mode):
    x = torch.tensor([[0.0, 1.0, 4.0, 9.0, 16.0]])
    (v,) = signal_shift_tangent(x, mode=mode)
    # d/ds x(t - s) = -x'(t): central difference (x[t - 1] - x[t + 1]) / 2
    first, last = ((16.0 - 1.0) / 2, (9.0 - 0.0) / 2) if mode == "circular" else ((0.0 - 1.0) / 2, (9.0 - 0.0) / 2)
    assert v.tolist() == [[first, -2.0, -4.0, -6.0, last]]
    three = signal_shift_tangent(torch.rand(2, 7, 3), mode=mode)
    assert three.shape == (1, 2, 7, 3)


# ------------------------------------------------------------------------------------------ tangent prop
def test_penalty_matches_the_jacobian_reference_in_float64():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 5)).double()
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    tangents = tangent_vectors(x)
    penalty = TangentProp(0.7)(model, x)
    expected = 0.0
    for i in range(len(x)):
        jacobian = torch.autograd.functional.jacobian(lambda z: model(z.unsqueeze(0))[0], x[i])  # (5, 1, 8, 8)
        for t in range(len(tangents)):
            expected += (jacobian.flatten(1) @ tangents[t, i].flatten()).pow(2).sum() / len(x)
    assert torch.allclose(penalty, 0.7 * expected)
    penalty.backward()
    assert model[1].weight.grad is not None and model[1].weight.grad.abs().sum() > 0


def test_penalty_is_zero_for_an_invariant_model():
    """Averaging over time is invariant to circular shifts; the penalty vanishes exactly (integer signals)."""
    x = torch.randint(0, 10, (5, 12), dtype=torch.float64)
    mean_over_time = nn.Sequential(nn.Unflatten(1, (1, 12)), nn.AdaptiveAvgPool1d(1), nn.Flatten())
    assert TangentProp(1.0, signal_shift_tangent)(mean_over_time, x).item() == 0.0
    # and a model that sums an image is invariant to shifts of an image with an empty border
    images = padded_images()
    total = TangentProp(1.0, lambda z: tangent_vectors(z, ("shift_x", "shift_y")))(lambda z: z.sum((1, 2, 3)), images)
    assert total.item() == pytest.approx(0.0, abs=1e-4)  # finite-difference tangents: ~1e-6 of the sum
    assert TangentProp(1.0)(lambda z: z.flatten(1), images) > 1.0  # a model that is not invariant pays


def test_penalty_output_option_and_trainer_pair():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x = torch.rand(4, 1, 8, 8)
    probabilities = TangentProp(1.0, output=lambda z: z.softmax(dim=1))
    logits = TangentProp(1.0)
    assert probabilities(model, x) < logits(model, x)
    with pytest.raises(RuntimeError, match=re.escape("add .remember to the batch transforms")):
        logits.penalty(model)
    y = torch.arange(4)
    assert logits.remember(x, y) == (x, y)
    assert torch.equal(logits.penalty(model), logits(model, x))
    assert repr(logits) == "TangentProp(alpha=1.0, tangents_fn=tangent_vectors)"


def train(data, alpha: float, epochs: int = 40) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    tangent_prop = TangentProp(alpha)
    order = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for index in torch.randperm(len(data.x_train), generator=order).split(50):
            x, y = data.x_train[index], data.y_train[index]
            loss = F.cross_entropy(model(x), y) + (tangent_prop(model, x) if alpha else 0.0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def output_change(model: nn.Module, x: torch.Tensor, name: str, amount: float) -> float:
    """Mean total-variation distance between the predicted distributions of x transformed by -amount and +amount."""
    minus, plus = (F.softmax(model(transform_images(x, name, a)), dim=1) for a in (-amount, amount))
    return (plus - minus).abs().sum(dim=1).mean().item() / 2


def test_tangent_prop_reduces_the_output_change_under_the_transformations(digits):
    plain, regularized = train(digits, 0.0), train(digits, 0.1)
    x = digits.x_test
    for name, amount in (("shift_x", 0.5), ("shift_y", 0.5), ("rotate", math.radians(5))):
        before, after = output_change(plain, x, name, amount), output_change(regularized, x, name, amount)
        assert after < 0.75 * before, f"{name}: {before:.3f} -> {after:.3f}"  # measured: x0.32, x0.51, x0.28
    with torch.no_grad():
        assert (regularized(x).argmax(1) == digits.y_test).float().mean() > 0.8  # it still classifies


def test_trainer_pair_trains(digits):
    from regopt.lab.trainer import Trainer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    tangent_prop = TangentProp(0.1)
    before = tangent_prop(model, digits.x_val).item()
    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), lr=3e-3),
        digits,
        epochs=3,
        batch_size=50,
        batch_transforms=[tangent_prop.remember],
        penalties=[tangent_prop.penalty],
    )
    history = trainer.fit()
    assert math.isfinite(history[-1]["train_loss"]) and tangent_prop(model, digits.x_val).item() < before * 5


# ------------------------------------------------------------------------------------------ tangent distance
def test_tangent_distance_is_at_most_euclidean_and_symmetric_when_two_sided():
    g = torch.Generator().manual_seed(1)
    x1, x2 = torch.rand(8, 1, 8, 8, generator=g), torch.rand(8, 1, 8, 8, generator=g)
    t1, t2 = tangent_vectors(x1), tangent_vectors(x2)
    euclidean = (x1 - x2).flatten(1).norm(dim=1)
    one, two = tangent_distance(x1, x2, t1), tangent_distance(x1, x2, t1, t2)
    assert (one <= euclidean + 1e-5).all() and (two <= one + 1e-5).all() and (two < euclidean).all()
    assert torch.allclose(two, tangent_distance(x2, x1, t2, t1), atol=1e-5)
    assert (tangent_distance(x1, x2, t1, reg=10.0) >= one - 1e-5).all()  # a ridge keeps coefficients small


def test_tangent_distance_matches_lstsq():
    g = torch.Generator().manual_seed(2)
    x1, x2 = torch.rand(4, 1, 8, 8, generator=g).double(), torch.rand(4, 1, 8, 8, generator=g).double()
    t1, t2 = tangent_vectors(x1), tangent_vectors(x2)
    got = tangent_distance(x1, x2, t1, t2)
    for i in range(4):
        basis = torch.cat([t1[:, i].flatten(1), -t2[:, i].flatten(1)]).T  # (D, 6)
        r = (x1[i] - x2[i]).flatten()
        coef = torch.linalg.lstsq(basis, -r.unsqueeze(1)).solution
        assert got[i].item() == pytest.approx((r + (basis @ coef).squeeze(1)).norm().item(), rel=1e-6)


def test_tangent_distance_is_near_zero_for_a_slightly_transformed_copy():
    x = smooth_images()
    for name, amount in (("rotate", math.radians(0.5)), ("shift_x", 0.05)):  # measured: 5-6% of Euclidean
        moved = transform_images(x, name, amount)
        euclidean = (x - moved).flatten(1).norm(dim=1)
        distance = tangent_distance(x, moved, tangent_vectors(x), tangent_vectors(moved))
        assert (distance < 0.1 * euclidean).all(), f"{name}: {distance} vs {euclidean}"
    assert tangent_distance(x, x, tangent_vectors(x)).abs().max() < 1e-6


def test_distance_matrix_matches_the_pairwise_distance():
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(3, 1, 8, 8, generator=g), torch.rand(4, 1, 8, 8, generator=g)
    ta, tb = tangent_vectors(a), tangent_vectors(b)
    pairs_a, pairs_b = a.repeat_interleave(4, 0), b.repeat(3, 1, 1, 1)
    pairs_ta, pairs_tb = ta.repeat_interleave(4, 1), tb.repeat(1, 3, 1, 1, 1)
    cases = [
        (ta, tb, tangent_distance(pairs_a, pairs_b, pairs_ta, pairs_tb)),
        (ta, None, tangent_distance(pairs_a, pairs_b, pairs_ta)),
        (None, tb, tangent_distance(pairs_b, pairs_a, pairs_tb)),
        (None, None, (pairs_a - pairs_b).flatten(1).norm(dim=1)),
    ]
    for tx, tp, expected in cases:
        assert torch.allclose(tangent_distance_matrix(a, b, tx, tp).flatten(), expected, atol=1e-4)


def test_tangent_distance_1nn_beats_euclidean_on_few_digits(digits):
    """With 100 training digits (measured: Euclidean 0.886, tangent distance 0.925 on the test split)."""
    x, y = digits.x_train[:100], digits.y_train[:100]
    euclidean = tangent_distance_classify(x, y, digits.x_test, tangents_fn=None)
    tangent = tangent_distance_classify(x, y, digits.x_test)
    accuracy = {name: (p == digits.y_test).float().mean().item() for name, p in (("e", euclidean), ("t", tangent))}
    assert accuracy["t"] > accuracy["e"] + 0.02, accuracy


def test_knn_vote_and_ties():
    x = torch.zeros(5, 1, 2, 2)
    x[:, 0, 0, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0])
    y = torch.tensor([0, 1, 1, 0, 2])
    query = torch.zeros(1, 1, 2, 2)
    kw = {"tangents_fn": None}
    assert tangent_distance_classify(x, y, query, k=1, **kw).tolist() == [0]
    assert tangent_distance_classify(x, y, query, k=3, **kw).tolist() == [1]  # 0, 1, 1 -> 1
    assert tangent_distance_classify(x, y, query, k=4, **kw).tolist() == [0]  # two each: the nearest's class


BAD = [
    (lambda: tangent_vectors(torch.rand(2, 8, 8)), "expected a floating-point image batch (N, C, H, W)"),
    (lambda: tangent_vectors(torch.rand(2, 1, 8, 8), ("flip",)), "unknown transformation 'flip'"),
    (lambda: tangent_vectors(torch.rand(2, 1, 8, 8), "rotate"), "transforms must be a non-empty sequence"),
    (lambda: signal_shift_tangent(torch.rand(2, 8), mode="wrap"), "mode must be 'circular' or 'zeros'"),
    (lambda: TangentProp(-1.0), "alpha must be a finite number >= 0, got -1.0"),
    (lambda: tangent_distance(torch.rand(2, 4), torch.rand(3, 4), torch.rand(1, 2, 4)), "same shape"),
    (lambda: tangent_distance(torch.rand(2, 4), torch.rand(2, 4), torch.rand(1, 2, 4), reg=-1), "reg must be"),
    (lambda: tangent_distance_classify(torch.rand(2, 1, 4, 4), torch.zeros(2), torch.rand(1, 1, 4, 4), k=3), "k must"),
]


@pytest.mark.parametrize(("make", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()
