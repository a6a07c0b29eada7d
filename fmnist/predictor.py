"""What the Predict page and the command line make of probabilities: numpy only.

An upload goes through a model in one call (the page passes the inference
client's ``predict``, the command line ``fmnist.ml.inference.predict_probabilities``
of a loaded model), each softmax is put into words, and the test-set views pick
their pictures here rather than in the page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fmnist import evaluation, novelty
from fmnist.data import CLASS_NAMES, NUM_CLASSES
from fmnist.imaging import PreparedImage

LOW_CONFIDENCE = 0.5


def describe(probabilities: np.ndarray) -> dict[str, Any]:
    """One picture's softmax -> label, class name, confidence, top 3 and the full list."""
    order = np.argsort(probabilities)[::-1]
    label = int(order[0])
    return {
        "label": label,
        "class_name": CLASS_NAMES[label],
        "confidence": float(probabilities[label]),
        "top3": [(CLASS_NAMES[i], float(probabilities[i])) for i in order[:3]],
        "probabilities": [float(p) for p in probabilities],
    }


def predict_prepared(
    prepared: list[PreparedImage],
    predict: Callable[[np.ndarray], np.ndarray],
    unlikeness: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """Every usable picture through ``predict`` in one call; the others keep their reason.

    ``predict`` maps uint8 (N, 28, 28) pictures to their (N, 10) softmax.
    ``unlikeness`` (``fmnist.novelty``) maps them to how unlike Fashion-MNIST
    each one is; with it, each result also says whether it is ``unusual``.
    """
    usable = [p for p in prepared if p.pixels is not None]
    pixels = np.stack([p.pixels for p in usable]) if usable else np.empty((0, 28, 28), np.uint8)
    probabilities = predict(pixels) if usable else np.empty((0, NUM_CLASSES))
    scores = unlikeness(pixels) if usable and unlikeness is not None else None
    by_file = iter(range(len(usable)))
    results: list[dict[str, Any]] = []
    for item in prepared:
        if item.pixels is None:
            results.append({"file": item.file, "error": item.error})
            continue
        index = next(by_file)
        result = {"file": item.file, **describe(probabilities[index])}
        if scores is not None:
            result["unlikeness"] = float(scores[index])
            result["unusual"] = novelty.is_unusual(float(scores[index]))
        results.append(result)
    return results


def short_softmax(probabilities: np.ndarray, count: int = 2) -> str:
    """'Shirt 62% · T-shirt/top 30%': the leading classes of one softmax, for a caption."""
    order = np.argsort(probabilities)[::-1][:count]
    return " · ".join(f"{CLASS_NAMES[i]} {probabilities[i]:.0%}" for i in order)


def confusion_cell(point: dict[str, Any]) -> tuple[int, int]:
    """A clicked cell of ``charts.confusion_heatmap`` -> (true class, predicted class)."""
    return CLASS_NAMES.index(point["y"]), CLASS_NAMES.index(point["x"])


def cell_images(
    labels: np.ndarray, predictions: np.ndarray, true: int, predicted: int
) -> np.ndarray:
    """Indices of the pictures of class ``true`` that were taken for ``predicted``."""
    return np.flatnonzero((np.asarray(labels) == true) & (np.asarray(predictions) == predicted))


def gallery_sample(
    labels: np.ndarray, predictions: np.ndarray, only_mistakes: bool, seed: int, size: int = 24
) -> np.ndarray:
    """A reproducible random choice of pictures, all of them or only the mistakes."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    pool = np.flatnonzero(predictions != labels) if only_mistakes else np.arange(len(labels))
    rng = np.random.default_rng(seed)
    return rng.choice(pool, size=min(size, len(pool)), replace=False)


@dataclass(frozen=True)
class OwnSetScores:
    """A user's own labelled pictures, scored on the classes that occur in them."""

    classes: list[int]  # so a handful of pictures is not lost in a 10x10 grid
    matrix: np.ndarray  # rows and columns in the order of ``classes``
    right: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else 0.0

    @property
    def names(self) -> list[str]:
        return [CLASS_NAMES[c] for c in self.classes]


def score_own_set(truths: list[int], guesses: list[int]) -> OwnSetScores:
    matrix = evaluation.confusion_matrix(np.array(truths, int), np.array(guesses, int))
    classes = sorted(set(truths) | set(guesses))
    return OwnSetScores(
        classes, matrix[np.ix_(classes, classes)], int(np.trace(matrix)), len(truths)
    )
