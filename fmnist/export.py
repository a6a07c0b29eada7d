"""A saved run to take away: a zip of its model, record, curves and a plain Keras script.

Everything here reads run.json and the model file as bytes, with no TensorFlow, so the
web server builds the bundle itself. The curves are drawn with Pillow (Plotly would need
a browser or Kaleido to make a PNG). The script rebuilds the run's network from its spec
(fmnist.network_spec) with plain Keras and trains it with the run's settings, for people
who want to carry on in their own notebook.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from fmnist import network_spec, runs
from fmnist.data import CLASS_NAMES
from fmnist.networks import spec_of_record
from fmnist.schema import TrainConfig, augment_strengths

HISTORY_COLUMNS = (
    "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds",
)  # fmt: skip


def history_csv(record: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for entry in record.get("history", []):
        writer.writerow(["" if entry.get(c) is None else entry[c] for c in HISTORY_COLUMNS])
    return out.getvalue()


def confusion_csv(record: dict[str, Any]) -> str:
    """The test images' confusion matrix: a row per true class, a column per prediction."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["true \\ predicted", *CLASS_NAMES])
    for name, row in zip(CLASS_NAMES, record.get("confusion_matrix") or [], strict=False):
        writer.writerow([name, *row])
    return out.getvalue()


_SIZE = (1000, 420)
_COLOURS = {"training": (31, 119, 180), "validation": (255, 127, 14)}


def curves_png(record: dict[str, Any]) -> bytes:
    """Loss and accuracy per epoch, training and validation, as a PNG (Pillow only)."""
    image = Image.new("RGB", _SIZE, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=15)
    history = record.get("history", [])
    accuracy = record.get("test_accuracy")
    title = runs.short_label(record) + (f": test accuracy {accuracy:.2%}" if accuracy else "")
    draw.text((20, 10), title, fill="black", font=font)
    for panel, metric in enumerate(("loss", "accuracy")):
        box = (60 + panel * 480, 50, 440 + panel * 480, 370)
        _panel(draw, font, box, metric, history)
    legend_x = 60
    # A run trained on all 60,000 images has no validation curve: nor a legend for one.
    drawn = {
        "training": any(_finite(h.get("loss")) for h in history),
        "validation": any(_finite(h.get("val_loss")) for h in history),
    }
    for label, colour in _COLOURS.items():
        if not drawn[label]:
            continue
        draw.line((legend_x, 400, legend_x + 30, 400), fill=colour, width=3)
        draw.text((legend_x + 38, 392), label, fill="black", font=font)
        legend_x += 160
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _panel(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont,
    box: tuple[int, int, int, int],
    metric: str,
    history: list[dict],
) -> None:
    left, top, right, bottom = box
    draw.rectangle(box, outline=(180, 180, 180))
    draw.text((left, top - 22), metric, fill="black", font=font)
    series = {
        "training": [(h["epoch"], h.get(metric)) for h in history],
        "validation": [(h["epoch"], h.get("val_" + metric)) for h in history],
    }
    values = [v for points in series.values() for _, v in points if _finite(v)]
    if not values:
        draw.text((left + 10, top + 10), "no epochs", fill="grey", font=font)
        return
    # Accuracy from the tenth below its lowest value: from 0 every curve hugs the top.
    low, high = (
        (min(0.9, int(min(values) * 10) / 10), 1.0)
        if metric == "accuracy"
        else (0.0, max(values) * 1.05 or 1.0)
    )
    last = max(h["epoch"] for h in history)
    for fraction in (0.0, 0.5, 1.0):
        y = bottom - fraction * (bottom - top)
        label = f"{low + fraction * (high - low):.2f}"
        draw.text((left - 48, y - 8), label, fill="grey", font=font)
    draw.text((right - 60, bottom + 4), f"epoch {last}", fill="grey", font=font)

    def point(epoch: float, value: float) -> tuple[float, float]:
        x = left + (epoch / max(last, 1)) * (right - left)
        y = bottom - (min(max(value, low), high) - low) / (high - low) * (bottom - top)
        return x, y

    for name, points in series.items():
        kept = [point(e, v) for e, v in points if _finite(v)]
        if len(kept) > 1:
            draw.line(kept, fill=_COLOURS[name], width=3)
        for x, y in kept:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=_COLOURS[name])


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and value == value and abs(value) != float("inf")


def training_script(record: dict[str, Any]) -> str:
    """A standalone Python script that rebuilds the run's network with plain Keras and
    trains it with the run's settings (python train_<run>.py --help)."""
    config = record.get("config") or {}
    # Checked again: run.json is a file on disk, and its values become Python source here.
    layers = spec_of_record(record)
    given = {k: v for k, v in config.items() if k in _SCRIPT_SETTINGS and v is not None}
    checked = TrainConfig.from_settings(given)  # in range, of the right types
    kept = {key: getattr(checked, key) for key in _SCRIPT_SETTINGS}
    # {name: strength} (None for the mirror): the script needs no parsing of "shift:3".
    kept["augment"] = augment_strengths(kept["augment"])
    lines = ",\n".join(f"            {_keras_line(layers, i)}" for i in range(len(layers)))
    return _SCRIPT.format(
        run_id=record.get("run_id", "a run"),
        accuracy=f"{record['test_accuracy']:.2%}" if record.get("test_accuracy") else "unknown",
        settings="{\n" + "".join(f"    {key!r}: {value!r},\n" for key, value in kept.items()) + "}",
        layers=lines,
        momentum=network_spec.BATCH_NORM_MOMENTUM,
    )


_SCRIPT_SETTINGS = (
    "epochs", "batch_size", "learning_rate", "optimizer", "lr_schedule", "validation_split",
    "seed", "label_smoothing", "augment",
)  # fmt: skip


def _keras_line(spec: list[dict[str, Any]], index: int) -> str:
    layer = spec[index]
    kind = layer["type"]
    activation = None if layer.get("activation") == "none" else layer.get("activation")
    if kind == "conv":
        return (
            f"layers.Conv2D({layer['filters']}, {layer['kernel']}, strides={layer['stride']}, "
            f"padding={_py(layer['padding'])}, activation={_py(activation)}, "
            f"use_bias={network_spec.uses_bias(spec, index)})"
        )
    if kind == "dense":
        return (
            f"layers.Dense({layer['units']}, activation={_py(activation)}, "
            f"use_bias={network_spec.uses_bias(spec, index)})"
        )
    return {
        "maxpool": lambda: f"layers.MaxPooling2D({layer.get('size')})",
        "avgpool": lambda: f"layers.AveragePooling2D({layer.get('size')})",
        "batchnorm": lambda: "layers.BatchNormalization(momentum=MOMENTUM)",
        "activation": lambda: f"layers.Activation({_py(activation)})",
        "dropout": lambda: f"layers.Dropout({layer.get('rate')})",
        "flatten": lambda: "layers.Flatten()",
        "gap": lambda: "layers.GlobalAveragePooling2D()",
    }[kind]()


def _py(value: object) -> str:
    """A value as Python source, strings in double quotes (the script's style)."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def bundle(run_id: str, models_dir: Path | str | None = None) -> bytes:
    """The run's zip: model.keras, run.json, history.csv, confusion_matrix.csv, curves.png,
    train_<run id>.py and its TensorBoard event files. A RunError when the run cannot be read."""
    folder = runs.run_path(run_id, models_dir)
    record = runs.read_record(run_id, models_dir)
    try:
        model = (folder / runs.MODEL_FILE).read_bytes()
    except OSError as error:
        raise runs.RunError(f"{run_id}: its model cannot be read ({error.strerror})") from None
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        # model.keras is a zip already: stored as it is, not compressed again.
        archive.writestr(f"{run_id}/model.keras", model, compress_type=zipfile.ZIP_STORED)
        archive.writestr(f"{run_id}/run.json", json.dumps(record, indent=1))
        archive.writestr(f"{run_id}/history.csv", history_csv(record))
        archive.writestr(f"{run_id}/confusion_matrix.csv", confusion_csv(record))
        archive.writestr(f"{run_id}/curves.png", curves_png(record), zipfile.ZIP_STORED)
        archive.writestr(f"{run_id}/train_{run_id}.py", training_script(record))
        for path, name in _tensorboard_files(folder):
            archive.write(path, f"{run_id}/{name}")
    return out.getvalue()


def _tensorboard_files(folder: Path) -> list[tuple[Path, str]]:
    """The run's event files, as (path, name in the zip); plain files only, never a link."""
    logs = folder / runs.TENSORBOARD_FOLDER
    if logs.is_symlink() or not logs.is_dir():
        return []
    return [
        (path, path.relative_to(folder).as_posix())
        for path in sorted(logs.rglob("*"))
        if path.is_file() and not path.is_symlink()
    ]


_SCRIPT = '''"""Rebuild and train the network of a Fashion-MNIST Studio run with plain Keras.

The run: {run_id}.

That run scored {accuracy} on the 10,000 test images. This script trains the same layers
with the same settings (batch, optimizer, learning-rate schedule, label smoothing,
augmentation, seed); the numbers differ a little from run to run and machine to machine.

    python this_script.py                 # the run's settings
    python this_script.py --epochs 1 --limit 2000 --data /usr/share/datasets/fashion-mnist

It needs only TensorFlow (with its Keras 3) and NumPy. The dataset comes from --data (a
folder with the four original IDX .gz files) or Keras's own downloader.
"""

import argparse
import gzip
from pathlib import Path

import keras
import numpy as np
from keras import layers

SETTINGS = {settings}
MOMENTUM = {momentum}  # batch normalisation's, as in the app


def build_model():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
{layers},
            layers.Dense(10, activation="softmax"),
        ]
    )


def load_data(folder):
    if folder is None:
        return keras.datasets.fashion_mnist.load_data()

    def read(name, offset):
        with gzip.open(Path(folder) / name) as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)

    x_train = read("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    y_train = read("train-labels-idx1-ubyte.gz", 8)
    x_test = read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    y_test = read("t10k-labels-idx1-ubyte.gz", 8)
    return (x_train, y_train), (x_test, y_test)


def learning_rate(settings, steps):
    rate = settings["learning_rate"]
    if settings["lr_schedule"] == "cosine":
        return keras.optimizers.schedules.CosineDecay(rate, steps, alpha=0.01)
    if settings["lr_schedule"] == "one-cycle":
        warm_up = max(1, round(0.25 * steps))
        return keras.optimizers.schedules.CosineDecay(
            rate / 25, max(1, steps - warm_up), alpha=0.001,
            warmup_target=rate, warmup_steps=warm_up,
        )
    return rate


def augmentation(strength, seed):
    # strength: {{name: how strong}}: shift in pixels, rotate in degrees, zoom in percent,
    # erase in percent of the pictures.
    steps = []
    if "flip" in strength:
        steps.append(layers.RandomFlip("horizontal", seed=seed))
    if "shift" in strength:
        share = strength["shift"] / 28
        steps.append(layers.RandomTranslation(share, share, fill_mode="constant",
                                              interpolation="nearest", seed=seed + 1))
    if "rotate" in strength:
        steps.append(layers.RandomRotation(strength["rotate"] / 360, fill_mode="constant",
                                           seed=seed + 3))
    if "zoom" in strength:
        steps.append(layers.RandomZoom(strength["zoom"] / 100, fill_mode="constant",
                                       seed=seed + 4))
    if "erase" in strength:
        # Keras's own random erasing: close to the app's grey box, not the same draw.
        steps.append(layers.RandomErasing(factor=strength["erase"] / 100, scale=(0.02, 0.18),
                                          fill_value=0.5, value_range=(0, 1), seed=seed + 2))
    return keras.Sequential(steps) if steps else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=SETTINGS["epochs"])
    parser.add_argument("--limit", type=int, default=0, help="train on the first N images")
    parser.add_argument("--data", default=None, help="folder with the IDX .gz files")
    parser.add_argument("--save", default="model.keras")
    args = parser.parse_args()
    settings = dict(SETTINGS, epochs=args.epochs)
    keras.utils.set_random_seed(settings["seed"])

    (x_train, y_train), (x_test, y_test) = load_data(args.data)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    x_train = (x_train[..., None] / 255.0).astype("float32")
    x_test = (x_test[..., None] / 255.0).astype("float32")
    held_out = round(len(x_train) * settings["validation_split"])
    x_val, y_val = x_train[:held_out], y_train[:held_out]
    x_train, y_train = x_train[held_out:], y_train[held_out:]

    model = build_model()
    steps = settings["epochs"] * -(-len(x_train) // settings["batch_size"])
    optimizer = {{"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
                 "rmsprop": keras.optimizers.RMSprop, "adamw": keras.optimizers.AdamW}}[
        settings["optimizer"]](learning_rate=learning_rate(settings, steps))
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=settings["label_smoothing"]),
        metrics=["accuracy"],
    )
    changes = augmentation(settings["augment"], settings["seed"])
    train = (x_train, keras.utils.to_categorical(y_train, 10))
    if changes is not None:
        import tensorflow as tf

        train = (
            tf.data.Dataset.from_tensor_slices(train)
            .shuffle(len(x_train), seed=settings["seed"])
            .batch(settings["batch_size"])
            .map(lambda x, y: (changes(x, training=True), y))
            .prefetch(2),
        )
    model.fit(
        *train,
        batch_size=None if changes is not None else settings["batch_size"],
        epochs=settings["epochs"],
        validation_data=(x_val, keras.utils.to_categorical(y_val, 10)) if held_out else None,
    )
    probabilities = model.predict(x_test, batch_size=1024, verbose=0)
    accuracy = float((probabilities.argmax(axis=1) == y_test).mean())
    print(f"test accuracy: {{accuracy:.4f}}")
    model.save(args.save)
    print(f"saved {{args.save}} ({{model.count_params():,}} parameters)")


if __name__ == "__main__":
    main()
'''
