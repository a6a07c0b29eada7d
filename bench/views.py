"""Views inside the network (issue 9): how faithful the "Why this answer?" maps are, what
one costs through the inference service, and what the per-epoch confusion matrices cost.

Faithfulness: on test images, the predicted class's probability drop when the 20% most
salient pixels of a map are blanked, over the drop when as many random pixels are. A
map that points at what the answer depends on scores well above 1. Measured on the
shipped cnn-bn (Grad-CAM and integrated gradients) and on the tutorial mlp trained here
for 2 epochs (integrated gradients: it has no convolution).
"""

from __future__ import annotations

import textwrap

from bench.library import run_python
from bench.product import say

IMAGES = 500
FAITHFULNESS_TARGET = 2.0  # "far more than random": at least twice the random drop
MAPS = ("cnn-bn, Grad-CAM", "cnn-bn, integrated gradients", "mlp, integrated gradients")

PROBE = """
    import json, time
    import keras, numpy as np
    from fmnist import inference_client, runs
    from fmnist.data import load_dataset
    from fmnist.evaluation import to_model_input
    from fmnist.inference_protocol import AUTO, INTEGRATED_GRADIENTS, RunModel
    from fmnist.ml import saliency
    from fmnist.ml.inference import load_run_model
    from fmnist.ml.networks import build_model

    images = {images}
    ds = load_dataset(allow_download=False)
    best = runs.best_run()
    shipped = load_run_model(best["run_id"])
    keras.utils.set_random_seed(0)
    mlp = build_model("mlp")
    mlp.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    mlp.fit(to_model_input(ds.x_train), ds.y_train, epochs=2, batch_size=128, verbose=0)
    out = {{"images": images, "shipped": best["run_id"]}}
    for name, model, method in (("cnn-bn, Grad-CAM", shipped, AUTO),
                                ("cnn-bn, integrated gradients", shipped, INTEGRATED_GRADIENTS),
                                ("mlp, integrated gradients", mlp, AUTO)):
        salient, random = saliency.faithfulness(model, ds.x_test[:images], method)
        out[name] = {{"salient_drop": salient, "random_drop": random,
                      "ratio": salient / random}}
    ref = RunModel.of(best)
    inference_client.predict(ref, ds.x_test[:1])  # the model loaded in the service
    for method in (AUTO, INTEGRATED_GRADIENTS):
        inference_client.explain(ref, ds.x_test[0], 9, method)  # traced once
        times = []
        for i in range(1, 21):
            started = time.perf_counter()
            inference_client.explain(ref, ds.x_test[i], int(ds.y_test[i]), method)
            times.append(time.perf_counter() - started)
        out["service_ms_" + method] = round(1000 * float(np.median(times)), 1)
    inference_client.shutdown()
    print(json.dumps(out))
"""

# The per-epoch confusion matrices: the callback scores the validation images itself (the
# matrix comes from the same forward pass); against the epoch, and against Keras's own
# validation pass (model.evaluate) on the same images.
MATRIX_PROBE = """
    import json, time
    import numpy as np
    from fmnist.data import load_dataset
    from fmnist.ml import engine
    from fmnist.schema import TrainConfig

    class Sink:
        def __init__(self): self.epochs = []
        def phase(self, text): pass
        def started(self, device, batches): pass
        def batch(self, done, rate, eta, point): pass
        def epoch_end(self, metrics): self.epochs.append(metrics)
        def checkpoint(self, model, epoch): pass
        def evaluating(self): pass
        def should_stop(self): return False

    ds = load_dataset(allow_download=False)
    config = TrainConfig(network="cnn", epochs={epochs}, limit={limit})
    sink = Sink()
    model, record = engine.train(config, ds, sink)
    _, _, x_val, y_val = engine.split_data(ds, config)
    inputs = x_val[..., None].astype("float32") / 255.0
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.evaluate(inputs, y_val, batch_size=256, verbose=0)  # traced once
    keras_seconds = []
    for _ in range(3):
        started = time.perf_counter()
        model.evaluate(inputs, y_val, batch_size=256, verbose=0)
        keras_seconds.append(time.perf_counter() - started)
    later = sink.epochs[1:]  # the first epoch also traces the scoring
    print(json.dumps({{
        "network": "cnn", "train_images": record.train_images, "validation_images": len(y_val),
        "epoch_seconds": float(np.median([m.seconds for m in later])),
        "scoring_with_matrix_seconds": float(np.median([m.val_seconds for m in later])),
        "keras_validation_seconds": float(np.median(keras_seconds)),
    }}))
"""
MATRIX_TARGET_PERCENT = 3.0


def matrix_cost(epochs: int = 3, limit: int = 20_000) -> dict:
    say(f"views: per-epoch confusion matrices, cnn {limit:,} images x {epochs} epochs")
    probe = textwrap.dedent(MATRIX_PROBE.format(epochs=epochs, limit=limit))
    out = run_python(["-c", probe], timeout=1200)
    epoch = out["epoch_seconds"]
    out["scoring_percent_of_epoch"] = 100 * out["scoring_with_matrix_seconds"] / epoch
    out["keras_validation_percent_of_epoch"] = 100 * out["keras_validation_seconds"] / epoch
    out["matrix_cost_percent_of_epoch"] = (
        out["scoring_percent_of_epoch"] - out["keras_validation_percent_of_epoch"]
    )
    out["target_percent"] = MATRIX_TARGET_PERCENT
    return out


def run() -> dict:
    say(f"views: faithfulness of the maps on {IMAGES} test images, time per map")
    out = run_python(["-c", textwrap.dedent(PROBE.format(images=IMAGES))], timeout=1200)
    out["target_faithfulness"] = FAITHFULNESS_TARGET
    out["epoch_matrices"] = matrix_cost()
    return out
