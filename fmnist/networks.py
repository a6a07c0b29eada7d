"""The named networks users can train: what they are, where they come from, their layers.

This module is data only, with no TensorFlow, so the web server can describe
the networks without loading Keras. fmnist.ml.networks builds them; the layer
tables come from network_layers.json, written by `python -m fmnist.ml.networks`
and checked against Keras by tests/test_networks.py.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmnist.data import IMAGE_SIZE

INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)
LAYERS_FILE = Path(__file__).with_name("network_layers.json")


@dataclass(frozen=True)
class Network:
    name: str
    description: str
    origin: str
    # The settings of the README's accuracy table for this network (TrainConfig's names;
    # the rest keep their defaults): the Train page's "📋 Recipe" button fills the form
    # with them, and `python -m bench --accuracy` trains them.
    recipe: dict[str, Any] = field(default_factory=dict)
    recipe_words: str = ""  # what the recipe is good for, for the button's help

    @property
    def layers(self) -> list[dict[str, Any]]:
        return layer_tables()[self.name]

    @property
    def parameters(self) -> int:
        return sum(row["parameters"] for row in self.layers)


# The recipe of the time-to-accuracy target (README, `python -m bench --only accuracy`).
FAST_RECIPE: dict[str, Any] = {
    "epochs": 6,
    "batch_size": 128,
    "learning_rate": 0.004,
    "lr_schedule": "one-cycle",
    "label_smoothing": 0.1,
}

NETWORKS: dict[str, Network] = {
    network.name: network
    for network in (
        Network(
            "mlp",
            "Flatten, Dense 128 ReLU, Dense 10 softmax.",
            "the TensorFlow tutorial network",
            recipe={"epochs": 10},
        ),
        Network(
            "mlp-2",
            "Flatten, Dense 128 ReLU, Dense 64 ReLU, Dense 10 softmax.",
            "a deeper two-layer perceptron",
            recipe={"epochs": 10},
        ),
        Network(
            "cnn",
            "Conv 64, max-pool, conv 64, max-pool, Dense 512, Dense 10.",
            "a classic two-convolution CNN",
            recipe={"epochs": 5},
        ),
        Network(
            "cnn-bn",
            "Three 3x3 convolutions (32, 64, 64) with batch normalisation and dropout, "
            "Dense 128: the strongest network here.",
            "Fashion-MNIST Studio's own CNN",
            recipe={"epochs": 15, "batch_size": 64, "lr_schedule": "cosine"},
        ),
        Network(
            "fast",
            "Three 3x3 convolutions (32, 64, 128), each with batch normalisation and a "
            "max-pool, Dense 128: the quickest way to 93% on a CPU.",
            "Fashion-MNIST Studio's time-to-accuracy CNN",
            recipe=FAST_RECIPE,
            recipe_words="93% on the test images in about 2 minutes on a 2-core CPU: six "
            "epochs, batch 128, a one-cycle learning rate up to 0.004 and label smoothing 0.1.",
        ),
    )
}


def get_network(name: str) -> Network:
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}") from None


@functools.cache
def layer_tables() -> dict[str, list[dict[str, Any]]]:
    return json.loads(LAYERS_FILE.read_text())
