"""A training's settings as a link: the Train page's form in the URL's query parameters.

A workshop leader sets up an experiment, presses "🔗 Copy link" and hands
out the link; opening it fills the form (the network's layers and the random seed
included), so everyone starts the same run. The link never holds a job or its key:
it shares settings, not control of a training.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from fmnist import network_spec
from fmnist.networks import CUSTOM
from fmnist.schema import TrainConfig

# Query parameter -> TrainConfig field. Short names keep links readable.
PARAMETERS = {
    "network": "network",
    "epochs": "epochs",
    "batch": "batch_size",
    "lr": "learning_rate",
    "optimizer": "optimizer",
    "schedule": "lr_schedule",
    "validation": "validation_split",
    "seed": "seed",
    "patience": "early_stopping_patience",
    "images": "limit",
    "smoothing": "label_smoothing",
    "augment": "augment",
    "mixed": "mixed_precision",
    "name": "name",
    "layers": "layers",
}
_ALWAYS = ("network", "epochs", "seed")  # in every link, even at their defaults


def to_parameters(config: TrainConfig) -> dict[str, str]:
    """The query parameters of ``config``: the settings that differ from the defaults, plus
    the network, the epochs and the seed."""
    values = config.to_dict()
    defaults = TrainConfig().to_dict()
    found = {}
    for parameter, name in PARAMETERS.items():
        value = values[name]
        if value == defaults[name] and parameter not in _ALWAYS:
            continue
        if name == "layers":
            found[parameter] = network_spec.to_text(value)
        elif name == "augment":
            found[parameter] = ",".join(value)
        elif isinstance(value, bool):
            found[parameter] = "1" if value else "0"
        elif isinstance(value, float):
            found[parameter] = f"{value:g}"
        else:
            found[parameter] = str(value)
    return found


def link(base_url: str, config: TrainConfig) -> str:
    """``base_url`` (the Train page's address; any query is dropped) with the settings."""
    return base_url.split("?")[0].split("#")[0] + "?" + urlencode(to_parameters(config))


def has_settings(parameters: Mapping[str, str]) -> bool:
    return any(parameter in parameters for parameter in PARAMETERS)


def from_parameters(parameters: Mapping[str, str]) -> TrainConfig:
    """The settings of a link, checked as the form's are; a ValueError in one line says
    which setting is wrong. Settings the link leaves out keep their defaults."""
    settings: dict = {}
    for parameter, name in PARAMETERS.items():
        if parameter not in parameters:
            continue
        text = str(parameters[parameter])[:2000]
        try:
            if name == "layers":
                settings[name] = tuple(network_spec.from_text(text))
            elif name == "augment":
                settings[name] = tuple(filter(None, text.split(",")))
            elif name == "mixed_precision":
                settings[name] = text in ("1", "true")
            elif name in ("learning_rate", "validation_split", "label_smoothing"):
                settings[name] = float(text)
            elif name in ("network", "optimizer", "lr_schedule", "name"):
                settings[name] = text
            else:
                settings[name] = int(text)
        except ValueError as error:
            if isinstance(error, network_spec.SpecError):
                raise
            raise ValueError(f"{parameter} must be a number, not {text[:20]!r}") from None
    if settings.get("layers") and "network" not in settings:
        settings["network"] = CUSTOM
    return TrainConfig.from_settings(settings)
