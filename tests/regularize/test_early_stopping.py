"""EarlyStopping (Algorithm 7.1) on scripted metric sequences, exact restore and resume; Algorithms 7.2 and 7.3."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from regopt.monitor import Monitor
from regopt.regularize.early_stopping import EarlyStopping, algorithm_7_2, algorithm_7_3

NAN = math.nan


def _drive(stopper: EarlyStopping, values: list[float], key: str = "val_loss") -> list[bool]:
    """Feed ``values`` as epochs 1, 2, ... until a stop; return the decisions made."""
    decisions = []
    for epoch, value in enumerate(values, start=1):
        stop, _ = stopper.after_epoch(epoch, {key: value, "step": 10 * epoch})
        decisions.append(stop)
        if stop:
            break
    return decisions


# (values, kwargs, stop epoch or None, best epoch, best value)
SCRIPTED = [
    # Lightning's test: best 5 at epoch 2, no improvement at 3, 4, 5 -> wait 3 -> stop at (1-based) epoch 5.
    ([6, 5, 5, 5, 5, 5], {"patience": 3}, 5, 2, 5),
    # min_delta: 0.94 and 0.935 are not below 0.95 - 0.02.
    ([1.0, 0.95, 0.94, 0.935], {"patience": 2, "min_delta": 0.02}, 4, 2, 0.95),
    ([1.0, 0.95, 0.94, 0.935], {"patience": 2}, None, 4, 0.935),
    # an improvement resets the wait counter
    ([3, 4, 5, 2, 3, 4, 5], {"patience": 3}, 7, 4, 2),
    ([3, 4, 2, 3, 4, 1, 2, 3], {"patience": 3}, None, 6, 1),
    # NaN is never an improvement
    ([1.0, NAN, NAN], {"patience": 2}, 3, 1, 1.0),
    ([NAN, 1.0, NAN, 0.5], {"patience": 2}, None, 4, 0.5),
    ([NAN, NAN], {"patience": 2}, 2, None, None),
    # start_epoch ignores the early epochs entirely
    ([0.1, 0.2, 5, 4, 4, 4], {"patience": 2, "start_epoch": 2}, 6, 4, 4),
    ([0.1, 0.2, 5, 4, 4, 4], {"patience": 2}, 3, 1, 0.1),
    # patience 1 stops at the first non-improvement
    ([2, 1, 1], {"patience": 1}, 3, 2, 1),
    # mode max
    ([0.5, 0.6, 0.6, 0.55, 0.61], {"patience": 2, "mode": "max"}, 4, 2, 0.6),
    ([0.5, 0.6, 0.6, 0.55, 0.61], {"patience": 3, "mode": "max"}, None, 5, 0.61),
    ([0.5, 0.6, 0.65, 0.655], {"patience": 2, "mode": "max", "min_delta": 0.06}, 4, 2, 0.6),
]


@pytest.mark.parametrize(("values", "kwargs", "stop_epoch", "best_epoch", "best_value"), SCRIPTED)
def test_scripted_sequences(values, kwargs, stop_epoch, best_epoch, best_value):
    stopper = EarlyStopping(monitor="val_loss", **kwargs)
    decisions = _drive(stopper, values)
    if stop_epoch is None:
        assert decisions == [False] * len(values)
        assert stopper.stopped_epoch is None
    else:
        assert decisions == [False] * (stop_epoch - 1) + [True]
        assert stopper.stopped_epoch == stop_epoch
        assert stopper.wait == kwargs["patience"]
    assert stopper.best_epoch == best_epoch
    assert stopper.best_value == best_value
    assert stopper.best_step == (None if best_epoch is None else 10 * best_epoch)


def test_lightning_case_reason():
    stopper = EarlyStopping(monitor="val_loss", patience=3)
    for epoch, value in enumerate([6, 5, 5, 5], start=1):
        assert stopper.after_epoch(epoch, {"val_loss": value}) == (False, "")
    stop, reason = stopper.after_epoch(5, {"val_loss": 5})
    assert stop
    assert reason == "early stopping: val_loss did not improve for 3 epochs (patience 3; best 5 at epoch 2)"
    assert stopper.best_step is None  # no "step" in these metrics


def test_all_nan_reason():
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    assert _drive(stopper, [NAN, NAN]) == [False, True]
    assert "no improvement since epoch 1; last value nan" in stopper.reason


@pytest.mark.parametrize(
    ("monitor", "mode", "resolved"),
    [("val_error", "auto", "min"), ("val_loss", "auto", "min"), ("val_acc", "auto", "max"),
     ("val_Accuracy", "auto", "max"), ("val_acc", "min", "min"), ("val_error", "max", "max")],
)  # fmt: skip
def test_mode_auto(monitor, mode, resolved):
    assert EarlyStopping(monitor=monitor, mode=mode).mode == resolved


def test_accuracy_is_maximized_by_default():
    stopper = EarlyStopping(monitor="val_accuracy", patience=2)
    assert _drive(stopper, [0.5, 0.6, 0.4, 0.59, 0.9], key="val_accuracy") == [False, False, False, True]
    assert (stopper.best_epoch, stopper.best_value) == (2, 0.6)


def test_default_watches_val_error_of_a_trainer_row():
    stopper = EarlyStopping(patience=1)
    row = {"epoch": 1, "step": 7, "lr": 0.1, "train_loss": 1.0, "train_error": 0.5, "val_loss": 1.1,
           "val_error": 0.4, "seconds": 0.1}  # fmt: skip
    assert stopper.after_epoch(1, row) == (False, "")
    assert (stopper.best_epoch, stopper.best_value, stopper.best_step) == (1, 0.4, 7)


def test_tensor_metric_values_are_accepted():
    stopper = EarlyStopping(monitor="val_loss", patience=1)
    stopper.after_epoch(1, {"val_loss": torch.tensor(0.25)})
    assert stopper.best_value == 0.25


def test_decision_is_kept_after_stopping():
    stopper = EarlyStopping(monitor="val_loss", patience=1)
    assert _drive(stopper, [1, 2]) == [False, True]
    reason = stopper.reason
    assert stopper.after_epoch(3, {"val_loss": 0.0}) == (True, reason)
    assert (stopper.best_value, stopper.stopped_epoch) == (1, 2)


def test_is_a_monitor_with_noop_after_step():
    stopper = EarlyStopping()
    assert isinstance(stopper, Monitor)
    stopper.after_step(1, torch.tensor(1.0))
    assert stopper.wait == 0


def test_missing_metric_names_key_and_available_keys():
    stopper = EarlyStopping(monitor="val_acc", start_epoch=5)
    with pytest.raises(KeyError, match=r"'val_acc'.*available: train_loss, val_loss"):
        stopper.after_epoch(1, {"val_loss": 1.0, "train_loss": 0.5})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patience": 0}, r"patience must be an integer >= 1, got 0"),
        ({"patience": 2.5}, r"patience .* got 2.5"),
        ({"patience": True}, r"patience .* got True"),
        ({"min_delta": -0.1}, r"min_delta must be a finite number >= 0, got -0.1"),
        ({"min_delta": math.inf}, r"min_delta .* got inf"),
        ({"min_delta": "0.1"}, r"min_delta .* got '0.1'"),
        ({"mode": "maximum"}, r"mode must be 'min', 'max' or 'auto', got 'maximum'"),
        ({"monitor": ""}, r"monitor must be a non-empty metric name, got ''"),
        ({"start_epoch": -1}, r"start_epoch must be an integer >= 0, got -1"),
        ({"restore_best": 1}, r"restore_best must be True or False, got 1"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EarlyStopping(**kwargs)


def test_model_must_be_a_module():
    with pytest.raises(TypeError, match=r"model must be an nn.Module or None, got dict"):
        EarlyStopping({})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ restore
def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))


def _set_epoch_weights(model: nn.Module, epoch: int) -> None:
    """Scripted 'training': parameters and buffers become a function of the epoch."""
    g = torch.Generator().manual_seed(epoch)
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.copy_(torch.randn(value.shape, generator=g))
            else:
                value.fill_(epoch)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_restore_best_puts_back_the_weights_of_the_best_epoch():
    model = _model()
    stopper = EarlyStopping(model, monitor="val_loss", patience=2)
    expected = None
    for epoch, value in enumerate([3.0, 1.0, 2.0, 2.0], start=1):
        _set_epoch_weights(model, epoch)
        if epoch == 2:
            expected = _snapshot(model)
        stop, reason = stopper.after_epoch(epoch, {"val_loss": value})
    assert stop and stopper.stopped_epoch == 4
    assert reason.endswith("; restored the weights of epoch 2")
    _assert_state_equal(model.state_dict(), expected)
    assert model.state_dict()["1.num_batches_tracked"].item() == 2  # buffers too


def test_snapshot_is_a_copy_and_restore_can_be_called_after_training():
    model = _model()
    stopper = EarlyStopping(model, monitor="val_loss", patience=5)
    _set_epoch_weights(model, 1)
    stopper.after_epoch(1, {"val_loss": 1.0})
    expected = _snapshot(model)
    _set_epoch_weights(model, 2)  # changed in place after the snapshot
    stopper.after_epoch(2, {"val_loss": 2.0})
    _assert_state_equal(stopper.best_weights, expected)
    stopper.restore()  # training ended without a stop
    _assert_state_equal(model.state_dict(), expected)


def test_no_restore_without_restore_best():
    model = _model()
    stopper = EarlyStopping(model, monitor="val_loss", patience=1, restore_best=False)
    _set_epoch_weights(model, 1)
    stopper.after_epoch(1, {"val_loss": 1.0})
    _set_epoch_weights(model, 2)
    current = _snapshot(model)
    stop, reason = stopper.after_epoch(2, {"val_loss": 2.0})
    assert stop and "restored" not in reason
    assert stopper.best_weights is None
    _assert_state_equal(model.state_dict(), current)
    with pytest.raises(RuntimeError, match="keeps no weights"):
        stopper.restore()


def test_restore_before_any_improvement_is_a_noop_and_without_model_an_error():
    model = _model()
    current = _snapshot(model)
    EarlyStopping(model).restore()
    _assert_state_equal(model.state_dict(), current)
    with pytest.raises(RuntimeError, match="needs a model"):
        EarlyStopping().restore()


# ------------------------------------------------------------------------------------------- resume
RESUME_VALUES = [5.0, 4.0, 4.5, 3.0, 3.5, NAN, 3.7, 3.8, 2.0]


def _run(stopper: EarlyStopping, model: nn.Module, epochs: range) -> list[tuple[bool, str]]:
    decisions = []
    for epoch in epochs:
        _set_epoch_weights(model, epoch)
        decision = stopper.after_epoch(epoch, {"val_loss": RESUME_VALUES[epoch - 1], "step": 3 * epoch})
        decisions.append(decision)
        if decision[0]:
            break
    return decisions


@pytest.mark.parametrize("split", range(1, 7))
def test_state_dict_round_trip_resumes_identically(split):
    model = _model()
    reference = EarlyStopping(model, monitor="val_loss", patience=3)
    expected = _run(reference, model, range(1, len(RESUME_VALUES) + 1))
    assert [stop for stop, _ in expected] == [False] * 6 + [True]  # best 3.0 at epoch 4, stop at 7
    expected_weights = _snapshot(model)

    first = _model()
    stopper = EarlyStopping(first, monitor="val_loss", patience=3)
    decisions = _run(stopper, first, range(1, split + 1))
    buffer = io.BytesIO()
    torch.save({"model": first.state_dict(), "stopper": stopper.state_dict()}, buffer)
    _set_epoch_weights(first, 99)  # the interrupted run goes on changing; the checkpoint must not
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)

    resumed = _model()
    resumed.load_state_dict(checkpoint["model"])
    fresh = EarlyStopping(resumed, monitor="val_loss", patience=3)
    fresh.load_state_dict(checkpoint["stopper"])
    decisions += _run(fresh, resumed, range(split + 1, len(RESUME_VALUES) + 1))
    assert decisions == expected
    assert (fresh.best_epoch, fresh.best_step, fresh.stopped_epoch) == (4, 12, 7)
    _assert_state_equal(resumed.state_dict(), expected_weights)


def test_state_dict_is_not_changed_by_later_improvements():
    model = _model()
    stopper = EarlyStopping(model, monitor="val_loss")
    _set_epoch_weights(model, 1)
    stopper.after_epoch(1, {"val_loss": 2.0})
    state = stopper.state_dict()
    saved = {k: v.clone() for k, v in state["best_weights"].items()}
    _set_epoch_weights(model, 2)
    stopper.after_epoch(2, {"val_loss": 1.0})
    _assert_state_equal(state["best_weights"], saved)
    assert state["best_epoch"] == 1


def test_load_state_dict_rejects_another_metric_or_model():
    model = _model()
    stopper = EarlyStopping(model, monitor="val_loss")
    stopper.after_epoch(1, {"val_loss": 1.0})
    with pytest.raises(ValueError, match=r"watches 'val_loss' \(min\), this one watches 'val_error' \(min\)"):
        EarlyStopping(model).load_state_dict(stopper.state_dict())
    with pytest.raises(ValueError, match=r"weights of another model \(missing \['bias', 'weight'\]"):
        EarlyStopping(nn.Linear(3, 1), monitor="val_loss").load_state_dict(stopper.state_dict())


# --------------------------------------------------------------------------------- a real training loop
def _noisy_problem(n: int, noise: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, 2, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long()
    flip = torch.rand(n, generator=generator) < noise
    return x, torch.where(flip, 1 - y, y)


def test_plain_loop_stops_early_on_noisy_labels_and_restores_the_best():
    g = torch.Generator().manual_seed(0)
    x_train, y_train = _noisy_problem(64, 0.3, g)
    x_val, y_val = _noisy_problem(512, 0.3, g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    stopper = EarlyStopping(model, monitor="val_loss", patience=15)
    max_epochs, step, train_losses = 400, 0, []

    def val_loss() -> float:
        with torch.no_grad():
            return F.cross_entropy(model(x_val), y_val).item()

    for epoch in range(1, max_epochs + 1):
        for start in range(0, 64, 32):
            optimizer.zero_grad()
            F.cross_entropy(model(x_train[start : start + 32]), y_train[start : start + 32]).backward()
            optimizer.step()
            step += 1
        with torch.no_grad():
            train_losses.append(F.cross_entropy(model(x_train), y_train).item())
        stop, reason = stopper.after_epoch(epoch, {"val_loss": val_loss(), "step": step})
        if stop:
            break
    assert stop, "memorizing 30% label noise should raise the validation loss"
    assert stopper.best_epoch > 1
    assert stopper.stopped_epoch == stopper.best_epoch + 15 < max_epochs
    assert train_losses[-1] < train_losses[stopper.best_epoch - 1]  # it went on fitting the noise
    assert stopper.best_step == 2 * stopper.best_epoch
    assert "restored the weights of epoch" in reason
    assert val_loss() == stopper.best_value  # the model is back at theta*

    # Algorithm 7.2 then retrains a fresh model on all the data for i* steps.
    calls = []
    algorithm_7_2(calls.append, stopper.best_step)
    assert calls == [stopper.best_step]


# ------------------------------------------------------------------------------------ Algorithm 7.2
def test_algorithm_7_2_trains_for_exactly_best_steps():
    calls = []
    assert algorithm_7_2(calls.append, 120) is None
    assert calls == [120]


@pytest.mark.parametrize("best_steps", [0, -3, None, 2.0, True])
def test_algorithm_7_2_rejects_bad_step_counts(best_steps):
    calls = []
    with pytest.raises(ValueError, match=r"best_steps must be a positive integer"):
        algorithm_7_2(calls.append, best_steps)
    assert calls == []


# ------------------------------------------------------------------------------------ Algorithm 7.3
class _Scripted:
    """A training process whose validation loss after each check follows a script."""

    def __init__(self, losses: list[float]) -> None:
        self.losses, self.checks, self.steps = list(losses), 0, 0

    def step(self) -> float:
        self.steps += 1
        return 0.0

    def validation_loss(self) -> float:
        self.checks += 1
        return self.losses[self.checks - 1]


@pytest.mark.parametrize(
    ("losses", "target", "max_steps", "check_every", "steps", "checks"),
    [
        ([5.0, 4.0, 3.0, 1.5, 0.5], 2.0, 100, 3, 9, 4),  # first check below target: the 4th, after 9 steps
        ([5.0, 4.0, 3.0, 1.5, 0.5], 2.0, 7, 3, 7, 3),  # max_steps cuts the last block to 1 step
        ([5.0, 4.0, 3.0, 1.5, 0.5], 2.0, 9, 3, 9, 3),  # out of steps exactly when the target would be met
        ([1.0], 2.0, 100, 3, 0, 1),  # already below: the book checks before training
        ([2.0], 2.0, 100, 3, 0, 1),  # the loop runs while J(valid) > eps, so equality ends it
        ([3.0, 2.5, 1.0], 2.0, 100, 1, 2, 3),
        ([3.0], 2.0, 0, 5, 0, 0),
    ],
)
def test_algorithm_7_3_scripted(losses, target, max_steps, check_every, steps, checks):
    process = _Scripted(losses)
    taken = algorithm_7_3(process.step, process.validation_loss, target, max_steps, check_every)
    assert (taken, process.steps, process.checks) == (steps, steps, checks)


def test_algorithm_7_3_nan_validation_loss_is_an_error():
    process = _Scripted([3.0, NAN])
    with pytest.raises(FloatingPointError, match="NaN after 2 steps"):
        algorithm_7_3(process.step, process.validation_loss, 1.0, 10, 2)


@pytest.mark.parametrize(
    ("target", "max_steps", "check_every", "message"),
    [
        (NAN, 10, 1, r"target must be a finite number"),
        (math.inf, 10, 1, r"target must be a finite number"),
        (1.0, -1, 1, r"max_steps must be an integer >= 0, got -1"),
        (1.0, 10, 0, r"check_every must be an integer >= 1, got 0"),
        (1.0, 10.0, 1, r"max_steps .* got 10.0"),
    ],
)
def test_algorithm_7_3_bad_arguments(target, max_steps, check_every, message):
    process = _Scripted([0.0])
    with pytest.raises(ValueError, match=message):
        algorithm_7_3(process.step, process.validation_loss, target, max_steps, check_every)
