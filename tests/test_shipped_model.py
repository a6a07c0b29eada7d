"""The run shipped in models/ so that Predict works on a fresh install."""

from __future__ import annotations

import pytest

from fmnist.data import Dataset
from fmnist.ml.inference import predict_mirrored, predict_probabilities
from fmnist.networks import NETWORKS
from fmnist.schema import TrainConfig


def test_shipped_run_is_the_best_presets_recipe_and_records_how_it_was_made(
    shipped_run: dict,
) -> None:
    # The most accurate preset, trained with its recipe by the command in run.json.
    assert shipped_run["network"] == "fast-wide" and shipped_run["status"] == "done"
    recipe = TrainConfig(network="fast-wide", **NETWORKS["fast-wide"].recipe).to_dict()
    for key in (*NETWORKS["fast-wide"].recipe, "validation_split", "seed", "optimizer"):
        expected = list(recipe[key]) if isinstance(recipe[key], tuple) else recipe[key]
        assert shipped_run["config"][key] == expected, key
    assert shipped_run["command"].startswith("python -m fmnist train --network fast-wide")
    assert shipped_run["epochs_completed"] == recipe["epochs"]
    # The 94.5% target, met without the mirror at test time (and with it).
    assert shipped_run["test_accuracy"] >= 0.945
    assert shipped_run["test_accuracy_mirrored"] >= 0.945
    assert shipped_run["config"]["validation_split"] == 0 and shipped_run["train_images"] == 60_000


def test_shipped_model_scores_its_recorded_accuracies(
    shipped_run: dict, shipped_model, dataset: Dataset
) -> None:
    # Trained on mirrored pictures, it was also scored with test-time augmentation.
    for predict, key in (
        (predict_probabilities, "test_accuracy"),
        (predict_mirrored, "test_accuracy_mirrored"),
    ):
        probabilities = predict(shipped_model, dataset.x_test)
        accuracy = (probabilities.argmax(axis=1) == dataset.y_test).mean()
        assert accuracy == pytest.approx(shipped_run[key], abs=0.005), key
