"""Views inside the network (issue 9): how faithful the "Why this answer?" maps are, and
what one costs through the inference service.

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


def run() -> dict:
    say(f"views: faithfulness of the maps on {IMAGES} test images, time per map")
    out = run_python(["-c", textwrap.dedent(PROBE.format(images=IMAGES))], timeout=1200)
    out["target_faithfulness"] = FAITHFULNESS_TARGET
    return out
