"""Part of gallery entry ``tangent_prop``: tangents learned by a contractive autoencoder vs the hand-made ones.

The manifold tangent classifier (Rifai et al. 2011) learns the tangents instead of deriving them from known
transformations: a contractive autoencoder (CAE) trained on the (unlabelled) training digits, and at each digit
the ``k`` leading right singular vectors of its encoder Jacobian
(:func:`regopt.regularize.manifold_tangent.learned_tangents`). Compared here with the hand-made shift and
rotation tangents of :func:`regopt.regularize.tangent.tangent_vectors`:

- how much of each hand-made tangent lies in the learned k-dimensional tangent plane (``||P_k v|| / ||v||``,
  averaged over the test digits), against a random k-plane (chance, about ``sqrt(k / 64)``);
- tangent prop with the learned tangents, beside no penalty and the hand-made tangents (same MLP, batches and
  epochs as the rest of the entry).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HIDDEN = 64
CONTRACTION = 0.01
CAE_EPOCHS = 30
KS = (1, 3, 6)
TP_K = 3
TP_ALPHA = 0.01  # learned tangents are unit vectors: on another scale than the hand-made ones (norms ~3-7)
HAND = ("shift_x", "shift_y", "rotate")


def share_in_span(planes: Tensor, tangents: Tensor) -> list[float]:
    """For each tangent kind t: mean over examples of ``||P v_t|| / ||v_t||``, P the projection on the span of
    the orthonormal ``planes`` ``(k, N, ...)``; ``tangents`` is ``(T, N, ...)``; zero tangents are skipped."""
    basis = planes.reshape(len(planes), planes.shape[1], -1).transpose(0, 1)  # (N, k, D), orthonormal rows
    shares = []
    for v in tangents.reshape(len(tangents), tangents.shape[1], -1):
        norm = v.norm(dim=1)
        inside = torch.einsum("nkd,nd->nk", basis, v).norm(dim=1)
        keep = norm > 1e-8
        shares.append(float((inside[keep] / norm[keep]).mean()))
    return shares


def random_planes(k: int, like: Tensor, seed: int = 0) -> Tensor:
    """Orthonormal random k-planes, one per example, shaped ``(k, *like.shape)`` (the chance level)."""
    n, d = len(like), like[0].numel()
    gaussian = torch.randn(n, d, k, generator=torch.Generator().manual_seed(seed), dtype=like.dtype)
    return torch.linalg.qr(gaussian).Q.transpose(1, 2).transpose(0, 1).reshape(k, *like.shape)


def train_with_tangents(
    data, make_model: Callable[[], nn.Module], alpha: float, tangents: Tensor | None, epochs: int, seed: int
) -> nn.Module:
    """Adam on cross-entropy + tangent prop with fixed per-example ``tangents`` ``(T, N, ...)`` (None: no penalty)."""
    from regopt.regularize.tangent import TangentProp

    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    tangent_prop = TangentProp(alpha)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for index in torch.randperm(len(data.x_train), generator=order).split(50):
            x, y = data.x_train[index], data.y_train[index]
            loss = F.cross_entropy(model(x), y)
            if tangents is not None and alpha > 0:
                loss = loss + tangent_prop(model, x, tangents[:, index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def learned_tangent_rows(
    full,
    small,
    make_model: Callable[[], nn.Module],
    rotation_change: Callable[[nn.Module, Tensor], float],
    *,
    epochs: int,
    cae_epochs: int,
    figure: Path,
) -> tuple[list[tuple], tuple, float]:
    """Fit the CAE on the training digits (labels unused); returns ``(share rows, tangent-prop row, CAE seconds)``
    and draws the figure of learned tangents.

    A share row is ``(k, share of shift x, shift y, rotation in the learned k-plane, the same in a random
    k-plane)``; the tangent-prop row is ``(alpha, test accuracy, rotation_change(model, x_test))`` of the MLP
    trained on ``small`` with the ``TP_K`` learned tangents.
    """
    from regopt.lab.gallery.figures.tangents import plot_learned_tangents
    from regopt.regularize.manifold_tangent import fit_contractive_autoencoder, learned_tangents
    from regopt.regularize.tangent import tangent_vectors

    started = time.perf_counter()
    cae = fit_contractive_autoencoder(full.x_train, HIDDEN, contraction=CONTRACTION, epochs=cae_epochs, lr=1e-2)
    fit_seconds = time.perf_counter() - started
    hand = tangent_vectors(full.x_test, HAND)
    share_rows = []
    for k in KS:
        learned = learned_tangents(cae, k)(full.x_test)
        share_rows.append((k, *share_in_span(learned, hand), *share_in_span(random_planes(k, full.x_test), hand)))
    plot_learned_tangents(full.x_test[:4], hand[:, :4], learned_tangents(cae, TP_K)(full.x_test[:4]), figure)

    model = train_with_tangents(small, make_model, TP_ALPHA, learned_tangents(cae, TP_K)(small.x_train), epochs, 0)
    with torch.no_grad():
        accuracy = (model(small.x_test).argmax(1) == small.y_test).double().mean().item()
    change = rotation_change(model, small.x_test)
    return share_rows, (TP_ALPHA, accuracy, change), fit_seconds
