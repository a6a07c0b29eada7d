"""Weight health: each layer's weights and gradients after an epoch, in numbers a page draws.

For every layer with a kernel (dense and convolution layers): the kernel's mean, standard
deviation, share of near-zero values and a histogram; the same for the gradient of the
loss on a fixed batch of training images. Shrinking weights, exploding or vanishing
gradients, and dead ReLU units (their gradients are exactly zero) show up here first.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fmnist.evaluation import to_model_input

BINS = 21
WEIGHT_NEAR_ZERO = 1e-3  # |w| below this counts as near zero
GRADIENT_ZERO = 1e-12  # a gradient this small is zero: a dead unit's weights get exactly 0


def statistics(values: np.ndarray, near_zero: float) -> dict[str, Any]:
    """Mean, standard deviation, share of |v| < ``near_zero`` and a histogram over
    [-reach, reach], reach the largest |v| (so that 0 is the middle bin)."""
    flat = values.astype(np.float64).ravel()
    reach = float(np.abs(flat).max()) if flat.size else 0.0
    counts, _ = np.histogram(flat, bins=BINS, range=(-reach, reach) if reach > 0 else (-1, 1))
    return {
        "mean": float(flat.mean()),
        "std": float(flat.std()),
        "near_zero": float((np.abs(flat) < near_zero).mean()),
        "reach": reach,
        "histogram": counts.tolist(),
    }


LOSS_SCALE = 2.0**15  # Keras's LossScaleOptimizer's starting scale


def layer_health(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> list[dict]:
    """One entry per layer with a kernel: its name, and the statistics of its weights and of
    the gradient of the mean loss over ``images`` (uint8) with respect to them."""
    layers = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]
    kernels = [layer.kernel for layer in layers]
    inputs = to_model_input(images).reshape((len(images), *model.inputs[0].shape[1:]))
    with tf.GradientTape() as tape:
        outputs = tf.cast(model(inputs, training=False), tf.float32)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, outputs))
        # Under mixed precision the backward pass runs in float16, where small gradients
        # flush to zero and would read as dead units: scale the loss up, the gradients down,
        # as Keras's LossScaleOptimizer does for training.
        scaled = loss * LOSS_SCALE
    gradients = [
        None if gradient is None else tf.cast(gradient, tf.float32) / LOSS_SCALE
        for gradient in tape.gradient(scaled, kernels)
    ]
    return [
        {
            "layer": layer.name,
            "weights": statistics(np.asarray(kernel), WEIGHT_NEAR_ZERO),
            "gradients": statistics(
                np.zeros(kernel.shape) if gradient is None else np.asarray(gradient),
                GRADIENT_ZERO,
            ),
        }
        for layer, kernel, gradient in zip(layers, kernels, gradients, strict=True)
    ]
