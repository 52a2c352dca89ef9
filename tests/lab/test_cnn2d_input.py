"""cnn2d on data that is not an image says how to get images for each kind of data."""

from __future__ import annotations

import pytest

from regopt.lab.config import Cnn2dConfig
from regopt.lab.models import ModelError, build_model


@pytest.mark.parametrize("shape", [(64,), (40, 1)])
def test_cnn2d_on_flat_input_says_how_to_get_images(shape: tuple[int, ...]) -> None:
    with pytest.raises(ModelError) as info:
        build_model(Cnn2dConfig(name="cnn2d"), shape, 10)
    message = str(info.value)
    assert "\n" not in message and f"got {shape}" in message
    assert "for digits set data.image = true" in message  # the one dataset with that key
    assert "(n, channels, height, width)" in message and ".npz" in message  # your own data
    assert "cnn1d" in message  # 1-D signals such as mnist1d
