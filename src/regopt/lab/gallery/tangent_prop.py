"""Gallery entry ``tangent_prop``: tangent vectors of digits, tangent prop, and tangent-distance nearest neighbours.

1. Tangent vectors (:func:`regopt.regularize.tangent.tangent_vectors`) of a few test digits for a horizontal and a
   vertical shift and a rotation: the direction in pixel space along which each digit moves when transformed a
   little (red: pixels that gain ink, blue: pixels that lose it), and the digit moved along them.
2. Tangent prop: the same MLP (64 -> :data:`WIDTH` -> 10) trained on :data:`TRAIN_SIZE` digits with the
   penalty ``alpha * mean_i sum_t ||J_f(x_i) v_{t,i}||^2`` on its logits at each alpha of :data:`ALPHAS` (same
   initialization, batches and epochs). For each, the test accuracy and how much the predicted distribution
   changes (total-variation distance, averaged over the test digits and over the transformation by +a and -a)
   when the test digits are shifted by :data:`SHIFT` pixel or rotated by :data:`ANGLE` degrees.
   Each alpha is an ordinary run of ``tangent_prop.toml`` (``[regularize] tangent_prop``) under the entry's
   directory.
3. Nearest neighbours: 1-NN test accuracy under the Euclidean, the one-sided and the two-sided tangent distance
   (Simard et al. 1993) at several training-set sizes.
4. Learned tangents (the manifold tangent classifier, Rifai et al. 2011; :mod:`.manifold_tangent`): a
   contractive autoencoder on the training digits, the leading right singular vectors of its encoder Jacobian
   as tangents; how much of each hand-made tangent lies in their span, and tangent prop with them.

What it showed when written (see the tables a run writes): the penalized quantity, the infinitesimal
sensitivity ``sum_t ||J_f v_t||^2`` on the test digits, falls 15-fold at alpha = 0.003 and 500-fold at 0.3, but
the change under an actual half-pixel shift or a 5 degree rotation only halves at alpha = 0.3 (on an 8x8
image these are not small moves, and the linearization holds only near the digit), and accuracy drops (0.95 ->
0.86 at alpha 0.3; even alpha = 0.003 cost about two points, averaged over three seeds). On these coarse digits
tangent prop buys invariance, not accuracy. Tangent distance, by contrast, beats the Euclidean distance when
prototypes are few (0.87 -> 0.91 with 50 digits), and the gap closes with the full training set (both above
0.99). The learned tangents (a one-layer CAE, 64 hidden units) hold about twice the share of the hand-made
tangents that a random plane of the same dimension holds (k = 3: 0.29-0.44 against 0.20), so they find part of
the shift and rotation directions without being told of them; but tangent prop with them (k = 3, alpha 0.01)
costs accuracy (0.95 -> 0.92) and leaves the output more, not less, sensitive to a 5 degree rotation (0.052 ->
0.097): on these 8x8 digits the hand-made tangents win (Rifai et al. stack CAEs on 28x28 MNIST).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regopt.lab.gallery.base import GalleryResult, base_config, single_threaded, variant, write_table
from regopt.lab.gallery.manifold_tangent import CAE_EPOCHS, CONTRACTION, HIDDEN, TP_K, learned_tangent_rows

ENTRY = "tangent_prop"
WIDTH = 128
TRAIN_SIZE = 200
EPOCHS = 60
BATCH_SIZE = 50
LR = 3e-3
SEED = 0
ALPHAS = (0.0, 0.003, 0.03, 0.3)
SHIFT = 0.5
ANGLE = 5.0
NN_SIZES = (50, 100, 200, None)  # None: the whole training split
TRANSFORMS = ("shift_x", "shift_y", "rotate")


def make_model(seed: int = SEED) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 10))


def train(out: Path, alpha: float, epochs: int) -> tuple[nn.Module, float]:
    """The shipped config at ``alpha`` (0: no penalty), an ordinary run under ``out``: Adam on cross-entropy +
    tangent prop (shift x, shift y, rotation) on each training batch. Returns the model and the run's seconds."""
    from regopt.lab.runs import run

    tangent_prop = {"alpha": alpha, "tangents": "image"} if alpha > 0 else None
    config = variant(base_config(ENTRY, epochs), ENTRY, f"alpha{alpha:g}", {"regularize.tangent_prop": tangent_prop})
    result = run(config, out=out, force=True)
    return result.experiment.model.eval(), result.summary["wall_time_s"]


@torch.no_grad()
def output_change(model: nn.Module, x: Tensor, name: str, amount: float) -> float:
    """Mean total-variation distance between p(y|x) and p(y|T(x, s)), over the test digits and s = +/-amount."""
    from regopt.regularize.tangent import transform_images

    p = F.softmax(model(x), dim=1)
    changes = [
        (F.softmax(model(transform_images(x, name, s)), dim=1) - p).abs().sum(dim=1).mean() / 2
        for s in (amount, -amount)
    ]
    return float(sum(changes) / 2)


def tangent_prop_rows(data, out: Path, epochs: int, alphas: Sequence[float]) -> list[tuple]:
    from regopt.regularize.tangent import TangentProp

    rows = []
    for alpha in alphas:
        model, seconds = train(out, alpha, epochs)
        with torch.no_grad():
            accuracy = (model(data.x_test).argmax(1) == data.y_test).double().mean().item()
        amounts = {"shift_x": SHIFT, "shift_y": SHIFT, "rotate": math.radians(ANGLE)}
        changes = [output_change(model, data.x_test, name, amounts[name]) for name in TRANSFORMS]
        with torch.no_grad():
            sensitivity = TangentProp(1.0)(model, data.x_test).item()
        rows.append((alpha, accuracy, sensitivity, *changes, seconds))
    return rows


def nearest_neighbour_rows(data, sizes: Sequence[int | None]) -> list[tuple]:
    from regopt.regularize.tangent_distances import tangent_distance_classify

    rows = []
    for size in sizes:
        n = len(data.x_train) if size is None else size
        x, y = data.x_train[:n], data.y_train[:n]
        accuracy = []
        for kwargs in ({"tangents_fn": None}, {"two_sided": False}, {"two_sided": True}):
            predicted = tangent_distance_classify(x, y, data.x_test, **kwargs)
            accuracy.append((predicted == data.y_test).double().mean().item())
        rows.append((n, *accuracy))
    return rows


LEARNED_HEADERS = (
    "k",
    "shift x in learned plane",
    "shift y in learned plane",
    "rotation in learned plane",
    "shift x in random plane",
    "shift y in random plane",
    "rotation in random plane",
)
LEARNED_TP_HEADERS = ("tangents", "alpha", "test accuracy", f"change: rotation {ANGLE:g}°")


def write_learned_table(
    path: Path, shares: list[tuple], learned: tuple, tp_rows: list[tuple], seconds: float, digits_seen: int
) -> Path:
    """The shares of the hand-made tangents in the learned planes, then tangent prop with learned tangents beside
    the rows of the main table (no penalty, and the smallest positive alpha with the hand-made tangents)."""
    from regopt.lab.report import markdown_table

    compare = [("none", 0.0, tp_rows[0][1], tp_rows[0][5])] if tp_rows[0][0] == 0 else []
    hand = [row for row in tp_rows if row[0] > 0][:1]
    compare += [("hand-made (shift x, shift y, rotation)", row[0], row[1], row[5]) for row in hand]
    compare.append((f"learned (CAE, k={TP_K})", *learned))
    note = (
        f"\nContractive autoencoder (one sigmoid layer of {HIDDEN} units, tied weights, contraction {CONTRACTION}) "
        f"fit on the {digits_seen} training digits without labels in {seconds:.1f} s; learned tangents: the k leading "
        "right singular vectors of its encoder Jacobian at each test digit. A cell is the mean of ||P v|| / ||v|| over "
        "the test digits, v the hand-made tangent and P the projection on the learned (or a random) k-plane: 1 if v "
        "lies in the plane, about sqrt(k / 64) by chance.\n\n"
        f"Tangent prop with the learned tangents (unit vectors, hence another alpha) on the MLP of the main table:\n\n"
        + markdown_table(LEARNED_TP_HEADERS, compare, digits={"alpha": 3, "test accuracy": 3, LEARNED_TP_HEADERS[3]: 3})
    )
    return write_table(
        path,
        LEARNED_HEADERS,
        shares,
        title="tangents learned by a contractive autoencoder vs hand-made ones",
        digits=dict.fromkeys(LEARNED_HEADERS[1:], 3),
        append=note,
    )


TP_HEADERS = (
    "alpha",
    "test accuracy",
    "penalty at alpha=1",
    f"change: shift x {SHIFT} px",
    f"change: shift y {SHIFT} px",
    f"change: rotation {ANGLE:g}°",
    "train s",
)
NN_HEADERS = ("training digits", "Euclidean 1-NN", "one-sided tangent 1-NN", "two-sided tangent 1-NN")


@single_threaded
def tangent_prop(
    out: Path,
    progress: bool,
    *,
    epochs: int = EPOCHS,
    alphas: Sequence[float] = ALPHAS,
    sizes: Sequence[int | None] = NN_SIZES,
    cae_epochs: int = CAE_EPOCHS,
) -> GalleryResult:
    """Digits: tangent vectors (shift x/y, rotation); tangent prop's output change and accuracy; tangent-distance vs Euclidean 1-NN."""  # noqa: E501
    from regopt.lab.config import DigitsData
    from regopt.lab.data import load_dataset
    from regopt.lab.gallery.figures.tangents import plot_tangents

    del progress  # about 20 s in all (the learned tangents add a few seconds): no progress bar
    folder = Path(out) / ENTRY
    full = load_dataset(DigitsData(name="digits", image=True))
    figure = folder / "tangent_vectors.png"
    plot_tangents(full.x_test[:5], TRANSFORMS, figure)

    small = load_dataset(DigitsData(name="digits", image=True, train_size=TRAIN_SIZE))
    tp_rows = tangent_prop_rows(small, folder, epochs, alphas)
    note = (
        f"\nMLP [{WIDTH}] on {TRAIN_SIZE} training digits, {epochs} epochs, same initialization and batches for every "
        "alpha; tangent prop on the logits with the shift x, shift y and rotation tangents. 'change' is the mean "
        "total-variation distance between the predicted class distributions of a test digit and of the digit "
        f"transformed (bicubic) by +a and by -a, on {len(small.x_test)} test digits; 'penalty at alpha=1' is "
        "sum_t ||J_f v_t||^2 on the test digits (logits), the sensitivity to infinitesimal transformations.\n"
    )
    digits = dict.fromkeys(TP_HEADERS[1:-1], 3) | {"alpha": 3, "penalty at alpha=1": 2, "train s": 1}
    tp_table = write_table(
        folder / "tangent_prop.md", TP_HEADERS, tp_rows, title="tangent prop on digits", digits=digits, append=note
    )

    nn_rows = nearest_neighbour_rows(full, sizes)
    note = (
        f"\nTest accuracy on {len(full.x_test)} digits; prototypes are the first n training digits; tangents: "
        "shift x, shift y, rotation.\n"
    )
    nn_table = write_table(
        folder / "nearest_neighbour.md",
        NN_HEADERS,
        nn_rows,
        title="1-NN: Euclidean vs tangent distance",
        digits=dict.fromkeys(NN_HEADERS[1:], 3),
        append=note,
    )
    learned_figure = folder / "learned_tangents.png"
    share_rows, learned_row, cae_seconds = learned_tangent_rows(
        full,
        small,
        make_model,
        lambda model, x: output_change(model, x, "rotate", math.radians(ANGLE)),
        epochs=epochs,
        cae_epochs=cae_epochs,
        figure=learned_figure,
    )
    learned_table = write_learned_table(
        folder / "learned_tangents.md", share_rows, learned_row, tp_rows, cae_seconds, len(full.x_train)
    )
    plain, strongest = tp_rows[0], tp_rows[-1]
    return GalleryResult(
        entry=ENTRY,
        files=[figure, tp_table, nn_table, learned_figure, learned_table],
        numbers={
            f"test accuracy, alpha {plain[0]:g} / {strongest[0]:g}": f"{plain[1]:.3f} / {strongest[1]:.3f}",
            f"rotation change, alpha {plain[0]:g} / {strongest[0]:g}": f"{plain[5]:.3f} / {strongest[5]:.3f}",
            f"1-NN accuracy with {nn_rows[0][0]} digits, Euclidean / two-sided tangent": (
                f"{nn_rows[0][1]:.3f} / {nn_rows[0][3]:.3f}"
            ),
            f"1-NN accuracy with {nn_rows[-1][0]} digits, Euclidean / two-sided tangent": (
                f"{nn_rows[-1][1]:.3f} / {nn_rows[-1][3]:.3f}"
            ),
            f"share of the rotation tangent in the learned {share_rows[1][0]}-plane / a random one": (
                f"{share_rows[1][3]:.3f} / {share_rows[1][6]:.3f}"
            ),
        },
    )
