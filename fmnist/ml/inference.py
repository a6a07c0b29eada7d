"""Models for prediction: loading runs and imported files, and the fast forward pass.

The inference service and the command line both call these functions, so a
picture gets the same probabilities on the page and in a terminal.
"""

from __future__ import annotations

import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fmnist import keras_archive, runs
from fmnist.data import NUM_CLASSES
from fmnist.evaluation import as_probabilities, mirror_average, mirror_images, to_model_input
from fmnist.inference_protocol import ModelError
from fmnist.messages import first_line
from fmnist.ml import devices


def load_run_model(run_id: str, models_dir: Path | str | None = None) -> keras.Model:
    """A saved run's model, without its optimizer state (prediction needs none)."""
    path = runs.run_path(run_id, models_dir) / runs.MODEL_FILE
    if not path.is_file():
        raise runs.RunError(f"no run named {run_id!r}")
    try:
        keras_archive.check(path)
    except keras_archive.ArchiveError as error:
        raise runs.RunError(f"run {run_id!r}: {error}") from None
    return keras.models.load_model(path, compile=False)


def load_imported(payload: bytes) -> keras.Model:
    """A user's .keras file -> a model that takes 28x28 pictures and gives 10 outputs.

    ``keras_archive.check`` refuses zip bombs and foreign archives before Keras
    opens the file; ``safe_mode=True`` refuses files that would run arbitrary
    Python code (lambda layers) when loaded.
    """
    try:
        keras_archive.check(payload)
    except keras_archive.ArchiveError as error:
        raise ModelError(str(error)) from None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "imported.keras"
        path.write_bytes(payload)
        try:
            model = keras.models.load_model(path, compile=False, safe_mode=True)
        except Exception as error:  # noqa: BLE001 - Keras raises many kinds here
            if _out_of_memory(error):
                raise ModelError(OUT_OF_MEMORY) from None
            raise ModelError(f"Keras could not load this file: {first_line(error)}") from None
    check_shapes(model)
    check_outputs(model)
    return model


OUT_OF_MEMORY = "the model needs more memory than the inference service may use"


def _out_of_memory(error: BaseException) -> bool:
    # Under the service's memory cap a huge layer fails as MemoryError or as
    # TensorFlow's ResourceExhaustedError ("OOM when allocating tensor ...").
    return isinstance(error, MemoryError | tf.errors.ResourceExhaustedError) or (
        "OOM when allocating" in str(error)
    )


def check_shapes(model: keras.Model) -> None:
    """Refuse, in one line, a model that does not map one 28x28 picture to 10 scores."""
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, TypeError, ValueError):
        raise ModelError("the model has no defined input and output shapes") from None
    if len(inputs) > 1:
        raise ModelError(f"the model takes {len(inputs)} inputs, not one 28x28 picture")
    if len(outputs) > 1:
        raise ModelError(f"the model gives {len(outputs)} outputs, not one set of 10 class scores")
    try:
        input_shape = tuple(model.inputs[0].shape[1:])
        output_shape = tuple(model.outputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError):
        raise ModelError("the model has no defined input and output shapes") from None
    if input_shape not in ((28, 28), (28, 28, 1)):
        raise ModelError(f"the model takes {input_shape}, not 28x28 (or 28x28x1) pictures")
    if output_shape != (NUM_CLASSES,):
        raise ModelError(f"the model gives {output_shape} outputs, not 10 class scores")


def sample_pictures() -> np.ndarray:
    """Eight fixed uint8 28x28 pictures (no dataset needed): black, white, shapes, noise."""
    rows, cols = np.mgrid[0:28, 0:28]
    shapes = [
        np.zeros((28, 28)),
        np.full((28, 28), 255),
        (rows * 255 / 27),
        np.where((abs(rows - 14) < 10) & (abs(cols - 14) < 6), 200, 0),  # a trouser-ish bar
        np.where((rows - 14) ** 2 / 100 + (cols - 14) ** 2 / 60 < 1, 230, 0),  # a bag-ish blob
        np.where((rows > 18) & (cols > 3) & (cols < 25), 180, 0),  # a shoe-ish sole
    ]
    noise = np.random.default_rng(12).integers(0, 256, size=(2, 28, 28))
    return np.concatenate([np.stack(shapes), noise]).astype(np.uint8)


def check_outputs(model: keras.Model, pictures: np.ndarray | None = None) -> None:
    """Refuse a model whose scores for a few pictures are NaN or infinite (diverged weights)."""
    pictures = sample_pictures() if pictures is None else pictures
    try:
        outputs = np.asarray(_fast_call(model)(_as_input(model, pictures)), dtype=np.float64)
    except Exception as error:  # noqa: BLE001 - a model that cannot run is refused alike
        raise ModelError(f"the model fails on a test picture: {first_line(error)}") from None
    if not np.isfinite(outputs).all():
        raise ModelError("the model gives NaN or infinite scores (its weights may have diverged)")


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
    return load_run_model(run_id)


# One traced inference function per model, dropped with the model.
_FAST_CALLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FAST_CALLS_LOCK = threading.Lock()


def _fast_call(model: keras.Model) -> Callable[[np.ndarray], Any]:
    """The model's forward pass as a tf.function traced once for any batch size.

    ``model.predict`` builds a tf.data pipeline on every call (about 80 ms for
    one picture on a CPU) and an eager call dispatches op by op (about 8 ms);
    this traced call takes about 1 ms.
    """
    with _FAST_CALLS_LOCK:
        call = _FAST_CALLS.get(model)
        if call is None:
            signature = [tf.TensorSpec((None, *_input_shape(model)), tf.float32)]
            call = tf.function(lambda x: model(x, training=False), input_signature=signature)
            _FAST_CALLS[model] = call
    return call


def predict_probabilities(
    model: keras.Model, images: np.ndarray, batch_size: int = 1024, refuse_non_finite: bool = True
) -> np.ndarray:
    """Softmax of every uint8 28x28 picture, float64 (N, 10), in one pass through the network.

    A model giving NaN or infinite scores is refused with ModelError, unless
    ``refuse_non_finite`` is False: a training that diverged is still scored (NaN
    loss, chance accuracy) and saved as it is, for the user to see what happened.
    """
    inputs = _as_input(model, images)
    if inputs.shape[0] <= batch_size:
        outputs = np.asarray(_fast_call(model)(inputs))
    else:
        outputs = model.predict(inputs, batch_size=batch_size, verbose=0)
    outputs = np.asarray(outputs, dtype=np.float64)
    if refuse_non_finite and not np.isfinite(outputs).all():
        raise ModelError("the model gives NaN or infinite scores for this picture")
    return as_probabilities(outputs)


def predict_mirrored(
    model: keras.Model,
    images: np.ndarray,
    refuse_non_finite: bool = True,
    kept: np.ndarray | None = None,
) -> np.ndarray:
    """Test-time augmentation: the average of the softmax of each picture and of its mirror
    image (left and right swapped), which a network trained on mirrored pictures knows as
    the same garment. Two passes, so twice the time of predict_probabilities, or one when
    the pictures' own scores are given as ``kept``."""
    if kept is None:
        kept = predict_probabilities(model, images, refuse_non_finite=refuse_non_finite)
    mirrored = predict_probabilities(
        model, mirror_images(images), refuse_non_finite=refuse_non_finite
    )
    return mirror_average(kept, mirrored)


def _as_input(model: keras.Model, images: np.ndarray) -> np.ndarray:
    inputs = to_model_input(images)
    return inputs.reshape((inputs.shape[0], *_input_shape(model)))


def _input_shape(model: keras.Model) -> tuple[int, ...]:
    shape = tuple(model.inputs[0].shape[1:])
    return (28, 28) if shape == (28, 28) else (28, 28, 1)


def describe_devices() -> list[str]:
    """Human names of the devices this process computes on (GPUs get memory growth first)."""
    return devices.describe_devices()


def tensorflow_version() -> str:
    return tf.__version__
