"""The named architectures users can train.

Every network takes a (28, 28, 1) float input scaled to [0, 1] and ends in a
10-way softmax, so that the pages, the command line and imported models all
feed pictures the same way and read probabilities straight from the output.
The softmax layer is always float32, so it stays stable under mixed precision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fmnist.data import IMAGE_SIZE, NUM_CLASSES

if TYPE_CHECKING:
    import keras

INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)


@dataclass(frozen=True)
class Network:
    name: str
    description: str
    origin: str
    build: Callable[[], keras.Model]
    # The recipe of the README's accuracy table (and of the shipped cnn-bn run).
    reference_epochs: int
    reference_batch_size: int = 32
    reference_lr_schedule: str = "constant"


def _dense_stack(name: str, widths: tuple[int, ...]) -> keras.Model:
    """Flatten, then ReLU Dense layers of the given widths, then a 10-way softmax."""
    import keras
    from keras import layers

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
    import keras
    from keras import layers

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
    import keras
    from keras import layers

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


NETWORKS: dict[str, Network] = {
    network.name: network
    for network in (
        Network(
            "mlp",
            "Flatten, Dense 128 ReLU, Dense 10 softmax: the TensorFlow tutorial network.",
            "seeds 003 and 004",
            lambda: _dense_stack("mlp", (128,)),
            reference_epochs=10,
        ),
        Network(
            "mlp-2",
            "Flatten, Dense 128 ReLU, Dense 64 ReLU, Dense 10 softmax.",
            "seed 002",
            lambda: _dense_stack("mlp_2", (128, 64)),
            reference_epochs=10,
        ),
        Network(
            "cnn",
            "Conv 64, pool, conv 64, pool, Dense 512, Dense 10: 862,410 parameters.",
            "seed 001",
            _cnn,
            reference_epochs=5,
        ),
        Network(
            "cnn-bn",
            "Three 3x3 convolutions (32, 64, 64) with batch normalisation and dropout, "
            "Dense 128: the strongest network here.",
            "Fashion-MNIST Studio",
            _cnn_bn,
            reference_epochs=15,
            reference_batch_size=64,
            reference_lr_schedule="cosine",
        ),
    )
}


def get_network(name: str) -> Network:
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}") from None


def build_model(name: str) -> keras.Model:
    return get_network(name).build()


def model_summary(model: keras.Model) -> str:
    """Keras's text summary (layers, output shapes, parameters) as a string."""
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line), line_length=80)
    return "\n".join(lines)
