"""Statistics of the dataset shown on the Explore page: pure numpy, no TensorFlow."""

from __future__ import annotations

import numpy as np

from fmnist.data import NUM_CLASSES


def class_mean_std(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class mean and standard deviation images, each (10, 28, 28) float32."""
    means = np.empty((NUM_CLASSES, *images.shape[1:]), dtype=np.float32)
    stds = np.empty_like(means)
    for label in range(NUM_CLASSES):
        selected = images[labels == label].astype(np.float32)
        means[label] = selected.mean(axis=0)
        stds[label] = selected.std(axis=0)
    return means, stds


def intensity_histograms(
    images: np.ndarray, labels: np.ndarray, skip_background: bool = True
) -> np.ndarray:
    """(10, 256) share of pixels at each intensity, per class.

    Background pixels (value 0) are about half of every image; leaving them out
    shows the garments themselves.
    """
    histograms = np.zeros((NUM_CLASSES, 256), dtype=np.float64)
    for label in range(NUM_CLASSES):
        counts = np.bincount(images[labels == label].ravel(), minlength=256).astype(np.float64)
        if skip_background:
            counts[0] = 0
        histograms[label] = counts / max(counts.sum(), 1)
    return histograms


def pca_2d(
    images: np.ndarray, sample_size: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project a random sample onto its first two principal components.

    Returns (indices of the sampled images, (n, 2) coordinates, the share of
    variance the two components explain).
    """
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(len(images), size=min(sample_size, len(images)), replace=False))
    flat = images[indices].reshape(len(indices), -1).astype(np.float32) / 255.0
    centred = flat - flat.mean(axis=0)
    # Eigenvectors of the 784x784 covariance are the components: cheaper than
    # an SVD of the n x 784 data when n is in the thousands.
    variance, components = np.linalg.eigh(centred.T @ centred)
    order = np.argsort(variance)[::-1][:2]
    coordinates = centred @ components[:, order]
    explained = variance[order] / variance.sum()
    return indices, coordinates, explained


def sample_indices(
    labels: np.ndarray, classes: list[int] | None, count: int, seed: int
) -> np.ndarray:
    """``count`` random indices of images whose label is in ``classes`` (all when None)."""
    pool = np.flatnonzero(np.isin(labels, classes)) if classes else np.arange(len(labels))
    rng = np.random.default_rng(seed)
    return rng.choice(pool, size=min(count, len(pool)), replace=False)
