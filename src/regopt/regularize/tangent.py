"""Tangent vectors, tangent prop and tangent distance (Goodfellow et al. 2016, sec. 7.14).

A small known transformation ``x -> T(x, s)`` of the input (a shift or rotation of a digit, a shift of a 1-D
signal) moves an example along a curve of the data manifold; its *tangent vector* is ``v = dT(x, s)/ds`` at
``s = 0``. Three uses:

- **tangent vectors**: :func:`tangent_vectors` for images (central finite differences of kornia's shift,
  rotation and scaling of the bicubic interpolant, which is differentiable in the transformation),
  :func:`signal_shift_tangent` for 1-D signals;
- **tangent prop** (Simard et al. 1992): the penalty ``Omega(f) = sum_i sum_t ||J_f(x_i) v_{t,i}||^2`` makes
  the output locally invariant to the transformations; each ``J_f(x) v`` is one forward-mode product
  (``torch.func.jvp``), differentiable in the parameters (:class:`TangentProp`);
- **tangent distance** (Simard, LeCun & Denker 1993): the distance between the tangent planes of two examples,
  ``min_{a, b} ||(x1 + T1 a) - (x2 + T2 b)||``, a least-squares problem in the coefficients, used for
  nearest-neighbour classification (in :mod:`regopt.regularize.tangent_distances`).

Tangents need not be hand-made: the manifold tangent classifier (Rifai et al. 2011) learns them as the leading
right singular vectors of a contractive autoencoder's encoder Jacobian
(:func:`regopt.regularize.manifold_tangent.learned_tangents`, a ``tangents_fn`` for :class:`TangentProp`).

References:
    Simard, Victorri, LeCun & Denker (1992), Tangent prop; Simard, LeCun & Denker (1993), Efficient pattern
    recognition using a new transformation distance; Rifai et al. (2011), The manifold tangent classifier.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import kornia.geometry.transform as KT
import torch
from torch import Tensor, nn

from regopt._checks import check_alpha

IMAGE_TRANSFORMS = ("shift_x", "shift_y", "rotate", "scale")
INTERPOLATIONS = ("bicubic", "bilinear")
_STEPS = {"shift_x": 1e-3, "shift_y": 1e-3, "rotate": 1e-3, "scale": 1e-3}
"""Finite-difference half-steps: 1/1000 pixel, 1/1000 radian (0.06 degree), a 0.1% zoom: small enough for a
truncation error of ~1e-3 relative, large enough for a float32 rounding error of ~1e-4."""

TangentsFn = Callable[[Tensor], Tensor]


def _transform(images: Tensor, name: str, s: float, mode: str) -> Tensor:
    """``images`` shifted by ``s`` pixels, rotated by ``s`` radians or zoomed by ``1 + s`` (kornia)."""
    n = len(images)
    if name in ("shift_x", "shift_y"):
        shift = torch.zeros(n, 2, dtype=images.dtype, device=images.device)
        shift[:, 0 if name == "shift_x" else 1] = s
        return KT.translate(images, shift, mode=mode)
    if name == "rotate":
        angle = torch.full((n,), math.degrees(s), dtype=images.dtype, device=images.device)
        return KT.rotate(images, angle, mode=mode)
    factor = torch.full((n, 2), 1.0 + s, dtype=images.dtype, device=images.device)
    return KT.scale(images, factor, mode=mode)


def _check_names(transforms: Sequence[str], mode: str) -> None:
    if isinstance(transforms, str) or not transforms:
        raise ValueError(f"transforms must be a non-empty sequence of names from {IMAGE_TRANSFORMS}")
    for name in transforms:
        if name not in IMAGE_TRANSFORMS:
            raise ValueError(f"unknown transformation {name!r}; expected one of {IMAGE_TRANSFORMS}")
    if mode not in INTERPOLATIONS:
        raise ValueError(f"mode must be one of {INTERPOLATIONS}, got {mode!r}")


def transform_images(
    x: Tensor,
    name: str,
    amount: float,
    *,
    image_shape: tuple[int, int, int] | None = None,
    mode: str = "bicubic",
) -> Tensor:
    """Apply one named transformation to a batch: ``shift_x``/``shift_y`` by ``amount`` pixels, ``rotate`` by
    ``amount`` radians (counter-clockwise), ``scale`` by a factor ``1 + amount``; kornia, zero padding.

    ``x`` is ``(N, C, H, W)``, or flat ``(N, C*H*W)`` with ``image_shape``; ``mode`` is the interpolation,
    ``"bicubic"`` (default) or ``"bilinear"``. The tangent vector ``name`` of :func:`tangent_vectors` is the
    derivative of this map in ``amount`` at 0.
    """
    _check_names((name,), mode)
    images = _as_images(x, image_shape)
    return _transform(images, name, float(amount), mode).reshape(x.shape)


def _as_images(x: Tensor, image_shape: tuple[int, int, int] | None) -> Tensor:
    if image_shape is not None and x.dim() == 2 and x.shape[1] == math.prod(image_shape):
        return x.reshape(len(x), *image_shape)
    if x.dim() == 4 and x.is_floating_point():
        return x
    want = "(N, C, H, W)" + ("" if image_shape is None else f" or (N, {math.prod(image_shape)})")
    raise ValueError(f"expected a floating-point image batch {want}, got {x.dtype} {tuple(x.shape)}")


def tangent_vectors(
    x: Tensor,
    transforms: Sequence[str] = ("shift_x", "shift_y", "rotate"),
    *,
    image_shape: tuple[int, int, int] | None = None,
    mode: str = "bicubic",
) -> Tensor:
    """Tangent vectors ``dT_t(x, s)/ds`` at ``s = 0`` of image transformations, by central finite differences.

    ``v_t = (T_t(x, h) - T_t(x, -h)) / (2 h)`` with :func:`transform_images` and a small ``h`` (per pixel of
    shift, per radian of rotation, per unit of zoom), so that ``T_t(x, s) ~ x + s v_t`` for small ``s``.

    Args:
        x: images ``(N, C, H, W)``, or flat ``(N, C*H*W)`` with ``image_shape``.
        transforms: names from ``("shift_x", "shift_y", "rotate", "scale")``.
        image_shape: ``(C, H, W)`` of flat inputs.
        mode: the interpolation that defines the image between pixels. ``"bicubic"`` (default) is continuously
            differentiable, so the transformation has a derivative at ``s = 0`` and the tangent predicts the
            transformed image to first order (a shift's tangent is then ``3/4 (x[u - 1] - x[u + 1])``, the slope of
            torch's Keys cubic kernel at the neighbouring pixels). ``"bilinear"`` is piecewise linear
            with a kink at every pixel: its central difference is the mean of the left and right derivatives,
            ``(x[u - 1] - x[u + 1]) / 2`` for a shift, which predicts neither ``T(x, s)`` nor ``T(x, -s)`` alone,
            only their difference.

    Returns:
        ``(T, *x.shape)``: one tangent vector per transformation and example, detached.

    Example::

        >>> tangents = tangent_vectors(torch.rand(5, 1, 8, 8))
        >>> tangents.shape
        torch.Size([3, 5, 1, 8, 8])
    """
    _check_names(transforms, mode)
    images = _as_images(x.detach(), image_shape)
    out = []
    with torch.no_grad():
        for name in transforms:
            h = _STEPS[name]
            out.append((_transform(images, name, h, mode) - _transform(images, name, -h, mode)) / (2 * h))
    return torch.stack(out).reshape(len(out), *x.shape)


def signal_shift_tangent(x: Tensor, *, mode: str = "circular") -> Tensor:
    """Tangent vector of a shift of 1-D signals: ``d/ds x(t - s) = -x'(t) ~ (x[t - 1] - x[t + 1]) / 2``.

    The shift convention of :class:`~regopt.regularize.SignalAugment` (``x'[t] = x[t - s]``), differentiated by
    a central difference along axis 1; ``mode="circular"`` wraps around (MNIST-1D's shifts), ``"zeros"`` treats
    the signal as zero outside.

    Args:
        x: signals ``(N, L)`` or ``(N, L, C)``.
        mode: ``"circular"`` or ``"zeros"``.

    Returns:
        ``(1, *x.shape)``: the shift tangent, shaped as :func:`tangent_vectors` returns tangents.
    """
    if x.dim() not in (2, 3) or not x.is_floating_point():
        raise ValueError(f"expected float signals (N, L) or (N, L, C), got {x.dtype} {tuple(x.shape)}")
    if mode not in ("circular", "zeros"):
        raise ValueError(f"mode must be 'circular' or 'zeros', got {mode!r}")
    x = x.detach()
    if mode == "circular":
        before, after = x.roll(1, dims=1), x.roll(-1, dims=1)
    else:
        zero = torch.zeros_like(x[:, :1])
        before, after = torch.cat([zero, x[:, :-1]], dim=1), torch.cat([x[:, 1:], zero], dim=1)
    return ((before - after) / 2).unsqueeze(0)


class TangentProp:
    """Tangent prop penalty ``alpha * mean_i sum_t ||J_f(x_i) v_{t,i}||^2`` (Simard et al. 1992).

    ``J_f(x) v`` is the directional derivative of the model's output along the tangent ``v``, computed by
    forward-mode differentiation (``torch.func.jvp``, one per tangent); the penalty is differentiable in the
    parameters. It is zero when the output is locally invariant to every transformation.

    Two ways to use it:

    - plain loop: ``loss = task_loss + tangent_prop(model, x)``;
    - regopt's Trainer, whose penalties see only the model: pass the pair ``batch_transforms=[...,
      tangent_prop.remember]`` (stores the current batch, last among the transforms, and returns it unchanged)
      and ``penalties=[tangent_prop.penalty]`` (the penalty on the stored batch).

    Args:
        alpha: weight of the penalty, >= 0.
        tangents_fn: ``x -> (T, *x.shape)`` tangent vectors of a batch (default :func:`tangent_vectors`:
            shift x, shift y, rotation of images; :func:`signal_shift_tangent` for 1-D signals; learned ones
            from :func:`regopt.regularize.manifold_tangent.learned_tangents`).

    Example::

        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        >>> tangent_prop = TangentProp(alpha=0.1)
        >>> x = torch.rand(4, 1, 8, 8)
        >>> loss = nn.functional.cross_entropy(model(x), torch.arange(4)) + tangent_prop(model, x)
        >>> loss.backward()
    """

    def __init__(
        self,
        alpha: float,
        tangents_fn: TangentsFn = tangent_vectors,
        *,
        output: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        check_alpha(alpha)
        if not callable(tangents_fn):
            raise ValueError(f"tangents_fn must be callable, got {tangents_fn!r}")
        self.alpha, self.tangents_fn, self.output = float(alpha), tangents_fn, output
        self._x: Tensor | None = None

    def __call__(self, model: nn.Module, x: Tensor, tangents: Tensor | None = None) -> Tensor:
        """The penalty on the batch ``x`` (``tangents``: precomputed ``(T, *x.shape)``, else ``tangents_fn(x)``)."""
        x = x.detach()
        if self.alpha == 0:
            return x.new_zeros(())
        tangents = self.tangents_fn(x) if tangents is None else tangents
        if tangents.shape[1:] != x.shape:
            raise ValueError(
                f"tangents must have shape (T, *x.shape) = (T, {tuple(x.shape)}), got {tuple(tangents.shape)}"
            )
        output = self.output

        def f(inputs: Tensor) -> Tensor:
            return model(inputs) if output is None else output(model(inputs))

        total = x.new_zeros(())
        for v in tangents.detach():
            directional = torch.func.jvp(f, (x,), (v,))[1]  # J_f(x) v, forward mode
            total = total + directional.pow(2).reshape(len(x), -1).sum(dim=1).mean()
        return self.alpha * total

    def remember(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Batch transform: keep ``x`` for :meth:`penalty`; the batch passes unchanged."""
        self._x = x
        return x, y

    def penalty(self, model: nn.Module) -> Tensor:
        """The penalty on the batch last seen by :meth:`remember`."""
        if self._x is None:
            raise RuntimeError("TangentProp.penalty needs a batch: add .remember to the batch transforms")
        return self(model, self._x)

    def __repr__(self) -> str:
        name = getattr(self.tangents_fn, "__name__", type(self.tangents_fn).__name__)
        return f"TangentProp(alpha={self.alpha}, tangents_fn={name})"
