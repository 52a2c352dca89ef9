"""Tangent prop and tangent distance in plain PyTorch: invariance to small shifts and rotations of digits.

    python examples/tangent_prop.py

``tangent_vectors(x)`` gives, for each digit, the directions in pixel space along which it moves under a small
horizontal shift, vertical shift and rotation. ``TangentProp(alpha)`` penalizes the model's directional
derivatives along them (``torch.func.jvp``), added to the loss like any penalty. The first lines printed are one
model each (alpha = 0 is no penalty): test accuracy and the mean change of the predicted distribution when the
test digits are rotated by 5 degrees. The next line compares 1-nearest-neighbour accuracy with 100 prototypes
under the Euclidean and the tangent distance. The last line learns tangents instead of deriving them (the
manifold tangent classifier, Rifai et al. 2011): a contractive autoencoder on the training digits, whose encoder
Jacobian's leading right singular vectors at each digit span a learned tangent plane (``learned_tangents(cae,
k)``, a ``tangents_fn`` for ``TangentProp``); it prints how much of the hand-made rotation tangent lies in that
plane, beside a random plane of the same dimension.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from regopt.regularize.manifold_tangent import fit_contractive_autoencoder, learned_tangents
from regopt.regularize.tangent import TangentProp, tangent_vectors, transform_images
from regopt.regularize.tangent_distances import tangent_distance_classify


def load_data(train_size: int = 200):
    """Digits as 1x8x8 images in [0, 1], shuffled with a fixed seed: a small training part, the rest for testing."""
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:train_size], y[:train_size], x[train_size:], y[train_size:]


def train(alpha: float, epochs: int = 60) -> nn.Module:
    x, y, _, _ = load_data()
    torch.manual_seed(0)  # the same initialization and batches for every alpha
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    tangent_prop = TangentProp(alpha)  # tangents: shift x, shift y, rotation (regopt.regularize.tangent_vectors)
    order = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for index in torch.randperm(len(x), generator=order).split(50):
            loss = F.cross_entropy(model(x[index]), y[index]) + tangent_prop(model, x[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


@torch.no_grad()
def rotation_change(model: nn.Module, x: torch.Tensor, degrees: float = 5.0) -> float:
    """Mean total-variation distance between the predictions for x and for x rotated by +/- ``degrees``."""
    p = F.softmax(model(x), dim=1)
    changes = [
        (F.softmax(model(transform_images(x, "rotate", math.radians(d))), dim=1) - p).abs().sum(1).mean() / 2
        for d in (degrees, -degrees)
    ]
    return float(sum(changes) / 2)


def share_in_plane(planes: torch.Tensor, v: torch.Tensor) -> float:
    """Mean over examples of ||P v|| / ||v||, P the projection on the orthonormal ``planes`` (k, N, ...)."""
    basis, v = planes.flatten(2).transpose(0, 1), v.flatten(1)  # (N, k, D), (N, D)
    return float((torch.einsum("nkd,nd->nk", basis, v).norm(dim=1) / v.norm(dim=1).clamp_min(1e-8)).mean())


def learned_rotation_share(x: torch.Tensor, x_test: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Share of the rotation tangent of the test digits in the learned k-plane, and in a random k-plane."""
    cae = fit_contractive_autoencoder(x, 64, contraction=0.01, epochs=30, batch_size=50)  # labels unused
    rotation = tangent_vectors(x_test, ("rotate",))[0]
    gaussian = torch.randn(len(x_test), 64, k, generator=torch.Generator().manual_seed(0))
    random_planes = torch.linalg.qr(gaussian).Q.transpose(1, 2).transpose(0, 1).reshape(k, *x_test.shape)
    return share_in_plane(learned_tangents(cae, k)(x_test), rotation), share_in_plane(random_planes, rotation)


def main(epochs: int = 60, alphas: tuple[float, ...] = (0.0, 0.01, 0.1)) -> dict[str, float]:
    x, y, x_test, y_test = load_data()
    results = {}
    for alpha in alphas:
        model = train(alpha, epochs)
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        change = rotation_change(model, x_test)
        results[f"alpha={alpha} accuracy"], results[f"alpha={alpha} rotation change"] = accuracy, change
        print(
            f"tangent prop alpha={alpha:<5} test accuracy {accuracy:.3f}  output change under 5° rotation {change:.3f}"
        )
    prototypes, labels = x[:100], y[:100]
    euclidean = tangent_distance_classify(prototypes, labels, x_test, tangents_fn=None)
    tangent = tangent_distance_classify(prototypes, labels, x_test)  # two-sided: shift x, shift y, rotation
    results["1-NN Euclidean"] = (euclidean == y_test).float().mean().item()
    results["1-NN tangent"] = (tangent == y_test).float().mean().item()
    print(f"1-NN with 100 prototypes: Euclidean {results['1-NN Euclidean']:.3f}, tangent {results['1-NN tangent']:.3f}")
    results["learned share"], results["random share"] = learned_rotation_share(x, x_test)
    print(
        f"learned tangents (contractive autoencoder, k=3): {results['learned share']:.2f} of the rotation tangent lies "
        f"in their plane, {results['random share']:.2f} in a random plane"
    )
    return results


if __name__ == "__main__":
    main()
