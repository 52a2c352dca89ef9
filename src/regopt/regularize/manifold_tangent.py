"""Learned tangents: the manifold tangent classifier (Rifai et al. 2011; Goodfellow et al. 2016, sec. 7.14).

Tangent prop (:class:`~regopt.regularize.TangentProp`) needs the directions along which the data manifold runs
at each example. Hand-made tangents (:func:`~regopt.regularize.tangent_vectors`: shifts, rotations) need prior
knowledge of the transformations; the *manifold tangent classifier* learns them instead, in two stages:

1. Train a **contractive autoencoder** (CAE; Rifai et al. 2011a): an encoder ``h = f(x) = s(W x + b)`` and a
   decoder ``r = g(h) = W^T h + c`` (tied weights) minimizing::

       J_CAE = mean_i ||g(f(x_i)) - x_i||^2 / D  +  lambda * mean_i ||J_f(x_i)||_F^2,
       J_f(x) = df(x)/dx  (H x D),   ||J_f(x)||_F^2 = sum_{j,d} (dh_j / dx_d)^2

   The penalty makes ``f`` insensitive to every input direction, the reconstruction term keeps it sensitive to
   the directions it needs to tell training examples apart: those along the data manifold.
2. At each example, the **leading right singular vectors** of ``J_f(x) = U S V^T`` (the first ``k`` columns of
   ``V``: the input directions to which ``f`` is most sensitive) span the estimated tangent plane of the
   manifold (Rifai et al. 2011b). :func:`learned_tangents` returns them as a ``tangents_fn`` for
   :class:`~regopt.regularize.TangentProp` (and for :func:`~regopt.regularize.tangent_distance`).

Rifai et al. (2011b) stack several CAEs and initialize the classifier from them; here one CAE layer gives the
tangents, and any classifier can use them (the tangent-prop part of the method).

Example::

    >>> from regopt.regularize import TangentProp
    >>> x = torch.rand(200, 64)
    >>> cae = fit_contractive_autoencoder(x, hidden_dim=16, epochs=5)
    >>> tangent_prop = TangentProp(alpha=0.1, tangents_fn=learned_tangents(cae, k=3))
    >>> learned_tangents(cae, k=3)(x[:4]).shape
    torch.Size([3, 4, 64])

References:
    Rifai, Vincent, Muller, Glorot & Bengio (2011a), Contractive auto-encoders: explicit invariance during
    feature extraction, ICML. Rifai, Dauphin, Vincent, Bengio & Muller (2011b), The manifold tangent
    classifier, NeurIPS. Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 7.14 and 14.7.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from regopt._checks import is_int
from regopt.regularize.tangent import TangentsFn

__all__ = ["ContractiveAutoencoder", "fit_contractive_autoencoder", "learned_tangents"]


class ContractiveAutoencoder(nn.Module):
    """One-layer contractive autoencoder: ``h = sigmoid(W x + b)``, ``r = W^T h + c`` (tied) or ``W' h + c``.

    Inputs of any shape ``(N, ...)`` are flattened to ``(N, D)``; :meth:`forward` returns the reconstruction in
    the input's shape. :meth:`jacobian` is ``J_f(x)`` per example and :meth:`contraction` the penalty
    ``mean_i ||J_f(x_i)||_F^2``, differentiable in the parameters; :meth:`loss` is the CAE objective.

    For the sigmoid encoder ``dh_j/dx_d = h_j (1 - h_j) W_jd``, so ``||J_f(x)||_F^2 = sum_j (h_j (1 - h_j))^2
    ||W_j||^2`` (Rifai et al. 2011a, eq. 5): :meth:`contraction` uses this closed form; :meth:`jacobian`
    computes ``J_f`` by reverse-mode autodiff (``torch.func.jacrev`` under ``vmap``).

    Args:
        input_dim: ``D``, the number of input features (the product of an example's shape).
        hidden_dim: ``H``, the number of hidden units (>= the number of tangents wanted).
        tied: decoder weights ``W^T`` (default, as in the paper) or a separate ``W'``.
    """

    def __init__(self, input_dim: int, hidden_dim: int, *, tied: bool = True) -> None:
        super().__init__()
        for name, value in (("input_dim", input_dim), ("hidden_dim", hidden_dim)):
            if not is_int(value) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.input_dim, self.hidden_dim, self.tied = input_dim, hidden_dim, tied
        self.encoder = nn.Linear(input_dim, hidden_dim)
        self.decoder_bias = nn.Parameter(torch.zeros(input_dim))
        self.decoder_weight = None if tied else nn.Parameter(self.encoder.weight.detach().t().clone())

    def _flat(self, x: Tensor) -> Tensor:
        flat = x.reshape(len(x), -1)
        if flat.shape[1] != self.input_dim:
            raise ValueError(
                f"ContractiveAutoencoder: expected examples of {self.input_dim} features, got {tuple(x.shape)}"
            )
        return flat

    def encode(self, x: Tensor) -> Tensor:
        """``h = sigmoid(W x + b)``, shape ``(N, H)``."""
        return torch.sigmoid(self.encoder(self._flat(x)))

    def decode(self, h: Tensor) -> Tensor:
        """``r = W^T h + c`` (tied) or ``W' h + c``, shape ``(N, D)``."""
        weight = self.encoder.weight.t() if self.decoder_weight is None else self.decoder_weight
        return h @ weight.t() + self.decoder_bias

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x)).reshape(x.shape)

    def jacobian(self, x: Tensor) -> Tensor:
        """``J_f(x_i) = dh/dx`` for each example, shape ``(N, H, D)`` (``torch.func.vmap(jacrev(f))``)."""
        flat = self._flat(x)

        def encode_one(xi: Tensor) -> Tensor:
            return torch.sigmoid(self.encoder(xi))

        return torch.func.vmap(torch.func.jacrev(encode_one))(flat)

    def contraction(self, x: Tensor) -> Tensor:
        """``mean_i ||J_f(x_i)||_F^2 = mean_i sum_j (h_ij (1 - h_ij))^2 ||W_j||^2``, differentiable in theta."""
        h = self.encode(x)
        return ((h * (1 - h)).pow(2) @ self.encoder.weight.pow(2).sum(dim=1)).mean()

    def loss(self, x: Tensor, contraction: float) -> Tensor:
        """The CAE objective: mean squared reconstruction error per feature + ``contraction`` * the penalty."""
        flat = self._flat(x)
        reconstruction = (self.decode(self.encode(flat)) - flat).pow(2).mean()
        return reconstruction + contraction * self.contraction(flat)


def fit_contractive_autoencoder(
    x: Tensor,
    hidden_dim: int,
    *,
    contraction: float = 0.1,
    epochs: int = 100,
    batch_size: int = 128,
    lr: float = 1e-2,
    tied: bool = True,
    seed: int = 0,
) -> ContractiveAutoencoder:
    """Train a :class:`ContractiveAutoencoder` on ``x`` with Adam; returns it in eval mode.

    Minimizes ``mean ||r - x||^2 / D + contraction * mean ||J_f(x)||_F^2`` over minibatches of ``x`` (shuffled
    each epoch by a generator seeded with ``seed``; the initial weights come from ``seed`` too, so a call is
    reproducible and leaves torch's global RNG as it was).

    Args:
        x: training inputs ``(N, ...)``, unlabelled (the whole training set may be used, labels are not).
        hidden_dim: ``H``, hidden units.
        contraction: ``lambda`` >= 0, the weight of the Jacobian penalty (Rifai et al. 2011a).
        epochs, batch_size, lr: Adam's schedule.
        tied: tied decoder weights (default).
        seed: seeds the initialization and the batch order.
    """
    if not isinstance(x, Tensor) or x.dim() < 2 or not x.is_floating_point() or len(x) == 0:
        raise ValueError(f"x must be a non-empty float tensor (N, ...), got {getattr(x, 'shape', type(x))}")
    if not math.isfinite(contraction) or contraction < 0:
        raise ValueError(f"contraction must be a finite number >= 0, got {contraction!r}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cae = ContractiveAutoencoder(x[0].numel(), hidden_dim, tied=tied).to(x.device, x.dtype)
    optimizer = torch.optim.Adam(cae.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    flat = x.detach().reshape(len(x), -1)
    for _ in range(epochs):
        for index in torch.randperm(len(flat), generator=order).split(batch_size):
            optimizer.zero_grad()
            cae.loss(flat[index.to(flat.device)], contraction).backward()
            optimizer.step()
    optimizer.zero_grad(set_to_none=True)  # hand back a model with no stale .grad
    return cae.eval()


def learned_tangents(cae: ContractiveAutoencoder, k: int) -> TangentsFn:
    """A ``tangents_fn`` for :class:`~regopt.regularize.TangentProp`: the ``k`` leading right singular vectors
    of the CAE's encoder Jacobian at each example.

    With ``J_f(x) = U S V^T`` (``torch.linalg.svd``, singular values in decreasing order), the tangents of ``x``
    are ``V[:, 0], ..., V[:, k-1]``: orthonormal input directions, the ``k`` to which the encoder is most
    sensitive, reshaped like ``x``. Their signs are arbitrary (irrelevant to tangent prop's squared penalty and
    to tangent distance); they are unit vectors, so ``TangentProp``'s ``alpha`` is on another scale than with
    the pixel-per-unit hand-made tangents.

    Args:
        cae: a trained :class:`ContractiveAutoencoder` (its parameters are not changed or differentiated).
        k: tangents per example, ``1 <= k <= min(H, D)``.

    Returns:
        ``x -> (k, *x.shape)``, detached.
    """
    if not isinstance(cae, ContractiveAutoencoder):
        raise TypeError(f"cae must be a ContractiveAutoencoder, got {type(cae).__name__}")
    limit = min(cae.hidden_dim, cae.input_dim)
    if not is_int(k) or not 1 <= k <= limit:
        raise ValueError(f"k must be an integer in [1, {limit}] (min of hidden and input sizes), got {k!r}")

    def tangents_fn(x: Tensor) -> Tensor:
        with torch.no_grad():  # jacrev still differentiates inside; nothing is recorded for the CAE's parameters
            jacobian = cae.jacobian(x.detach())
        vh = torch.linalg.svd(jacobian, full_matrices=False).Vh  # (N, min(H, D), D), rows = right singular vectors
        return vh[:, :k, :].transpose(0, 1).reshape(k, *x.shape).detach()

    tangents_fn.__name__ = f"learned_tangents(k={k})"
    return tangents_fn
