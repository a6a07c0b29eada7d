"""The unlike-Fashion-MNIST signal: measured on test images drawn as photos and on drawings."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fmnist import imaging, novelty
from fmnist.data import Dataset

from .test_roundtrip import as_photo

# Outlines of everyday things, as a student might draw them (400x300 canvas).
OUTLINES = {
    "shoe": [(60, 80), (140, 80), (150, 150), (300, 190), (340, 230), (330, 250), (60, 250)],
    "sneaker": [(40, 160), (120, 120), (200, 140), (330, 180), (360, 230), (40, 230)],
    "shirt": [(150, 40), (250, 40), (330, 90), (300, 130), (270, 110), (270, 280), (130, 280),
              (130, 110), (100, 130), (70, 90)],
    "bag": [(80, 120), (320, 120), (340, 280), (60, 280)],
    "dress": [(170, 30), (230, 30), (240, 120), (320, 280), (80, 280), (160, 120)],
    "trousers": [(130, 30), (270, 30), (290, 280), (220, 280), (200, 110), (180, 280),
                 (110, 280)],
}  # fmt: skip


def drawing(points: list[tuple[float, float]], width: int) -> bytes:
    image = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(image).line([*points, points[0]], fill="black", width=width, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def drawings(rng: np.random.Generator) -> list[np.ndarray]:
    pictures = []
    for points in OUTLINES.values():
        for width in (2, 4, 8):
            jittered = [(x + rng.normal(0, 6), y + rng.normal(0, 6)) for x, y in points]
            prepared = imaging.prepare_upload("drawing.png", drawing(jittered, width))
            assert prepared.error is None, prepared.error
            pictures.append(prepared.pixels)
    return pictures


@pytest.fixture(scope="module")
def space(dataset: Dataset) -> novelty.ShapeSpace:
    return novelty.fit(dataset.x_train)


def test_the_space_is_a_fixed_orthonormal_basis(space: novelty.ShapeSpace, dataset) -> None:
    assert space.mean.shape == (784,) and space.basis.shape == (784, novelty.COMPONENTS)
    np.testing.assert_allclose(space.basis.T @ space.basis, np.eye(novelty.COMPONENTS), atol=1e-4)
    again = novelty.fit(dataset.x_train)  # the same sample: the same answers
    probe = dataset.x_test[:50]
    np.testing.assert_allclose(
        novelty.unlikeness(space, probe), novelty.unlikeness(again, probe), atol=1e-5
    )


def test_real_test_images_are_rarely_called_unusual(space: novelty.ShapeSpace, dataset) -> None:
    scores = novelty.unlikeness(space, dataset.x_test)
    assert scores.shape == (10_000,)
    assert (scores > novelty.THRESHOLD).mean() < 0.02  # measured: 1.3%
    assert novelty.unlikeness(space, dataset.x_test[0]).shape == (1,)


def test_photos_of_test_images_pass_and_line_drawings_do_not(
    space: novelty.ShapeSpace, dataset: Dataset
) -> None:
    rng = np.random.default_rng(5)
    indices = rng.choice(len(dataset.y_test), size=300, replace=False)
    photos = np.stack(
        [imaging.prepare_upload("p.jpg", as_photo(dataset.x_test[i], rng)).pixels for i in indices]
    )
    photo_scores = novelty.unlikeness(space, photos)
    drawing_scores = novelty.unlikeness(space, np.stack(drawings(rng)))
    print(
        f"photos: median {np.median(photo_scores):.3f}, 99th percentile "
        f"{np.percentile(photo_scores, 99):.3f}; drawings: min {drawing_scores.min():.3f}"
    )
    assert (photo_scores > novelty.THRESHOLD).mean() <= 0.01  # measured: 0.2% of 2,000
    assert np.all(drawing_scores > novelty.THRESHOLD)  # measured: 0.67 and up
    assert not any(novelty.is_unusual(s) for s in np.sort(photo_scores)[:-3])


def test_is_unusual_is_the_threshold() -> None:
    assert novelty.is_unusual(novelty.THRESHOLD + 0.01)
    assert not novelty.is_unusual(novelty.THRESHOLD - 0.01)
