"""Keras models from network specs (fmnist.network_spec): the named networks and the
Train page builder's own.

Every network takes a (28, 28, 1) float input scaled to [0, 1] and ends in a
10-way softmax, so that the pages, the command line and imported models all
feed pictures the same way and read probabilities straight from the output.
The softmax layer is always float32, so it stays stable under mixed precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from fmnist import network_spec
from fmnist.data import NUM_CLASSES
from fmnist.networks import INPUT_SHAPE, get_network


def _keras_layer(spec: Sequence[dict[str, Any]], index: int) -> keras.Layer:
    layer = spec[index]
    kind = layer["type"]
    activation = layer.get("activation")
    activation = None if activation == "none" else activation
    if kind == "conv":
        return layers.Conv2D(
            layer["filters"],
            layer["kernel"],
            strides=layer["stride"],
            padding=layer["padding"],
            activation=activation,
            use_bias=network_spec.uses_bias(spec, index),
        )
    if kind == "dense":
        return layers.Dense(
            layer["units"], activation=activation, use_bias=network_spec.uses_bias(spec, index)
        )
    if kind == "maxpool":
        return layers.MaxPooling2D(layer["size"])
    if kind == "avgpool":
        return layers.AveragePooling2D(layer["size"])
    if kind == "batchnorm":
        return layers.BatchNormalization(momentum=network_spec.BATCH_NORM_MOMENTUM)
    if kind == "activation":
        return layers.Activation(activation)
    if kind == "dropout":
        return layers.Dropout(layer["rate"])
    if kind == "gap":
        return layers.GlobalAveragePooling2D()
    return layers.Flatten()


def build_from_spec(spec: object, name: str = "custom") -> keras.Model:
    """The Keras model of a spec; a SpecError (one line) for an impossible one."""
    network_spec.summary(spec)  # shapes, limits: the same words the page shows
    cleaned = network_spec.clean(spec)
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            *(_keras_layer(cleaned, index) for index in range(len(cleaned))),
            layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"),
        ],
        name=name.replace("-", "_"),
    )


def build_model(name: str, spec: object = None) -> keras.Model:
    """A named network, or the given spec's (for name "custom")."""
    if spec:
        return build_from_spec(spec, name)
    get_network(name)  # a ValueError naming the choices for an unknown name
    return build_from_spec(network_spec.PRESETS[name], name)


def in_float32(model: keras.Model) -> keras.Model:
    """``model`` when it computes in float32, else a copy that does, with its weights (a
    mixed-precision network keeps its weights in float32): TensorFlow Lite's converter has
    no bfloat16 kernels."""
    if all(layer.dtype_policy.compute_dtype == "float32" for layer in model.layers):
        return model

    def float32_layer(layer: keras.Layer) -> keras.Layer:
        return type(layer).from_config({**layer.get_config(), "dtype": "float32"})

    copy = keras.models.clone_model(model, clone_function=float32_layer)
    copy.set_weights(model.get_weights())
    return copy


def layer_table(model: keras.Model) -> list[dict[str, Any]]:
    """One row per layer: name, type, output shape and parameters, as the Train page shows."""
    return [
        {
            "layer": layer.name,
            "type": type(layer).__name__,
            "output shape": str(tuple(layer.output.shape)).replace("None", "batch"),
            "parameters": int(layer.count_params()),
        }
        for layer in model.layers
    ]
