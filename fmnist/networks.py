"""The named networks users can train: what they are, where they come from, their layers.

This module is data only, with no TensorFlow, so the web server can describe
the networks without loading Keras. fmnist.ml.networks builds them; the layer
tables come from network_layers.json, written by `python -m fmnist.ml.networks`
and checked against Keras by tests/test_networks.py.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
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
    # The recipe of the README's accuracy table (and of the shipped cnn-bn run).
    reference_epochs: int
    reference_batch_size: int = 32
    reference_lr_schedule: str = "constant"

    @property
    def layers(self) -> list[dict[str, Any]]:
        return layer_tables()[self.name]

    @property
    def parameters(self) -> int:
        return sum(row["parameters"] for row in self.layers)


NETWORKS: dict[str, Network] = {
    network.name: network
    for network in (
        Network(
            "mlp",
            "Flatten, Dense 128 ReLU, Dense 10 softmax.",
            "the TensorFlow tutorial network",
            reference_epochs=10,
        ),
        Network(
            "mlp-2",
            "Flatten, Dense 128 ReLU, Dense 64 ReLU, Dense 10 softmax.",
            "a deeper two-layer perceptron",
            reference_epochs=10,
        ),
        Network(
            "cnn",
            "Conv 64, max-pool, conv 64, max-pool, Dense 512, Dense 10.",
            "a classic two-convolution CNN",
            reference_epochs=5,
        ),
        Network(
            "cnn-bn",
            "Three 3x3 convolutions (32, 64, 64) with batch normalisation and dropout, "
            "Dense 128: the strongest network here.",
            "Fashion-MNIST Studio's own CNN",
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


@functools.cache
def layer_tables() -> dict[str, list[dict[str, Any]]]:
    return json.loads(LAYERS_FILE.read_text())
