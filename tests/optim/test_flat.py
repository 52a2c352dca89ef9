"""The flat-buffer machinery: views, gradient paths, rebuilds, and the compiled kernels."""

from __future__ import annotations

import math

import pytest
import torch

from regopt.optim import SGD, AdaGrad, Adam, AdamW, DeltaBarDelta, RMSProp
from tests.optim.tolerance import nudge, tolerance_from


def _model(dtype=torch.float32) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).to(dtype)


def _train(model, optimizer, steps, set_to_none=True):
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = torch.randn(16, 4, generator=gen, dtype=next(model.parameters()).dtype)
        optimizer.zero_grad(set_to_none=set_to_none)
        model(x).pow(2).mean().backward()
        optimizer.step()


def test_parameters_become_views_of_one_buffer_per_dtype():
    model = _model()
    extra = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    optimizer = Adam([*model.parameters(), extra], lr=1e-2)
    _train(model, optimizer, 1)
    (buckets,) = optimizer.flat_buckets()
    assert sorted(str(b.theta.dtype) for b in buckets) == ["torch.float32", "torch.float64"]
    flat32 = next(b for b in buckets if b.theta.dtype == torch.float32)
    assert flat32.theta.numel() == sum(p.numel() for p in model.parameters())
    for p in model.parameters():
        assert p.untyped_storage().data_ptr() == flat32.theta.untyped_storage().data_ptr()
        assert optimizer.state[p]["s"].untyped_storage().data_ptr() == flat32.state["s"].untyped_storage().data_ptr()


def test_in_place_zero_grad_keeps_gradient_views_and_gives_the_same_result():
    a, b = _model(), _model()
    opt_a, opt_b = SGD(a.parameters(), lr=0.1, momentum=0.9), SGD(b.parameters(), lr=0.1, momentum=0.9)
    _train(a, opt_a, 5, set_to_none=True)
    _train(b, opt_b, 5, set_to_none=False)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    (buckets,) = opt_b.flat_buckets()
    for p in b.parameters():
        assert p.grad.untyped_storage().data_ptr() == buckets[0].grad.untyped_storage().data_ptr()


def test_replaced_parameters_are_rebuilt_with_their_state():
    model = _model()
    optimizer = Adam(model.parameters(), lr=1e-2)
    _train(model, optimizer, 3)
    s_before = [optimizer.state[p]["s"].clone() for p in model.parameters()]
    model.double()  # every parameter gets new float64 storage
    _train(model, optimizer, 1)
    (buckets,) = optimizer.flat_buckets()
    assert buckets[0].theta.dtype == torch.float64
    for p, s in zip(model.parameters(), s_before, strict=True):
        assert optimizer.state[p]["s"].dtype == torch.float64
        assert not torch.equal(optimizer.state[p]["s"], s.double())  # it kept training from the old moments
    assert int(buckets[0].step) == 4


COMPILED_CASES = [
    ("sgd", SGD, {"lr": 0.1}),
    ("sgd+L2", SGD, {"lr": 0.1, "weight_decay": 0.01}),
    ("momentum+L2", SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    ("nesterov", SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("adagrad", AdaGrad, {"lr": 0.1}),
    ("rmsprop", RMSProp, {"lr": 1e-2}),
    ("rmsprop-nesterov", RMSProp, {"lr": 1e-2, "momentum": 0.9, "nesterov": True, "eps_inside_sqrt": False}),
    ("adam", Adam, {"lr": 1e-2}),
    ("adamw", AdamW, {"lr": 1e-2, "eps_inside_sqrt": False}),
    ("delta-bar-delta", DeltaBarDelta, {"lr": 1e-2, "kappa": 1e-3}),
]


@pytest.mark.parametrize(("cls", "kwargs"), [c[1:] for c in COMPILED_CASES], ids=[c[0] for c in COMPILED_CASES])
def test_compiled_kernel_equals_eager(cls, kwargs):
    eager, compiled = _model(), _model()
    opt_eager = cls(eager.parameters(), **kwargs, compile=False)
    opt_compiled = cls(compiled.parameters(), **kwargs, compile=True)
    _train(eager, opt_eager, 20)
    _train(compiled, opt_compiled, 20)
    # Inductor's kernel and ATen's fuse and order the update's float32 operations differently (and pick them by the
    # CPU's vector width), so the runs agree up to rounding only: Adam here ends 1e-6 (~17 ulps) apart on an AMD
    # EPYC. The tolerance is measured on the problem, as for the reference tests (tests/optim/tolerance.py): 100x
    # how far eager runs started one ulp off end up, plus 4 ulps of the parameters per step (theta - lr u rounds
    # once per step, with or without a fused multiply-add; Adam's normalized step does not damp that).
    others = []
    for direction in (math.inf, -math.inf):
        nudged = _model()
        with torch.no_grad():
            for p in nudged.parameters():
                p.copy_(nudge(p, direction))
        _train(nudged, cls(nudged.parameters(), **kwargs, compile=False), 20)
        others.append(_flat(nudged))
    atol = tolerance_from(_flat(eager), others, floor_ulps=4 * 20)
    torch.testing.assert_close(_flat(compiled), _flat(eager), rtol=0, atol=atol)


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_changing_lr_does_not_recompile():
    from torch._dynamo.utils import counters

    model = _model()
    optimizer = Adam(model.parameters(), lr=1e-2, compile=True)
    _train(model, optimizer, 2)
    compiled_frames = counters["stats"]["unique_graphs"]
    for lr in (5e-3, 1e-3, 2e-4):
        optimizer.param_groups[0]["lr"] = lr
        _train(model, optimizer, 1)
    assert counters["stats"]["unique_graphs"] == compiled_frames


def test_auto_compiles_only_large_buckets(monkeypatch):
    """Plain SGD without decay is one in-place axpy at any size; the other updates compile past the threshold."""
    import regopt.optim.kernels as kernels

    calls = []
    monkeypatch.setattr(kernels, "compiled", lambda fn: calls.append(fn) or fn)
    monkeypatch.delenv("REGOPT_COMPILE", raising=False)
    small = torch.nn.Parameter(torch.zeros(10))
    small.grad = torch.ones(10)
    SGD([small], lr=0.1, momentum=0.9).step()
    assert calls == []
    big = torch.nn.Parameter(torch.zeros(kernels.COMPILE_THRESHOLD))
    big.grad = torch.ones(kernels.COMPILE_THRESHOLD)
    monkeypatch.setattr(kernels, "COMPILE_PAYOFF", 0)  # compile a large update from its first step
    SGD([big], lr=0.1, momentum=0.9).step()
    assert len(calls) == 1
    monkeypatch.setenv("REGOPT_COMPILE", "0")
    SGD([big], lr=0.1, momentum=0.9).step()
    assert len(calls) == 1


@pytest.mark.parametrize(("cls", "kwargs"), [c[1:] for c in COMPILED_CASES], ids=[c[0] for c in COMPILED_CASES])
def test_eager_slices_give_the_same_update(cls, kwargs, monkeypatch):
    import regopt.optim.kernels as kernels

    whole, sliced = _model(), _model()
    opt_whole = cls(whole.parameters(), **kwargs, compile=False)
    _train(whole, opt_whole, 5)
    monkeypatch.setattr(kernels, "EAGER_CHUNK", 7)  # slices that cut across tensors
    opt_sliced = cls(sliced.parameters(), **kwargs, compile=False)
    _train(sliced, opt_sliced, 5)
    for p, q in zip(whole.parameters(), sliced.parameters(), strict=True):
        assert torch.equal(p, q)


def test_many_compiled_variants_of_one_update_do_not_exhaust_the_recompile_limit():
    # RMSProp's update has 12 flag combinations per dtype; dynamo allows 8 recompiles per code object.
    p = torch.nn.Parameter(torch.zeros(64))
    variants = 0
    for weight_decay in (0.0, 0.1):
        for momentum, nesterov in ((0.0, False), (0.9, False), (0.9, True)):
            for inside in (True, False):
                p.grad = torch.ones(64)
                kwargs = {"momentum": momentum, "nesterov": nesterov, "eps_inside_sqrt": inside}
                RMSProp([p], lr=1e-3, weight_decay=weight_decay, **kwargs, compile=True).step()
                variants += 1
    assert variants == 12 and torch.isfinite(p).all()


@pytest.mark.parametrize(("cls", "kwargs"), [c[1:] for c in COMPILED_CASES], ids=[c[0] for c in COMPILED_CASES])
def test_large_fresh_gradients_are_used_in_place_with_the_same_result(cls, kwargs, monkeypatch):
    """Fresh gradients of at least DIRECT_MIN elements are not copied into the flat buffer; the update is the same."""
    import regopt.optim.flat as flat

    def run(direct_min: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        monkeypatch.setattr(flat, "DIRECT_MIN", direct_min)
        model = _model()
        optimizer = cls(model.parameters(), **kwargs)
        gen = torch.Generator().manual_seed(1)
        for step in range(6):
            optimizer.zero_grad(set_to_none=True)
            model(torch.randn(16, 4, generator=gen)).pow(2).mean().backward()
            if step == 3:
                model[0].bias.grad = None  # a parameter without a gradient splits the runs
            optimizer.step()
        return model, optimizer

    copied, _ = run(1 << 30)
    direct, optimizer = run(8)  # the 4x8 and 8x2 weights and the 8-element bias go direct; the 2-element bias is copied
    for p, q in zip(copied.parameters(), direct.parameters(), strict=True):
        assert torch.equal(p, q)
    (buckets,) = optimizer.flat_buckets()
    flat_ptr = buckets[0].grad.untyped_storage().data_ptr()
    shares = [p.grad.untyped_storage().data_ptr() == flat_ptr for p in direct.parameters()]
    assert shares == [False, False, False, True]


def test_large_fresh_gradients_in_place_through_the_compiled_kernel(monkeypatch):
    """The compiled update takes a fresh gradient tensor (its own storage) as well as the flat buffer's views."""
    import regopt.optim.flat as flat

    def run(direct_min: int) -> torch.nn.Module:
        monkeypatch.setattr(flat, "DIRECT_MIN", direct_min)
        model = _model()
        optimizer = Adam(model.parameters(), lr=1e-2, compile=True)
        _train(model, optimizer, 4)
        return model

    copied, direct = run(1 << 30), run(8)
    for p, q in zip(copied.parameters(), direct.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
