"""SAM (Foret et al. 2021) against a hand-written float64 transcription of its two passes, with regopt's SGD
(momentum) and Adam as bases; its state dict (the base's) resumes exactly; LR schedulers reach the base; bad
arguments name themselves."""

from __future__ import annotations

import io

import pytest
import torch

from regopt.optim import SAM, SGD, Adam
from tests.optim import reference
from tests.optim.problems import mlp

STEPS = 20
TOL = 1e-12  # the module sums ||g|| per tensor then over tensors, the transcription over the flat vector: ulps


def sam_gradient(grad, rho: float, adaptive: bool = False):
    """The gradient SAM hands its base at theta, transcribed: e = rho T^2 g / (||T g|| + 1e-12), T = |theta|
    (ASAM) or 1; then grad L(theta + e)."""

    def at(theta: torch.Tensor) -> torch.Tensor:
        g = grad(theta)
        t = theta.abs() if adaptive else torch.ones_like(theta)
        e = rho * t * t * g / (torch.linalg.vector_norm(t * g) + 1e-12)  # ascend to the worst point of the ball
        return grad(theta + e)  # the gradient there, used from theta

    return at


BASES = [
    (
        "momentum",
        lambda ps: SGD(ps, lr=0.05, momentum=0.9),
        lambda th, g: reference.momentum(th, g, lambda k: 0.05, STEPS, alpha=0.9),
    ),
    ("adam", lambda ps: Adam(ps, lr=0.01), lambda th, g: reference.adam(th, g, lambda k: 0.01, STEPS)),
]


def closure_for(problem, params, optimizer):
    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = problem.loss(params)
        loss.backward()
        return loss

    return closure


def flat(params) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


@pytest.mark.parametrize("adaptive", [False, True], ids=["sam", "asam"])
@pytest.mark.parametrize(("make_base", "transcription"), [b[1:] for b in BASES], ids=[b[0] for b in BASES])
@pytest.mark.parametrize("pieces", [False, True], ids=["step", "first-second"])
def test_step_equals_the_two_pass_transcription(make_base, transcription, adaptive, pieces):
    problem = mlp()
    params = problem.parameters()
    rho = 0.5 if adaptive else 0.05
    optimizer = SAM(params, make_base(params), rho=rho, adaptive=adaptive)
    closure = closure_for(problem, params, optimizer)
    for _ in range(STEPS):
        if pieces:  # davda54's loop: the gradient at theta in .grad, the second backward the loop's own
            closure()
            optimizer.first_step(zero_grad=True)
            closure()
            optimizer.second_step(zero_grad=True)
        else:  # the closure at theta and at theta + e; .grad left from the last step is not used
            assert torch.isfinite(optimizer.step(closure))
    expected = transcription(problem.init, sam_gradient(problem.grad, rho, adaptive))
    plain = transcription(problem.init, problem.grad)
    assert (flat(params) - plain).abs().max() > 1e-4  # SAM's ascent does change the trajectory
    torch.testing.assert_close(flat(params), expected, rtol=0, atol=TOL)


def test_state_dict_round_trip_continues_identically():
    problem = mlp()
    params = problem.parameters()
    optimizer = SAM(params, Adam(params, lr=0.01), rho=0.1)
    closure = closure_for(problem, params, optimizer)
    for _ in range(5):
        optimizer.step(closure)
    buffer = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in params], "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert saved["optimizer"]["param_groups"][0]["sam"] == {"rho": 0.1, "adaptive": False}
    for _ in range(5):
        optimizer.step(closure)

    resumed = [torch.nn.Parameter(t) for t in saved["params"]]
    other = SAM(resumed, Adam(resumed, lr=0.01), rho=0.7)  # rho, like lr, comes back from the state dict
    other.load_state_dict(saved["optimizer"])
    assert other.rho == 0.1
    assert other.base_optimizer.state[resumed[0]]["s"].abs().sum() > 0  # the base's moments came back
    other_closure = closure_for(problem, resumed, other)
    for _ in range(5):
        other.step(other_closure)
    for a, b in zip(params, resumed, strict=True):
        assert torch.equal(a, b)


def test_lr_scheduler_on_sam_drives_the_base():
    problem = mlp()
    params = problem.parameters()
    base = SGD(params, lr=0.1)
    optimizer = SAM(params, base)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    optimizer.step(closure_for(problem, params, optimizer))
    scheduler.step()
    assert base.param_groups[0]["lr"] == pytest.approx(0.05)
    optimizer.load_state_dict(optimizer.state_dict())  # torch's load gives the base new group dicts
    scheduler.step()
    assert base.param_groups[0]["lr"] == pytest.approx(0.025)
    assert optimizer.param_groups is base.param_groups


def test_first_and_second_step_restore_theta_exactly():
    problem = mlp()
    params = problem.parameters()
    start = flat(params)
    optimizer = SAM(params, torch.optim.SGD(params, lr=0.0))
    problem.loss(params).backward()
    optimizer.first_step(zero_grad=True)
    assert (flat(params) - start).norm() == pytest.approx(0.05, rel=1e-9)  # moved by rho
    problem.loss(params).backward()
    optimizer.second_step()
    assert torch.equal(flat(params), start)  # lr 0: theta itself, bit for bit


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda ps, base: SAM(ps, base, rho=0.0), r"^Invalid rho: 0.0 \(must be a finite number > 0\)$"),
        (lambda ps, base: SAM(ps, base, rho=-0.1), "Invalid rho"),
        (lambda ps, base: SAM(ps, base, rho=float("nan")), "Invalid rho"),
        (lambda ps, base: SAM(ps, base, rho=True), "Invalid rho"),
        (lambda ps, base: SAM(ps, base, adaptive=1), r"^Invalid adaptive: 1 \(must be True or False\)$"),
        (lambda ps, base: SAM(ps, "sgd"), "base_optimizer must be a torch.optim.Optimizer"),
        (lambda ps, base: SAM(ps[:2], base), "base_optimizer must be built over SAM's params: 0 of SAM's 2 .* 2 other"),
        (lambda ps, base: SAM(ps, torch.optim.LBFGS(ps)), "base_optimizer: LBFGS needs a closure"),
        (lambda ps, base: SAM(ps, base).step(), "SAM.step needs a closure"),
    ],
)
def test_bad_arguments_name_themselves(make, match):
    params = mlp().parameters()
    with pytest.raises(ValueError, match=match):
        make(params, SGD(params, lr=0.1))
