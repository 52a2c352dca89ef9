"""Tangent distance (Simard, LeCun & Denker 1993; Goodfellow et al. 2016, sec. 7.14).

The distance between the tangent planes of two examples, ``min_{a, b} ||(x1 + T1 a) - (x2 + T2 b)||``, is a
linear least-squares problem in the coefficients: :func:`tangent_distance` for pairs,
:func:`tangent_distance_matrix` for all pairs of two sets, and :func:`tangent_distance_classify` for
nearest-neighbour classification with tangents from :func:`regopt.regularize.tangent.tangent_vectors`.

References:
    Simard, LeCun & Denker (1993), Efficient pattern recognition using a new transformation distance.
"""

from __future__ import annotations

import torch
from torch import Tensor

from regopt._checks import check_real, is_int
from regopt.regularize.tangent import TangentsFn, tangent_vectors


def _flat(t: Tensor, lead: int) -> Tensor:
    return t.reshape(*t.shape[:lead], -1)


def _solve_distance(r2: Tensor, b: Tensor, gram: Tensor, reg: float) -> Tensor:
    """``sqrt(max(0, ||r||^2 - b^T (G + reg I)^+ b))``: the residual of the (ridge) least-squares fit."""
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    coef = torch.linalg.pinv(gram + reg * eye, hermitian=True) @ b.unsqueeze(-1)
    return (r2 - (b.unsqueeze(-2) @ coef).squeeze(-1).squeeze(-1)).clamp_min(0).sqrt()


def tangent_distance(
    x1: Tensor, x2: Tensor, tangents1: Tensor, tangents2: Tensor | None = None, *, reg: float = 0.0
) -> Tensor:
    """Tangent distance of each pair ``(x1[i], x2[i])`` (Simard, LeCun & Denker 1993).

    One-sided (``tangents2=None``): ``min_a ||x1 + T1 a - x2||``, the distance from ``x2`` to the tangent plane
    of ``x1``. Two-sided: ``min_{a, b} ||x1 + T1 a - x2 - T2 b||``, the distance between the two tangent planes.
    Both are linear least squares over the coefficients, solved per pair through the normal equations with a
    pseudo-inverse (so degenerate tangents, e.g. of a blank image, are fine). ``reg > 0`` adds ``reg * ||a||^2``
    (and ``||b||^2``) to the minimized squared distance, keeping the coefficients small (the linear approximation
    of the manifold holds only near ``x``).

    Always ``<= ||x1 - x2||`` (the coefficients 0 are a candidate), and 0 when ``x2 - x1`` lies in the span.

    Args:
        x1, x2: ``(N, ...)`` batches of the same shape.
        tangents1: ``(T, N, ...)`` tangents of ``x1`` (e.g. :func:`tangent_vectors`); tangents2 likewise of
            ``x2``, or ``None``.
        reg: ridge weight on the coefficients, >= 0.

    Returns:
        ``(N,)`` distances.

    Example::

        >>> x1, x2 = torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8)
        >>> d = tangent_distance(x1, x2, tangent_vectors(x1), tangent_vectors(x2))
        >>> bool((d <= (x1 - x2).flatten(1).norm(dim=1) + 1e-5).all())
        True
    """
    if x1.shape != x2.shape:
        raise ValueError(f"x1 and x2 must have the same shape, got {tuple(x1.shape)} and {tuple(x2.shape)}")
    for name, t in (("tangents1", tangents1), ("tangents2", tangents2)):
        if t is not None and t.shape[1:] != x1.shape:
            raise ValueError(f"{name} must have shape (T, *x1.shape), got {tuple(t.shape)}")
    check_real("reg", reg)
    r = _flat(x1 - x2, 1)  # (N, D)
    basis = _flat(tangents1, 2).transpose(0, 1)  # (N, T, D)
    if tangents2 is not None:
        basis = torch.cat([basis, -_flat(tangents2, 2).transpose(0, 1)], dim=1)
    b = basis @ r.unsqueeze(-1)  # M^T r, (N, K, 1)
    gram = basis @ basis.transpose(1, 2)  # M^T M, (N, K, K)
    return _solve_distance(r.pow(2).sum(dim=1), b.squeeze(-1), gram, float(reg))


def tangent_distance_matrix(
    x: Tensor, prototypes: Tensor, tangents_x: Tensor | None, tangents_p: Tensor | None, *, reg: float = 0.0
) -> Tensor:
    """``(N, P)`` tangent distances between every ``x[i]`` and every ``prototypes[j]`` (tangents of either side
    may be ``None``; with both ``None`` this is the Euclidean distance), vectorized over the pairs."""
    xf, pf = _flat(x, 1), _flat(prototypes, 1)  # (N, D), (P, D)
    r2 = torch.cdist(xf, pf).pow(2)  # ||x - p||^2
    blocks_b, sides = [], []
    if tangents_x is not None:  # a: x + Tx a; residual r = x - p, column Tx
        tx = _flat(tangents_x, 2).transpose(0, 1)  # (N, T, D)
        blocks_b.append((tx @ xf.unsqueeze(-1)).squeeze(-1)[:, None, :] - torch.einsum("ntd,pd->npt", tx, pf))
        sides.append(("x", tx))
    if tangents_p is not None:  # b: p + Tp b; column -Tp
        tp = _flat(tangents_p, 2).transpose(0, 1)  # (P, T, D)
        blocks_b.append(-(torch.einsum("ptd,nd->npt", tp, xf) - (tp @ pf.unsqueeze(-1)).squeeze(-1)[None, :, :]))
        sides.append(("p", tp))
    if not sides:
        return r2.clamp_min(0).sqrt()
    b = torch.cat(blocks_b, dim=-1)  # (N, P, K)
    n, p = r2.shape
    if len(sides) == 1:
        side, t = sides[0]
        gram = t @ t.transpose(1, 2)  # (N or P, T, T)
        gram = gram[:, None] if side == "x" else gram[None, :]
        gram = gram.expand(n, p, *gram.shape[-2:])
    else:
        gx = (tx @ tx.transpose(1, 2))[:, None].expand(n, p, -1, -1)
        gp = (tp @ tp.transpose(1, 2))[None, :].expand(n, p, -1, -1)
        cross = -torch.einsum("ntd,psd->npts", tx, tp)
        gram = torch.cat([torch.cat([gx, cross], dim=-1), torch.cat([cross.transpose(-1, -2), gp], dim=-1)], dim=-2)
    return _solve_distance(r2, b, gram, reg)


def tangent_distance_classify(
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    k: int = 1,
    *,
    tangents_fn: TangentsFn | None = tangent_vectors,
    two_sided: bool = True,
    reg: float = 0.0,
    chunk: int = 64,
) -> Tensor:
    """k-nearest-neighbour labels of ``x_test`` under the tangent distance to ``(x_train, y_train)``.

    Tangents come from ``tangents_fn`` (the training examples' always; the test examples' too with
    ``two_sided``); ``tangents_fn=None`` gives plain Euclidean k-NN, for comparison. A vote among the ``k``
    nearest, ties going to the class of the nearest. Test examples are processed ``chunk`` at a time (the
    pairwise Gram matrices take ``chunk * len(x_train) * (2T)^2`` numbers).

    Example::

        >>> x, y = torch.rand(20, 1, 8, 8), torch.arange(20) % 2
        >>> tangent_distance_classify(x, y, x[:3]).tolist()
        [0, 1, 0]
    """
    if not is_int(k) or not 1 <= k <= len(x_train):
        raise ValueError(f"k must be an integer in [1, len(x_train)], got {k!r}")
    tangents_p = tangents_fn(x_train) if tangents_fn is not None else None
    labels = []
    for start in range(0, len(x_test), chunk):
        xb = x_test[start : start + chunk]
        tangents_x = tangents_fn(xb) if tangents_fn is not None and two_sided else None
        distances = tangent_distance_matrix(xb, x_train, tangents_x, tangents_p, reg=reg)
        nearest = distances.topk(k, dim=1, largest=False).indices  # (n, k), nearest first
        votes = y_train[nearest]
        if k == 1:
            labels.append(votes[:, 0])
            continue
        counts = torch.nn.functional.one_hot(votes, int(y_train.max()) + 1).sum(dim=1)  # (n, classes)
        top = counts.max(dim=1, keepdim=True).values
        tied = counts.gather(1, votes) == top  # per neighbour: is its class among the most voted
        labels.append(votes.gather(1, tied.float().argmax(dim=1, keepdim=True)).squeeze(1))
    return torch.cat(labels)
