"""Inside the layers, on real models and pictures: the maps, the first layer, the separation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fmnist import imaging
from fmnist.data import Dataset
from fmnist.evaluation import to_model_input
from fmnist.ml import inside
from fmnist.ml.networks import build_model


@pytest.fixture(scope="module")
def mlp(dataset: Dataset) -> keras.Model:
    """The tutorial network after two epochs on all 60,000 real images."""
    keras.utils.set_random_seed(3)
    model = build_model("mlp")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(to_model_input(dataset.x_train), dataset.y_train, epochs=2, batch_size=128, verbose=0)
    return model


def test_the_shipped_cnn_shows_each_block_after_its_activation(
    shipped_model: keras.Model, dataset: Dataset
) -> None:
    # fast-wide's blocks are conv, pool, batch norm, ReLU: each is shown once, pooled and
    # after its ReLU, not as the convolution's raw sums.
    layers = inside.feature_maps(shipped_model, dataset.x_test[0])
    assert [layer.maps.shape[:2] for layer in layers] == [(14, 14), (7, 7), (3, 3)]
    assert all(layer.maps.shape[2] == min(layer.total, inside.MAPS_SHOWN) for layer in layers)
    assert [layer.total for layer in layers] == [48, 96, 192]
    # Taken after the activation: no negative values, and the boot lights some maps up.
    assert all(layer.maps.min() >= 0 and layer.maps.max() > 0 for layer in layers)
    first = inside.first_layer(shipped_model)
    assert first is not None and first.kind == "filters" and first.weights.shape == (3, 3, 48)
    assert first.class_templates is None  # a convolutional network has none


def test_a_classic_cnn_shows_its_convolutions_and_pools_and_cnn_bn_after_batch_norm() -> None:
    shown = [type(layer).__name__ for layer in inside.map_layers(build_model("cnn"))]
    assert shown == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D"]
    shown = [type(layer).__name__ for layer in inside.map_layers(build_model("cnn-bn"))]
    assert shown == ["Activation", "MaxPooling2D", "Activation", "Activation", "MaxPooling2D"]


def test_classes_stand_further_apart_layer_after_layer(
    shipped_model: keras.Model, dataset: Dataset
) -> None:
    stages = inside.separation(shipped_model, dataset.x_test[:2000], dataset.y_test[:2000])
    assert stages[0].name == "pixels" and 0.6 < stages[0].accuracy < 0.75  # about 68%
    assert stages[-1].accuracy > 0.9  # the output layer: about the network's accuracy
    assert stages[-2].accuracy > stages[0].accuracy + 0.15  # the last hidden layer


def test_a_dense_networks_class_templates_look_like_its_classes(
    mlp: keras.Model, dataset: Dataset
) -> None:
    first = inside.first_layer(mlp)
    assert first is not None and first.kind == "templates"
    assert first.weights.shape == (28, 28, 128) and first.class_templates.shape == (28, 28, 10)
    # Each class's template leans towards where that class is brighter than the others.
    overall = dataset.x_train.mean(axis=0)
    agreement = []
    for label in range(10):
        lean = dataset.x_train[dataset.y_train == label].mean(axis=0) - overall
        template = first.class_templates[:, :, label]
        agreement.append(np.corrcoef(lean.ravel(), template.ravel())[0, 1])
    assert min(agreement) > 0.2 and np.mean(agreement) > 0.4, agreement
    assert inside.feature_maps(mlp, dataset.x_test[0]) == []  # no maps to show


def test_a_mosaic_puts_each_map_in_its_tile_on_its_own_scale() -> None:
    maps = np.zeros((2, 2, 3), dtype=np.float32)
    maps[0, 0, 0], maps[1, 1, 1], maps[:, :, 2] = 1.0, 50.0, -1.0
    picture = imaging.mosaic(maps, columns=2, scale=3, gap=1)
    assert picture.shape == (2 * 6 + 1, 2 * 6 + 1, 3)
    hottest = imaging.heat_colours(np.array(1.0))
    assert np.array_equal(picture[0, 0], hottest) and np.array_equal(picture[5, 12], hottest)
    assert np.array_equal(picture[6, 0], [255, 255, 255])  # the gap
    weights = imaging.mosaic(np.array([[[-2.0, 1.0]]]), columns=2, scale=1, signed=True, gap=0)
    assert weights[0, 0, 2] > weights[0, 0, 0] and weights[0, 1, 0] > weights[0, 1, 2]


def test_learned_features_are_the_last_hidden_layer_in_any_chunks(
    shipped_model: keras.Model, dataset: Dataset
) -> None:
    images = dataset.x_test[:700]
    whole = inside.features(shipped_model, images, chunk=700)
    assert whole.shape == (700, shipped_model.layers[-1].input.shape[-1]) == (700, 128)
    np.testing.assert_allclose(inside.features(shipped_model, images, chunk=300), whole, atol=1e-4)
    # The last layer applied to them gives the network's answers.
    last = shipped_model.layers[-1]
    answers = np.asarray(last(whole)).argmax(axis=1)
    assert (answers == dataset.y_test[:700]).mean() > 0.9


def test_dense_layers_that_do_not_chain_give_no_class_templates() -> None:
    # An imported graph whose two dense branches meet in a concatenation: the weight
    # matrices cannot be multiplied in a row, so there is no class template, not an error.
    inputs = keras.Input((28, 28, 1))
    flat = keras.layers.Flatten()(inputs)
    joined = keras.layers.Concatenate()([keras.layers.Dense(8)(flat), keras.layers.Dense(4)(flat)])
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(joined))
    first = inside.first_layer(model)
    assert first is not None and first.weights.shape == (28, 28, 8)
    assert first.class_templates is None
