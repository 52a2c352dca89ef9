"""Dataset augmentation (sec. 7.4): image batches through kornia, 1-D signals vectorized on the batch."""

from __future__ import annotations

import pytest
import torch

from regopt.regularize.augment import ImageAugment, SignalAugment


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def blob_images(n: int, size: int = 8) -> torch.Tensor:
    """``n`` copies of a 2x2 square of ones in the middle of a ``size`` x ``size`` image."""
    x = torch.zeros(n, 1, size, size)
    mid = size // 2
    x[:, :, mid - 1 : mid + 1, mid - 1 : mid + 1] = 1.0
    return x


def center_of_mass(x: torch.Tensor) -> torch.Tensor:
    """``(n, 2)`` centers of mass (column, row) of a batch ``(n, 1, H, W)``."""
    h, w = x.shape[-2:]
    mass = x.sum(dim=(1, 2, 3))
    cols = (x.sum(dim=(1, 2)) * torch.arange(w, dtype=x.dtype)).sum(dim=1) / mass
    rows = (x.sum(dim=(1, 3)) * torch.arange(h, dtype=x.dtype)).sum(dim=1) / mass
    return torch.stack([cols, rows], dim=1)


# ----------------------------------------------------------------------------------------------------- images
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_image_augment_preserves_shape_and_dtype(dtype: torch.dtype) -> None:
    x = torch.rand(6, 3, 8, 8, generator=gen(), dtype=dtype)
    y = torch.arange(6)
    out, y2 = ImageAugment(rotate=15.0, flip=True, scale=(0.9, 1.1), shift=0.1, generator=gen())(x, y)
    assert out.shape == x.shape and out.dtype == dtype and y2 is y


def test_image_augment_with_everything_off_is_identity() -> None:
    x, y = torch.rand(4, 1, 8, 8), torch.arange(4)
    assert ImageAugment()(x, y)[0] is x
    assert torch.equal(ImageAugment(rotate=30.0, p=0.0)(x, y)[0], x)


def test_rotation_changes_pixels_but_keeps_mean_intensity() -> None:
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 6:10, 4:12] = 1.0  # a horizontal bar in the middle
    augment = ImageAugment(rotate=30.0, generator=gen())
    out, _ = augment(x, torch.zeros(64))
    angles = augment.pipeline[0]._params["angle"]
    assert angles.abs().max().item() <= 30.0 and angles.std().item() > 10.0  # uniform on [-30, 30]
    changed = (out - x).abs().amax(dim=(1, 2, 3)) > 0.05
    assert bool(changed[angles.abs() > 5.0].all())
    assert out.mean().item() == pytest.approx(x.mean().item(), rel=0.05)


def test_shift_moves_the_center_of_mass_by_the_sampled_translation() -> None:
    x = blob_images(2000)
    augment = ImageAugment(shift=0.25, generator=gen())  # up to 2 pixels on 8x8
    out, _ = augment(x, torch.zeros(2000))
    moved = center_of_mass(out) - center_of_mass(x)
    translations = augment.pipeline[0]._params["translations"]  # pixels (dx, dy) kornia drew
    assert torch.allclose(moved, translations, atol=1e-4)
    assert moved.abs().max().item() <= 2.0 + 1e-4
    assert moved.abs().mean().item() == pytest.approx(1.0, abs=0.1)  # |U(-2, 2)| has mean 1
    assert torch.allclose(out.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)), atol=1e-4)  # mass kept inside


def test_flip_mirrors_about_half_of_the_examples() -> None:
    x = torch.rand(1, 1, 8, 8, generator=gen(1)).expand(400, 1, 8, 8).contiguous()
    out, _ = ImageAugment(flip=True, generator=gen())(x, torch.zeros(400))
    same = (out == x).flatten(1).all(dim=1)
    mirrored = (out == x.flip(-1)).flatten(1).all(dim=1)
    assert bool((same | mirrored).all())
    assert 0.4 < mirrored.double().mean().item() < 0.6


def test_image_augment_flat_inputs_generator_and_global_rng() -> None:
    x = torch.rand(5, 64, generator=gen(2))
    augment = ImageAugment(rotate=10.0, shift=0.125, image_shape=(1, 8, 8), generator=gen(3))
    before = torch.get_rng_state()
    out = augment(x, torch.zeros(5))[0]
    assert torch.equal(torch.get_rng_state(), before)  # the generator, not the global RNG, was used
    assert out.shape == (5, 64) and not torch.equal(out, x)
    again = ImageAugment(rotate=10.0, shift=0.125, image_shape=(1, 8, 8), generator=gen(3))(x, torch.zeros(5))[0]
    assert torch.equal(out, again)
    torch.manual_seed(0)
    a = ImageAugment(rotate=10.0)(x.view(5, 1, 8, 8), torch.zeros(5))[0]
    torch.manual_seed(0)
    b = ImageAugment(rotate=10.0)(x.view(5, 1, 8, 8), torch.zeros(5))[0]
    assert torch.equal(a, b)  # seeding torch's global RNG makes kornia deterministic


# ---------------------------------------------------------------------------------------------------- signals
def test_signal_shift_moves_a_spike_by_at_most_shift_and_by_varying_amounts() -> None:
    x = torch.zeros(500, 40)
    x[:, 20] = 1.0
    out, _ = SignalAugment(shift=3, generator=gen())(x, torch.zeros(500))
    assert torch.equal(out.sum(dim=1), torch.ones(500)) and torch.equal(out.amax(dim=1), torch.ones(500))
    moved = out.argmax(dim=1) - 20
    assert set(moved.tolist()) == {-3, -2, -1, 0, 1, 2, 3}


def test_circular_shift_is_a_roll_of_each_example() -> None:
    x = torch.randn(50, 12, generator=gen(1))
    out, _ = SignalAugment(shift=12, generator=gen())(x, torch.zeros(50))
    for row, source in zip(out, x, strict=True):
        assert any(torch.equal(row, torch.roll(source, s)) for s in range(12))


def test_zero_padded_shift_drops_what_leaves_the_signal() -> None:
    x = torch.zeros(400, 10)
    x[:, 1] = 1.0
    out, _ = SignalAugment(shift=3, mode="zeros", generator=gen())(x, torch.zeros(400))
    kept = out.sum(dim=1) == 1
    assert 0 < int((~kept).sum()) < 400  # shifted left by 2 or 3: the spike fell off the edge
    assert bool((out[~kept] == 0).all())
    assert set((out[kept].argmax(dim=1) - 1).tolist()) == {-1, 0, 1, 2, 3}


def test_signal_scale_multiplies_norms_within_range() -> None:
    x = torch.randn(300, 40, generator=gen(1))
    out, _ = SignalAugment(scale=(0.5, 2.0), generator=gen())(x, torch.zeros(300))
    ratio = out.norm(dim=1) / x.norm(dim=1)
    assert ratio.min().item() >= 0.5 - 1e-6 and ratio.max().item() <= 2.0 + 1e-6
    assert ratio.std().item() > 0.3  # uniform on [0.5, 2]: std 0.43
    assert torch.allclose(out / ratio[:, None], x, atol=1e-5)  # one factor per example


def test_signal_noise_std() -> None:
    x = torch.randn(1000, 100, generator=gen(1))
    out, _ = SignalAugment(noise=0.2, generator=gen())(x, torch.zeros(1000))
    assert (out - x).std().item() == pytest.approx(0.2, rel=0.05)


def test_signal_channels_last_shift_together() -> None:
    x = torch.randn(30, 40, 1, generator=gen(1))
    out, _ = SignalAugment(shift=4, scale=(0.9, 1.1), noise=0.01, generator=gen())(x, torch.zeros(30))
    assert out.shape == (30, 40, 1)
    two = torch.stack([torch.arange(40.0), torch.arange(40.0) + 100], dim=-1).expand(30, 40, 2)
    shifted, _ = SignalAugment(shift=4, generator=gen())(two, torch.zeros(30))
    assert torch.equal(shifted[..., 1] - shifted[..., 0], torch.full((30, 40), 100.0))


def test_signal_augment_generator_state_resumes() -> None:
    x = torch.randn(8, 40)
    augment = SignalAugment(shift=5, scale=(0.8, 1.2), noise=0.1, generator=gen(4))
    augment(x, torch.zeros(8))
    state = augment.state_dict()
    expected = augment(x, torch.zeros(8))[0]
    resumed = SignalAugment(shift=5, scale=(0.8, 1.2), noise=0.1, generator=gen(0))
    resumed.load_state_dict(state)
    assert torch.equal(resumed(x, torch.zeros(8))[0], expected)


# -------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda: ImageAugment(rotate=-5.0), r"rotate must be in \[0.0, 180.0\], got -5\.0"),
        (lambda: ImageAugment(flip=1), r"flip must be True or False, got 1"),  # type: ignore[arg-type]
        (lambda: ImageAugment(scale=(1.2, 0.8)), r"scale must be .* got \(1\.2, 0\.8\)"),
        (lambda: ImageAugment(scale=(0.0, 1.0)), r"scale must be .* 0 < a <= b, got \(0\.0, 1\.0\)"),
        (lambda: ImageAugment(shift=1.0), r"shift must be in \[0.0, 1.0\), got 1\.0"),
        (lambda: ImageAugment(p=1.5), r"p must be in \[0.0, 1.0\], got 1\.5"),
        (lambda: ImageAugment(image_shape=(8, 8)), r"image_shape must be .* got \(8, 8\)"),  # type: ignore[arg-type]
        (lambda: ImageAugment(padding_mode="wrap"), r"padding_mode must be one of .* got 'wrap'"),  # type: ignore[arg-type]
        (lambda: ImageAugment(generator=3), r"generator must be None or a CPU torch.Generator, got 3"),  # type: ignore[arg-type]
        (lambda: ImageAugment(rotate=5.0)(torch.zeros(2, 8, 8), None), r"expects an image batch .* got shape"),
        (lambda: ImageAugment(rotate=5.0)(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), None), r"floating-point"),
        (lambda: SignalAugment(shift=-1), r"shift must be an integer >= 0, got -1"),
        (lambda: SignalAugment(shift=1.5), r"shift must be an integer >= 0, got 1\.5"),  # type: ignore[arg-type]
        (lambda: SignalAugment(scale=(-0.5, 1.0)), r"scale must be .* got \(-0\.5, 1\.0\)"),
        (lambda: SignalAugment(noise=-0.1), r"noise must be .* got -0\.1"),
        (lambda: SignalAugment(mode="reflect"), r"mode must be .* got 'reflect'"),  # type: ignore[arg-type]
        (lambda: SignalAugment(shift=1)(torch.zeros(2, 1, 8, 8), None), r"expects float signals"),
    ],
)
def test_bad_arguments_raise_value_error(make, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        make()
