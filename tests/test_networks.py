from __future__ import annotations

import keras
import numpy as np
import pytest

from fmnist import network_spec
from fmnist.ml.networks import build_from_spec, build_model, layer_table
from fmnist.network_spec import SpecError, conv, dense
from fmnist.networks import NETWORKS, get_network


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("mlp", 101_770),
        ("mlp-2", 109_386),
        ("cnn", 862_410),
        ("cnn-bn", 459_434),
        ("fast", 242_602),
        ("fast-wide", 432_122),
    ],
)
def test_networks_have_their_parameter_counts(name: str, parameters: int) -> None:
    assert build_model(name).count_params() == parameters
    # The server shows the count worked out from the spec, without Keras.
    assert NETWORKS[name].parameters == parameters


def _pool(size: int = 2) -> dict:
    return {"type": "maxpool", "size": size}


# Specs the builder can make beyond the presets: strides, valid padding, average pooling,
# global average pooling, dense layers without a bias before batch normalisation.
OTHER_SPECS = [
    [conv(8, 5, "valid"), {"type": "avgpool", "size": 3}, {"type": "gap"}, dense(16, "tanh")],
    [
        {**conv(16, 3, "valid", "none"), "stride": 2},
        {"type": "dropout", "rate": 0.1},
        {"type": "batchnorm"},
        {"type": "activation", "activation": "gelu"},
        {**conv(4, 7), "stride": 3},
        {"type": "flatten"},
        dense(32, "none"),
        {"type": "batchnorm"},
    ],
    [{"type": "flatten"}, {"type": "flatten"}, dense(10, "sigmoid"), dense(7, "swish")],
]


def test_spec_tables_are_what_keras_builds() -> None:
    # The Train page shows the spec's own table while the user edits: it must be Keras's.
    for spec in [*(network.spec for network in NETWORKS.values()), *OTHER_SPECS]:
        keras.backend.clear_session()  # layer names start at "dense", not "dense_7"
        model = build_from_spec(spec)
        assert network_spec.summary(spec) == layer_table(model), network_spec.words(spec)
    cnn = {row["layer"]: row for row in NETWORKS["cnn"].layers}
    assert cnn["conv2d"]["output shape"] == "(batch, 26, 26, 64)"
    assert cnn["max_pooling2d_1"]["output shape"] == "(batch, 5, 5, 64)"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([], "the network has no layers"),
        ([dense(64)], r"layer 1 \(Dense\) needs a vector, but its input is 28x28x1 maps"),
        (
            [conv(8, 9, "valid"), _pool(), _pool(), conv(8, 9, "valid")],
            r"layer 4 \(Conv2D\): its 9x9 kernel is larger than its 5x5 input",
        ),
        (
            [_pool(4), _pool(4), _pool(4)],
            r"layer 3 \(MaxPooling2D\): its 4x4 window is larger than its 1x1 input",
        ),
        (
            [{"type": "flatten"}, conv(8)],
            r"layer 2 \(Conv2D\) needs maps, but its input is already flat",
        ),
        ([conv(8)], r"the output layer \(Dense 10, softmax\) needs a vector"),
        (
            [{"type": "flatten"}, dense(4096), dense(4096)],
            r"20,037,642 parameters, over the limit of 5,000,000; "
            r"layer 3 \(Dense\) alone has 16,781,312",
        ),
        (
            [{"type": "conv", "filters": 0}],
            r"layer 1 \(Conv2D\): filters must be between 1 and 512",
        ),
        ([{"type": "dropout", "rate": "half"}], r"layer 1 \(Dropout\): rate must be a number"),
        ([{"type": "dense", "units": 2.5}], "units must be a whole number"),
        ([{"type": "conv", "padding": "full"}], "padding must be one of same, valid"),
        ([{"type": "lstm"}], "layer 1: unknown type 'lstm'; choose one of conv"),
        ([{"type": "dense", "unitz": 3}], r"layer 1 \(Dense\): it has no setting 'unitz'"),
        ([{"type": "flatten"}] * 41, "at most 40 are allowed"),
        ({"layers": []}, "a network spec is a list of layers"),
        ([{"type": "conv", "filters": float("inf")}], "filters must be between 1 and 512"),
        ([{"type": ["conv"]}], r"layer 1: unknown type \"\['conv'\]\""),
    ],
)
def test_impossible_networks_get_one_line_naming_the_layer(spec: object, message: str) -> None:
    with pytest.raises(SpecError, match=message) as caught:
        network_spec.summary(spec)
    assert "\n" not in str(caught.value)
    with pytest.raises(SpecError, match=message):
        build_from_spec(spec)  # the worker refuses it with the same words


def test_fields_left_out_take_their_defaults() -> None:
    (layer,) = network_spec.clean([{"type": "conv"}])
    assert layer == conv(32, 3, "same", "relu")
    assert network_spec.words([layer, _pool(), {"type": "flatten"}, dense(64)]) == (
        "Conv 32 3x3, MaxPool 2, Flatten, Dense 64"
    )


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


def test_only_the_custom_network_takes_layers() -> None:
    from fmnist.schema import TrainConfig

    layers = tuple(network_spec.clean([{"type": "flatten"}]))
    TrainConfig(network="custom", layers=layers).validate()
    with pytest.raises(ValueError, match="layers are given only with the network 'custom'"):
        TrainConfig(network="mlp", layers=layers).validate()
    with pytest.raises(SpecError, match="the network has no layers"):
        TrainConfig(network="custom").validate()


def test_an_older_run_json_gives_its_named_networks_layers() -> None:
    import json

    assert network_spec.from_json(json.dumps({"network": "cnn"})) == network_spec.clean(
        network_spec.PRESETS["cnn"]
    )
    with pytest.raises(SpecError, match='has no "layers" list'):
        network_spec.from_json(json.dumps({"network": "resnet"}))
