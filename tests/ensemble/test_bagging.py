"""Bagging: bootstrap resamples, vectorized training = K sequential trainings, the ensemble beats its members."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import regopt.optim
from regopt.ensemble import (
    Bagging,
    average_models,
    bootstrap_batches,
    bootstrap_indices,
    majority_vote,
    out_of_bag_mask,
    vote_counts,
)


def mlp(inputs: int = 64, hidden: int = 32, classes: int = 10, dtype: torch.dtype = torch.float32) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, classes)).to(dtype)


@pytest.fixture(scope="module")
def digits():
    """300 training digits and 1497 held-out ones, as 64-vectors in [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data / 16.0, dtype=torch.float32)
    y = torch.tensor(bunch.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:300], y[:300], x[300:], y[300:]


@pytest.fixture(scope="module")
def trained(digits):
    x, y, _, _ = digits
    bag = Bagging(mlp, k=8, seed=0)
    history = bag.fit(x, y, epochs=40, batch_size=30, optimizer_factory=lambda p: regopt.optim.Adam(p, lr=3e-3))
    return bag, history


# --------------------------------------------------------------------------------------------- bootstrap
def test_bootstrap_rows_are_samples_with_replacement_of_size_n():
    n, k = 2000, 16
    rows = bootstrap_indices(n, k, torch.Generator().manual_seed(0))
    assert rows.shape == (k, n) and rows.dtype == torch.int64
    assert int(rows.min()) >= 0 and int(rows.max()) < n
    unique = torch.tensor([len(row.unique()) / n for row in rows])
    assert (unique < 1).all()  # every row repeats some examples (and so leaves others out)
    assert abs(unique.mean().item() - (1 - (1 - 1 / n) ** n)) < 0.01  # ~ 1 - 1/e = 63.2%
    assert len({tuple(row.tolist()) for row in rows}) == k  # members differ
    assert torch.equal(rows, bootstrap_indices(n, k, torch.Generator().manual_seed(0)))


def test_out_of_bag_mask_by_hand():
    mask = out_of_bag_mask(torch.tensor([[0, 0, 1], [2, 2, 2]]), 3)
    assert mask.tolist() == [[False, False, True], [True, True, False]]
    rows = bootstrap_indices(500, 4, torch.Generator().manual_seed(1))
    mask = out_of_bag_mask(rows, 500)
    for row, oob in zip(rows, mask, strict=True):
        assert set(torch.nonzero(oob).flatten().tolist()) == set(range(500)) - set(row.tolist())


def test_each_member_batches_come_only_from_its_own_rows():
    rows = bootstrap_indices(103, 5, torch.Generator().manual_seed(2))
    batches = list(bootstrap_batches(rows, 10, torch.Generator().manual_seed(3)))
    assert [b.shape for b in batches] == [(5, 10)] * 10 + [(5, 3)]
    epoch = torch.cat(batches, dim=1)  # row i: member i's whole epoch
    for i in range(5):
        assert torch.equal(epoch[i].sort().values, rows[i].sort().values)  # its own resample, repeats included
        assert not torch.equal(epoch[i], rows[i])  # in its own shuffled order


def test_fit_trains_each_member_only_on_its_own_resample():
    """A linear model on one-hot inputs: column j of member i's weight moves iff example j is in its resample."""
    n, k = 60, 4
    x, y = torch.eye(n), torch.randint(3, (n,), generator=torch.Generator().manual_seed(0))
    bag = Bagging(lambda: nn.Linear(n, 3, bias=False), k=k)
    before = bag.params[0].detach().clone()
    bag.fit(x, y, epochs=2, batch_size=7, optimizer_factory=lambda p: regopt.optim.SGD(p, lr=0.5))
    assert bag.indices is not None
    moved = (bag.params[0].detach() != before).any(dim=1)  # (k, n): weight column j of member i changed
    assert torch.equal(moved, ~out_of_bag_mask(bag.indices, n))


# ----------------------------------------------------------------------------- vectorized = sequential
OPTIMIZERS: dict[str, Callable] = {
    "torch SGD momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    "regopt SGD nesterov": lambda p: regopt.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    "regopt Adam": lambda p: regopt.optim.Adam(p, lr=1e-2),
    "torch Adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "regopt RMSProp": lambda p: regopt.optim.RMSProp(p, lr=1e-3),
}


def batchnorm_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 3)).double()


def float64_mlp() -> nn.Module:
    return mlp(12, 16, 3, torch.float64)


@pytest.mark.parametrize(
    ("make", "factory", "route"),
    [(float64_mlp, f, "stacked") for f in OPTIMIZERS.values()]
    + [
        (float64_mlp, OPTIMIZERS["regopt SGD nesterov"], "vmap"),
        (batchnorm_mlp, OPTIMIZERS["torch SGD momentum"], "vmap"),
    ],
    ids=[*OPTIMIZERS, "vmap route, regopt SGD nesterov", "batchnorm (vmap route), torch SGD momentum"],
)
def test_vectorized_training_equals_k_sequential_trainings(make, factory, route):
    n, k, epochs, batch_size = 90, 4, 3, 16
    data = torch.Generator().manual_seed(0)
    x = torch.randn(n, 12, generator=data, dtype=torch.float64)
    y = torch.randint(3, (n,), generator=data)
    bag = Bagging(make, k=k, seed=5, vectorize="vmap" if route == "vmap" else "auto")
    assert bag.vectorize == route
    members = [bag.member(i) for i in range(k)]
    for i, model in enumerate(members):  # member i is make() under seed + i
        torch.manual_seed(5 + i)
        for (name, a), b in zip(model.state_dict().items(), make().state_dict().values(), strict=True):
            assert torch.equal(a, b), name
    history = bag.fit(x, y, epochs=epochs, batch_size=batch_size, optimizer_factory=factory)

    # The reference: K ordinary modules, one optimizer each, the same resamples and batch order.
    generator = torch.Generator().manual_seed(5)  # fit's default: a generator seeded with the bag's seed
    rows = bootstrap_indices(n, k, generator)
    optimizers = [factory(list(model.parameters())) for model in members]
    losses = []
    for _ in range(epochs):
        total = 0.0
        for batch in bootstrap_batches(rows, batch_size, generator):
            for i, (model, optimizer) in enumerate(zip(members, optimizers, strict=True)):
                loss = F.cross_entropy(model(x[batch[i]]), y[batch[i]])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * batch.shape[1] / k
        losses.append(total / n)

    assert torch.equal(bag.indices, rows)
    # float64, vectorized vs one module at a time: the same math summed in another order, over 18 steps (Adam and
    # RMSProp included, too few to amplify rounding far): losses agree to ~4e-16 and weights to ~7e-16 on the
    # AVX-512 and AVX2 paths, so 1e-10 and 1e-6 are far from rounding and far below any wrong resample or batch
    for i, model in enumerate(members):
        for (name, want), got in zip(model.state_dict().items(), bag.member(i).state_dict().values(), strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6, msg=f"member {i} {name}")
    assert (history[-1] < history[0]).item()


# ---------------------------------------------------------------------------------------- the ensemble
def test_ensemble_beats_its_average_member_on_held_out_digits(trained, digits):
    bag, history = trained
    _, _, x_test, y_test = digits
    assert history.shape == (40,) and history[-1] < 0.1 * history[0]
    members = (bag.member_predictions(x_test) == y_test).float().mean(dim=1)  # (K,)
    vote = (bag.predict(x_test) == y_test).float().mean().item()
    mean = (bag.predict(x_test, how="mean") == y_test).float().mean().item()
    assert members.mean().item() + 0.01 < min(vote, mean)  # 1.6 points here: 24 of 1497 digits
    assert members.max().item() < min(vote, mean)  # better than even the best member, here


def test_oob_error_is_close_to_the_held_out_error(trained, digits):
    bag, _ = trained
    x, y, x_test, y_test = digits
    test_error = (bag.predict(x_test, how="mean") != y_test).float().mean().item()
    for how in ("mean", "vote"):
        oob = bag.oob_error(x, y, how=how)
        assert abs(oob - test_error) < 0.06, (how, oob, test_error)
    train_error = (bag.predict(x) != y).float().mean().item()
    assert train_error < 0.5 * bag.oob_error(x, y)  # the error on seen examples is optimistic; out-of-bag is not


def test_vote_and_mean_mostly_agree_and_probabilities_are_consistent(trained, digits):
    bag, _ = trained
    x_test = digits[2]
    assert (bag.predict(x_test, how="vote") == bag.predict(x_test, how="mean")).float().mean() > 0.97
    proba = bag.predict_proba(x_test)
    assert proba.shape == (len(x_test), 10) and torch.allclose(proba.sum(1), torch.ones(len(x_test)))
    fractions = bag.predict_proba(x_test, how="vote")
    assert torch.equal(fractions * 8, vote_counts(bag.member_predictions(x_test), 10).float())
    assert torch.equal(bag.predict(x_test, how="mean"), proba.argmax(1))


def test_plain_model_averaging_equals_the_stacked_ensemble(trained, digits):
    bag, _ = trained
    x_test = digits[2][:50]
    models = [bag.member(i) for i in range(bag.k)]
    proba = average_models(models, x_test)
    torch.testing.assert_close(proba, bag.predict_proba(x_test))
    torch.testing.assert_close(Bagging.from_models(models).predict_proba(x_test), proba)
    assert all(m.training for m in models)  # left in the mode they were in


def test_majority_vote_ties():
    predictions = torch.tensor([[0, 1], [2, 1], [2, 0], [0, 2]])  # example 0: 0 and 2 tie; example 1: 1 wins
    assert majority_vote(predictions, 3).tolist() == [0, 1]  # tie -> lowest class
    proba = torch.tensor([[0.2, 0.1, 0.7], [0.0, 0.1, 0.9]])
    assert majority_vote(predictions, 3, proba=proba).tolist() == [2, 1]  # tie -> higher proba; votes first


def test_state_dict_round_trip_and_modes(trained, digits):
    bag, _ = trained
    clone = Bagging(mlp, k=8, seed=123)
    clone.load_state_dict(bag.state_dict())
    torch.testing.assert_close(clone.predict_proba(digits[2]), bag.predict_proba(digits[2]), rtol=0, atol=0)
    assert bag.training and bag.base.training
    bag.eval()
    assert not bag.base.training
    bag.train()


@pytest.mark.parametrize("route", ["stacked", "vmap"])
def test_dropout_members_get_independent_masks(route):
    bag = Bagging(lambda: nn.Sequential(nn.Linear(5, 50), nn.Dropout(0.5)), k=3, vectorize=route)
    shared = torch.ones(3, 1, 5)
    out = bag(shared * torch.ones(3, 1, 1))
    base = bag.forward_shared(torch.ones(1, 5))
    assert out.shape == (3, 1, 50) and base.shape == (3, 1, 50)
    zeros = out == 0
    assert not torch.equal(zeros[0], zeros[1])  # dropout masks differ between members
    bag.eval()
    assert (bag(shared) != 0).float().mean() > 0.9


def test_global_random_state_is_left_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    Bagging(mlp, k=3, seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_example_script_runs():
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "bagging.py"
    results = runpy.run_path(str(script))["main"](epochs=10, k=4)
    assert len(results) == 6 and all(0.5 < v <= 1 for v in results.values())
    assert results["ensemble (mean probability)"] >= results["mean member"]


# --------------------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("k", [0, -1, 1.5, True, "8"])
def test_bad_k_raises(k):
    with pytest.raises(ValueError, match=r"Invalid k: "):
        Bagging(mlp, k=k)


def test_bad_arguments_raise_naming_them(digits):
    x, y = digits[0][:20], digits[1][:20]
    bag = Bagging(mlp, k=2)
    factory = lambda p: torch.optim.SGD(p, lr=0.1)  # noqa: E731
    cases = [
        (lambda: bootstrap_indices(0, 3), r"Invalid n: 0"),
        (lambda: bootstrap_indices(10, 0), r"Invalid k: 0"),
        (lambda: out_of_bag_mask(torch.tensor([[0, 5]]), 5), r"Invalid indices"),
        (lambda: list(bootstrap_batches(torch.zeros(2, 3, dtype=torch.long), 0)), r"Invalid batch_size: 0"),
        (lambda: bag.fit(x, y, epochs=0, batch_size=4, optimizer_factory=factory), r"Invalid epochs: 0"),
        (lambda: bag.fit(x, y, epochs=1, batch_size=0, optimizer_factory=factory), r"Invalid batch_size: 0"),
        (lambda: bag.fit(x, y[:5], epochs=1, batch_size=4, optimizer_factory=factory), r"Invalid x, y"),
        (
            lambda: bag.fit(x, y, epochs=1, batch_size=4, optimizer_factory=factory, indices=torch.zeros(3, 20)),
            r"Invalid indices: shape \(3, 20\)",
        ),
        (lambda: bag.oob_error(x, y), r"call fit\(\) first"),
        (lambda: bag(torch.zeros(3, 4, 64)), r"Invalid x: shape \(3, 4, 64\)"),
        (lambda: bag.member(2), r"Invalid i: 2"),
        (lambda: bag.predict(x, how="median"), r"Invalid how: 'median'"),
        (lambda: average_models([], x), r"Invalid models: empty"),
    ]
    for call, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            call()
    bag.fit(x, y, epochs=1, batch_size=4, optimizer_factory=factory)
    with pytest.raises(ValueError, match=r"Invalid x_train, y_train: 10 examples"):
        bag.oob_error(x[:10], y[:10])
