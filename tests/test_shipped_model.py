"""The run shipped in models/ so that Predict works on a fresh install."""

from __future__ import annotations

import pytest

from fmnist.data import Dataset
from fmnist.ml.inference import predict_probabilities


def test_shipped_run_records_how_it_was_made(shipped_run: dict) -> None:
    assert shipped_run["command"].startswith("python -m fmnist train --network cnn-bn")
    assert shipped_run["status"] == "done"
    assert shipped_run["test_accuracy"] >= 0.93


def test_shipped_model_scores_its_recorded_accuracy(
    shipped_run: dict, shipped_model, dataset: Dataset
) -> None:
    probabilities = predict_probabilities(shipped_model, dataset.x_test)
    accuracy = (probabilities.argmax(axis=1) == dataset.y_test).mean()
    assert accuracy == pytest.approx(shipped_run["test_accuracy"], abs=0.005)
