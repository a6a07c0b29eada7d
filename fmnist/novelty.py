"""Does a 28x28 picture look like Fashion-MNIST at all? A numpy-only signal, apart from the model.

A network always answers with one of its ten classes, often at 95-99% for a
picture unlike anything it learned from (a line drawing of a shoe came out as
"Bag" at 99%). Its confidence cannot tell; the pictures themselves can.

Fashion-MNIST's images lie close to a low-dimensional space: 32 principal
components, computed once from the training images, rebuild a real garment to
within about a quarter of its brightness. What they cannot rebuild, the
*unlikeness*, is the share of the picture left over:

    unlikeness = |x - rebuilt(x)| / |x|      (x scaled to [0, 1])

Measured (``bench``-style, in the project's tests and README): test images
drawn as colour photos and brought back through ``fmnist.imaging`` score
0.06-0.64 (99th percentile 0.59); outline drawings of shoes, shirts, bags,
dresses and trousers 0.67-0.94, a smiley face 0.78, text 0.71. Blank and
noise-only pictures are refused earlier, by ``imaging`` (nothing stands out).
``THRESHOLD`` sits between the two groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COMPONENTS = 32
# Training images used for the components: 10,000 give the same components as
# 60,000 to within the measurements' noise, in a fifth of the time (~0.3 s).
SAMPLE = 10_000
# Above this a picture is called unlike Fashion-MNIST (see the module's docstring).
THRESHOLD = 0.65


@dataclass(frozen=True)
class ShapeSpace:
    """The mean training image and its leading principal directions, both on the 0-1 scale."""

    mean: np.ndarray  # (784,) float32
    basis: np.ndarray  # (784, COMPONENTS) float32, orthonormal columns


def fit(
    images: np.ndarray, components: int = COMPONENTS, sample: int = SAMPLE, seed: int = 0
) -> ShapeSpace:
    """The principal directions of (a fixed random sample of) uint8 (N, 28, 28) images."""
    images = np.asarray(images)
    if len(images) > sample:
        images = images[np.random.default_rng(seed).choice(len(images), sample, replace=False)]
    flat = images.reshape(len(images), -1).astype(np.float32) / 255.0
    mean = flat.mean(axis=0)
    centred = flat - mean
    variances, directions = np.linalg.eigh(centred.T @ centred)
    leading = directions[:, np.argsort(variances)[::-1][:components]]
    return ShapeSpace(mean=mean, basis=np.ascontiguousarray(leading, dtype=np.float32))


def unlikeness(space: ShapeSpace, pixels: np.ndarray) -> np.ndarray:
    """uint8 (28, 28) or (N, 28, 28) pictures -> (N,) share of each the space cannot rebuild."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[None]
    flat = pixels.reshape(len(pixels), -1).astype(np.float32) / 255.0
    centred = flat - space.mean
    left_over = centred - (centred @ space.basis) @ space.basis.T
    size = np.linalg.norm(flat, axis=1)
    # An all-black picture has nothing to rebuild; imaging never produces one.
    return np.linalg.norm(left_over, axis=1) / np.maximum(size, 1e-6)


def is_unusual(score: float) -> bool:
    """Whether an ``unlikeness`` score says the picture is unlike Fashion-MNIST."""
    return score > THRESHOLD
