"""The chapter's worked examples of optimization challenges, reproduced number for number."""

from __future__ import annotations

import pytest
import torch

from regopt.diagnostics.toy_problems import (
    SEED_INPUTS,
    SEED_LRS,
    Trajectory,
    adam_1d,
    badly_scaled_least_squares,
    cliff_loss,
    cliff_trajectories,
    condition_number,
    escape_step,
    gradient_descent_1d,
    ill_conditioning_criterion,
    least_squares_gd,
    saddle_trajectories,
    stable_lr_boundary,
    standardize,
)

STEPS = 100
# (lr, multiplier 1 - 60 lr, converges): the chapter's three learning rates
SEED_CASES = [(0.033, -0.98, True), (0.034, -1.04, False), (0.035, -1.10, False)]


# ------------------------------------------------------------------------------------------- ill-conditioning


@pytest.mark.parametrize("x0", SEED_INPUTS)
@pytest.mark.parametrize(("lr", "multiplier", "converges"), SEED_CASES)
def test_seed_learning_rates_converge_or_diverge(x0, lr, multiplier, converges):
    x = gradient_descent_1d(x0, lr, STEPS)
    assert x.shape == (STEPS + 1,) and x.dtype == torch.float64 and x[0] == x0
    ratios = x[1:] / x[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, multiplier), rtol=1e-12, atol=0)
    torch.testing.assert_close(x[-1], torch.tensor(x0 * multiplier**STEPS, dtype=torch.float64), rtol=1e-10, atol=0)
    assert bool(x[-1].abs() < abs(x0)) is converges
    assert bool((x[1:].abs() < x[:-1].abs()).all()) is converges  # |x| shrinks, or grows, at every step
    assert bool((x[1:] * x[:-1] < 0).all())  # every step overshoots the minimum: the sign alternates


def test_hand_worked_first_steps():
    x = gradient_descent_1d(3.0, 0.033, 2)
    assert x[1].item() == pytest.approx(-2.94)  # 3 - 0.033 * (60 * 3) = 3 (1 - 1.98)
    assert x[2].item() == pytest.approx(2.8812)  # -2.94 * -0.98
    assert gradient_descent_1d(50.0, 0.035, 1)[1].item() == pytest.approx(-55.0)  # 50 (1 - 2.1)
    assert gradient_descent_1d(4.0, 0.034, 1)[1].item() == pytest.approx(-4.16)


def test_several_inputs_at_once_match_one_at_a_time():
    together = gradient_descent_1d(SEED_INPUTS, 0.034, 10)
    assert together.shape == (11, 3)
    for i, x0 in enumerate(SEED_INPUTS):
        torch.testing.assert_close(together[:, i], gradient_descent_1d(x0, 0.034, 10))


def test_boundary_is_one_thirtieth():
    assert stable_lr_boundary() == 1 / 30
    assert stable_lr_boundary(curvature=4.0) == 0.5
    assert SEED_LRS[0] < stable_lr_boundary() < SEED_LRS[1]


@pytest.mark.parametrize("x0", SEED_INPUTS)
def test_criterion_sign_at_the_seed_learning_rates(x0):
    values = ill_conditioning_criterion(x0, list(SEED_LRS))
    assert values[0] < 0 < values[1] < values[2]
    g = 60 * x0  # hand-worked: 0.5 eps^2 g 60 g - eps g g
    expected = [0.5 * lr**2 * g * 60 * g - lr * g * g for lr in SEED_LRS]
    torch.testing.assert_close(values, torch.tensor(expected, dtype=torch.float64))
    assert ill_conditioning_criterion(x0, 1 / 30).abs() < 1e-9 * g * g  # zero at the boundary, for every x


def test_criterion_sign_matches_divergence_across_learning_rates():
    lrs = torch.linspace(0.001, 0.06, 60, dtype=torch.float64)
    positive = ill_conditioning_criterion(3.0, lrs) > 0
    diverges = torch.tensor([bool(gradient_descent_1d(3.0, float(lr), 50)[-1].abs() > 3.0) for lr in lrs])
    assert torch.equal(positive, diverges)
    assert torch.equal(positive, lrs > 1 / 30)


def test_adam_converges_for_every_input_at_one_lr():
    x = adam_1d(SEED_INPUTS, lr=1.0, steps=300)
    assert x.shape == (301, 3)
    assert bool((x.abs() <= torch.tensor(SEED_INPUTS, dtype=torch.float64)).all())  # never leaves |x| <= |x0|
    assert bool((x[-1].abs() < 1e-3).all())
    final = x[-1].abs() / torch.tensor(SEED_INPUTS, dtype=torch.float64)
    assert bool((final < 1e-5).all())


def test_input_normalization_fixes_the_conditioning():
    X, y = badly_scaled_least_squares(n=200, scales=(1.0, 100.0), seed=0)
    assert X.shape == (200, 2) and y.shape == (200,)
    Xn, yn = standardize(X, y)
    torch.testing.assert_close(Xn.std(0), torch.ones(2, dtype=torch.float64))
    raw, normalized = condition_number(X), condition_number(Xn)
    assert raw > 5e3 and normalized < 1.5  # ~(100/1)^2 before, ~1 after
    assert raw / normalized > 1e3
    slow, fast = least_squares_gd(X, y), least_squares_gd(Xn, yn)
    assert slow.condition_number == pytest.approx(raw) and fast.condition_number == pytest.approx(normalized)
    assert slow.iterations is not None and fast.iterations is not None
    assert fast.iterations <= 5 and slow.iterations > 1000 * fast.iterations
    for run in (slow, fast):
        assert len(run.relative_gap) == run.iterations + 1 and run.relative_gap[0] == 1.0
        assert run.relative_gap[-1] <= 1e-6 < run.relative_gap[-2]
        assert bool((run.relative_gap[1:] <= run.relative_gap[:-1]).all())  # lr = 1/lambda_max: monotone


def test_least_squares_gd_gives_up_after_max_iters():
    X, y = badly_scaled_least_squares()
    run = least_squares_gd(X, y, max_iters=500)
    assert run.iterations is None and len(run.relative_gap) == 501


# ------------------------------------------------------------------------------------------------- saddle


def test_every_method_escapes_the_saddle_adam_first_then_momentum_then_gd():
    runs = saddle_trajectories((1.0, 1e-3), steps=60, lr=0.1)
    assert list(runs) == ["gradient descent", "momentum", "Adam"]
    steps = {name: escape_step(run) for name, run in runs.items()}
    assert steps == {"gradient descent": 38, "momentum": 19, "Adam": 11}
    # gradient descent: y_k = 1e-3 * 1.2^k exceeds 1 first at k = ceil(log(1000) / log(1.2)) = 38
    gd = runs["gradient descent"].params
    torch.testing.assert_close(gd[:, 1], 1e-3 * 1.2 ** torch.arange(61, dtype=torch.float64))
    torch.testing.assert_close(gd[:, 0], 0.8 ** torch.arange(61, dtype=torch.float64))
    for run in runs.values():
        assert run.params.shape == (61, 2) and run.loss.shape == (61,) and run.grad_norm.shape == (61,)
        assert run.loss[0] == pytest.approx(1.0 - 1e-6)
        assert run.loss[-1] < -1.0  # left down the negative-curvature direction


def test_starting_on_the_ridge_never_escapes():
    for run in saddle_trajectories((1.0, 0.0), steps=60).values():
        assert escape_step(run) is None
        assert bool((run.params[:, 1] == 0).all())


def test_escape_step_reads_the_last_coordinate():
    path = torch.tensor([[0.0, 0.1], [0.0, -0.5], [0.0, -1.5], [0.0, 3.0]])
    assert escape_step(path) == 2
    assert escape_step(path, threshold=2.0) == 3
    assert escape_step(path, threshold=5.0) is None
    assert escape_step(Trajectory(path, torch.zeros(4), torch.zeros(4))) == 2


# -------------------------------------------------------------------------------------------------- cliff


def test_clipping_keeps_gradient_descent_on_the_cliff():
    free, clipped = cliff_trajectories(0.5, 0.5, 40, None), cliff_trajectories(0.5, 0.5, 40, 1.0)
    jump_free = float((free.loss[1:] - free.loss[:-1]).max())
    jump_clipped = float((clipped.loss[1:] - clipped.loss[:-1]).max())
    assert jump_free > 100.0 and jump_clipped <= 0.0  # clipped: the loss never rises
    assert float(free.params.max()) > 50.0 and float(clipped.params.max()) < 5.0  # minimum at x = 5
    assert float(clipped.loss[-1]) < 0.05 < 1.0 < float(free.loss[-1])
    assert float(free.grad_norm.max()) > 100.0  # the cliff face
    steps = (clipped.params[1:] - clipped.params[:-1]).abs()
    assert float(steps.max()) <= 0.5 + 1e-9  # no clipped step exceeds lr * max_norm


def test_cliff_loss_shape():
    assert float(cliff_loss(torch.tensor([5.0], dtype=torch.float64))) == pytest.approx(0.0, abs=1e-20)
    assert float(cliff_loss(torch.tensor([0.0], dtype=torch.float64))) == pytest.approx(1.25 + 20.0, abs=1e-6)
    assert float(cliff_loss(torch.tensor([2.0], dtype=torch.float64))) == pytest.approx(0.45 + 10.0)
