"""Dataset augmentation (Goodfellow et al. 2016, sec. 7.4): random label-preserving transformations of inputs.

Two batch transforms ``(x, y) -> (x', y)`` that run on the device on whole training batches:

- :class:`ImageAugment` for images ``(N, C, H, W)``: rotation, horizontal flip, scaling and shifting, built
  from ``kornia.augmentation`` (the on-device counterpart of Keras' ``ImageDataGenerator`` in the slides);
- :class:`SignalAugment` for 1-D signals ``(N, L)`` or ``(N, L, C)`` such as MNIST-1D: shift, amplitude
  scaling and additive noise, vectorized over the batch.

Randomness: each accepts a CPU ``torch.Generator``; without one it draws from torch's global RNG, which
regopt's lab seeds from the run's seed and saves in checkpoints, so runs are deterministic either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import kornia.augmentation as K
import torch
from torch import Tensor, nn

from regopt._checks import check_int, check_real, is_finite_real, is_int
from regopt.regularize.noise import GeneratorState, gaussian_like

PADDING_MODES = ("zeros", "border", "reflection")


def _check_range(name: str, value: tuple[float, float] | None, low: float) -> tuple[float, float] | None:
    """``None``, or a pair ``(a, b)`` of finite numbers with ``low <= a <= b``."""
    if value is None:
        return None
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    ok = ok and all(is_finite_real(v) for v in value)
    if not ok or not low <= value[0] <= value[1]:
        raise ValueError(f"{name} must be None or a pair (a, b) with {low} <= a <= b, got {value!r}")
    return float(value[0]), float(value[1])


def _check_generator(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
        raise ValueError(f"generator must be None or a CPU torch.Generator, got {generator!r}")
    return generator


def _check_number(name: str, value: float, low: float, high: float, *, high_open: bool = False) -> float:
    ok = is_finite_real(value)
    if not ok or not low <= value <= high or (high_open and value == high):
        interval = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


class ImageAugment(GeneratorState):
    """Random rotation, flip, scaling and shift of an image batch, on the batch's device (kornia).

    Each example independently gets, with probability ``p``, one random affine map (a rotation by an angle
    uniform in ``[-rotate, rotate]`` degrees about the center, a zoom uniform in ``scale``, a translation
    uniform in ``[-shift, shift]`` times the width and height), bilinear resampling with ``padding_mode``
    outside the image, then, if ``flip``, a horizontal flip with probability 1/2. With every option off the
    transform returns ``x`` itself.

    Args:
        rotate: maximal rotation in degrees, in [0, 180].
        flip: random horizontal flips (default ``False``; see the note).
        scale: ``(a, b)`` zoom range with ``0 < a <= b`` (``None``: no zoom).
        shift: maximal translation as a fraction of the width/height, in [0, 1) (Keras' and kornia's
            convention: ``0.125`` shifts an 8x8 digit by up to one pixel).
        p: probability that an example gets the affine map, in [0, 1].
        image_shape: ``(C, H, W)`` of flat inputs ``(N, C*H*W)`` (e.g. digits as 64-vectors for an MLP),
            which are reshaped for augmentation and back; ``None`` requires ``(N, C, H, W)`` batches.
        padding_mode: ``"zeros"`` (default; the background of the digits), ``"border"`` or ``"reflection"``.
        generator: a CPU ``torch.Generator`` for the random parameters (default: torch's global RNG).

    Example::

        >>> augment = ImageAugment(rotate=10.0, shift=0.125, generator=torch.Generator().manual_seed(0))
        >>> x, y = augment(torch.rand(4, 1, 8, 8), torch.arange(4))
        >>> x.shape
        torch.Size([4, 1, 8, 8])

    Note:
        Transformations must preserve the label. A horizontal flip turns some handwritten digits into other
        shapes or none (2 and 5 mirror into each other's look, 3, 4, 7 and 9 into non-digits), and rotations
        beyond ~15 degrees confuse 6 with 9; so ``flip`` is off by default and ``rotate`` should stay small
        for digits (sec. 7.4: "b" vs "d", "6" vs "9").

    References:
        Simard et al. (2003); Krizhevsky et al. (2012); Goodfellow, Bengio & Courville (2016), sec. 7.4.
    """

    def __init__(
        self,
        rotate: float = 0.0,
        flip: bool = False,
        scale: tuple[float, float] | None = None,
        shift: float = 0.0,
        p: float = 1.0,
        *,
        image_shape: tuple[int, int, int] | None = None,
        padding_mode: Literal["zeros", "border", "reflection"] = "zeros",
        generator: torch.Generator | None = None,
    ) -> None:
        self.rotate = _check_number("rotate", rotate, 0.0, 180.0)
        if not isinstance(flip, bool):
            raise ValueError(f"flip must be True or False, got {flip!r}")
        self.flip = flip
        self.scale = _check_range("scale", scale, 0.0)
        if self.scale is not None and self.scale[0] == 0:
            raise ValueError(f"scale must be None or a pair (a, b) with 0 < a <= b, got {scale!r}")
        self.shift = _check_number("shift", shift, 0.0, 1.0, high_open=True)
        self.p = _check_number("p", p, 0.0, 1.0)
        if image_shape is not None and not (
            isinstance(image_shape, tuple) and len(image_shape) == 3 and all(is_int(d) and d > 0 for d in image_shape)
        ):
            raise ValueError(f"image_shape must be None or (C, H, W) of positive integers, got {image_shape!r}")
        self.image_shape = image_shape
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.generator = _check_generator(generator)
        ops: list[nn.Module] = []
        if self.rotate > 0 or self.scale is not None or self.shift > 0:
            translate = (self.shift, self.shift) if self.shift > 0 else None
            ops.append(K.RandomAffine(self.rotate, translate, self.scale, p=self.p, padding_mode=padding_mode.upper()))
        if self.flip:
            ops.append(K.RandomHorizontalFlip(p=0.5))
        self.pipeline = nn.Sequential(*ops)

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if not x.is_floating_point():
            raise ValueError(f"ImageAugment needs a floating-point image batch, got {x.dtype}")
        shape = tuple(x.shape)
        if self.image_shape is not None and x.dim() == 2 and shape[1] == math.prod(self.image_shape):
            images = x.reshape(len(x), *self.image_shape)
        elif x.dim() == 4:
            images = x
        else:
            want = "(N, C, H, W)" + ("" if self.image_shape is None else f" or (N, {math.prod(self.image_shape)})")
            raise ValueError(f"ImageAugment expects an image batch {want}, got shape {shape}")
        if len(self.pipeline) == 0 or len(x) == 0:
            return x, y
        out = _with_generator(self.generator, self.pipeline, images)
        return out.reshape(shape), y

    def __repr__(self) -> str:
        return (
            f"ImageAugment(rotate={self.rotate}, flip={self.flip}, scale={self.scale}, shift={self.shift}, p={self.p})"
        )


def _with_generator(generator: torch.Generator | None, fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``fn(x)`` with torch's global CPU RNG temporarily replaced by ``generator`` (kornia samples its random
    parameters from the global CPU RNG); the generator advances, the global RNG is left as it was."""
    if generator is None:
        return fn(x)
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(generator.get_state())
        out = fn(x)
        generator.set_state(torch.get_rng_state())
    return out


def _rand(shape: tuple[int, ...], x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Uniform [0, 1) draws of ``shape`` on ``x``'s device, from ``generator`` or the global RNG."""
    if generator is None:
        return torch.rand(shape, device=x.device, dtype=x.dtype)
    return torch.rand(shape, generator=generator, dtype=x.dtype).to(x.device)


class SignalAugment(GeneratorState):
    """Random shift, amplitude scaling and additive noise of a batch of 1-D signals, vectorized on the batch.

    For a signal ``x_i`` of length L (shape ``(N, L)``, or ``(N, L, C)`` with the channels shifted together)::

        shift   x_i[t] <- x_i[t - s_i],   s_i uniform in {-shift, ..., shift}   (one gather for the batch)
        scale   x_i <- a_i x_i,            a_i uniform in [a, b]
        noise   x_i <- x_i + noise * N(0, I)

    in that order. ``mode="circular"`` wraps the signal around (``torch.roll`` per example, as MNIST-1D's own
    generator translates); ``mode="zeros"`` fills the vacated positions with zeros.

    Args:
        shift: maximal shift in positions (integer >= 0).
        scale: ``(a, b)`` amplitude range with ``0 <= a <= b`` (``None``: no scaling).
        noise: standard deviation of the additive Gaussian noise (>= 0).
        mode: ``"circular"`` (default) or ``"zeros"``.
        generator: a CPU ``torch.Generator`` (default: torch's global RNG).

    Example::

        >>> augment = SignalAugment(shift=3, scale=(0.9, 1.1), noise=0.05)
        >>> x, y = augment(torch.randn(8, 40), torch.arange(8))
        >>> x.shape
        torch.Size([8, 40])

    References:
        Greydanus (2020), MNIST-1D; Goodfellow, Bengio & Courville (2016), sec. 7.4.
    """

    def __init__(
        self,
        shift: int = 0,
        scale: tuple[float, float] | None = None,
        noise: float = 0.0,
        *,
        mode: Literal["circular", "zeros"] = "circular",
        generator: torch.Generator | None = None,
    ) -> None:
        check_int("shift", shift, 0)
        self.shift = shift
        self.scale = _check_range("scale", scale, 0.0)
        self.noise = check_real("noise", noise)
        if mode not in ("circular", "zeros"):
            raise ValueError(f"mode must be 'circular' or 'zeros', got {mode!r}")
        self.mode = mode
        self.generator = _check_generator(generator)

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() not in (2, 3) or not x.is_floating_point():
            raise ValueError(f"SignalAugment expects float signals (N, L) or (N, L, C), got {x.dtype} {tuple(x.shape)}")
        n, length = x.shape[:2]
        trailing = (1,) * (x.dim() - 2)
        if self.shift > 0 and n > 0:
            draws = _rand((n,), x, self.generator)  # s_i uniform in {-shift, ..., shift}
            offsets = (draws * (2 * self.shift + 1)).floor().long().clamp(max=2 * self.shift) - self.shift
            source = torch.arange(length, device=x.device)[None, :] - offsets[:, None]  # x'[t] = x[t - s]
            index = source.remainder(length) if self.mode == "circular" else source.clamp(0, length - 1)
            gathered = x.gather(1, index.view(n, length, *trailing).expand_as(x))
            if self.mode == "zeros":
                inside = (source >= 0) & (source < length)
                gathered = gathered * inside.view(n, length, *trailing).to(x.dtype)
            x = gathered
        if self.scale is not None:
            a, b = self.scale
            factors = a + (b - a) * _rand((n,), x, self.generator)
            x = x * factors.view(n, 1, *trailing)
        if self.noise > 0:
            x = x + self.noise * gaussian_like(x, self.generator)
        return x, y

    def __repr__(self) -> str:
        return f"SignalAugment(shift={self.shift}, scale={self.scale}, noise={self.noise}, mode={self.mode!r})"
