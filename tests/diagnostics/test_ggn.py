"""The generalized Gauss-Newton operator against the explicit ``J' H_L J`` (float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from regopt.diagnostics import GGNOperator, HessianOperator, hessian_trace, top_eigenvalues
from regopt.diagnostics.ggn import GaussNewtonProducts

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def tiny_mlp() -> tuple[nn.Module, Tensor, Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x = torch.randn(10, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (10,))
    return model, x, y


def explicit_ggn(model: nn.Module, loss_fn, x: Tensor, y: Tensor) -> Tensor:
    """``J' H_L J`` from the full Jacobian of the output and the full Hessian of the loss in the output."""
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach() for p in model.parameters()]
    sizes = [p.numel() for p in params]

    def output(flat: Tensor) -> Tensor:
        theta = {n: c.view_as(p) for n, c, p in zip(names, flat.split(sizes), params, strict=True)}
        return functional_call(model, theta, (x,)).reshape(-1)

    flat = torch.cat([p.reshape(-1) for p in params])
    z = output(flat).detach()
    jac = torch.autograd.functional.jacobian(output, flat)  # (n*k, dim)
    h_l = torch.autograd.functional.hessian(lambda zz: loss_fn(zz.view(x.shape[0], -1), y), z)
    return jac.T @ h_l @ jac


@pytest.mark.parametrize("loss_fn", [F.cross_entropy, lambda out, y: F.mse_loss(out, F.one_hot(y, 3).double())])
def test_matvec_matches_the_explicit_product(loss_fn):
    model, x, y = tiny_mlp()
    op = GGNOperator(model, loss_fn, x, y)
    expected = explicit_ggn(model, loss_fn, x, y)
    dense = op.dense()
    assert op.num_products == op.dim == 31
    torch.testing.assert_close(dense, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(dense, dense.T, rtol=0, atol=1e-12)
    assert torch.linalg.eigvalsh(dense).min() > -1e-12  # positive semi-definite


def test_differs_from_the_hessian_but_agrees_on_a_linear_model():
    model, x, y = tiny_mlp()
    ggn = GGNOperator(model, F.cross_entropy, x, y).dense()
    hess = HessianOperator(model, F.cross_entropy, x, y).dense()
    assert (ggn - hess).abs().max() > 1e-3  # the tanh's second derivative term is missing from G
    assert torch.linalg.eigvalsh(hess).min() < -1e-6  # while H is indefinite here
    linear = nn.Linear(3, 3).double()
    torch.testing.assert_close(
        GGNOperator(linear, F.cross_entropy, x, y).dense(),
        HessianOperator(linear, F.cross_entropy, x, y).dense(),
        rtol=0,
        atol=1e-12,
    )


def test_gradient_and_loss_match_autograd():
    model, x, y = tiny_mlp()
    op = GGNOperator(model, F.cross_entropy, x, y)
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    torch.testing.assert_close(op.gradient(), torch.cat([g.reshape(-1) for g in grads]), rtol=0, atol=1e-14)
    assert op.loss() == pytest.approx(loss.item(), abs=1e-14)


def test_graph_is_rebuilt_after_an_in_place_step():
    model, x, y = tiny_mlp()
    op = GGNOperator(model, F.cross_entropy, x, y)
    before = op.dense()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    torch.testing.assert_close(op.dense(), explicit_ggn(model, F.cross_entropy, x, y), rtol=0, atol=1e-10)
    assert (op.dense() - before).abs().max() > 1e-3


def test_lanczos_and_trace_accept_it():
    model, x, y = tiny_mlp()
    op = GGNOperator(model, F.cross_entropy, x, y)
    eig = torch.linalg.eigvalsh(explicit_ggn(model, F.cross_entropy, x, y))
    top = top_eigenvalues(op, k=2, tol=1e-10)
    torch.testing.assert_close(top, eig.flip(0)[:2], rtol=1e-8, atol=1e-10)
    # Hutchinson with 2000 Rademacher samples: standard error ~ sqrt(2 sum_ij G_ij^2 / 2000), well within 10%
    assert hessian_trace(op, samples=2000) == pytest.approx(float(eig.sum()), rel=0.1)


def test_products_on_a_graph_without_a_model():
    """``GaussNewtonProducts`` on a residual vector: ``G`` of ``||r||^2`` is ``2 J'J``, the Gauss-Newton matrix."""
    xy = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    r = torch.stack([1 - xy[0], 10 * (xy[1] - xy[0] ** 2)])
    prods = GaussNewtonProducts((r**2).sum(), r, [xy])
    jac = torch.tensor([[-1.0, 0.0], [-20 * -1.2, 10.0]], dtype=torch.float64)
    cols = [prods.matvec([e])[0] for e in torch.eye(2, dtype=torch.float64)]
    torch.testing.assert_close(torch.stack(cols, dim=1), 2 * jac.T @ jac, rtol=0, atol=1e-12)


def test_bad_arguments_name_themselves():
    model, x, y = tiny_mlp()
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad"):
        GGNOperator(model, F.cross_entropy, x, y)
    op = GGNOperator(nn.Linear(3, 3).double(), F.cross_entropy, x, y)
    with pytest.raises(ValueError, match=r"shape \(12,\)"):
        op.matvec(torch.zeros(5, dtype=torch.float64))
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="loss must be a scalar"):
        GaussNewtonProducts(w * 2, w * 2, [w])
