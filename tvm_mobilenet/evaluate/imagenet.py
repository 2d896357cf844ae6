"""ImageNet inputs and outputs: photos, torchvision's evaluation preprocessing, class names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.resources import IMAGENET_CLASSES

RESIZE = 256
CROP = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: Colour photos that scikit-image ships in its wheel (no download), as ``skimage:NAME``.
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee")
SAMPLE_PREFIX = "skimage:"


def load_image(spec: str) -> Image.Image:
    """An RGB image from a file path or ``skimage:NAME`` (a scikit-image sample photo)."""
    if spec.startswith(SAMPLE_PREFIX):
        name = spec.removeprefix(SAMPLE_PREFIX)
        if name not in SAMPLE_PHOTOS:
            raise UserError(f"unknown sample photo {spec!r}; choose one of "
                            f"{', '.join(SAMPLE_PREFIX + photo for photo in SAMPLE_PHOTOS)}")
        from skimage import data

        return Image.fromarray(getattr(data, name)())
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"image {path} does not exist")
    try:
        with Image.open(path) as image:
            return _as_rgb(image, path)
    except OSError as error:
        raise UserError(f"{path} is not a readable image ({error})") from error


def _as_rgb(image: Image.Image, path: Path) -> Image.Image:
    """8-bit RGB. 16-bit greyscale is scaled down (PIL's own conversion clips it to white);
    floating-point images have no defined range, so they are refused."""
    if image.mode == "F":
        raise UserError(f"{path} is a floating-point image; save it as 8 or 16 bits per channel")
    if image.mode.startswith("I"):
        levels = np.asarray(image, dtype=np.float64)
        if levels.min() < 0 or levels.max() > 65535:
            raise UserError(f"{path} has pixel values outside 16 bits")
        image = Image.fromarray(np.round(levels / 257).astype(np.uint8), mode="L")
    return image.convert("RGB")


def preprocess(image: Image.Image) -> np.ndarray:
    """torchvision's ImageNet evaluation transform: shorter side to 256 (bilinear), the central
    224×224, scaled to [0, 1] and normalised per channel; a (1, 3, 224, 224) float32 batch."""
    width, height = image.size
    if width <= height:
        size = (RESIZE, int(RESIZE * height / width))
    else:
        size = (int(RESIZE * width / height), RESIZE)
    resized = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    left, top = round((size[0] - CROP) / 2), round((size[1] - CROP) / 2)
    pixels = np.asarray(resized.crop((left, top, left + CROP, top + CROP)), np.float64) / 255.0
    normalised = (pixels - MEAN) / STD
    return normalised.transpose(2, 0, 1)[np.newaxis].astype(np.float32)


def class_names() -> list[str]:
    """The 1,000 class names in index order."""
    text = IMAGENET_CLASSES.read_text("utf-8")
    return [line for line in text.splitlines() if not line.startswith("#")]


def top_classes(logits: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The `k` most likely classes of one logit vector, with their softmax probabilities."""
    logits = logits.reshape(-1).astype(np.float64)
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    return [(int(index), float(probabilities[index]))
            for index in np.argsort(-probabilities)[:k]]
