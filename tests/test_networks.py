from __future__ import annotations

import numpy as np
import pytest

from fmnist.networks import NETWORKS, build_model, get_network, model_summary


@pytest.mark.parametrize(
    ("name", "parameters"),
    [("mlp", 101_770), ("mlp-2", 109_386), ("cnn", 862_410)],
)
def test_seed_networks_have_the_seeds_parameter_counts(name: str, parameters: int) -> None:
    assert build_model(name).count_params() == parameters


def test_every_network_maps_pictures_to_a_softmax() -> None:
    images = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    for name in NETWORKS:
        outputs = np.asarray(build_model(name)(images, training=False))
        assert outputs.shape == (3, 10)
        np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-5)


def test_summary_lists_layers_and_parameters() -> None:
    summary = model_summary(build_model("cnn"))
    assert "Conv2D" in summary and "862,410" in summary and "(None, 26, 26, 64)" in summary


def test_unknown_network_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown network 'resnet'; choose one of mlp"):
        get_network("resnet")
