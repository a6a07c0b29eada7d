"""Inside the layers: what each layer makes of a picture, what the first layer learned, and
how the classes separate from layer to layer.

Run in the inference service; the results are plain numpy arrays in the dataclasses of
``fmnist.inference_protocol``, drawn by the page as picture mosaics.
"""

from __future__ import annotations

import keras
import numpy as np

from fmnist.evaluation import to_model_input
from fmnist.inference_protocol import FirstLayer, LayerMaps, LayerSeparation

MAPS_SHOWN = 32  # per layer: a 4x8 mosaic stays readable beside the picture
POOLING = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
CONVOLUTION = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
AFTER_CONVOLUTION = (keras.layers.BatchNormalization, keras.layers.Activation, keras.layers.ReLU)


def map_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers whose 2-D maps are worth a look: each convolution and each pooling layer,
    taken after the batch normalisation and activation that follow it. A convolution with
    no activation that is pooled at once (conv, pool, batch norm, ReLU: the fast networks'
    blocks) is shown by its pooling layer's output, after the activation, not as raw sums
    that are half negative."""
    layers = model.layers
    chosen = []
    for index, layer in enumerate(layers):
        if not isinstance(layer, (*POOLING, *CONVOLUTION)):
            continue
        end = index
        while end + 1 < len(layers) and isinstance(layers[end + 1], AFTER_CONVOLUTION):
            end += 1
        linear = getattr(layer, "activation", None) is keras.activations.linear
        pooled_next = end + 1 < len(layers) and isinstance(layers[end + 1], POOLING)
        if isinstance(layer, CONVOLUTION) and end == index and linear and pooled_next:
            continue
        chosen.append(layers[end])
    return chosen


def _outputs(model: keras.Model, layers: list[keras.layers.Layer], inputs: np.ndarray) -> list:
    reach = keras.Model(model.inputs, [layer.output for layer in layers])
    outputs = reach([inputs], training=False)  # a list, as model.inputs is
    return [np.asarray(o, dtype=np.float32) for o in (outputs if len(layers) > 1 else [outputs])]


def _model_input(model: keras.Model, pixels: np.ndarray) -> np.ndarray:
    inputs = to_model_input(pixels)
    return inputs.reshape((inputs.shape[0], *model.inputs[0].shape[1:]))


def feature_maps(model: keras.Model, pixels: np.ndarray) -> list[LayerMaps]:
    """The first MAPS_SHOWN maps of each convolution block and pooling layer for one picture."""
    layers = map_layers(model)
    if not layers:
        return []
    outputs = _outputs(model, layers, _model_input(model, pixels))
    return [
        LayerMaps(layer.name, _describe(layer), output[0, :, :, :MAPS_SHOWN], output.shape[-1])
        for layer, output in zip(layers, outputs, strict=True)
    ]


def _describe(layer: keras.layers.Layer) -> str:
    shape = tuple(layer.output.shape[1:])
    return f"{type(layer).__name__}, {shape[0]}×{shape[1]}, {shape[2]} maps"


def first_layer(model: keras.Model) -> FirstLayer | None:
    """The first layer's weights as pictures: a convolution's filters, or a dense layer's
    784 weights per unit as 28x28 templates, with, for a network of dense layers only,
    each class's template (the product of the weight matrices: the network read as if
    it had no activation functions, the classic picture of what an MLP learned)."""
    for layer in model.layers:
        if isinstance(layer, CONVOLUTION):
            kernel = np.asarray(layer.get_weights()[0], dtype=np.float32)  # (kh, kw, in, out)
            return FirstLayer(layer.name, "filters", kernel[:, :, 0, :], None)
        if isinstance(layer, keras.layers.Dense):
            kernel = np.asarray(layer.get_weights()[0], dtype=np.float32)
            if kernel.shape[0] != 28 * 28:
                return None
            units = kernel.reshape(28, 28, -1)
            return FirstLayer(layer.name, "templates", units, _class_templates(model))
    return None


def _class_templates(model: keras.Model) -> np.ndarray | None:
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if any(isinstance(layer, CONVOLUTION) for layer in model.layers) or not dense:
        return None
    product = np.asarray(dense[0].get_weights()[0], dtype=np.float64)
    for layer in dense[1:]:
        kernel = np.asarray(layer.get_weights()[0], dtype=np.float64)
        if kernel.ndim != 2 or kernel.shape[0] != product.shape[1]:
            return None  # not one chain of dense layers (an imported graph with branches)
        product = product @ kernel
    if product.shape != (784, 10):
        return None
    return product.reshape(28, 28, 10).astype(np.float32)


def features(model: keras.Model, images: np.ndarray, chunk: int = 500) -> np.ndarray:
    """The learned representation of each picture: the input of the network's last layer
    (its last hidden layer's output), float32 (N, D), in chunks."""
    reach = keras.Model(model.inputs, model.layers[-1].input)
    parts = [
        np.asarray(reach([_model_input(model, images[start : start + chunk])], training=False))
        for start in range(0, len(images), chunk)
    ]
    return np.concatenate(parts).reshape(len(images), -1).astype(np.float32)


def stage_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Where the representation is read: the map layers, then every dense layer's output."""
    chosen = map_layers(model)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    return chosen + dense


def separation(
    model: keras.Model, images: np.ndarray, labels: np.ndarray, chunk: int = 200
) -> list[LayerSeparation]:
    """Layer by layer, how well the classes stand apart: the accuracy of the nearest class
    mean, with the means from the first half of the pictures and tested on the second.
    The pixels themselves come first, as the baseline. Pictures go through in chunks, in
    two passes (the means, then the test), so that memory stays that of one chunk: the
    first block of a CNN alone gives 100 kB per picture."""
    half = len(labels) // 2
    layers = stage_layers(model)
    reach = keras.Model(model.inputs, [layer.output for layer in layers]) if layers else None

    def stages(start: int, stop: int) -> list[np.ndarray]:
        pixels = images[start:stop]
        found = [pixels.reshape(len(pixels), -1).astype(np.float64) / 255.0]
        if reach is not None:
            outputs = reach([_model_input(model, pixels)], training=False)
            outputs = outputs if len(layers) > 1 else [outputs]
            found += [np.asarray(o, dtype=np.float64).reshape(len(pixels), -1) for o in outputs]
        return found

    sums: list[np.ndarray] | None = None
    for start in range(0, half, chunk):
        stop = min(start + chunk, half)
        one_hot = np.eye(10)[labels[start:stop]]  # (n, 10)
        chunk_sums = [one_hot.T @ values for values in stages(start, stop)]
        sums = (
            chunk_sums if sums is None else [a + b for a, b in zip(sums, chunk_sums, strict=True)]
        )
    counts = np.bincount(labels[:half], minlength=10)[:, None]
    means = [total / counts for total in sums or []]
    right = np.zeros(len(means))
    for start in range(half, len(labels), chunk):
        stop = min(start + chunk, len(labels))
        for index, (values, mean) in enumerate(zip(stages(start, stop), means, strict=True)):
            # Squared distances without an (n, 10, D) array: |x|^2 - 2 x.m + |m|^2.
            distances = (values**2).sum(1)[:, None] - 2 * values @ mean.T + (mean**2).sum(1)
            right[index] += (distances.argmin(axis=1) == labels[start:stop]).sum()
    names = [("pixels", "the 784 input values")] + [
        (layer.name, f"{type(layer).__name__}, {int(np.prod(layer.output.shape[1:])):,} values")
        for layer in layers
    ]
    tested = len(labels) - half
    return [
        LayerSeparation(name, kind, float(count / tested))
        for (name, kind), count in zip(names, right, strict=True)
    ]
