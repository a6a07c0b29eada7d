"""Scores of a classifier: confusion matrix, per-class metrics, confused pairs.

Pure numpy so that they are cheap to test and to call from any page.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fmnist.data import CLASS_NAMES, NUM_CLASSES


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES
) -> np.ndarray:
    """Counts: row = true class, column = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.shape[0]} labels but {y_pred.shape[0]} predictions")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its total: the share of a true class given to each prediction."""
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)


def per_class_metrics(matrix: np.ndarray) -> list[dict[str, float | int | str]]:
    """Precision, recall, F1 and support of each class, from a confusion matrix."""
    matrix = np.asarray(matrix, dtype=float)
    true_positive = np.diag(matrix)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    precision = np.divide(
        true_positive, predicted, out=np.zeros_like(predicted), where=predicted > 0
    )
    recall = np.divide(true_positive, actual, out=np.zeros_like(actual), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return [
        {
            "class": CLASS_NAMES[i],
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(actual[i]),
        }
        for i in range(matrix.shape[0])
    ]


def accuracy(matrix: np.ndarray) -> float:
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else 0.0


def most_confused_pairs(matrix: np.ndarray, top: int = 5) -> list[tuple[int, int, int]]:
    """The off-diagonal cells with the most images, as (true, predicted, count)."""
    off_diagonal = np.array(matrix, copy=True)
    np.fill_diagonal(off_diagonal, 0)
    order = np.argsort(off_diagonal, axis=None)[::-1][:top]
    pairs = [(int(i // matrix.shape[1]), int(i % matrix.shape[1])) for i in order]
    return [(t, p, int(off_diagonal[t, p])) for t, p in pairs if off_diagonal[t, p] > 0]


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) pictures -> float32 (N, 28, 28, 1) in [0, 1], what every network takes."""
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    return (images.astype(np.float32) / 255.0)[..., None]


def mirror_images(images: np.ndarray) -> np.ndarray:
    """Pictures (..., 28, 28) with left and right swapped, as a contiguous array."""
    return np.ascontiguousarray(np.asarray(images)[..., ::-1])


def mirror_average(probabilities: np.ndarray, of_mirrors: np.ndarray) -> np.ndarray:
    """Test-time augmentation: each picture's softmax averaged with its mirror image's."""
    return (probabilities + of_mirrors) / 2


def as_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Softmax outputs pass through; logits (a model without softmax, as in seed 002) get one."""
    rows_are_distributions = np.all(outputs >= -1e-6) and np.allclose(
        outputs.sum(axis=1), 1.0, atol=1e-3
    )
    if rows_are_distributions:
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Scores:
    """A classifier's softmax on labelled pictures, scored."""

    predictions: np.ndarray
    confusion_matrix: np.ndarray
    accuracy: float
    log_loss: float


def score(probabilities: np.ndarray, labels: np.ndarray) -> Scores:
    """Probabilities -> argmax -> confusion matrix -> accuracy and log loss.

    The one way of scoring used by training, the command line and the Predict page.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    predictions = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predictions)
    picked = probabilities[np.arange(len(labels)), labels]
    log_loss = float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0)))) if len(labels) else 0.0
    return Scores(predictions, matrix, accuracy(matrix), log_loss)
