"""regopt tune: a resumed study continues the sampler's sequence, never repeats a point, and the pruner spares
trials that look like the best one (issue 14, trap 2.1)."""

from __future__ import annotations

import optuna
import pytest

from regopt.lab.tune import SearchParam, make_pruner, make_sampler, tune
from tests.lab.tune_helpers import skip_figures, tune_raw

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch):
    skip_figures(monkeypatch)


def _raw():
    return tune_raw(batch_size=100)


def _points(study):
    return [(t.state.name, tuple(sorted(t.params.items())), t.value) for t in study.trials]


def test_a_resumed_study_equals_a_straight_one_and_repeats_no_point(tmp_path):
    params = ["regularize.l2.alpha=loguniform:1e-5:1e-1"]
    tune(_raw(), params, trials=3, out=tmp_path / "resumed")
    resumed = tune(_raw(), params, trials=6, out=tmp_path / "resumed")  # a fresh call, as a new process makes
    straight = tune(_raw(), params, trials=6, out=tmp_path / "straight")
    alphas = [t.params["regularize.l2.alpha"] for t in resumed.study.trials]
    assert len(alphas) == 6 and len(set(alphas)) == 6
    assert _points(resumed.study) == _points(straight.study)


def _cheap_objective(space):
    def objective(trial):
        values = {p.key: p.sample(trial) for p in space}
        return sum((float(v) - 0.3) ** 2 for v in values.values() if not isinstance(v, str))

    return objective


def test_the_model_based_phase_also_continues_across_resumes():
    """Past TPE's 10 random start-up trials the proposal depends on the history: still the same points."""
    space = [SearchParam.parse("x=uniform:-2:2"), SearchParam.parse("n=int:0:3")]
    straight = optuna.create_study(sampler=make_sampler(space, 7))
    straight.optimize(_cheap_objective(space), n_trials=14)
    storage = optuna.storages.InMemoryStorage()
    first = optuna.create_study(storage=storage, study_name="s", sampler=make_sampler(space, 7))
    first.optimize(_cheap_objective(space), n_trials=8)
    resumed = optuna.load_study(storage=storage, study_name="s", sampler=make_sampler(space, 7))
    resumed.optimize(_cheap_objective(space), n_trials=6)
    assert _points(resumed) == _points(straight)


def test_a_small_discrete_space_is_sampled_without_repeats():
    space = [SearchParam.parse("n=int:0:2"), SearchParam.parse("c=choice:a,b")]  # 6 points
    study = optuna.create_study(sampler=make_sampler(space, 0))
    study.optimize(_cheap_objective(space), n_trials=6)
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 6


def test_tune_stops_when_every_point_of_a_discrete_space_was_tried(tmp_path):
    result = tune(_raw(), ["model.widths=choice:[8],[16]"], trials=4, out=tmp_path)
    assert len(result.study.trials) == 2
    assert any("2 points" in note for note in result.notes)
    again = tune(_raw(), ["model.widths=choice:[8],[16]"], trials=5, out=tmp_path)
    assert len(again.study.trials) == 2


# A scripted study: the best trial (0) starts slowly and ends best; three others start fast and stall.
SLOW_BEST = [0.50, 0.48, 0.45, 0.40, 0.30, 0.20, 0.12, 0.08, 0.06, 0.05]
FAST_STALLED = [[0.30, 0.25, 0.22, 0.21, 0.21, 0.21, 0.21, 0.21, 0.21, 0.21 + d] for d in (0.0, 0.01, 0.02)]


def _scripted_study():
    study = optuna.create_study(pruner=make_pruner(epochs=10))
    for curve in [SLOW_BEST, *FAST_STALLED]:
        study.add_trial(
            optuna.trial.create_trial(
                value=min(curve), intermediate_values={epoch: v for epoch, v in enumerate(curve, start=1)}
            )
        )
    return study


def _first_pruned_epoch(study, curve):
    trial = study.ask()
    for epoch, value in enumerate(curve, start=1):
        trial.report(value, epoch)
        if trial.should_prune():
            return epoch
    return None


@pytest.mark.parametrize("noise", [+0.01, -0.01, +0.02])
def test_a_trial_that_follows_the_best_trial_within_noise_is_never_pruned(noise):
    near_copy = [v + noise * (-1) ** epoch for epoch, v in enumerate(SLOW_BEST)]
    assert _first_pruned_epoch(_scripted_study(), near_copy) is None


def test_a_hopeless_trial_is_pruned_but_not_before_half_the_epochs():
    assert _first_pruned_epoch(_scripted_study(), [0.5] * 10) == 5
