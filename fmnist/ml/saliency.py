"""Why did the network say that: a map over the 28x28 input of what pushed it towards a class.

- Grad-CAM (Selvaraju et al., 2017) on the last convolution, for networks that have one:
  the convolution's feature maps weighted by the mean gradient of the class score,
  positive part, upsampled to 28x28. As in the keras-io Grad-CAM example.
- Integrated gradients (Sundararajan et al., 2017) from a black picture, for networks
  without a convolution (the dense networks, many imported files): gradient times input,
  averaged along the path from black to the picture, positive part.

The class score is the class's logit where the network ends in a softmax: the softmax's
own gradient vanishes on confident answers, which are the ones users ask about. No
maintained library was used: tf-keras-vis 0.8.7 wants tf-keras (Keras 2) beside Keras 3,
and both methods are a gradient tape and a few lines.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from fmnist.evaluation import to_model_input
from fmnist.inference_protocol import AUTO, GRAD_CAM, INTEGRATED_GRADIENTS, METHODS, Explanation

PATH_STEPS = 32


def explain(
    model: keras.Model, pixels: np.ndarray, class_index: int, method: str = AUTO
) -> Explanation:
    """The heatmap (28, 28) in [0, 1] of what pushed ``model`` towards ``class_index``.

    ``method`` AUTO is Grad-CAM where the network has a convolution, integrated
    gradients otherwise; INTEGRATED_GRADIENTS works for every network.
    """
    if not 0 <= class_index < 10:
        raise ValueError(f"class must be 0-9, not {class_index}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    inputs = to_model_input(pixels).reshape((1, *model.inputs[0].shape[1:]))
    if method == INTEGRATED_GRADIENTS:
        heatmap = _integrated_gradients(model, inputs, class_index)
        return Explanation(scaled(heatmap).astype(np.float32), INTEGRATED_GRADIENTS, class_index)
    maps_layer = grad_cam_layer(model)
    heatmap = _grad_cam(model, maps_layer, inputs, class_index) if maps_layer else None
    if heatmap is not None:
        return Explanation(scaled(heatmap).astype(np.float32), GRAD_CAM, class_index)
    heatmap = _integrated_gradients(model, inputs, class_index)
    return Explanation(
        scaled(heatmap).astype(np.float32), INTEGRATED_GRADIENTS, class_index, no_grad_cam(model)
    )


def no_grad_cam(model: keras.Model) -> str:
    """Why Grad-CAM cannot read ``model``, in words for the page."""
    if not any(isinstance(layer, CONVOLUTION) for layer in model.layers):
        return "this network has no convolution"
    if not isinstance(model, keras.Sequential):
        return "Grad-CAM here reads networks built as one stack of layers; this one is a graph"
    return "its last convolution's maps do not reach the answer"


def scaled(heatmap: np.ndarray) -> np.ndarray:
    """Non-negative values -> [0, 1], 1 from the 99th percentile of the positive values up:
    a few extreme pixels (integrated gradients has them) would leave the rest too faint."""
    positive = heatmap[heatmap > 0]
    if positive.size == 0:
        return heatmap
    return np.clip(heatmap / np.percentile(positive, 99), 0.0, 1.0)


ELEMENTWISE = (keras.layers.BatchNormalization, keras.layers.Activation, keras.layers.ReLU)
CONVOLUTION = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def grad_cam_layer(model: keras.Model) -> keras.layers.Layer | None:
    """The last convolution of a Sequential network, or the batch normalisation and
    activation right after it: Grad-CAM reads the rectified maps, as in the paper."""
    if not isinstance(model, keras.Sequential):
        return None
    layers = model.layers
    convolutions = [i for i, layer in enumerate(layers) if isinstance(layer, CONVOLUTION)]
    if not convolutions:
        return None
    end = convolutions[-1]
    while end + 1 < len(layers) - 1 and isinstance(layers[end + 1], ELEMENTWISE):
        end += 1
    return layers[end]


def _class_score(model: keras.Model, head_input: tf.Tensor, class_index: int) -> tf.Tensor:
    """The class's logit from the input of the model's last layer."""
    last = model.layers[-1]
    if getattr(last, "activation", None) is keras.activations.softmax:
        if isinstance(last, keras.layers.Dense):
            logits = keras.ops.matmul(head_input, last.kernel)
            if last.use_bias:
                logits = logits + last.bias
            return logits[:, class_index]
        if isinstance(last, keras.layers.Activation):
            return head_input[:, class_index]
    return last(head_input)[:, class_index]


def _run(
    model: keras.Model, inputs: tf.Tensor, tape: tf.GradientTape, watched: keras.layers.Layer | None
) -> tuple[tf.Tensor | None, tf.Tensor]:
    """A Sequential network run layer by layer up to its last layer: (the output of
    ``watched``, watched by ``tape``; the last layer's input). Layer by layer because a
    Keras 3 model built to output an inner tensor returns a copy of it, with no gradient
    back from the later layers."""
    x, maps = inputs, None
    for layer in model.layers[:-1]:
        x = layer(x, training=False)
        if layer is watched:
            tape.watch(x)
            maps = x
    return maps, tf.cast(x, tf.float32)


def _grad_cam(
    model: keras.Model, maps_layer: keras.layers.Layer, inputs: np.ndarray, class_index: int
) -> np.ndarray | None:
    with tf.GradientTape() as tape:
        maps, head = _run(model, tf.constant(inputs), tape, maps_layer)
        score = _class_score(model, head, class_index)
    gradients = tape.gradient(score, maps) if maps is not None else None
    if gradients is None:
        return None
    weights = tf.reduce_mean(tf.cast(gradients, tf.float32), axis=(1, 2))
    cam = tf.nn.relu(tf.reduce_sum(tf.cast(maps, tf.float32) * weights[:, None, None, :], -1))
    resized = tf.image.resize(cam[..., None], inputs.shape[1:3], method="bilinear")
    return np.asarray(resized)[0, :, :, 0]


def attributions(model: keras.Model, inputs: np.ndarray, class_index: int) -> np.ndarray:
    """Integrated gradients of the class score for one model input (1, 28, 28[, 1]): input
    times the gradient averaged along the path from black, signed, summing to the score's
    change from a black picture (up to the path's discretisation)."""
    # The path's midpoints from black (0) to the picture, in one batch.
    alphas = (np.arange(PATH_STEPS, dtype=np.float32) + 0.5) / PATH_STEPS
    path = tf.constant(alphas.reshape((-1,) + (1,) * (inputs.ndim - 1)) * inputs)
    with tf.GradientTape() as tape:
        tape.watch(path)
        if isinstance(model, keras.Sequential):
            _, head = _run(model, path, tape, None)
            score = _class_score(model, head, class_index)
        else:  # any other graph: the log-probability of the class
            score = log_probabilities(tf.cast(model(path, training=False), tf.float32))
            score = score[:, class_index]
    gradients = np.asarray(tape.gradient(score, path))  # of the sum over the path
    return (inputs[0] * gradients.mean(axis=0)).reshape(28, 28)


def log_probabilities(outputs: tf.Tensor) -> tf.Tensor:
    """The log-probabilities of a graph's outputs, whether it ends in a softmax or gives
    logits (imported files do both): rows of values in [0, 1] summing to 1 are taken as
    probabilities, anything else as logits."""
    values = np.asarray(outputs)
    sums = values.sum(axis=-1)
    if values.min() >= 0.0 and values.max() <= 1.0 and np.allclose(sums, 1.0, atol=1e-3):
        return tf.math.log(outputs + 1e-9)
    return tf.nn.log_softmax(outputs, axis=-1)


def _integrated_gradients(model: keras.Model, inputs: np.ndarray, class_index: int) -> np.ndarray:
    return np.maximum(attributions(model, inputs, class_index), 0.0)


def blanked(pixels: np.ndarray, order: np.ndarray, fraction: float) -> np.ndarray:
    """``pixels`` with the first ``fraction`` of the flat positions in ``order`` set to black."""
    copy = pixels.copy().reshape(-1)
    copy[order[: round(fraction * copy.size)]] = 0
    return copy.reshape(pixels.shape)


def faithfulness(
    model: keras.Model,
    images: np.ndarray,
    method: str = AUTO,
    fraction: float = 0.2,
    seed: int = 0,
) -> tuple[float, float]:
    """Mean drop of the predicted class's probability when the ``fraction`` most salient
    pixels are blanked, and when as many random pixels are: a faithful map drops it more."""
    from fmnist.ml.inference import predict_probabilities

    rng = np.random.default_rng(seed)
    before = predict_probabilities(model, images)
    predicted = before.argmax(axis=1)
    salient, random = [], []
    for image, label in zip(images, predicted, strict=True):
        heatmap = explain(model, image, int(label), method).heatmap
        salient.append(blanked(image, np.argsort(-heatmap.reshape(-1), kind="stable"), fraction))
        random.append(blanked(image, rng.permutation(image.size), fraction))
    rows = np.arange(len(images))
    after_salient = predict_probabilities(model, np.stack(salient))[rows, predicted]
    after_random = predict_probabilities(model, np.stack(random))[rows, predicted]
    chosen = before[rows, predicted]
    return float(np.mean(chosen - after_salient)), float(np.mean(chosen - after_random))
