"""Photos of every common kind become the same kind of input: 8-bit RGB, 224×224, normalised."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.evaluate.imagenet import load_image, preprocess

GRADIENT = np.linspace(0, 255, 48 * 64).reshape(48, 64).round().astype(np.uint8)


def input_of(tmp_path, image: Image.Image, name: str = "photo.png") -> np.ndarray:
    path = tmp_path / name
    image.save(path)
    x = preprocess(load_image(str(path)))
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32 and np.isfinite(x).all()
    return x


def test_greyscale_rgba_and_palette_photos_match_their_rgb(tmp_path):
    rgb = input_of(tmp_path, Image.fromarray(GRADIENT).convert("RGB"), "rgb.png")
    assert np.array_equal(input_of(tmp_path, Image.fromarray(GRADIENT), "grey.png"), rgb)
    rgba = Image.fromarray(GRADIENT).convert("RGBA")
    assert np.array_equal(input_of(tmp_path, rgba, "rgba.png"), rgb)
    # An adaptive palette holds all 256 grey levels, so nothing is lost.
    palette = Image.fromarray(GRADIENT).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
    assert np.array_equal(input_of(tmp_path, palette, "palette.png"), rgb)


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    sixteen = Image.fromarray(GRADIENT.astype(np.uint16) * 257)
    assert sixteen.mode.startswith("I")
    eight = input_of(tmp_path, Image.fromarray(GRADIENT), "eight.png")
    assert np.array_equal(input_of(tmp_path, sixteen, "sixteen.png"), eight)


def test_a_one_pixel_photo_is_a_whole_input(tmp_path):
    x = input_of(tmp_path, Image.new("RGB", (1, 1), (200, 100, 50)))
    assert np.allclose(x[0, :, 0, 0], x[0, :, 223, 223])


def test_a_floating_point_image_is_refused(tmp_path):
    path = tmp_path / "float.tiff"
    Image.fromarray(np.ones((8, 8), np.float32)).save(path)
    with pytest.raises(UserError, match="floating-point"):
        load_image(str(path))
