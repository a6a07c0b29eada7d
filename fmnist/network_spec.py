"""A network as plain data: a list of layers, checked, with each layer's output shape and
parameters worked out without TensorFlow.

A spec is what the Train page's builder edits, what run.json and the job store keep,
what the command line reads with --network-spec and what a worker builds with Keras
(fmnist.ml.networks). The named networks are preset specs. Everything is worked out
here, in plain Python, so that the web server shows shapes, parameters and mistakes while
the user edits, without loading TensorFlow.

A layer is a dict: {"type": "conv", "filters": 32, "kernel": 3, ...}; fields left out
take their defaults. Every network takes a 28x28x1 picture and ends in a 10-way softmax,
which the spec does not list: the builder adds it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

INPUT_SHAPE = (28, 28, 1)
CLASSES = 10
MAX_LAYERS = 40
MAX_PARAMETERS = 5_000_000
ACTIVATIONS = ("relu", "none", "gelu", "elu", "tanh", "sigmoid", "swish")
# Batch normalisation's momentum in every network: its moving statistics settle within a
# few hundred batches, so short demo runs score well.
BATCH_NORM_MOMENTUM = 0.9


class SpecError(ValueError):
    """An impossible network: one line naming the layer and why."""


@dataclass(frozen=True)
class Setting:
    """One field of a layer: a whole number, a number or a choice, with its bounds."""

    name: str
    default: int | float | str
    low: float = 0
    high: float = 0
    choices: tuple[str, ...] = ()

    def clean(self, value: Any, where: str) -> int | float | str:
        if self.choices:
            if value not in self.choices:
                raise SpecError(f"{where}: {self.name} must be one of {', '.join(self.choices)}")
            return value
        whole = isinstance(self.default, int)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}: {self.name} must be a number")
        if whole and math.isfinite(value) and value != int(value):
            raise SpecError(f"{where}: {self.name} must be a whole number")
        if not (math.isfinite(value) and self.low <= value <= self.high):
            low, high = (int(self.low), int(self.high)) if whole else (self.low, self.high)
            raise SpecError(f"{where}: {self.name} must be between {low} and {high}")
        return int(value) if whole else float(value)


@dataclass(frozen=True)
class LayerKind:
    keras_type: str  # Keras's class name, as the layer tables show it
    settings: tuple[Setting, ...] = ()
    words: str = ""  # what it does, for the builder's help

    @property
    def keras_name(self) -> str:
        """The name Keras gives the first such layer of a model: Conv2D -> conv2d."""
        # Keras's own snake case (keras.src.utils.naming.to_snake_case).
        name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", self.keras_type)
        return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


_ACTIVATION = Setting("activation", "relu", choices=ACTIVATIONS)
_POOL_SIZE = Setting("size", 2, 2, 4)
KINDS: dict[str, LayerKind] = {
    "conv": LayerKind(
        "Conv2D",
        (
            Setting("filters", 32, 1, 512),
            Setting("kernel", 3, 1, 9),
            Setting("stride", 1, 1, 4),
            Setting("padding", "same", choices=("same", "valid")),
            _ACTIVATION,
        ),
        "a sliding filter bank: each filter looks at a kernel x kernel patch",
    ),
    "maxpool": LayerKind("MaxPooling2D", (_POOL_SIZE,), "keeps the largest value of each patch"),
    "avgpool": LayerKind("AveragePooling2D", (_POOL_SIZE,), "averages each patch"),
    "batchnorm": LayerKind(
        "BatchNormalization", (), "rescales each channel to a steady mean and spread"
    ),
    "activation": LayerKind(
        "Activation",
        (Setting("activation", "relu", choices=tuple(a for a in ACTIVATIONS if a != "none")),),
        "a function applied to every value",
    ),
    "dropout": LayerKind(
        "Dropout", (Setting("rate", 0.25, 0.0, 0.9),), "drops a share of values while training"
    ),
    "flatten": LayerKind("Flatten", (), "lays the maps out as one long vector"),
    "gap": LayerKind(
        "GlobalAveragePooling2D", (), "averages each map to one number: a vector of channels"
    ),
    "dense": LayerKind(
        "Dense",
        (Setting("units", 128, 1, 4096), _ACTIVATION),
        "every input joined to every unit",
    ),
}
# The layers a bias passes through unchanged up to a batch normalisation, which then
# cancels it: a convolution or dense layer with no activation followed by these and a
# batch normalisation gets no bias (as Keras's own examples do).
_BIAS_TRANSPARENT = frozenset({"maxpool", "avgpool", "dropout"})


def clean(layers: object) -> list[dict[str, Any]]:
    """A spec as it came (JSON, a form, a URL) -> every layer with all its fields, checked
    one by one. A SpecError names the first wrong layer; shapes are checked by summary()."""
    if not isinstance(layers, (list, tuple)):
        raise SpecError("a network spec is a list of layers")
    if not layers:
        raise SpecError("the network has no layers: add at least a Flatten")
    if len(layers) > MAX_LAYERS:
        raise SpecError(f"the network has {len(layers)} layers; at most {MAX_LAYERS} are allowed")
    cleaned = []
    for number, layer in enumerate(layers, start=1):
        if not isinstance(layer, dict):
            raise SpecError(f"layer {number} is not an object with a type")
        kind = KINDS.get(layer["type"]) if isinstance(layer.get("type"), str) else None
        if kind is None:
            raise SpecError(
                f"layer {number}: unknown type {str(layer.get('type'))[:30]!r}; "
                f"choose one of {', '.join(KINDS)}"
            )
        where = f"layer {number} ({kind.keras_type})"
        known = {s.name for s in kind.settings} | {"type"}
        unknown = sorted(set(layer) - known)
        if unknown:
            raise SpecError(f"{where}: it has no setting {str(unknown[0])[:30]!r}")
        cleaned.append(
            {"type": layer["type"]}
            | {s.name: s.clean(layer.get(s.name, s.default), where) for s in kind.settings}
        )
    return cleaned


def from_json(text: str) -> list[dict[str, Any]]:
    """A spec from JSON text: a list of layers, or an object with "layers" (a spec file, or
    a run.json, whose network can so be trained again); checked by clean()."""
    try:
        value = json.loads(text)
    except ValueError:
        raise SpecError("the network spec is not valid JSON") from None
    if isinstance(value, dict):
        if "layers" in value:
            value = value["layers"]
        elif value.get("network") in PRESETS:  # an older run.json, of a named network
            value = PRESETS[value["network"]]
        elif isinstance(value.get("config"), dict) and value["config"].get("layers"):
            value = value["config"]["layers"]
        else:
            raise SpecError('the network spec has no "layers" list')
    return clean(value)


def to_text(layers: Sequence[dict[str, Any]]) -> str:
    """A spec as a short URL-safe text, settings in their order:
    'conv-32-3-1-same-relu_maxpool-2_flatten_dense-128-relu'."""
    return "_".join(
        "-".join(
            [
                layer["type"],
                *(_as_text(layer[s.name]) for s in KINDS[layer["type"]].settings),
            ]
        )
        for layer in clean(layers)
    )


def _as_text(value: int | float | str) -> str:
    # Floats in plain digits: "1e-05" would hold the "-" that separates settings.
    if isinstance(value, float):
        return f"{value:.8f}".rstrip("0").rstrip(".") or "0"
    return str(value)


def from_text(text: str) -> list[dict[str, Any]]:
    """to_text's inverse; settings left out take their defaults. A SpecError says which
    layer of the text is wrong."""
    layers = []
    for number, part in enumerate(text.split("_") if text else [], start=1):
        kind, *values = part.split("-")
        settings = KINDS[kind].settings if kind in KINDS else ()
        if kind in KINDS and len(values) > len(settings):
            raise SpecError(f"layer {number} ({kind[:20]}) has too many settings")
        layer: dict[str, Any] = {"type": kind}
        for setting, value in zip(settings, values, strict=False):
            layer[setting.name] = _from_text(setting, value, f"layer {number} ({kind})")
        layers.append(layer)
    return clean(layers)


def _from_text(setting: Setting, value: str, where: str) -> int | float | str:
    if setting.choices:
        return value  # clean() checks it is one of them
    try:
        number = float(value)
    except ValueError:
        raise SpecError(f"{where}: {setting.name} must be a number") from None
    # A whole number stays an int, so that clean() accepts it for whole-number settings.
    return int(number) if number.is_integer() else number


def uses_bias(layers: Sequence[dict[str, Any]], index: int) -> bool:
    """Whether layer ``index`` (a conv or dense) has a bias: not when a batch normalisation
    follows it before any activation, since the normalisation subtracts it again."""
    if layers[index].get("activation", "relu") != "none":
        return True
    for later in layers[index + 1 :]:
        if later["type"] == "batchnorm":
            return False
        if later["type"] not in _BIAS_TRANSPARENT:
            return True
    return True


def _shape_words(shape: tuple[int, ...]) -> str:
    return "a vector of " + f"{shape[0]:,}" if len(shape) == 1 else "x".join(map(str, shape))


def summary(layers: object) -> list[dict[str, Any]]:
    """One row per Keras layer (the spec's, then the 10-way softmax): name, type, output
    shape and parameters, the same rows fmnist.ml.networks.layer_table gets from Keras.
    A SpecError says which layer is impossible and why, in one line."""
    rows: list[dict[str, Any]] = []
    _walk(clean(layers), rows)
    return rows


def describe(layers: object) -> tuple[list[dict[str, Any]], str | None]:
    """What the builder shows while the user edits: the rows up to the first impossible
    layer, and what is wrong with it (None for a network that can be trained)."""
    rows: list[dict[str, Any]] = []
    try:
        _walk(clean(layers), rows)
    except SpecError as error:
        return rows, str(error)
    return rows, None


def _walk(spec: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    """Append summary()'s rows to ``rows``, one by one, until a layer is impossible."""
    shape: tuple[int, ...] = INPUT_SHAPE
    names: dict[str, int] = {}
    for number, layer in enumerate([*spec, _OUTPUT], start=1):
        kind = KINDS[layer["type"]]
        where = (
            "the output layer (Dense 10, softmax)"
            if layer is _OUTPUT
            else f"layer {number} ({kind.keras_type})"
        )
        flat = len(shape) == 1
        parameters = 0
        kind_of = layer["type"]
        if kind_of in ("conv", "maxpool", "avgpool", "gap") and flat:
            raise SpecError(
                f"{where} needs maps, but its input is already flat ({_shape_words(shape)}): "
                "move it before the Flatten"
            )
        if kind_of == "conv":
            height, width, channels = shape
            size, stride = layer["kernel"], layer["stride"]
            if layer["padding"] == "valid":
                if size > min(height, width):
                    raise SpecError(
                        f"{where}: its {size}x{size} kernel is larger than its "
                        f"{height}x{width} input; use a smaller kernel or padding 'same'"
                    )
                height, width = (height - size) // stride + 1, (width - size) // stride + 1
            else:
                height, width = -(-height // stride), -(-width // stride)
            shape = (height, width, layer["filters"])
            parameters = size * size * channels * layer["filters"]
            parameters += layer["filters"] if uses_bias(spec, number - 1) else 0
        elif kind_of in ("maxpool", "avgpool"):
            height, width, channels = shape
            size = layer["size"]
            if size > min(height, width):
                raise SpecError(
                    f"{where}: its {size}x{size} window is larger than its {height}x{width} "
                    "input; remove a pooling layer or pool less"
                )
            shape = (height // size, width // size, channels)
        elif kind_of == "batchnorm":
            parameters = 4 * shape[-1]  # scale, offset, moving mean and moving variance
        elif kind_of == "flatten":
            shape = (math.prod(shape),)
        elif kind_of == "gap":
            shape = (shape[-1],)
        elif kind_of == "dense":
            if not flat:
                raise SpecError(
                    f"{where} needs a vector, but its input is {_shape_words(shape)} maps: "
                    "put a Flatten or a GlobalAveragePooling2D before it"
                )
            bias = uses_bias(spec, number - 1) if layer is not _OUTPUT else True
            parameters = shape[0] * layer["units"] + (layer["units"] if bias else 0)
            shape = (layer["units"],)
        count = names.get(kind.keras_name, 0)
        names[kind.keras_name] = count + 1
        rows.append(
            {
                "layer": kind.keras_name + (f"_{count}" if count else ""),
                "type": kind.keras_type,
                "output shape": "(batch, " + ", ".join(map(str, shape)) + ")",
                "parameters": parameters,
            }
        )
    total = sum(row["parameters"] for row in rows)
    if total > MAX_PARAMETERS:
        heaviest = max(range(len(rows)), key=lambda i: rows[i]["parameters"])
        raise SpecError(
            f"the network has {total:,} parameters, over the limit of {MAX_PARAMETERS:,}; "
            f"layer {heaviest + 1} ({rows[heaviest]['type']}) alone has "
            f"{rows[heaviest]['parameters']:,}"
        )


_OUTPUT: dict[str, Any] = {"type": "dense", "units": CLASSES, "activation": "softmax"}


def parameters(layers: object) -> int:
    return sum(row["parameters"] for row in summary(layers))


def words(layers: Sequence[dict[str, Any]]) -> str:
    """A short line for a spec: 'Conv2D 32 3x3, MaxPool 2, Flatten, Dense 128'."""
    parts = []
    for layer in layers:
        kind = layer["type"]
        if kind == "conv":
            parts.append(f"Conv {layer['filters']} {layer['kernel']}x{layer['kernel']}")
        elif kind in ("maxpool", "avgpool"):
            parts.append(f"{'Max' if kind == 'maxpool' else 'Avg'}Pool {layer['size']}")
        elif kind == "dense":
            parts.append(f"Dense {layer['units']}")
        elif kind == "dropout":
            parts.append(f"Dropout {layer['rate']:g}")
        elif kind == "batchnorm":
            parts.append("BN")
        elif kind == "activation":
            parts.append(layer["activation"])
        else:
            parts.append({"flatten": "Flatten", "gap": "GAP"}[kind])
    return ", ".join(parts)


def layer_words(layer: dict[str, Any]) -> str:
    """One layer in full, for the builder: 'Conv2D 32, 3x3, same, relu'."""
    kind = layer["type"]
    if kind == "conv":
        stride = f", stride {layer['stride']}" if layer["stride"] > 1 else ""
        return (
            f"Conv2D {layer['filters']}, {layer['kernel']}x{layer['kernel']}{stride}, "
            f"{layer['padding']}, {layer['activation']}"
        )
    if kind == "dense":
        return f"Dense {layer['units']}, {layer['activation']}"
    if kind in ("maxpool", "avgpool"):
        return f"{KINDS[kind].keras_type} {layer['size']}x{layer['size']}"
    if kind == "dropout":
        return f"Dropout {layer['rate']:g}"
    if kind == "activation":
        return f"Activation {layer['activation']}"
    return KINDS[kind].keras_type


def conv(filters: int, kernel: int = 3, padding: str = "same", activation: str = "relu") -> dict:
    return {
        "type": "conv",
        "filters": filters,
        "kernel": kernel,
        "stride": 1,
        "padding": padding,
        "activation": activation,
    }


def dense(units: int, activation: str = "relu") -> dict:
    return {"type": "dense", "units": units, "activation": activation}


def _simple(kind: str, **settings: Any) -> dict:
    return {"type": kind, **settings}


_BN, _RELU, _POOL, _FLAT = (
    _simple("batchnorm"),
    _simple("activation", activation="relu"),
    _simple("maxpool", size=2),
    _simple("flatten"),
)


def _fast(widths: tuple[int, ...]) -> list[dict]:
    # Each convolution pooled at once, before its batch normalisation and ReLU.
    blocks = [[conv(f, activation="none"), _POOL, _BN, _RELU] for f in widths]
    return [*(layer for block in blocks for layer in block), _FLAT, dense(128, "none"), _BN, _RELU]


def _conv_bn(filters: int) -> list[dict]:
    return [conv(filters, activation="none"), _BN, _RELU]


# The named networks' layers (fmnist.networks says what each is for).
PRESETS: dict[str, list[dict[str, Any]]] = {
    "mlp": [_FLAT, dense(128)],
    "mlp-2": [_FLAT, dense(128), dense(64)],
    "cnn": [conv(64, padding="valid"), _POOL, conv(64, padding="valid"), _POOL, _FLAT, dense(512)],
    "cnn-bn": [
        *_conv_bn(32),
        _POOL,
        _simple("dropout", rate=0.2),
        *_conv_bn(64),
        *_conv_bn(64),
        _POOL,
        _simple("dropout", rate=0.3),
        _FLAT,
        dense(128, "none"),
        _BN,
        _RELU,
        _simple("dropout", rate=0.4),
    ],
    "fast": _fast((32, 64, 128)),
    "fast-wide": _fast((48, 96, 192)),
}
