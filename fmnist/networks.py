"""The named networks users can train: what they are, where they come from, their layers.

This module is data only, with no TensorFlow, so the web server can describe
the networks without loading Keras. Each is a preset spec of fmnist.network_spec,
whose layer table is worked out there; fmnist.ml.networks builds them, and
tests/test_networks.py checks the tables against Keras.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fmnist import network_spec
from fmnist.data import IMAGE_SIZE

INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)
# The network of a run whose layers are its own (TrainConfig.layers), not a named one's.
CUSTOM = "custom"


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
    def spec(self) -> list[dict[str, Any]]:
        return network_spec.PRESETS[self.name]

    @property
    def layers(self) -> list[dict[str, Any]]:
        return network_spec.summary(self.spec)

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
    # 16 bits where the machine has them (engine.train trains in float32 elsewhere): in
    # bfloat16 on this AMD EPYC's two cores the six epochs took 94 and 96 s instead of 125
    # and 118 s, for 93.26% and 93.14% on the test images against 93.21% and 92.92% (seeds
    # 42 and 7). float16, on GPUs before Ampere, is unmeasured.
    "mixed_precision": True,
}

# The recipe of the best-accuracy target and of the shipped model: 60 epochs of augmented
# pictures (a new mirror, shift and grey box each time) keep the wider network learning,
# on all 60,000 training images (no validation split: the test set is the judge, and
# 6,000 more pictures gave more than the split's curve did).
WIDE_RECIPE: dict[str, Any] = {
    **FAST_RECIPE,
    "epochs": 60,
    "augment": ("flip", "shift", "erase"),
    "validation_split": 0.0,
    "mixed_precision": False,  # as the shipped model was trained; 16 bits unmeasured here
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
            recipe_words="93% on the test images in under 2 minutes on a 2-core CPU that "
            "computes in bfloat16, 2¼ minutes in float32: six epochs, batch 128, a one-cycle "
            "learning rate up to 0.004 and label smoothing 0.1.",
        ),
        Network(
            "fast-wide",
            "The fast network with half as many maps again (48, 96, 192): the most "
            "accurate network here, when trained long on augmented pictures.",
            "Fashion-MNIST Studio's best-accuracy CNN",
            recipe=WIDE_RECIPE,
            recipe_words="94.63% on the test images (94.67% with the mirror at test time) in "
            "about 90 minutes on a 2-core CPU: the fast recipe for 60 epochs on all 60,000 "
            "images (no validation), each picture mirrored, shifted and partly greyed out at "
            "random.",
        ),
    )
}


def spec_of(name: str, layers: object = ()) -> list[dict[str, Any]]:
    """The layers of a named network, or ``layers`` checked for the custom one."""
    if name == CUSTOM:
        return network_spec.clean(layers)
    return get_network(name).spec


def spec_of_record(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A saved run's layers, checked again (run.json is a file anyone may have edited);
    runs older than specs kept only their network's name. A ValueError says what is wrong."""
    config = record.get("config") or {}
    return network_spec.clean(
        record.get("layers") or spec_of(record["network"], config.get("layers") or ())
    )


def get_network(name: str) -> Network:
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}") from None
