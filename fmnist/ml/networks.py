"""Keras models for the named networks described in fmnist.networks.

Every network takes a (28, 28, 1) float input scaled to [0, 1] and ends in a
10-way softmax, so that the pages, the command line and imported models all
feed pictures the same way and read probabilities straight from the output.
The softmax layer is always float32, so it stays stable under mixed precision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import layers

from fmnist.data import NUM_CLASSES
from fmnist.networks import INPUT_SHAPE, get_network


def _dense_stack(name: str, widths: tuple[int, ...]) -> keras.Model:
    """Flatten, then ReLU Dense layers of the given widths, then a 10-way softmax."""
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            layers.Flatten(),
            *(layers.Dense(width, activation="relu") for width in widths),
            layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"),
        ],
        name=name,
    )


def _cnn() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"),
        ],
        name="cnn",
    )


def _cnn_bn() -> keras.Model:
    def conv_block(filters: int) -> list[keras.Layer]:
        # Convolutions without bias: the batch normalisation that follows has its own.
        return [
            layers.Conv2D(filters, 3, padding="same", use_bias=False),
            # Momentum 0.9 rather than 0.99: the moving statistics used at test
            # time settle within a few hundred batches, so short demo runs score well.
            layers.BatchNormalization(momentum=0.9),
            layers.Activation("relu"),
        ]

    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            *conv_block(32),
            layers.MaxPooling2D(),
            layers.Dropout(0.2),
            *conv_block(64),
            *conv_block(64),
            layers.MaxPooling2D(),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(128, use_bias=False),
            layers.BatchNormalization(momentum=0.9),
            layers.Activation("relu"),
            layers.Dropout(0.4),
            layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"),
        ],
        name="cnn_bn",
    )


def _fast() -> keras.Model:
    """Built for time to accuracy on a CPU: each 3x3 convolution is followed at once by a
    max-pool, so the widest one (128 maps) runs on 7x7 pictures and the network costs
    about 7.5 million multiply-adds a picture (cnn-bn: 11.5), with batch normalisation
    so that a one-cycle schedule can run at a high rate. The pool comes before the batch
    normalisation and the ReLU, as in airbench's blocks: those two then run on a quarter
    of the values, which made a training step 15-35% faster here."""

    def conv_block(filters: int) -> list[keras.Layer]:
        return [
            layers.Conv2D(filters, 3, padding="same", use_bias=False),
            layers.MaxPooling2D(),
            layers.BatchNormalization(momentum=0.9),
            layers.Activation("relu"),
        ]

    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            *conv_block(32),
            *conv_block(64),
            *conv_block(128),
            layers.Flatten(),
            layers.Dense(128, use_bias=False),
            layers.BatchNormalization(momentum=0.9),
            layers.Activation("relu"),
            layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"),
        ],
        name="fast",
    )


_BUILDERS: dict[str, Callable[[], keras.Model]] = {
    "mlp": lambda: _dense_stack("mlp", (128,)),
    "mlp-2": lambda: _dense_stack("mlp_2", (128, 64)),
    "cnn": _cnn,
    "cnn-bn": _cnn_bn,
    "fast": _fast,
}


def build_model(name: str) -> keras.Model:
    get_network(name)  # a ValueError naming the choices for an unknown name
    return _BUILDERS[name]()


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


def write_layer_tables(path: Any) -> None:
    """Regenerate fmnist/network_layers.json: `python -m fmnist.ml.networks`."""
    import json
    from pathlib import Path

    tables = {}
    for name in _BUILDERS:
        # A fresh session per network, so layer names start at "dense", not "dense_7".
        keras.backend.clear_session()
        tables[name] = layer_table(build_model(name))
    Path(path).write_text(json.dumps(tables, indent=1) + "\n")


if __name__ == "__main__":
    from fmnist.networks import LAYERS_FILE

    write_layer_tables(LAYERS_FILE)
    print(f"wrote {LAYERS_FILE}")
