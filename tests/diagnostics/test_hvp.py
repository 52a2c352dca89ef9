"""Hessian-vector products against the full Hessian from ``torch.autograd.functional.hessian`` (float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from regopt.diagnostics.hessian_operator import HessianOperator
from regopt.diagnostics.hvp import backward_with_hvp, hvp, hvp_func

# torch's forward-mode AD scripts its decompositions on first use
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def small_mlp() -> tuple[nn.Module, Tensor, Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4), nn.Softplus(), nn.Linear(4, 3)).double()
    x = torch.randn(16, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (16,))
    return model, x, y


def full_hessian(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The exact Hessian of cross-entropy w.r.t. the flattened parameters."""
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach() for p in model.parameters()]
    sizes = [p.numel() for p in params]

    def loss(flat: Tensor) -> Tensor:
        theta = {n: c.view_as(p) for n, c, p in zip(names, flat.split(sizes), params, strict=True)}
        return F.cross_entropy(functional_call(model, theta, (x,)), y)

    return torch.autograd.functional.hessian(loss, torch.cat([p.reshape(-1) for p in params]))


@pytest.fixture
def setup() -> tuple[nn.Module, Tensor, Tensor, Tensor, list[Tensor]]:
    model, x, y = small_mlp()
    hessian = full_hessian(model, x, y)
    v = [torch.randn_like(p) for p in model.parameters()]
    return model, x, y, hessian, v


def flat(tensors: list[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def test_hvp_double_backward_matches_full_hessian(setup):
    model, x, y, hessian, v = setup
    got = hvp(lambda: F.cross_entropy(model(x), y), list(model.parameters()), v)
    assert [g.shape for g in got] == [p.shape for p in model.parameters()]
    torch.testing.assert_close(flat(got), hessian @ flat(v), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("order", ["forward-over-reverse", "reverse-over-forward"])
def test_hvp_func_matches_full_hessian(setup, order):
    model, x, y, hessian, v = setup
    got = hvp_func(model, F.cross_entropy, x, y, v, order=order)
    torch.testing.assert_close(flat(got), hessian @ flat(v), atol=1e-10, rtol=1e-10)


def test_hvp_func_accepts_a_mapping(setup):
    model, x, y, hessian, v = setup
    named = dict(zip((n for n, _ in model.named_parameters()), v, strict=True))
    got = hvp_func(model, F.cross_entropy, x, y, named)
    torch.testing.assert_close(flat(got), hessian @ flat(v), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("method", ["reverse", "func"])
def test_operator_matvec_gradient_and_dense(setup, method):
    model, x, y, hessian, v = setup
    op = HessianOperator(model, F.cross_entropy, x, y, method=method)
    assert op.dim == hessian.shape[0] == sum(p.numel() for p in model.parameters())
    for _ in range(3):  # repeated products on the kept graph
        torch.testing.assert_close(op.matvec(flat(v)), hessian @ flat(v), atol=1e-10, rtol=1e-10)
    assert op.num_products == 3
    torch.testing.assert_close(op @ flat(v), hessian @ flat(v), atol=1e-10, rtol=1e-10)
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    torch.testing.assert_close(op.gradient(), flat(list(grads)), atol=1e-12, rtol=1e-12)
    assert op.loss() == pytest.approx(F.cross_entropy(model(x), y).item())
    torch.testing.assert_close(op.dense(), hessian, atol=1e-10, rtol=1e-10)
    assert op.num_products == 4 + op.dim


def test_operator_follows_in_place_parameter_changes(setup):
    model, x, y, _, v = setup
    op = HessianOperator(model, F.cross_entropy, x, y)
    before = op.matvec(flat(v))
    torch.optim.SGD(model.parameters(), lr=0.5).zero_grad()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    after = op.matvec(flat(v))
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, full_hessian(model, x, y) @ flat(v), atol=1e-10, rtol=1e-10)


def test_operator_on_a_parameter_subset(setup):
    model, x, y, hessian, _ = setup
    last = list(model[-1].parameters())
    op = HessianOperator(model, F.cross_entropy, x, y, params=last)
    n = sum(p.numel() for p in last)
    assert op.dim == n
    v = torch.randn(n, dtype=torch.float64)
    torch.testing.assert_close(op.matvec(v), hessian[-n:, -n:] @ v, atol=1e-10, rtol=1e-10)


def test_zero_hessian_and_unused_parameters():
    model = nn.Linear(3, 2).double()
    unused = nn.Parameter(torch.ones(4, dtype=torch.float64))
    x = torch.randn(5, 3, dtype=torch.float64)
    op = HessianOperator(model, lambda out, y: out.sum(), x, x, params=[*model.parameters(), unused])
    assert torch.equal(op.matvec(torch.ones(op.dim, dtype=torch.float64)), torch.zeros(op.dim, dtype=torch.float64))
    assert torch.equal(op.gradient()[-4:], torch.zeros(4, dtype=torch.float64))


def test_bad_arguments(setup):
    model, x, y, _, v = setup
    with pytest.raises(ValueError, match="v has 1 tensors, params has 6"):
        hvp(lambda: F.cross_entropy(model(x), y), list(model.parameters()), v[:1])
    with pytest.raises(ValueError, match="order must be"):
        hvp_func(model, F.cross_entropy, x, y, v, order="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="method must be"):
        HessianOperator(model, F.cross_entropy, x, y, method="exact")  # type: ignore[arg-type]
    op = HessianOperator(model, F.cross_entropy, x, y)
    with pytest.raises(ValueError, match=rf"expected a flat vector of shape \({op.dim},\), got \(3,\)"):
        op.matvec(torch.ones(3, dtype=torch.float64))
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no parameters with requires_grad"):
        HessianOperator(frozen, F.mse_loss, x, y)


def test_backward_with_hvp_fills_grad_and_returns_g_and_hg(setup):
    model, x, y, hessian, _ = setup
    params = list(model.parameters())
    F.cross_entropy(model(x), y).backward()
    expected = [p.grad.clone() for p in params]
    model.zero_grad(set_to_none=True)
    g, hg = backward_with_hvp(F.cross_entropy(model(x), y), params)
    assert all(torch.equal(p.grad, e) for p, e in zip(params, expected, strict=True))
    assert torch.equal(flat(g), flat(expected))
    torch.testing.assert_close(flat(hg), hessian @ flat(expected), rtol=1e-10, atol=1e-12)
    model.zero_grad(set_to_none=True)
    g, hg = backward_with_hvp(F.cross_entropy(model(x), y), params, params[2:4])  # H restricted to the subset
    sub = slice(sum(p.numel() for p in params[:2]), sum(p.numel() for p in params[:4]))
    torch.testing.assert_close(flat(hg), hessian[sub, sub] @ flat(g), rtol=1e-10, atol=1e-12)
    assert all(torch.equal(p.grad, e) for p, e in zip(params, expected, strict=True))  # all of params filled
    with pytest.raises(ValueError, match="subset must be drawn from params"):
        backward_with_hvp(F.cross_entropy(model(x), y), params[:2], params[2:3])


@pytest.mark.parametrize("chunk_size", [None, 1, 3])
def test_matmat_is_stacked_matvecs_and_the_full_hessian(setup, chunk_size):
    model, x, y, hessian, _ = setup
    op = HessianOperator(model, F.cross_entropy, x, y)
    block = torch.randn(7, op.dim, dtype=torch.float64)  # one vector per row
    got = op.matmat(block, chunk_size=chunk_size)
    assert got.shape == (7, op.dim) and op.num_products == 7
    torch.testing.assert_close(got, block @ hessian, atol=1e-10, rtol=1e-10)  # rows H v_i (H symmetric)
    torch.testing.assert_close(got, torch.stack([op.matvec(v) for v in block]), atol=1e-10, rtol=1e-10)
    with torch.no_grad():  # an optimizer step in place: the kept vjp is rebuilt at the new point
        model[0].weight.add_(0.3)
    torch.testing.assert_close(op.matmat(block[:2]), block[:2] @ full_hessian(model, x, y), atol=1e-10, rtol=1e-10)
    assert op.matmat(block[:0]).shape == (0, op.dim)


def test_matmat_on_parameters_outside_the_model_uses_the_batched_backward(setup):
    model, x, y, hessian, _ = setup
    last = list(model[-1].parameters())
    unused = nn.Parameter(torch.ones(4, dtype=torch.float64))
    op = HessianOperator(model, F.cross_entropy, x, y, params=[*last, unused])
    n = op.dim - 4
    block = torch.randn(5, op.dim, dtype=torch.float64)
    got = op.matmat(block, chunk_size=2)
    torch.testing.assert_close(got[:, :n], block[:, :n] @ hessian[-n:, -n:], atol=1e-10, rtol=1e-10)
    assert torch.equal(got[:, n:], torch.zeros(5, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=rf"expected a block of shape \(k, {op.dim}\), got \({op.dim},\)"):
        op.matmat(block[0])
    with pytest.raises(ValueError, match="chunk_size must be >= 1 or None, got 0"):
        op.matmat(block, chunk_size=0)
