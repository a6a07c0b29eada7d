"""Weight health: the statistics say what the weights and gradients are, dead units included."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fmnist import runs
from fmnist.data import Dataset
from fmnist.ml import engine, health
from fmnist.schema import TrainConfig

from .test_engine import ListSink


def test_statistics_of_known_values() -> None:
    values = np.array([-2.0, -1.0, 0.0, 0.0, 1.0, 2.0])
    stats = health.statistics(values, near_zero=0.5)
    assert stats["mean"] == 0 and stats["std"] == pytest.approx(np.sqrt(10 / 6))
    assert stats["near_zero"] == pytest.approx(2 / 6) and stats["reach"] == 2.0
    histogram = stats["histogram"]
    assert len(histogram) == health.BINS and sum(histogram) == 6
    assert histogram[health.BINS // 2] == 2  # the zeros sit in the middle bin
    assert histogram[0] == 1 and histogram[-1] == 1  # -2 and 2 at the ends


def test_a_dead_relu_unit_has_zero_gradients(dataset: Dataset) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    hidden = model.layers[1]
    kernel, bias = hidden.get_weights()
    bias[:2] = -1000.0  # two units that never fire: their weights get no gradient at all
    hidden.set_weights([kernel, bias])
    report = health.layer_health(model, dataset.x_train[:64], dataset.y_train[:64])
    assert [entry["layer"] for entry in report] == [hidden.name, model.layers[2].name]
    dead_share = report[0]["gradients"]["near_zero"]
    assert dead_share >= 2 / 8  # at least the two dead units' 784 weights each
    assert report[0]["weights"]["std"] == pytest.approx(float(kernel.std()), rel=1e-5)
    assert report[1]["gradients"]["std"] > 0


def test_mixed_precision_gradients_read_as_in_float32(dataset: Dataset) -> None:
    # In float16, gradients below 6e-8 flush to zero and would pass for dead units: the
    # loss is scaled up before the backward pass, so the statistics match float32's.
    def model() -> keras.Model:
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                keras.layers.Flatten(),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(10, activation="softmax", dtype="float32"),
            ]
        )

    keras.utils.set_random_seed(2)
    plain = model()
    kernel, bias = plain.layers[2].get_weights()
    plain.layers[2].set_weights([kernel * 1e-4, bias])  # small weights, small gradients below
    images, labels = dataset.x_train[:256], dataset.y_train[:256]
    exact = health.layer_health(plain, images, labels)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = model()
        half.set_weights(plain.get_weights())
        report = health.layer_health(half, images, labels)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for ours, theirs in zip(report, exact, strict=True):
        assert ours["gradients"]["std"] == pytest.approx(theirs["gradients"]["std"], rel=0.05)
        assert ours["gradients"]["near_zero"] == pytest.approx(
            theirs["gradients"]["near_zero"], abs=0.02
        )


def test_every_epoch_keeps_its_layer_health_in_the_run(dataset: Dataset, models_dir) -> None:
    sink = ListSink()
    model, record = engine.train(TrainConfig(network="mlp", epochs=2, limit=2000), dataset, sink)
    kernels = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert len(kernels) == 2
    for metrics in sink.epochs:
        assert [entry["layer"] for entry in metrics.layer_health] == kernels
    assert record.layer_health == [m.layer_health for m in sink.epochs]
    runs.save_run(model, record.to_dict(), models_dir)
    assert runs.read_record(record.run_id, models_dir)["layer_health"] == record.layer_health
