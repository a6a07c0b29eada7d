"""Statistics of the dataset shown on the Explore page: pure numpy, no TensorFlow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fmnist.data import NUM_CLASSES

# The PCA map shows a random sample of the training images; smaller maps show
# the first images of the same sample, so points stay put when the size changes.
PCA_SIZES = (1000, 2000, 3000, 5000)


def no_pause() -> None:
    pass


# Called between steps of a few tens of milliseconds: a computation in a
# background thread can wait there while the server draws a page.
Pause = Callable[[], None]


def class_mean_std(
    images: np.ndarray, labels: np.ndarray, pause: Pause = no_pause
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class mean and standard deviation images, each (10, 28, 28) float32."""
    means = np.empty((NUM_CLASSES, *images.shape[1:]), dtype=np.float32)
    stds = np.empty_like(means)
    for label in range(NUM_CLASSES):
        pause()
        selected = images[labels == label].astype(np.float32)
        means[label] = selected.mean(axis=0)
        stds[label] = selected.std(axis=0)
    return means, stds


def pixel_counts(images: np.ndarray, labels: np.ndarray, pause: Pause = no_pause) -> np.ndarray:
    """(10, 256) number of pixels at each intensity, per class."""
    counts = []
    for label in range(NUM_CLASSES):
        pause()
        counts.append(np.bincount(images[labels == label].ravel(), minlength=256))
    return np.stack(counts)


def histogram_shares(
    counts: np.ndarray, skip_background: bool = True, bin_width: int = 1
) -> np.ndarray:
    """Counts from ``pixel_counts`` as each class's share of pixels in each bin of intensities.

    Background pixels (value 0) are about half of every image; leaving them out
    shows the garments themselves. Bins of 8 values (32 bins) smooth the
    single-value spikes at 1 and 255 so that the shapes can be compared.
    """
    counts = counts.astype(np.float64)
    if skip_background:
        counts[:, 0] = 0
    counts = counts.reshape(len(counts), -1, bin_width).sum(axis=2)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def intensity_histograms(
    images: np.ndarray, labels: np.ndarray, skip_background: bool = True, bin_width: int = 1
) -> np.ndarray:
    """(10, 256 / bin_width) share of pixels in each bin of intensities, per class."""
    return histogram_shares(pixel_counts(images, labels), skip_background, bin_width)


def top_components(
    centred: np.ndarray, count: int = 2, iterations: int = 10, pause: Pause = no_pause
) -> np.ndarray:
    """The ``count`` principal directions of centred (n, d) data, as (d, count) columns.

    Block power iteration on a few more directions than needed: for
    Fashion-MNIST the two leading directions (about 29% and 18% of the
    variance) stand well clear of the third (6%), so ten rounds agree with a
    full eigendecomposition to float precision at a seventh of its time.
    """
    rng = np.random.default_rng(0)
    block = np.linalg.qr(rng.standard_normal((centred.shape[1], count + 4)))[0]
    block = block.astype(centred.dtype)
    for _ in range(iterations):
        pause()
        block = np.linalg.qr(centred.T @ (centred @ block))[0]
    projected = centred @ block
    variance, rotation = np.linalg.eigh(projected.T @ projected)
    components = block @ rotation[:, np.argsort(variance)[::-1][:count]]
    # A direction's sign is arbitrary: fix it so the map never flips.
    signs = np.sign(components.sum(axis=0))
    return components * np.where(signs == 0, 1, signs)


def pca_2d(
    images: np.ndarray, sample_size: int, seed: int = 0, pause: Pause = no_pause
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project a random sample onto its first two principal components.

    Returns (indices of the sampled images in random order, (n, 2) coordinates,
    the share of the sample's variance the two components explain). The first
    k indices for one seed are the same whatever the sample size.
    """
    rng = np.random.default_rng(seed)
    indices = rng.permutation(len(images))[: min(sample_size, len(images))]
    flat = images[indices].reshape(len(indices), -1).astype(np.float32) / 255.0
    centred = flat - flat.mean(axis=0)
    components = top_components(centred, pause=pause)
    coordinates = centred @ components
    explained = (coordinates**2).sum(axis=0) / (centred**2).sum()
    return indices, coordinates, explained


@dataclass(frozen=True)
class Projection:
    """Points of any dimension on their first two principal components."""

    coordinates: np.ndarray  # (n, 2)
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (d, 2)
    explained: np.ndarray  # (2,) share of the variance

    def place(self, values: np.ndarray) -> np.ndarray:
        """Other points (m, d) on the same map."""
        return (values - self.mean) @ self.components


def project_2d(values: np.ndarray) -> Projection:
    """(n, d) values -> their PCA map, exact (an SVD: n and d of a few thousand at most)."""
    values = values.reshape(len(values), -1).astype(np.float64)
    mean = values.mean(axis=0)
    centred = values - mean
    _, singular, directions = np.linalg.svd(centred, full_matrices=False)
    components = directions[:2].T
    components = components * np.where(components.sum(axis=0) < 0, -1, 1)  # a fixed side up
    explained = singular[:2] ** 2 / max(float((singular**2).sum()), 1e-12)
    if components.shape[1] < 2:  # one feature (or all points alike): a flat second axis
        missing = 2 - components.shape[1]
        components = np.pad(components, ((0, 0), (0, missing)))
        explained = np.pad(explained, (0, missing))
    return Projection(centred @ components, mean, components, explained)


def nearest_centre_accuracy(coordinates: np.ndarray, labels: np.ndarray) -> float:
    """How often a point's nearest class centre on a map is its own class's."""
    centres = np.stack([coordinates[labels == c].mean(axis=0) for c in np.unique(labels)])
    distances = ((coordinates[:, None, :] - centres[None]) ** 2).sum(axis=2)
    return float((np.unique(labels)[distances.argmin(axis=1)] == labels).mean())


def nearest(features: np.ndarray, position: int, count: int) -> np.ndarray:
    """The ``count`` rows of ``features`` nearest to row ``position`` (not itself)."""
    distances = ((features - features[position]) ** 2).sum(axis=1)
    distances[position] = np.inf
    return np.argsort(distances, kind="stable")[:count]


@dataclass(frozen=True)
class ExploreStats:
    """Everything the Explore page derives from the training set, computed once."""

    means: np.ndarray  # (10, 28, 28) float32
    stds: np.ndarray  # (10, 28, 28) float32
    counts: np.ndarray  # (10, 256) pixels at each intensity
    pca_indices: np.ndarray  # (max(PCA_SIZES),) random order
    pca_coordinates: np.ndarray  # (max(PCA_SIZES), 2)
    pca_explained: np.ndarray  # (2,)

    def histograms(self, skip_background: bool, bin_width: int = 8) -> np.ndarray:
        return histogram_shares(self.counts, skip_background, bin_width)

    def pca_sample(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The indices and map coordinates of the first ``size`` images of the sample."""
        return self.pca_indices[:size], self.pca_coordinates[:size]


def explore_stats(
    images: np.ndarray, labels: np.ndarray, seed: int = 0, pause: Pause = no_pause
) -> ExploreStats:
    """About a second of numpy, in steps of a few tens of milliseconds with ``pause`` between."""
    means, stds = class_mean_std(images, labels, pause)
    counts = pixel_counts(images, labels, pause)
    indices, coordinates, explained = pca_2d(images, max(PCA_SIZES), seed, pause)
    return ExploreStats(means, stds, counts, indices, coordinates, explained)


def sample_indices(
    labels: np.ndarray, classes: list[int] | None, count: int, seed: int
) -> np.ndarray:
    """``count`` random indices of images whose label is in ``classes`` (all when None)."""
    pool = np.flatnonzero(np.isin(labels, classes)) if classes else np.arange(len(labels))
    rng = np.random.default_rng(seed)
    return rng.choice(pool, size=min(count, len(pool)), replace=False)


def images_per_row(count: int) -> int:
    """The sample grid's columns: nine images make one row, more make rows of eight."""
    return count if count <= 9 else 8


def clamp_index(value: float | None, count: int) -> tuple[int, str | None]:
    """A typed image index brought into 0..count-1, and one line saying so when it was not."""
    if value is None:
        return 0, None
    index = min(max(int(value), 0), count - 1)
    if index == value:
        return index, None
    return index, (
        f"There is no training image #{int(value):,}: they are numbered 0–{count - 1:,}. "
        f"Showing #{index:,}, the {'last' if index else 'first'} one."
    )


def describe_image(image: np.ndarray) -> str:
    """One line about an image's values, for the pixel inspector."""
    return (
        f"Values from **{image.min()}** to **{image.max()}**, mean {image.mean():.1f}; "
        f"{(image == 0).mean():.0%} of the pixels are background (0). "
        "Networks see them divided by 255."
    )
