"""Bagging's stacked route (batched matrix products, no vmap) equals the general vmap route, and is chosen only
for the architectures it serves."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import regopt.optim
from regopt.ensemble import Bagging
from regopt.ensemble.stacked import StackedPlan
from regopt.lab.config import LinearModelConfig, MlpConfig
from regopt.lab.models import build_model


def shared_hidden() -> nn.Module:
    return build_model(MlpConfig(name="mlp", widths=[6, 6, 6], share_hidden=True), (4, 5), 3)


STACKABLE: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "linear": (lambda: nn.Linear(20, 3), (20,)),
    "mlp relu": (lambda: nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 3)), (20,)),
    "nested, tanh, gelu, no bias": (
        lambda: nn.Sequential(
            nn.Flatten(),
            nn.Sequential(nn.Linear(20, 8, bias=False), nn.Tanh()),
            nn.Linear(8, 8),
            nn.GELU(),
            nn.Identity(),
            nn.Linear(8, 3),
        ),
        (4, 5),
    ),
    "regopt mlp, dropout 0": (lambda: build_model(MlpConfig(name="mlp", widths=[16, 8]), (4, 5), 3), (4, 5)),
    "regopt mlp, shared hidden layers": (shared_hidden, (4, 5)),
    "regopt logistic": (lambda: build_model(LinearModelConfig(name="logistic"), (4, 5), 3), (4, 5)),
}


@pytest.mark.parametrize(("make", "shape"), STACKABLE.values(), ids=list(STACKABLE))
def test_stacked_route_equals_vmap_route_forward_and_gradients(make, shape):
    k, b = 3, 7
    fast = Bagging(lambda: make().double(), k=k, seed=1)
    slow = Bagging(lambda: make().double(), k=k, seed=1, vectorize="vmap")
    assert (fast.vectorize, slow.vectorize) == ("stacked", "vmap")
    x = torch.randn(k, b, *shape, dtype=torch.float64)
    out_fast, out_slow = fast(x), slow(x)
    assert out_fast.shape == (k, b, 3)
    # float64, batched products vs vmap's: the same sums of <= 20 products in another order and blocking, ~1e-15
    # apart (at most 4e-4 of these atols used, on the AVX-512, AVX2 and scalar paths); a wrong member's weights or
    # a missing bias is O(0.1) off. Training below is 21 plain momentum steps, which do not amplify rounding.
    torch.testing.assert_close(out_fast, out_slow, rtol=0, atol=1e-12)
    torch.testing.assert_close(fast.forward_shared(x[0]), slow.forward_shared(x[0]), rtol=0, atol=1e-12)
    (out_fast**2).sum().backward()
    (out_slow**2).sum().backward()
    for name, p, q in zip(fast.param_names, fast.params, slow.params, strict=True):
        assert p.grad is not None and p.grad.shape == p.shape, name
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-10, msg=name)


def test_stacked_training_of_regopt_mlp_equals_vmap_training():
    """The lab's MLP as used by the benchmark: fit on both routes, regopt SGD with momentum, float64."""
    data = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, 5, generator=data, dtype=torch.float64), torch.randint(3, (64,), generator=data)
    make = lambda: build_model(MlpConfig(name="mlp", widths=[16, 8]), (4, 5), 3).double()  # noqa: E731
    bags = [Bagging(make, k=4, seed=2, vectorize=v) for v in ("stacked", "vmap")]
    histories = [
        bag.fit(x, y, epochs=3, batch_size=10, optimizer_factory=lambda p: regopt.optim.SGD(p, lr=0.1, momentum=0.9))
        for bag in bags
    ]
    torch.testing.assert_close(histories[0], histories[1], rtol=0, atol=1e-12)
    for p, q in zip(bags[0].params, bags[1].params, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-10)


def test_default_cross_entropy_shortcut_equals_a_plain_loss_fn():
    """fit computes the default cross-entropy over (K, C, b) logits; any other loss_fn sees (K*b, C) rows."""
    data = torch.Generator().manual_seed(3)
    x, y = torch.randn(50, 12, generator=data, dtype=torch.float64), torch.randint(4, (50,), generator=data)
    make = lambda: nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 4)).double()  # noqa: E731
    seen: list[tuple[int, ...]] = []

    def plain(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(out.shape))
        return F.cross_entropy(out, target)

    results = []
    for loss_fn in (F.cross_entropy, plain):
        bag = Bagging(make, k=3, seed=0)
        history = bag.fit(
            x, y, epochs=2, batch_size=8, optimizer_factory=lambda p: torch.optim.Adam(p, lr=1e-2), loss_fn=loss_fn
        )
        results.append((history, [p.detach() for p in bag.params]))
    assert seen[0] == (3 * 8, 4)
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=1e-12)
    for p, q in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-10)


def with_hook() -> nn.Module:
    model = nn.Sequential(nn.Linear(6, 3))
    model[0].register_forward_hook(lambda module, args, out: out * 2)
    return model


NOT_STACKABLE: dict[str, Callable[[], nn.Module]] = {
    "batch norm": lambda: nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)),
    "conv": lambda: nn.Sequential(nn.Unflatten(1, (1, 6)), nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3)),
    "softmax (not elementwise)": lambda: nn.Sequential(nn.Linear(6, 3), nn.Softmax(dim=-1)),
    "prelu (a parameter outside Linear)": lambda: nn.Sequential(nn.Linear(6, 3), nn.PReLU()),
    "a hook": with_hook,
    "no Linear": lambda: nn.Sequential(nn.ReLU()),
    "Linear subclass": lambda: nn.Sequential(type("MyLinear", (nn.Linear,), {})(6, 3)),
}


@pytest.mark.parametrize("make", NOT_STACKABLE.values(), ids=list(NOT_STACKABLE))
def test_other_architectures_take_the_vmap_route(make):
    assert Bagging(make, k=2).vectorize == "vmap"
    with pytest.raises(ValueError, match=r"Invalid vectorize: 'stacked' \(the member is not"):
        Bagging(make, k=2, vectorize="stacked")


def test_hook_is_honoured_and_bad_vectorize_raises():
    bag = Bagging(with_hook, k=2)
    x = torch.randn(2, 5, 6)
    weight, bias = (p.detach()[0] for p in bag.params)
    torch.testing.assert_close(bag(x)[0], 2 * F.linear(x[0], weight, bias))
    with pytest.raises(ValueError, match=r"Invalid vectorize: 'fast'"):
        Bagging(with_hook, k=2, vectorize="fast")  # type: ignore[arg-type]


def test_inputs_with_more_batch_axes_fall_back_to_vmap():
    """A member Linear applied to (B, L, F) inputs has two batch axes: the plan declines, vmap computes it."""
    bag = Bagging(lambda: nn.Sequential(nn.Linear(5, 3), nn.ReLU()), k=2)
    assert bag.vectorize == "stacked"
    x = torch.randn(2, 4, 7, 5)
    assert bag.plan is not None and bag.plan(x, list(bag.params)) is None
    out = bag(x)
    assert out.shape == (2, 4, 7, 3)
    torch.testing.assert_close(out[1], bag.member(1)(x[1]))


def test_plan_rejects_buffers_directly():
    model = nn.Linear(4, 2)
    names = [name for name, _ in model.named_parameters()]
    assert StackedPlan.build(model, names, []) is not None
    assert StackedPlan.build(model, names, ["running_mean"]) is None
    assert StackedPlan.build(model, names[::-1], []) is None  # names out of the module's order
