"""Norm penalties and tying: selection, limiting cases, the chapter's L2 update, sparsity of L1, bad arguments."""

from __future__ import annotations

import copy
import itertools
import pickle
import re

import pytest
import torch
from torch import nn

from regopt.regularize import L1, L2, ElasticNet, Penalty, Selector, Tying, select_parameters


def mlp_with_norm() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3), nn.LayerNorm(3))


# ---------------------------------------------------------------------------------------------- selection


def test_default_selection_is_linear_weights_only():
    model = mlp_with_norm()
    assert [name for name, _ in select_parameters(model)] == ["0.weight", "3.weight"]
    assert [p for _, p in select_parameters(model)] == [model[0].weight, model[3].weight]


def test_selection_options():
    model = mlp_with_norm()
    every = [name for name, _ in select_parameters(model, include="all")]
    assert every == [name for name, _ in model.named_parameters()]
    assert [n for n, _ in select_parameters(model, include="all", module_types=(nn.BatchNorm1d,))] == [
        "1.weight",
        "1.bias",
    ]
    assert [n for n, _ in select_parameters(model, module_types=(nn.BatchNorm1d,))] == []
    assert [n for n, _ in select_parameters(model, name_pattern=r"^3\.")] == ["3.weight"]
    assert [n for n, _ in select_parameters(model, include="all", name_pattern="bias$")] == [
        "0.bias",
        "1.bias",
        "3.bias",
        "4.bias",
    ]


def test_selection_skips_frozen_and_lists_shared_once():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.Tanh(), shared, nn.Linear(3, 2))
    assert [n for n, _ in select_parameters(model)] == ["0.weight", "3.weight"]
    model[3].weight.requires_grad_(False)
    assert [n for n, _ in select_parameters(model)] == ["0.weight"]


def test_conv_kernels_are_weights():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 1))
    assert [n for n, _ in Selector()(model)] == ["0.weight", "3.weight"]


# --------------------------------------------------------------------------------- values and gradients

PENALTIES = [
    ("l2", lambda a: L2(a), lambda w, a: a * w),
    ("l1", lambda a: L1(a), lambda w, a: a * torch.sign(w)),
    ("elastic", lambda a: ElasticNet(a, l1_ratio=0.3), lambda w, a: a * (0.3 * torch.sign(w) + 0.7 * w)),
]


@pytest.mark.parametrize(("make", "expected_grad"), [c[1:] for c in PENALTIES], ids=[c[0] for c in PENALTIES])
def test_penalty_gradient_on_weights_and_zero_on_the_rest(make, expected_grad):
    model = mlp_with_norm().double()
    with torch.no_grad():
        model[0].weight[0, :2] = 0.0  # subgradient at 0 is 0
    alpha = 0.37
    make(alpha)(model).backward()
    for name, p in model.named_parameters():
        if name in ("0.weight", "3.weight"):
            torch.testing.assert_close(p.grad, expected_grad(p.detach(), alpha), rtol=1e-12, atol=1e-12)
        else:
            assert p.grad is None, name  # not in the graph at all


def test_penalty_values_by_hand():
    model = mlp_with_norm().double()
    w = [model[0].weight.detach(), model[3].weight.detach()]
    sq = sum(t.pow(2).sum() for t in w)
    ab = sum(t.abs().sum() for t in w)
    torch.testing.assert_close(L2(0.2)(model), 0.2 * 0.5 * sq, rtol=1e-12, atol=0)
    torch.testing.assert_close(L1(0.2)(model), 0.2 * ab, rtol=1e-12, atol=0)
    torch.testing.assert_close(ElasticNet(0.2, 0.25)(model), 0.2 * (0.25 * ab + 0.75 / 2 * sq), rtol=1e-12, atol=0)
    torch.testing.assert_close(ElasticNet(0.2, 1.0)(model), L1(0.2)(model), rtol=1e-12, atol=0)
    torch.testing.assert_close(ElasticNet(0.2, 0.0)(model), L2(0.2)(model), rtol=1e-12, atol=0)


@pytest.mark.parametrize("make", [L2, L1, ElasticNet, lambda a: L1(a, proximal=True)], ids=["l2", "l1", "en", "prox"])
def test_alpha_zero_is_a_no_op(make):
    model = mlp_with_norm()
    x, y = torch.randn(16, 4), torch.randn(16, 3)

    def grads(penalty):
        model.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(model(x), y)
        if penalty is not None:
            value = penalty(model)
            assert value.item() == 0.0
            loss = loss + value
        loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    for a, b in zip(grads(None), grads(make(0.0)), strict=True):
        assert torch.equal(a, b)


def test_custom_selector_and_cache_per_model():
    penalty = L2(1.0, Selector(include="all", name_pattern="bias"))
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    torch.testing.assert_close(penalty(a), 0.5 * a.bias.pow(2).sum())
    assert penalty.parameters(a)[0] is a.bias
    torch.testing.assert_close(penalty(b), 0.5 * b.bias.pow(2).sum())  # new model object: re-selected
    assert penalty.parameters(b)[0] is b.bias
    clone = pickle.loads(pickle.dumps(penalty))
    torch.testing.assert_close(clone(a), penalty(a))
    torch.testing.assert_close(copy.deepcopy(penalty)(b), penalty(b))


def test_penalty_is_an_abstract_base():
    with pytest.raises(TypeError):
        Penalty(1.0)  # type: ignore[abstract]
    assert "alpha=0.5" in repr(L1(0.5, proximal=True)) and "proximal=True" in repr(L1(0.5, proximal=True))


# ------------------------------------------------------------------------------------ the chapter's update


def test_coupled_l2_under_sgd_is_the_seed_update():
    """W_new = (1 - eps alpha) W_old - eps grad L(W_old), biases without decay, over 20 steps (float64)."""
    torch.manual_seed(1)
    x, y = torch.randn(32, 5, dtype=torch.float64), torch.randn(32, 2, dtype=torch.float64)
    model = nn.Linear(5, 2).double()
    w, b = model.weight.detach().clone(), model.bias.detach().clone()
    eps, alpha = 0.05, 0.3
    penalty, opt = L2(alpha), torch.optim.SGD(model.parameters(), lr=eps)
    for _ in range(20):
        opt.zero_grad()
        (nn.functional.mse_loss(model(x), y) + penalty(model)).backward()
        opt.step()
        # the same step by hand, with the gradient of the task loss only
        w_, b_ = w.clone().requires_grad_(), b.clone().requires_grad_()
        grad_w, grad_b = torch.autograd.grad(nn.functional.mse_loss(x @ w_.T + b_, y), (w_, b_))
        w = (1 - eps * alpha) * w - eps * grad_w
        b = b - eps * grad_b
    torch.testing.assert_close(model.weight.detach(), w, rtol=0, atol=1e-12)
    torch.testing.assert_close(model.bias.detach(), b, rtol=0, atol=1e-12)
    assert not torch.equal(w, torch.zeros_like(w))


def test_larger_alpha_gives_smaller_weights():
    torch.manual_seed(0)
    t = torch.linspace(-1, 1, 30).unsqueeze(1)
    x = torch.cat([t**k for k in range(1, 10)], dim=1)  # degree-9 polynomial features
    y = torch.sin(3 * t) + 0.3 * torch.randn_like(t)
    norms = []
    for alpha in [0.0, 1e-3, 1e-2, 1e-1, 1.0]:
        torch.manual_seed(0)
        model = nn.Linear(9, 1)
        opt, penalty = torch.optim.Adam(model.parameters(), lr=0.05), L2(alpha)
        for _ in range(300):
            opt.zero_grad()
            (nn.functional.mse_loss(model(x), y) + penalty(model)).backward()
            opt.step()
        norms.append(model.weight.norm().item())
    assert all(a > b for a, b in itertools.pairwise(norms)), norms
    assert norms[-1] < 0.5 * norms[0], norms


# ---------------------------------------------------------------------------------------- proximal L1


def test_shrink_is_soft_thresholding_on_weights_only():
    model = nn.Linear(4, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, -0.5, 0.05, -0.1]]))
        model.bias.fill_(0.01)
    L1(2.0, proximal=True).shrink(model, lr=0.1)  # threshold 0.2
    torch.testing.assert_close(model.weight.detach(), torch.tensor([[0.3, -0.3, 0.0, 0.0]]))
    assert (model.weight == 0).sum().item() == 2
    assert model.bias.item() == pytest.approx(0.01)


def sparse_regression_weights(penalty, steps: int = 300, lr: float = 0.05) -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.randn(100, 40)
    true_w = torch.zeros(40)
    true_w[:4] = torch.tensor([2.0, -1.5, 1.0, 0.5])
    y = x @ true_w + 0.1 * torch.randn(100)
    model = nn.Linear(40, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (nn.functional.mse_loss(model(x).squeeze(1), y) + penalty(model)).backward()
        opt.step()
        if isinstance(penalty, L1) and penalty.proximal:
            penalty.shrink(model, lr)
    return model.weight.detach()


def test_proximal_l1_gives_exact_zeros_growing_with_alpha_and_l2_gives_none():
    zeros = [int((sparse_regression_weights(L1(a, proximal=True)) == 0).sum()) for a in [0.003, 0.03, 0.3]]
    assert zeros[0] < zeros[1] < zeros[2], zeros
    assert zeros[1] >= 25, zeros  # most of the 36 irrelevant features are exactly zero
    assert int((sparse_regression_weights(L2(0.3)) == 0).sum()) == 0
    assert int((sparse_regression_weights(L1(0.03)) == 0).sum()) <= 1  # subgradient steps oscillate around 0


# ---------------------------------------------------------------------------------------------- tying


def test_tying_value_and_gradient():
    torch.manual_seed(0)
    wa, wb = torch.randn(3, 4, requires_grad=True), torch.randn(3, 4, requires_grad=True)
    va, vb = torch.randn(5, requires_grad=True), torch.randn(5, requires_grad=True)
    tie = Tying(0.7, [(wa, wb), (va, vb)])
    value = tie()
    torch.testing.assert_close(value, 0.7 * ((wa - wb).pow(2).sum() + (va - vb).pow(2).sum()))
    value.backward()
    torch.testing.assert_close(wa.grad, 0.7 * 2 * (wa - wb).detach())
    torch.testing.assert_close(wb.grad, -0.7 * 2 * (wa - wb).detach())
    torch.testing.assert_close(va.grad, 0.7 * 2 * (va - vb).detach())
    assert tie(nn.Linear(1, 1)).item() == pytest.approx(value.item())  # the model argument is ignored


def test_tying_modules_by_parameter_name():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))
    b = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))
    expected = sum((pa - pb).pow(2).sum() for pa, pb in zip(a.parameters(), b.parameters(), strict=True))
    torch.testing.assert_close(Tying(2.0, [(a, b)])(), 2.0 * expected)
    assert Tying(0.0, [(a, b)])().item() == 0.0
    assert len(Tying(1.0, [(a, b)]).pairs) == 4


# ------------------------------------------------------------------------------------------ bad input

BAD = [
    (lambda: L2(-0.1), r"alpha must be .*>= 0, got -0\.1"),
    (lambda: L2(float("nan")), r"alpha must be .*got nan"),
    (lambda: L1("0.1"), r"alpha must be .*got '0\.1'"),
    (lambda: L2(0.1, selector="weights"), r"selector must be a Selector"),
    (lambda: ElasticNet(0.1, l1_ratio=1.5), r"l1_ratio must be .*\[0, 1\], got 1\.5"),
    (lambda: Tying(-1.0, [(torch.zeros(2), torch.zeros(2))]), r"alpha must be"),
    (lambda: Tying(1.0, [(torch.zeros(2, 3), torch.zeros(3, 2))]), r"pairs\[0\]: shapes differ, \(2, 3\) vs \(3, 2\)"),
    (lambda: Tying(1.0, [(nn.Linear(2, 3), nn.Linear(3, 3))]), r"pairs\[0\] parameter 'weight': shapes differ"),
    (lambda: Tying(1.0, [(nn.Linear(2, 3), nn.Linear(2, 3, bias=False))]), r"pairs\[0\]: .*unmatched: \['bias'\]"),
    (lambda: Tying(1.0, [(nn.Linear(2, 3), torch.zeros(3, 2))]), r"pairs\[0\] must hold two tensors or two modules"),
    (lambda: Tying(1.0, [torch.zeros(2)]), r"pairs\[0\] must be a pair"),
    (lambda: Tying(1.0, []), r"pairs must name at least one pair"),
    (lambda: Selector(include="biases"), r"include must be 'weights' or 'all', got 'biases'"),
    (lambda: Selector(module_types=nn.Linear), r"module_types must be a non-empty tuple"),
    (lambda: Selector(name_pattern="(unclosed"), r"name_pattern must be a valid regex, got '\(unclosed'"),
    (lambda: L1(0.1, proximal=True).shrink(nn.Linear(2, 1), lr=-1.0), r"lr must be .*>= 0, got -1\.0"),
]


@pytest.mark.parametrize(("make", "message"), BAD, ids=[re.sub(r"\W+", "-", m)[:40] for _, m in BAD])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()
