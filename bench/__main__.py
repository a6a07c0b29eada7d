"""Benchmarks: every figure is a ratio of two things measured side by side in this run.

    python -m bench             everything (about 30 minutes on 2 CPU cores)
    python -m bench --quick     skip the accuracy table (about 12 minutes)

Results are printed and written to bench/output/results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "bench" / "output"
REPEATS = 3
SPEED_ROUNDS = 5


def run_python(code: str) -> dict:
    """Run code in a fresh interpreter (cold caches) and return the JSON it prints last."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_dataset_load() -> dict:
    code = """
        import json, resource, time
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        from fmnist.data import load_dataset
        dataset = load_dataset(allow_download=False)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"seconds": seconds, "array_mb": dataset.nbytes / 1e6,
                          "peak_rss_growth_mb": (after - before) / 1e3}))
    """
    samples = [run_python(code) for _ in range(REPEATS)]
    return {
        "load_seconds_median": statistics.median(s["seconds"] for s in samples),
        "arrays_mb": samples[0]["array_mb"],
        "peak_rss_growth_mb": statistics.median(s["peak_rss_growth_mb"] for s in samples),
    }


def bench_explore_render() -> dict:
    """The Explore page's first full render against an empty page, both cold, in AppTest."""
    # The page is reached as a browser does: app.py is the entry point (so the
    # sidebar links resolve) and switch_page runs the page without running app.py.
    code = """
        import json, sys, time
        from streamlit.testing.v1 import AppTest
        app = AppTest.from_{kind}({target!r}, default_timeout=300)
        {switch}
        started = time.perf_counter()
        app.run()
        assert not app.exception, app.exception
        print(json.dumps({{"seconds": time.perf_counter() - started,
                           "tensorflow_imported": "tensorflow" in sys.modules}}))
    """
    explore, empty = [], []
    for _ in range(REPEATS):
        explore.append(
            run_python(
                code.format(
                    kind="file",
                    target=str(ROOT / "app.py"),
                    switch="app.switch_page('pages/1_Explore.py')",
                )
            )
        )
        empty.append(
            run_python(
                code.format(
                    kind="string",
                    target="import streamlit as st\nst.title('empty')",
                    switch="",
                )
            )
        )
    explore_s = statistics.median(r["seconds"] for r in explore)
    empty_s = statistics.median(r["seconds"] for r in empty)
    return {
        "explore_first_render_s": explore_s,
        "empty_page_render_s": empty_s,
        "ratio_explore_over_empty": explore_s / empty_s,
        "explore_imports_tensorflow": any(r["tensorflow_imported"] for r in explore),
    }


def _epoch_rate(model, fit, images: int) -> float:
    """Images per second of one epoch of ``fit``, timed from Keras's epoch callbacks."""
    import keras

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.started

    timer = Timer()
    fit(model, [timer])
    return images / timer.seconds


def _speed_row(name: str, x, y, x_float, batch_size: int = 32) -> dict:
    """One network: engine with progress, engine without it, and the seeds' plain fit."""
    import keras
    import numpy as np

    from fmnist.networks import build_model
    from fmnist.training import (
        TrainConfig,
        TrainingJob,
        _progress_callback_class,
        auto_steps_per_execution,
        make_pipeline,
    )

    batches = int(np.ceil(len(y) / batch_size))
    steps = auto_steps_per_execution(batches)
    pipeline = make_pipeline(x, y, batch_size, shuffle_seed=0)
    # A real job, so the measured cost includes its lock and live-curve points.
    job = TrainingJob(TrainConfig(network=name, epochs=1, batch_size=batch_size))

    def compiled(steps_per_execution: int) -> keras.Model:
        keras.utils.set_random_seed(0)
        model = build_model(name)
        model.compile(
            optimizer="adam",
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            steps_per_execution=steps_per_execution,
        )
        return model

    def engine_with_progress(model, callbacks):
        progress = _progress_callback_class()(job, batches)
        model.fit(pipeline, epochs=1, verbose=0, shuffle=False, callbacks=[*callbacks, progress])

    def engine_without_progress(model, callbacks):
        model.fit(pipeline, epochs=1, verbose=0, shuffle=False, callbacks=callbacks)

    def seed_fit(model, callbacks):
        # What the seeds do: float arrays straight into fit, one batch per step.
        model.fit(x_float, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=callbacks)

    contenders = {
        "progress": (compiled(steps), engine_with_progress),
        "plain": (compiled(steps), engine_without_progress),
        "seed": (compiled(1), seed_fit),
    }
    rates: dict[str, list[float]] = {key: [] for key in contenders}
    # Interleave the three, round after round and in a rotating order, so that
    # machine noise hits all of them alike. Interference only ever slows an
    # epoch down, so each contender's fastest epoch is its least noisy figure;
    # the medians are kept beside them.
    for model, fit in contenders.values():
        fit(model, [])  # warm up: the first epoch traces the training function
    order = list(contenders)
    for _ in range(SPEED_ROUNDS):
        for key in order:
            model, fit = contenders[key]
            rates[key].append(_epoch_rate(model, fit, len(y)))
        order = order[1:] + order[:1]  # no contender always runs after the same one
    engine, plain, seed = (max(rates[k]) for k in ("progress", "plain", "seed"))
    medians = {k: statistics.median(v) for k, v in rates.items()}
    call_seconds = _callback_seconds_per_call(job, batches, steps)
    calls_per_epoch = math.ceil(batches / steps)
    return {
        "network": name,
        "batch_size": batch_size,
        "images_per_epoch": len(y),
        "steps_per_execution": steps,
        "engine_images_per_s": round(engine),
        "engine_without_progress_images_per_s": round(plain),
        "seed_fit_images_per_s": round(seed),
        "progress_cost_ratio": round(engine / plain, 3),
        "engine_over_seed_ratio": round(engine / seed, 2),
        "median_progress_cost_ratio": round(medians["progress"] / medians["plain"], 3),
        "median_engine_over_seed_ratio": round(medians["progress"] / medians["seed"], 2),
        # The callback's own time, measured alone: a floor under the ratio's noise.
        "callback_us_per_call": round(call_seconds * 1e6, 1),
        "callback_share_of_epoch": round(call_seconds * calls_per_epoch * engine / len(y), 5),
    }


def _callback_seconds_per_call(job, batches: int, steps: int, epochs: int = 200) -> float:
    """Seconds per on_train_batch_end of the progress callback, called as Keras calls it:
    once per ``steps`` batches, with tensor logs, a new epoch every ``batches``."""
    import tensorflow as tf

    from fmnist.training import _progress_callback_class

    callback = _progress_callback_class()(job, batches)
    logs = {"loss": tf.constant(0.5), "accuracy": tf.constant(0.8)}
    calls = 0
    started = time.perf_counter()
    for epoch in range(epochs):
        callback.on_epoch_begin(epoch)
        for batch in range(steps - 1, batches, steps):
            callback.on_train_batch_end(batch, logs)
            calls += 1
    return (time.perf_counter() - started) / calls


def bench_training_speed(conv_limit: int) -> list[dict]:
    """Dense networks on all 60,000 images (an epoch lasts seconds); CNNs on a subset."""
    from fmnist.data import load_dataset
    from fmnist.networks import NETWORKS

    dataset = load_dataset(allow_download=False)
    rows = []
    for name in NETWORKS:
        limit = conv_limit if name.startswith("cnn") else len(dataset.y_train)
        x, y = dataset.x_train[:limit], dataset.y_train[:limit]
        x_float = x.astype("float32") / 255.0  # what the seeds do before model.fit
        rows.append(_speed_row(name, x, y, x_float))
        print(f"  {rows[-1]}", flush=True)
    return rows


def bench_accuracy() -> list[dict]:
    """Each network for the README's number of epochs on all 60,000 images, through the engine."""
    from fmnist.data import load_dataset
    from fmnist.networks import NETWORKS
    from fmnist.training import TrainConfig, TrainingJob

    dataset = load_dataset(allow_download=False)
    rows = []
    with tempfile.TemporaryDirectory() as models_dir:
        for name, network in NETWORKS.items():
            cfg = TrainConfig(
                network=name,
                epochs=network.reference_epochs,
                batch_size=network.reference_batch_size,
                lr_schedule=network.reference_lr_schedule,
                seed=42,
            )
            started = time.perf_counter()
            progress = TrainingJob(cfg).run(dataset, models_dir)
            rows.append(
                {
                    "network": name,
                    "epochs": network.reference_epochs,
                    "batch_size": network.reference_batch_size,
                    "lr_schedule": network.reference_lr_schedule,
                    "test_accuracy": round(progress.test_accuracy or 0.0, 4),
                    "minutes": round((time.perf_counter() - started) / 60, 1),
                    "state": progress.state,
                }
            )
            print(f"  {rows[-1]}", flush=True)
    return rows


def bench_predict_latency() -> dict:
    """One picture through cnn: the app's path against model.predict, median of many."""
    import numpy as np

    from fmnist import evaluation
    from fmnist.data import load_dataset
    from fmnist.ml.inference import predict_probabilities
    from fmnist.ml.networks import build_model

    picture = load_dataset(allow_download=False).x_test[:1]
    model = build_model("cnn")

    def median_ms(call, repeats: int) -> float:
        for _ in range(5):
            call()
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            call()
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    ours = median_ms(lambda: predict_probabilities(model, picture), 300)
    inputs = evaluation.to_model_input(picture)
    keras_predict = median_ms(lambda: model.predict(inputs, verbose=0), 100)
    batch = load_dataset(allow_download=False).x_test[:16]
    sixteen = median_ms(lambda: predict_probabilities(model, batch), 100)
    np.testing.assert_allclose(
        predict_probabilities(model, picture),
        model.predict(inputs, verbose=0),
        rtol=1e-4,
        atol=1e-6,
    )
    return {
        "one_picture_ms_median": round(ours, 2),
        "model_predict_ms_median": round(keras_predict, 2),
        "ratio_predict_over_ours": round(keras_predict / ours, 1),
        "sixteen_pictures_one_call_ms_median": round(sixteen, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="skip the accuracy table")
    parser.add_argument(
        "--conv-limit", type=int, default=20_000, help="images per speed epoch of the CNNs"
    )
    args = parser.parse_args()
    results: dict = {}
    steps = [
        ("dataset_load", bench_dataset_load),
        ("explore_render", bench_explore_render),
        ("predict_latency", bench_predict_latency),
        ("training_speed", lambda: bench_training_speed(args.conv_limit)),
    ]
    if not args.quick:
        steps.append(("accuracy", bench_accuracy))
    for name, step in steps:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        results[name] = step()
        print(json.dumps(results[name], indent=1), flush=True)
        print(f"   ({time.perf_counter() - started:.0f}s)", flush=True)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "results.json").write_text(json.dumps(results, indent=1))
    print(f"written to {OUTPUT / 'results.json'}")


if __name__ == "__main__":
    main()
