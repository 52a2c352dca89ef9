"""The helpers of the gallery's SAM-vs-SGD comparison (``regopt.lab.gallery.sharpness``) on tiny budgets: the
eigenvalue against a dense Hessian, SAM's run against the base's, and the note's verdict computed from numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from regopt.lab.config import DigitsData
from regopt.lab.data import load_dataset
from regopt.lab.gallery.sharpness import Outcome, figure_title, top_eigenvalue, train, verdict


@pytest.fixture(scope="module")
def digits():
    data = load_dataset(DigitsData(name="digits"))
    return data.x_train[:200].double(), data.y_train[:200]


def flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_top_eigenvalue_matches_the_dense_hessian(digits):
    x, y = digits
    model = train(x, y, seed=3, rho=0.1, steps=40, hidden=4)  # 310 parameters: the dense Hessian is cheap
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def loss(theta):
        params, start = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            params[name] = theta[start : start + shape.numel()].reshape(shape)
            start += shape.numel()
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    hessian = torch.autograd.functional.hessian(loss, flat(model))
    assert hessian.shape == (310, 310)
    dense = float(torch.linalg.eigvalsh(hessian)[-1])
    # Lanczos stops at relative residual 1e-7: an eigenvalue lies that close; float64 rounding is far below
    assert top_eigenvalue(model, x, y) == pytest.approx(dense, rel=1e-5)
    assert dense > 1e-3  # a real curvature, not a degenerate zero


def test_sam_run_differs_from_the_base_run_and_both_repeat(digits):
    x, y = digits
    base, again = (flat(train(x, y, seed=1, rho=None, steps=20, hidden=8)) for _ in range(2))
    sam, sam_again = (flat(train(x, y, seed=1, rho=0.1, steps=20, hidden=8)) for _ in range(2))
    assert torch.equal(base, again) and torch.equal(sam, sam_again)  # the seed fixes initialization and batches
    assert (sam - base).abs().max() > 1e-3  # the gradient at the ascent point moves the weights elsewhere
    other_seed = flat(train(x, y, seed=2, rho=None, steps=0, hidden=8))
    assert not torch.equal(other_seed, flat(train(x, y, seed=1, rho=None, steps=0, hidden=8)))


def outcomes(values):
    return [Outcome(loss, error, sharpness) for loss, error, sharpness in values]


def test_verdict_and_title_follow_the_numbers():
    sgd = outcomes([(0.01, 0.05, 1.0), (0.01, 0.04, 1.0), (0.01, 0.06, 1.0)])
    flatter = {"SGD": sgd, "SAM": outcomes([(0.02, 0.04, 0.5), (0.02, 0.05, 0.4), (0.02, 0.06, 0.6)])}
    text = verdict(flatter)
    assert "SAM found flatter minima here" in text and "lower in 3/3 seeds (the mean 0.50x" in text
    assert "training loss is lower in 0/3" in text and "eigenvalue is 0.25x the base's" in text
    assert "test error is lower in 1/3 seeds and higher in 1/3 (mean 0.050 vs 0.050)" in text
    assert "lower in 3/3 seeds (mean 0.50x)" in figure_title(flatter)
    mixed = {"SGD": sgd, "SAM": outcomes([(0.01, 0.05, 0.5), (0.01, 0.04, 1.5), (0.01, 0.06, 1.3)])}
    assert "did not consistently find flatter minima here: its top eigenvalue is lower in 1/3" in verdict(mixed)
