"""A model as TensorFlow Lite, for phones and microcontrollers, checked against Keras.

The converted model is run on test images beside the Keras model before it is handed
out: a conversion that changed what the network answers is refused, not shipped.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import tensorflow as tf

from fmnist.evaluation import as_probabilities, to_model_input
from fmnist.inference_protocol import ModelError, TfliteModel
from fmnist.messages import first_line
from fmnist.ml.inference import predict_probabilities
from fmnist.ml.networks import in_float32

CHECK_IMAGES = 100
# Float32 kernels differ from TensorFlow's in the order of additions: measured 5e-5 on the
# shipped CNN. A hundred times that still means the same network.
TOLERANCE = 5e-3
# bfloat16 keeps 8 bits of each number: a mixed-precision network's probabilities were up
# to 0.012 from its float32 self's on 1,000 test images (fast, cnn and mlp, short runs).
# Four times that still means the same network.
SIXTEEN_BIT_TOLERANCE = 5e-2


def convert(model: keras.Model, images: np.ndarray) -> TfliteModel:
    """``model`` as a .tflite flat buffer, checked on ``images`` (uint8, N x 28 x 28)
    against ``model`` as the app runs it."""
    try:
        # TensorFlow Lite has no bfloat16 kernels: a mixed-precision network goes as its
        # float32 self.
        converted = in_float32(model)
        content = tf.lite.TFLiteConverter.from_keras_model(converted).convert()
    except Exception as error:  # noqa: BLE001 - the converter's errors are many and long
        raise ModelError(f"TensorFlow Lite cannot convert it: {first_line(error)}") from None
    lite = predict(content, images)
    keras_probabilities = predict_probabilities(model, images)
    difference = float(np.abs(lite - keras_probabilities).max())
    same_class = int((lite.argmax(axis=1) == keras_probabilities.argmax(axis=1)).sum())
    if not difference <= (TOLERANCE if converted is model else SIXTEEN_BIT_TOLERANCE):  # NaN too
        raise ModelError(
            f"the TensorFlow Lite model answers differently from Keras (probabilities apart "
            f"by up to {difference:.3g} on {len(images)} test images): not handed out"
        )
    return TfliteModel(bytes(content), len(images), same_class, difference)


def predict(content: bytes, images: np.ndarray) -> np.ndarray:
    """Probabilities (N, 10) of a .tflite model for uint8 (N, 28, 28) pictures, prepared as
    for the Keras model (``fmnist.evaluation.to_model_input``)."""
    with warnings.catch_warnings():
        # "tf.lite.Interpreter is deprecated" for LiteRT's, a package of its own; this
        # one still runs every model the converter writes.
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=content)
    source = interpreter.get_input_details()[0]
    inputs = to_model_input(images).reshape((len(images), *source["shape"][1:]))
    interpreter.resize_tensor_input(source["index"], inputs.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(source["index"], inputs.astype(source["dtype"]))
    interpreter.invoke()
    outputs = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return as_probabilities(np.asarray(outputs, dtype=np.float64))
