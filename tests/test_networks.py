from __future__ import annotations

import keras
import numpy as np
import pytest

from fmnist.ml.networks import build_model, layer_table
from fmnist.networks import NETWORKS, get_network, layer_tables


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("mlp", 101_770),
        ("mlp-2", 109_386),
        ("cnn", 862_410),
        ("cnn-bn", 459_434),
        ("fast", 242_602),
    ],
)
def test_networks_have_their_parameter_counts(name: str, parameters: int) -> None:
    assert build_model(name).count_params() == parameters
    # The server shows the count from the stored layer table, without Keras.
    assert NETWORKS[name].parameters == parameters


def test_stored_layer_tables_match_what_keras_builds() -> None:
    # network_layers.json is what the Train page shows; it must not drift from the code.
    for name in NETWORKS:
        keras.backend.clear_session()
        assert layer_tables()[name] == layer_table(build_model(name)), (
            f"{name}: run `python -m fmnist.ml.networks` to regenerate network_layers.json"
        )
    cnn = {row["layer"]: row for row in layer_tables()["cnn"]}
    assert cnn["conv2d"]["output shape"] == "(batch, 26, 26, 64)"


def test_every_network_maps_pictures_to_a_softmax() -> None:
    images = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    for name in NETWORKS:
        outputs = np.asarray(build_model(name)(images, training=False))
        assert outputs.shape == (3, 10)
        np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-5)


def test_unknown_network_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown network 'resnet'; choose one of mlp"):
        get_network("resnet")
    with pytest.raises(ValueError, match="unknown network"):
        build_model("resnet")
