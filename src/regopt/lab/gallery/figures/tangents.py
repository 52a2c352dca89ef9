"""Figures of the gallery entry ``tangent_prop``: tangent vectors of digits, and learned tangents beside them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from torch import Tensor

from regopt.lab.report import save_figure

TITLES = {"shift_x": "shift x (right)", "shift_y": "shift y (down)", "rotate": "rotation (ccw)"}
"""Column titles of the hand-made transformations."""


def plot_tangents(x: Tensor, transforms: Sequence[str], path: Path) -> None:
    """One row per digit: the digit, its tangent vectors for ``transforms`` (the rotation last), and the digit
    moved along the rotation tangent beside the digit rotated."""
    from regopt.regularize.tangent import tangent_vectors, transform_images

    tangents = tangent_vectors(x, transforms)
    angle = math.radians(15.0)
    columns = ["digit", *(TITLES[t] for t in transforms), "x + 15° * v_rot", "rotated 15°"]
    fig, axes = plt.subplots(len(x), len(columns), figsize=(1.7 * len(columns), 1.8 * len(x)))
    for i in range(len(x)):
        images = [x[i, 0], *(tangents[t, i, 0] for t in range(len(transforms)))]
        images += [x[i, 0] + angle * tangents[2, i, 0], transform_images(x[i : i + 1], "rotate", angle)[0, 0]]
        for j, image in enumerate(images):
            ax = axes[i, j]
            if 1 <= j <= len(transforms):
                limit = float(image.abs().max()) or 1.0  # each tangent on its own symmetric scale
                ax.imshow(image.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
            else:
                ax.imshow(image.numpy(), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(columns[j], fontsize=8)
    fig.suptitle(
        "tangent vectors of digits (bicubic, by central differences; red: gains ink, blue: loses ink; "
        "each on its own scale)\n"
        "a shift tangent is the negative image gradient; x + angle * v_rot is the first-order rotation",
        fontsize=9,
    )
    save_figure(fig, path)


def plot_learned_tangents(x: Tensor, hand: Tensor, learned: Tensor, path: Path) -> None:
    """One row per digit: the digit, its hand-made tangents, and its leading learned tangents."""
    columns = ["digit", "shift x", "shift y", "rotation", *(f"learned {j + 1}" for j in range(len(learned)))]
    fig, axes = plt.subplots(len(x), len(columns), figsize=(1.5 * len(columns), 1.6 * len(x)))
    for i in range(len(x)):
        images = [x[i, 0], *(hand[t, i, 0] for t in range(len(hand))), *(learned[j, i, 0] for j in range(len(learned)))]
        for j, image in enumerate(images):
            ax = axes[i, j]
            if j == 0:
                ax.imshow(image.numpy(), cmap="gray_r", vmin=0, vmax=1)
            else:
                limit = float(image.abs().max()) or 1.0
                ax.imshow(image.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(columns[j], fontsize=8)
    fig.suptitle(
        "hand-made tangents (central differences) vs tangents learned by a contractive autoencoder\n"
        "(leading right singular vectors of its encoder Jacobian; sign arbitrary; each on its own scale)",
        fontsize=9,
    )
    save_figure(fig, path)
