"""Batch normalisation's test-time statistics, measured instead of trailed.

During training each BatchNormalization layer keeps a moving average of its inputs' mean
and variance (momentum 0.9 here), which the network uses on test pictures. After few
steps that average still leans on its starting values (0 and 1), and after a high
learning rate it trails weights that moved fast: a 15-step run of ``fast`` scored 10% on
the validation images, every one called Pullover, though it was 60% right in training.
"Precise BN" (Wu and Johnson, "Rethinking 'Batch' in BatchNorm", 2021) replaces the
average by the statistics of the current weights on a few thousand training images.
"""

from __future__ import annotations

import keras
import numpy as np

from fmnist.evaluation import to_model_input

RECALIBRATION_IMAGES = 2048  # training images behind the statistics
RECALIBRATION_BATCH = 512


def has_batch_norm(model: keras.Model) -> bool:
    return any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def recalibrate(
    model: keras.Model, images: np.ndarray, batch_size: int = RECALIBRATION_BATCH
) -> None:
    """Set every BatchNormalization layer's moving mean and variance to the mean of the
    batch statistics of ``images`` (uint8) under the model's current weights.

    The batches run in training mode (batch statistics, dropout on, as during training),
    one after the other, with each layer's momentum set to k/(k+1) for the k-th batch,
    so the moving values end as the plain average over the batches. Weights are not
    touched: training mode here only measures.
    """
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms or len(images) == 0:
        return
    momenta = [layer.momentum for layer in norms]
    inputs = to_model_input(images).reshape((len(images), *model.inputs[0].shape[1:]))
    try:
        for k, start in enumerate(range(0, len(inputs), batch_size)):
            for layer in norms:
                layer.momentum = k / (k + 1)
            model(inputs[start : start + batch_size], training=True)
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum
