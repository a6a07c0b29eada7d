"""Batch normalisation's test-time statistics are measured on training images, so that a
short run scores what it learned."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fmnist.data import Dataset
from fmnist.evaluation import to_model_input
from fmnist.ml import batch_norm, engine
from fmnist.schema import TrainConfig

from .test_engine import ListSink


def test_the_moving_statistics_become_the_average_of_the_batch_statistics(
    dataset: Dataset,
) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(6),
            keras.layers.BatchNormalization(momentum=0.99),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    images = dataset.x_train[:1024]
    dense, norm = model.layers[1], model.layers[2]
    before = np.asarray(norm.moving_mean).copy()
    batch_norm.recalibrate(model, images, batch_size=256)
    values = np.asarray(dense(model.layers[0](to_model_input(images)))).reshape(4, 256, 6)
    assert np.allclose(norm.moving_mean, values.mean(axis=(0, 1)), rtol=1e-4, atol=1e-5)
    assert np.allclose(norm.moving_variance, values.var(axis=1).mean(axis=0), rtol=1e-3)
    assert not np.allclose(before, norm.moving_mean)
    assert norm.momentum == 0.99  # put back for training


def test_a_fifteen_step_run_of_fast_scores_what_it_learned(dataset: Dataset) -> None:
    # 1,800 images in batches of 128 with the one-cycle recipe: the trailing averages
    # made every test picture a Pullover (10%) while the training batches were 60% right.
    config = TrainConfig(
        network="fast",
        epochs=1,
        limit=2000,
        batch_size=128,
        learning_rate=0.004,
        lr_schedule="one-cycle",
        label_smoothing=0.1,
    )
    sink = ListSink()
    _, record = engine.train(config, dataset, sink)
    assert record.test_accuracy > 0.5
    assert sink.epochs[0].val_accuracy == pytest.approx(record.test_accuracy, abs=0.1)


def test_networks_without_batch_norm_are_left_alone(dataset: Dataset) -> None:
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    weights = [w.copy() for w in model.get_weights()]
    assert not batch_norm.has_batch_norm(model)
    batch_norm.recalibrate(model, dataset.x_train[:64])
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=True))
