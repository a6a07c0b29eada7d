from __future__ import annotations

import numpy as np
import pytest

from fmnist import evaluation


def test_confusion_matrix_rows_are_true_classes() -> None:
    matrix = evaluation.confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0]))
    assert matrix[0].tolist()[:3] == [1, 1, 0]
    assert matrix[2].tolist()[:3] == [1, 0, 2]
    assert matrix.sum() == 6 and evaluation.accuracy(matrix) == pytest.approx(4 / 6)


def test_per_class_metrics_by_hand() -> None:
    matrix = np.zeros((10, 10), dtype=int)
    matrix[0, 0], matrix[0, 6], matrix[6, 6], matrix[6, 0] = 8, 2, 6, 4
    metrics = evaluation.per_class_metrics(matrix)
    assert metrics[0]["precision"] == pytest.approx(8 / 12)
    assert metrics[0]["recall"] == pytest.approx(8 / 10)
    assert metrics[0]["f1"] == pytest.approx(2 * (8 / 12) * 0.8 / (8 / 12 + 0.8))
    assert metrics[6]["support"] == 10 and metrics[3]["f1"] == 0.0
    assert evaluation.most_confused_pairs(matrix) == [(6, 0, 4), (0, 6, 2)]


def test_row_normalisation() -> None:
    matrix = np.array([[3, 1], [0, 0]])
    np.testing.assert_allclose(evaluation.normalise_rows(matrix), [[0.75, 0.25], [0, 0]])


def test_logits_become_probabilities_and_softmax_passes_through() -> None:
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    probabilities = evaluation.as_probabilities(logits)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert probabilities[0].argmax() == 0 and probabilities[1, 0] == pytest.approx(1 / 3)
    softmax = np.array([[0.7, 0.2, 0.1]])
    np.testing.assert_array_equal(evaluation.as_probabilities(softmax), softmax)
