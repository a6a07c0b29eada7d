"""The Train form's settings as a link: what goes into it and what comes back out."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from fmnist import network_spec
from fmnist.schema import TrainConfig
from fmnist.settings_link import from_parameters, has_settings, link, to_parameters


def parameters_of(address: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(address).query))


def test_a_link_brings_back_every_setting_and_never_a_job_or_its_key() -> None:
    config = TrainConfig(
        network="custom",
        layers=tuple(network_spec.clean(network_spec.PRESETS["cnn-bn"])),
        epochs=12,
        batch_size=100,
        learning_rate=0.003,
        optimizer="adamw",
        lr_schedule="one-cycle",
        validation_split=0.05,
        seed=1234,
        early_stopping_patience=3,
        limit=5000,
        label_smoothing=0.1,
        augment=("flip", "erase:70", "rotate:20"),
        mixed_precision=True,
        name="workshop 1",
    )
    address = link("http://host:8501/Train?job=abc123&key=secret#top", config)
    assert address.startswith("http://host:8501/Train?network=custom&epochs=12")
    assert "secret" not in address and "job" not in address
    assert from_parameters(parameters_of(address)) == config


def test_defaults_stay_out_of_a_link_but_the_network_epochs_and_seed_are_always_in() -> None:
    assert to_parameters(TrainConfig()) == {"network": "mlp", "epochs": "5", "seed": "42"}
    assert from_parameters({"network": "fast"}) == TrainConfig(network="fast")
    # Layers alone mean the builder's network.
    assert from_parameters({"layers": "flatten_dense-64"}).network == "custom"
    assert has_settings({"epochs": "3"}) and not has_settings({"job": "abc", "key": "x"})


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"epochs": "many"}, "epochs must be a number, not 'many'"),
        ({"epochs": "0"}, "epochs must be between 1 and 500"),
        ({"lr": "nan"}, "learning rate must be above 0"),
        ({"network": "resnet"}, "unknown network 'resnet'"),
        ({"layers": "dense-8"}, r"layer 1 \(Dense\) needs a vector"),
        ({"layers": "conv-x"}, r"layer 1 \(conv\): filters must be a number"),
        ({"layers": "lstm-3"}, "layer 1: unknown type 'lstm'"),
        ({"augment": "flip,blur"}, "unknown augmentation 'blur'"),
        ({"augment": "flip,shift:99"}, "shift strength must be a whole number from 1 to 6"),
    ],
)
def test_a_bad_link_is_one_line_naming_the_setting(parameters: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        from_parameters(parameters)
    assert "\n" not in str(caught.value)


def test_the_layers_text_is_short_and_round_trips_for_every_preset() -> None:
    for spec in network_spec.PRESETS.values():
        text = network_spec.to_text(spec)
        assert network_spec.from_text(text) == network_spec.clean(spec) and len(text) < 300
    assert network_spec.to_text(network_spec.PRESETS["cnn"]).startswith("conv-64-3-1-valid-relu_")
    # Settings left out take their defaults.
    assert network_spec.from_text("conv_maxpool_flatten")[0] == network_spec.conv(32)
