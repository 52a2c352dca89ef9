"""Gallery entry ``bagging``: the chapter's "Bagging and Other Ensemble Methods" picture, on real 9s, 6s and 8s.

The chapter (Goodfellow et al. 2016, fig. 7.5) draws an original data set of the digits 9, 6 and 8 and two
resampled data sets, each missing one digit and repeating another, so each member learns a different rule and
each misreads a digit that the other reads; averaged, the ensemble reads all three.

Here the data set is scikit-learn's 8x8 digits restricted to the classes 9, 6 and 8 (535 images): a small
training set of :data:`PER_CLASS` images per class, the rest held out. :data:`MEMBERS` small MLPs (64 -> 8 ->
3, ReLU) are trained at once by :class:`regopt.ensemble.Bagging`, each on its own bootstrap resample of the
training set, which over- and under-represents the digits differently for each member. Two figures:

* ``members_vs_ensemble.png``: held-out digits that some members misread and the ensemble (mean probability)
  reads right, one row per member with its prediction (red when wrong), the ensemble's in the last row; the
  columns are picked greedily so that as many members as possible show a mistake;
* ``accuracy_vs_k.png``: held-out accuracy of an ensemble of k members (averaged over random subsets of the K)
  against k, beside the accuracy of its members on their own.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from torch import Tensor, nn

from regopt.lab.gallery.base import GalleryResult, single_threaded, write_table

ENTRY = "bagging"
DIGITS = (9, 6, 8)
"""The chapter's three digits, in its order; class index i stands for ``DIGITS[i]``."""
PER_CLASS, MEMBERS, HIDDEN, EPOCHS, BATCH, LR = 15, 10, 8, 20, 10, 0.05
COLUMNS, SUBSETS = 8, 60
HEADERS = ("members k", "ensemble accuracy (mean prob)", "ensemble accuracy (vote)", "mean member accuracy")


def digits_968(seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_test, y_test)``: PER_CLASS training images of each of 9, 6, 8 and the rest held
    out, as 64-vectors in [0, 1] with labels 0, 1, 2 for 9, 6, 8."""
    from regopt.lab.config import DigitsData
    from regopt.lab.data import load_dataset

    ds = load_dataset(DigitsData(name="digits", seed=seed))
    x = torch.cat([ds.x_train, ds.x_val, ds.x_test])
    y = torch.cat([ds.y_train, ds.y_val, ds.y_test])
    digits = torch.tensor(DIGITS)
    keep = (y[:, None] == digits).any(dim=1)
    x, y = x[keep], (y[keep][:, None] == digits).int().argmax(dim=1)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    train = torch.cat([torch.nonzero(y == c).flatten()[:PER_CLASS] for c in range(len(DIGITS))])
    test = torch.ones(len(x), dtype=torch.bool)
    test[train] = False
    return x[train], y[train], x[test], y[test]


def pick_columns(wrong: Tensor, rescued: Tensor, y: Tensor, count: int) -> list[int]:
    """Greedily pick ``count`` rescued examples: first one of each digit (where there is one), then so that as
    many members as possible show a mistake; among equals, the example the most members misread.

    ``wrong`` is ``(K, B)`` bool (member i misreads example j), ``rescued`` ``(B,)`` bool, ``y`` ``(B,)`` labels.
    """
    chosen: list[int] = []
    shown = torch.zeros(wrong.shape[0], dtype=torch.bool)
    digits: set[int] = set()
    candidates = set(torch.nonzero(rescued).flatten().tolist())

    def gain(j: int) -> tuple[int, int, int, int]:
        return int(int(y[j]) not in digits), int((wrong[:, j] & ~shown).sum()), int(wrong[:, j].sum()), -j

    while candidates and len(chosen) < count:
        best = max(candidates, key=gain)
        chosen.append(best)
        candidates.remove(best)
        shown |= wrong[:, best]
        digits.add(int(y[best]))
    return chosen


def accuracy_vs_k(proba: Tensor, y: Tensor, *, subsets: int = SUBSETS, seed: int = 0) -> list[tuple[float, ...]]:
    """For k = 1..K: ensemble accuracy (mean probability and vote) and mean member accuracy, averaged over up
    to ``subsets`` random k-subsets of the K members (all of them when there are fewer)."""
    from regopt.ensemble import majority_vote

    k_max = proba.shape[0]
    correct = proba.argmax(-1) == y  # (K, B)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for k in range(1, k_max + 1):
        combos = list(itertools.combinations(range(k_max), k))
        if len(combos) > subsets:
            combos = [tuple(torch.randperm(k_max, generator=generator)[:k].tolist()) for _ in range(subsets)]
        mean_acc, vote_acc, member_acc = [], [], []
        for combo in combos:
            p = proba[list(combo)]
            mean_acc.append((p.mean(0).argmax(-1) == y).float().mean().item())
            vote = majority_vote(p.argmax(-1), p.shape[-1], proba=p.mean(0))
            vote_acc.append((vote == y).float().mean().item())
            member_acc.append(correct[list(combo)].float().mean().item())
        rows.append((k, *(sum(a) / len(a) for a in (mean_acc, vote_acc, member_acc))))
    return rows


@single_threaded
def bagging(out: Path, progress: bool, *, members: int = MEMBERS, epochs: int = EPOCHS) -> GalleryResult:
    """The chapter's bagging picture on digits 9, 6, 8: members that each misread some digits, the ensemble that reads them right, and accuracy against the number of members."""  # noqa: E501
    from regopt.ensemble import Bagging
    from regopt.lab.gallery.figures.bagging import plot_accuracy_vs_k, plot_members
    from regopt.optim import SGD

    del progress  # a second or two
    x, y, x_test, y_test = digits_968()

    def make() -> nn.Module:
        return nn.Sequential(nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, len(DIGITS)))

    bag = Bagging(make, k=members, seed=0)
    bag.fit(x, y, epochs=epochs, batch_size=BATCH, optimizer_factory=lambda p: SGD(p, lr=LR, momentum=0.9))
    proba = bag.member_proba(x_test)  # (K, B, 3)
    predictions = proba.argmax(-1)
    ensemble = proba.mean(0).argmax(-1)
    wrong = predictions != y_test
    member_acc = (~wrong).float().mean(1)
    ensemble_acc = (ensemble == y_test).float().mean().item()
    votes = bag.predict(x_test, how="vote")
    vote_acc = (votes == y_test).float().mean().item()
    rescued = wrong.any(0) & (ensemble == y_test)

    folder = Path(out) / ENTRY
    # As in the chapter's picture, show digits that a minority of members misread: the majority vote is right too.
    columns = pick_columns(wrong, rescued & (votes == y_test), y_test, COLUMNS)
    assert bag.indices is not None
    labels = []
    for i in range(members):
        counts = torch.bincount(y[bag.indices[i]], minlength=len(DIGITS)).tolist()
        mix = " ".join(f"{d}:{c}" for d, c in zip(DIGITS, counts, strict=True))
        labels.append(f"member {i + 1}\nacc {member_acc[i]:.3f}\nresample {mix}")
    labels.append(f"ensemble\nacc {ensemble_acc:.3f}")
    members_png, curve_png = folder / "members_vs_ensemble.png", folder / "accuracy_vs_k.png"
    plot_members(
        x_test[columns],
        y_test[columns],
        predictions[:, columns],
        ensemble[columns],
        labels,
        members_png,
        classes=DIGITS,
    )
    rows = accuracy_vs_k(proba, y_test)
    plot_accuracy_vs_k(rows, member_acc, curve_png)
    note = (
        f"\n{len(x)} training images ({PER_CLASS} each of 9, 6, 8), {len(x_test)} held out; {members} MLPs "
        f"64-{HIDDEN}-3, each on its own bootstrap resample. k-member rows average over up to {SUBSETS} random "
        f"subsets.\n"
    )
    digits = dict.fromkeys(HEADERS[1:], 3)
    table = write_table(folder / "table.md", HEADERS, rows, title="bagging on 9, 6, 8", digits=digits, append=note)
    return GalleryResult(
        entry=ENTRY,
        files=[members_png, curve_png, table],
        numbers={
            "mean member accuracy": round(member_acc.mean().item(), 4),
            "best member accuracy": round(member_acc.max().item(), 4),
            "ensemble accuracy (mean prob / vote)": f"{ensemble_acc:.4f} / {vote_acc:.4f}",
            "held-out digits some member misreads, ensemble reads right": f"{int(rescued.sum())} of {len(y_test)}",
            "out-of-bag error": round(bag.oob_error(x, y), 4),
        },
    )
