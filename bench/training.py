"""Watched training: the Train page's job against the same job from the command line and
against the seeds' plain ``model.fit``, side by side in one run.

Five contenders per network, in a rotating order each round:

- ``watched by 1``: started from the Train page in Chromium, the page open all along;
- ``watched by 3``: the same, with the job's URL open in two more browser sessions;
- ``unwatched``: the same job submitted to the server's job store with no page open
  (what the server's worker does on its own: the product minus the browsers);
- ``command line``: ``python -m fmnist train ... --json`` in a subprocess (own models dir);
- ``plain Keras``: the seeds' ``model.fit(x / 255.0, y, batch_size=32, epochs=N,
  validation_split=0.1)`` on float arrays, in a subprocess (the benchmark stays TF-free).

Each contender gives the run's average images/s (run.json's ``images_per_second``:
training images x epochs / the epochs' seconds) and the steady figure of its last
epoch (training images / last epoch's seconds). Epoch seconds include validation
for all four, and the first epoch includes tracing for all four. The server is warmed
up first (its worker has TensorFlow and the dataset loaded), as a server that has been
up a while. For the watched jobs, the CPU-seconds of the server, the worker, the
browsers and the rest of the machine from Start to the saved run are recorded too:
here the browsers share the machine's cores with the training, which real users'
browsers do not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from bench.product import (
    ROOT,
    TRAINING_TIMEOUT_MS,
    CpuMeter,
    Server,
    close_page,
    environment,
    exceptions_on,
    find_run,
    median,
    new_page,
    open_page,
    say,
    start_training,
    train_unwatched,
    wait_saved,
    wait_worker_ready,
)
from fmnist.jobs.store import JobStore
from fmnist.schema import TrainConfig

CONTENDERS = ("watched by 1", "watched by 3", "unwatched", "command line", "plain Keras")


@dataclass(frozen=True)
class Case:
    network: str
    limit: int
    label: str  # the "Training images" option on the Train page
    epochs: int
    target: float  # watched / command line, at least


CASES = (
    Case("mlp", 10_000, "10,000", 3, 0.90),
    Case("cnn", 5_000, "5,000", 2, 0.95),
)


def figures(record: dict, seconds: float) -> dict:
    history = record["history"]
    return {
        "images_per_s": round(record["images_per_second"], 1),
        "last_epoch_images_per_s": round(record["train_images"] / history[-1]["seconds"], 1),
        "epoch_seconds": [round(m["seconds"], 3) for m in history],
        "train_images": record["train_images"],
        "wall_seconds": round(seconds, 1),
    }


def watched(server: Server, browser, case: Case, watchers: int) -> dict:
    """Start the job from the Train page; ``watchers - 1`` more sessions open its URL."""
    started = time.perf_counter()
    page = new_page(browser)
    others = []
    try:
        open_page(page, server.url, "/Train")
        meter = CpuMeter(server)
        job_url, job_id, _ = start_training(page, case.network, case.label, case.epochs)
        store = JobStore(server.store_path)
        for _ in range(watchers - 1):
            other = new_page(browser)
            other.goto(job_url, wait_until="commit")
            others.append(other)
        attached_at_epoch = None
        for other in others:
            other.get_by_text(f"Training {case.network}").first.wait_for()
        if others:
            job = store.get(job_id, with_events=False)
            # Whole epochs already done when every watcher showed the job.
            attached_at_epoch = job.epoch if job.state.active else case.epochs
        wait_saved(page)
        for other in others:
            wait_saved(other)
        # From Start to the saved run: who used the two cores while the job trained.
        cpu = meter.read()
        errors = sum(exceptions_on(p) for p in (page, *others))
    finally:
        for other in others:
            close_page(other)
        close_page(page)
    record = find_run(server.models, job_id)
    if record is None:
        raise RuntimeError(f"job {job_id} shows 'Saved as run' but has no run.json")
    result = figures(record, time.perf_counter() - started)
    result["config"] = record["config"]
    if others:
        result["epochs_done_when_all_watched"] = attached_at_epoch
    result["cpu_seconds"] = cpu
    result["page_exceptions"] = errors
    return result


def unwatched(server: Server, case: Case) -> dict:
    """The same job through the server's store and worker, with no browser at all."""
    # The settings the Train page sends for this form: the defaults plus these three.
    config = TrainConfig(network=case.network, epochs=case.epochs, limit=case.limit)
    record, seconds, cpu = train_unwatched(server, config, TRAINING_TIMEOUT_MS / 1000)
    result = figures(record, seconds)
    result["config"] = record["config"]
    result["cpu_seconds"] = cpu
    return result


def command_line(case: Case) -> dict:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-cli-") as models:
        done = subprocess.run(
            [
                sys.executable, "-m", "fmnist", "train", "--network", case.network,
                "--epochs", str(case.epochs), "--limit", str(case.limit), "--json",
            ],
            capture_output=True, text=True, cwd=ROOT, env=environment(Path(models)),
            timeout=900, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"python -m fmnist train failed:\n{done.stderr[-3000:]}")
        answer = json.loads(done.stdout)
        record = json.loads((Path(answer["path"]) / "run.json").read_text())
    result = figures(record, time.perf_counter() - started)
    result["config"] = record["config"]
    # The command's own figure is the run's: check that they agree.
    result["printed_images_per_s"] = answer["images_per_second"]
    return result


PLAIN_FIT = """
    import json, sys, time
    import keras
    from fmnist.data import load_dataset
    from fmnist.ml.networks import build_model

    network, limit, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    dataset = load_dataset(allow_download=False)
    x, y = dataset.x_train[:limit, ..., None], dataset.y_train[:limit]

    class Timer(keras.callbacks.Callback):
        seconds = []
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()
        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    keras.utils.set_random_seed(42)
    model = build_model(network)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = Timer()
    # What the seeds do: float arrays straight into fit, one batch per step.
    model.fit(x / 255.0, y, batch_size=32, epochs=epochs, validation_split=0.1,
              verbose=0, callbacks=[timer])
    train_images = int(len(y) * (1 - 0.1))  # Keras's own split
    print(json.dumps({"seconds": timer.seconds, "train_images": train_images}))
"""


def plain_keras(case: Case) -> dict:
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable, "-c", textwrap.dedent(PLAIN_FIT),
            case.network, str(case.limit), str(case.epochs),
        ],
        capture_output=True, text=True, cwd=ROOT, env=environment(),
        timeout=900, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"plain Keras fit failed:\n{done.stderr[-3000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    seconds, images = answer["seconds"], answer["train_images"]
    record = {
        "images_per_second": images * len(seconds) / sum(seconds),
        "train_images": images,
        "history": [{"seconds": s} for s in seconds],
    }
    return figures(record, time.perf_counter() - started)


def warm_up(server: Server, browser) -> None:
    """Let the server start its training worker (TensorFlow, the dataset) and its inference
    service before anything is timed, as on a server that has been up a while."""
    page = new_page(browser)
    try:
        for path in ("/", "/Train"):
            open_page(page, server.url, path)
    finally:
        close_page(page)
    wait_worker_ready(server)
    time.sleep(3.0)  # the worker loads the dataset after naming its devices
    say("server warm: its training worker and inference service are up")


def run(server: Server, browser, rounds: int) -> dict:
    warm_up(server, browser)
    results: dict = {}
    for case in CASES:
        say(
            f"{case.network}: {case.limit:,} images x {case.epochs} epochs, batch 32, "
            f"{rounds} round(s) of {len(CONTENDERS)} contenders"
        )
        samples: dict[str, list[dict]] = {name: [] for name in CONTENDERS}
        order = list(CONTENDERS)
        for number in range(rounds):
            for name in order:
                if name == "watched by 1":
                    sample = watched(server, browser, case, 1)
                elif name == "watched by 3":
                    sample = watched(server, browser, case, 3)
                elif name == "unwatched":
                    sample = unwatched(server, case)
                elif name == "command line":
                    sample = command_line(case)
                else:
                    sample = plain_keras(case)
                samples[name].append(sample)
                cpu = f"; CPU-s {sample['cpu_seconds']}" if "cpu_seconds" in sample else ""
                say(
                    f"  round {number + 1}, {name:<13} {sample['images_per_s']:>8,.0f} images/s"
                    f" (last epoch {sample['last_epoch_images_per_s']:,.0f});"
                    f" epochs {sample['epoch_seconds']} s; {sample['wall_seconds']:.0f} s in all"
                    + cpu
                )
            order = order[1:] + order[:1]  # no contender always runs after the same one
        results[case.network] = summarise(case, samples)
    return results


def summarise(case: Case, samples: dict[str, list[dict]]) -> dict:
    configs = {
        json.dumps(s["config"], sort_keys=True)
        for runs in samples.values()
        for s in runs
        if "config" in s
    }
    best, medians = {}, {}
    for name, runs in samples.items():
        for key in ("images_per_s", "last_epoch_images_per_s"):
            best[(name, key)] = max(s[key] for s in runs)
            medians[(name, key)] = median([s[key] for s in runs])

    def ratio(table: dict, a: str, b: str, key: str) -> float:
        return round(table[(a, key)] / table[(b, key)], 3)

    summary = {
        "network": case.network,
        "images": case.limit,
        "epochs": case.epochs,
        "target_watched_over_command_line": case.target,
        "same_config_everywhere": len(configs) == 1,
        "rounds": len(samples[CONTENDERS[0]]),
        "best": {
            name: {
                key: round(best[(name, key)]) for key in ("images_per_s", "last_epoch_images_per_s")
            }
            for name in CONTENDERS
        },
        "median": {
            name: {
                key: round(medians[(name, key)])
                for key in ("images_per_s", "last_epoch_images_per_s")
            }
            for name in CONTENDERS
        },
        # Who used the CPU from Start to the saved run (medians): on this machine the
        # browsers share the cores with the training, as they would not for real users.
        "cpu_seconds_median": {
            name: {
                group: round(median([s["cpu_seconds"][group] for s in runs]), 1)
                for group in runs[0]["cpu_seconds"]
            }
            for name, runs in samples.items()
            if "cpu_seconds" in runs[0]
        },
        "samples": samples,
    }
    for key in ("images_per_s", "last_epoch_images_per_s"):
        summary[f"unwatched_over_command_line_{key}"] = ratio(
            best, "unwatched", "command line", key
        )
        for watchers in ("watched by 1", "watched by 3"):
            tag = watchers.split()[-1]
            summary[f"watched{tag}_over_command_line_{key}"] = ratio(
                best, watchers, "command line", key
            )
            summary[f"median_watched{tag}_over_command_line_{key}"] = ratio(
                medians, watchers, "command line", key
            )
        summary[f"command_line_over_plain_keras_{key}"] = ratio(
            best, "command line", "plain Keras", key
        )
    return summary
