"""Choosing a model for prediction and running pictures through it in one call."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fmnist import config, evaluation, runs
from fmnist.data import CLASS_NAMES, NUM_CLASSES
from fmnist.imaging import PreparedImage
from fmnist.messages import first_line

if TYPE_CHECKING:
    import keras

LOW_CONFIDENCE = 0.5


class ModelError(Exception):
    """A model that cannot be used here. The message is one line, fit for users."""


def load_imported(payload: bytes) -> keras.Model:
    """A user's .keras file -> a model that takes 28x28 pictures and gives 10 outputs.

    ``safe_mode=True`` refuses files that would run arbitrary Python code
    (lambda layers) when loaded.
    """
    import keras

    if len(payload) > config.MAX_MODEL_BYTES:
        raise ModelError(
            f"model file too large: {len(payload) / 1e6:.0f} MB, "
            f"the limit is {config.MAX_MODEL_MB} MB"
        )
    if not payload.startswith(b"PK"):
        raise ModelError("not a .keras file (a .keras file is a zip archive saved by Keras 3)")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "imported.keras"
        path.write_bytes(payload)
        try:
            model = keras.models.load_model(path, compile=False, safe_mode=True)
        except Exception as error:  # noqa: BLE001 - Keras raises many kinds here
            raise ModelError(f"Keras could not load this file: {first_line(error)}") from None
    check_shapes(model)
    return model


def check_shapes(model: keras.Model) -> None:
    try:
        input_shape = tuple(model.inputs[0].shape[1:])
        output_shape = tuple(model.outputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError):
        raise ModelError("the model has no defined input and output shapes") from None
    if input_shape not in ((28, 28), (28, 28, 1)):
        raise ModelError(f"the model takes {input_shape}, not 28x28 (or 28x28x1) pictures")
    if output_shape != (NUM_CLASSES,):
        raise ModelError(f"the model gives {output_shape} outputs, not 10 class scores")


def load(run_id: str | None = None, model_file: str | None = None) -> keras.Model:
    """The model of a run, of a .keras file, or by default of the best saved run."""
    if model_file:
        try:
            payload = Path(model_file).read_bytes()
        except OSError as error:
            raise ModelError(f"cannot read {model_file}: {error.strerror}") from None
        return load_imported(payload)
    if run_id is None:
        best = runs.best_run()
        if best is None:
            raise ModelError("no saved run yet: train one first, or pass --model FILE.keras")
        run_id = best["run_id"]
    return runs.load_model(run_id)


def describe(probabilities: np.ndarray) -> dict[str, Any]:
    """One picture's softmax -> label, class name, confidence, top 3 and the full list."""
    order = np.argsort(probabilities)[::-1]
    label = int(order[0])
    return {
        "label": label,
        "class_name": CLASS_NAMES[label],
        "confidence": float(probabilities[label]),
        "top3": [(CLASS_NAMES[i], float(probabilities[i])) for i in order[:3]],
        "probabilities": [float(p) for p in probabilities],
    }


def predict_prepared(model: keras.Model, prepared: list[PreparedImage]) -> list[dict[str, Any]]:
    """Every usable picture through the network in one call; the others keep their reason."""
    usable = [p for p in prepared if p.pixels is not None]
    probabilities = (
        evaluation.predict_probabilities(model, np.stack([p.pixels for p in usable]))
        if usable
        else np.empty((0, NUM_CLASSES))
    )
    by_file = iter(probabilities)
    results: list[dict[str, Any]] = []
    for item in prepared:
        if item.pixels is None:
            results.append({"file": item.file, "error": item.error})
        else:
            results.append({"file": item.file, **describe(next(by_file))})
    return results
