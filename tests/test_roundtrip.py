"""Test images drawn as everyday colour photos come back through preprocessing intact."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from fmnist import imaging
from fmnist.data import Dataset
from fmnist.ml.inference import predict_probabilities

SAMPLES = 400


def as_photo(pixels: np.ndarray, rng: np.random.Generator) -> bytes:
    """Undo Fashion-MNIST's look: a coloured garment on a light, wider background, as a JPEG."""
    side = int(rng.integers(220, 360))
    background = rng.integers(225, 256, size=3).astype(np.float32)
    ink = rng.integers(0, 110, size=3).astype(np.float32)  # the garment's colour
    amount = (
        np.asarray(
            Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32
        )[..., None]
        / 255.0
    )
    garment = background - amount * (background - ink)
    height, width = side + int(rng.integers(20, 120)), side + int(rng.integers(60, 260))
    canvas = np.empty((height, width, 3), dtype=np.float32)
    canvas[:] = background
    top, left = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
    canvas[top : top + side, left : left + side] = garment
    canvas += rng.normal(0, 2.0, canvas.shape)  # sensor noise
    buffer = io.BytesIO()
    Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def test_photos_of_test_images_keep_nearly_all_their_accuracy(
    dataset: Dataset, shipped_model
) -> None:
    rng = np.random.default_rng(7)
    indices = rng.choice(len(dataset.y_test), size=SAMPLES, replace=False)
    prepared = [
        imaging.prepare_upload(f"{i}.jpg", as_photo(dataset.x_test[i], rng)) for i in indices
    ]
    assert all(p.error is None for p in prepared), [p.error for p in prepared if p.error]
    assert all(p.inverted for p in prepared)
    labels = dataset.y_test[indices]
    direct = predict_probabilities(shipped_model, dataset.x_test[indices]).argmax(1)
    photos = np.stack([p.pixels for p in prepared])
    through_photos = predict_probabilities(shipped_model, photos).argmax(1)
    direct_accuracy = (direct == labels).mean()
    photo_accuracy = (through_photos == labels).mean()
    print(f"direct {direct_accuracy:.3f}, through photos {photo_accuracy:.3f}")
    assert photo_accuracy >= direct_accuracy - 0.04
