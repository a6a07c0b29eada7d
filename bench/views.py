"""Views inside the network (issue 9): how faithful the "Why this answer?" maps are, what
one costs through the inference service, and what the per-epoch confusion matrices and
weight statistics cost.

Faithfulness: on test images, the predicted class's probability drop when the 20% most
salient pixels of a map are blanked, over the drop when as many random pixels are. A
map that points at what the answer depends on scores well above 1. Measured on the
shipped cnn-bn (Grad-CAM and integrated gradients) and on the tutorial mlp trained here
for 2 epochs (integrated gradients: it has no convolution).
"""

from __future__ import annotations

import statistics
import textwrap

from bench.library import run_python
from bench.product import VIEWPORT, Server, say

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
    from bench.product import QuietSink

    ds = load_dataset(allow_download=False)
    config = TrainConfig(network="cnn", epochs={epochs}, limit={limit})
    sink = QuietSink()
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
    from fmnist.ml import health
    probe = engine.split_data(ds, config)
    health.layer_health(model, probe[0][:256], probe[1][:256])  # traced once
    health_seconds = []
    for _ in range(3):
        started = time.perf_counter()
        health.layer_health(model, probe[0][:256], probe[1][:256])
        health_seconds.append(time.perf_counter() - started)
    later = sink.epochs[1:]  # the first epoch also traces the scoring
    print(json.dumps({{
        "network": "cnn", "train_images": record.train_images, "validation_images": len(y_val),
        "epoch_seconds": float(np.median([m.seconds for m in later])),
        "scoring_with_matrix_seconds": float(np.median([m.val_seconds for m in later])),
        "keras_validation_seconds": float(np.median(keras_seconds)),
        "health_seconds": float(np.median(health_seconds)),
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
    out["health_percent_of_epoch"] = 100 * out["health_seconds"] / epoch
    out["target_percent"] = MATRIX_TARGET_PERCENT
    return out


def run() -> dict:
    say(f"views: faithfulness of the maps on {IMAGES} test images, time per map")
    out = run_python(["-c", textwrap.dedent(PROBE.format(images=IMAGES))], timeout=1200)
    out["target_faithfulness"] = FAITHFULNESS_TARGET
    out["epoch_matrices"] = matrix_cost()
    return out


# -- each view drawn for one picture, on the Predict page, in Chromium (warm) -------------------

VIEW_TARGET_MS = 300


def page_times(server: Server, browser, repeat: int = 3) -> dict:
    """From the click to the view drawn (pages.timed's clock), each view already computed
    once for another picture (warm: the service has traced the model's functions)."""
    from bench import pages

    say(f"views: time to draw each view for one picture on Predict, {repeat} round(s)")
    results: dict[str, list[float]] = {}
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(pages.PROBE)
    page = context.new_page()
    try:
        page.goto(server.url + "/Predict")
        page.wait_for_selector("h1", timeout=pages.TIMEOUT_S * 1000)
        pages.settle(page)

        def tab(name: str) -> None:
            page.get_by_role("tab", name=name).click()
            pages.settle(page)

        def record(name: str, act) -> None:
            pages.settle(page)
            page.evaluate("() => { window.__timing.armed = true; window.__timing.input = 0; }")
            act()
            # A pen stroke or a chart click changes no element at once: wait for the
            # server's answer before waiting for the quiet second that ends the timing.
            page.wait_for_function(
                "() => window.__timing.input && window.__timing.lastMessage > "
                "window.__timing.input",
                timeout=pages.TIMEOUT_S * 1000,
            )
            state = pages.settle(page)
            results.setdefault(name, []).append(state["done"] - state["input"])

        plus = page.get_by_test_id("stNumberInputStepUp")
        tab("🎲 A test image")
        page.get_by_text("🔎 Why this answer?").click()
        pages.settle(page)
        for _ in range(repeat):  # the next test image: its prediction and its map
            record("Why? (integrated gradients): next test image", lambda: plus.click())
        page.get_by_text("Grad-CAM: which regions").click()
        pages.settle(page)
        for _ in range(repeat):
            record("Why? (Grad-CAM): next test image", lambda: plus.click())
        page.get_by_text("🔎 Why this answer?").click()  # closed again
        pages.settle(page)
        page.get_by_text("🧠 Inside the network").click()
        pages.settle(page)
        for _ in range(repeat):  # every layer's maps, the filters, the separation (cached)
            record("Inside the network: next test image", lambda: plus.click())
        page.get_by_text("🧠 Inside the network").click()
        pages.settle(page)

        tab("🗺️ Learned space")
        chart = page.locator(".st-key-predict_learned_space canvas")
        clicked: set[int] = set()
        for _ in range(repeat):
            x, y = pages.map_point(page, chart, clicked)  # another point each time
            record("Learned space: click a point", lambda x=x, y=y: page.mouse.click(x, y))

        tab("✏️ Draw")
        canvas = page.get_by_role("tabpanel", name="✏️ Draw").locator("canvas").last
        box = canvas.bounding_box()
        draw(page, box, 0.2)  # the first stroke: the answer appears
        pages.settle(page)
        for number in range(repeat):
            record("Draw: one more stroke", lambda n=number: draw(page, box, 0.4 + 0.15 * n))
    finally:
        context.close()
    medians = {name: round(statistics.median(times)) for name, times in results.items()}
    for name, value in medians.items():
        say(f"  {name}: {value} ms")
    return {"done_ms_median": medians, "runs": results, "target_ms": VIEW_TARGET_MS}


def draw(page, box: dict, x: float) -> None:
    """A vertical pen stroke at ``x`` (a fraction of the canvas's width)."""
    left = box["x"] + x * box["width"]
    page.mouse.move(left, box["y"] + 0.1 * box["height"])
    page.mouse.down()
    for step in range(1, 9):
        page.mouse.move(left, box["y"] + (0.1 + 0.1 * step) * box["height"])
    page.mouse.up()
