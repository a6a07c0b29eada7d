"""Time to accuracy: a network's recipe started from the Train page in Chromium, timed from
the click on Start to "Saved as run" on the page, and its test accuracy from run.json.

The Train page's "📋 Recipe" button fills the form with the recipe of the README's
accuracy table (fmnist.networks), so the benchmark clicks what a user clicks. The server
is warm (its worker has TensorFlow and the dataset loaded): TensorFlow's start-up is
measured apart, as the seconds from a cold server's first page to its worker naming its
devices. ``make bench`` (``--only accuracy``) trains the ``fast`` recipe, the 3-minute
target; ``--accuracy`` trains every network's recipe, which takes most of an hour here.
"""

from __future__ import annotations

import re
import time

from bench.product import (
    CpuMeter,
    Server,
    close_page,
    exceptions_on,
    find_run,
    new_page,
    open_page,
    say,
    select_option,
    train_unwatched,
    wait_saved,
    wait_worker_ready,
)
from fmnist import hardware
from fmnist.networks import NETWORKS
from fmnist.schema import TrainConfig

SPEED_RECIPE = "fast"
TARGETS = (0.93, 0.94, 0.945)
RECIPE_TIMEOUT_MS = 60 * 60 * 1000


def tensorflow_start_up(server: Server, browser) -> float:
    """Seconds from a cold server's first page to its training worker naming its devices:
    the start-up every first training of a fresh server waits for, then never again."""
    started = time.perf_counter()
    page = new_page(browser)
    try:
        open_page(page, server.url, "/Train")
        # With the page open: closed at once, its first run may end before it starts the
        # server's workers, and none would start.
        wait_worker_ready(server)
        seconds = time.perf_counter() - started
    finally:
        close_page(page)
    time.sleep(3.0)  # the worker loads the dataset after naming its devices
    return seconds


def train_recipe(server: Server, browser, network: str) -> dict:
    """Pick ``network`` on the Train page, press "📋 Recipe" and Start; wait for the
    saved run. The wall time runs from the click on Start to "Saved as run" on the page."""
    page = new_page(browser)
    try:
        open_page(page, server.url, "/Train")
        select_option(page, "Network", re.compile(rf"^{re.escape(network)} —"))
        parameters = f"{NETWORKS[network].parameters:,} parameters"
        page.get_by_text(parameters).wait_for()  # the page has switched networks
        page.get_by_role("button", name="📋 Recipe").click()
        page.wait_for_timeout(1500)  # the rerun that fills the form
        meter = CpuMeter(server)
        started = time.perf_counter()
        page.get_by_role("button", name="Start training").click()
        page.wait_for_url(re.compile(r"[?&]job="), timeout=60_000)
        job_id = re.search(r"[?&]job=([^&]+)", page.url).group(1)
        wait_saved(page, RECIPE_TIMEOUT_MS)
        wall = time.perf_counter() - started
        cpu = meter.read()
        exceptions = exceptions_on(page)
    finally:
        close_page(page)
    record = find_run(server.models, job_id)
    if record is None:
        raise RuntimeError(f"the {network} recipe's job {job_id} saved no run")
    expected = TrainConfig(network=network, **NETWORKS[network].recipe).to_dict()
    if not hardware.computes_16_bit(hardware.describe_devices()):
        expected.pop("mixed_precision")  # the page leaves it unticked where it would be emulated
    differing = {
        key: (value, record["config"].get(key))
        for key, value in expected.items()
        if key in record["config"] and record["config"][key] != _json(value)
    }
    if differing:
        raise RuntimeError(f"the page did not train the recipe: {differing}")
    config = record["config"]
    return {
        "network": network,
        "parameters": record["parameters"],
        "epochs": record["epochs_completed"],
        "batch": config["batch_size"],
        "learning_rate": config["learning_rate"],
        "schedule": config["lr_schedule"],
        "label_smoothing": config.get("label_smoothing", 0.0),
        "augment": list(config.get("augment", [])),
        "validation_split": config["validation_split"],
        "mixed_precision": record.get("mixed_precision", False),
        "test_accuracy": record["test_accuracy"],
        # With the mirror too (test-time augmentation), for recipes trained on mirrors.
        "test_accuracy_mirrored": record.get("test_accuracy_mirrored"),
        "wall_seconds": round(wall, 1),
        "train_seconds": record["train_seconds"],
        "evaluate_seconds": record["evaluate_seconds"],
        "device": record["device"],
        "run_id": record["run_id"],
        "images_per_second": record["images_per_second"],
        "epoch_seconds": [round(m["seconds"], 1) for m in record["history"]],
        "cpu_seconds": cpu,
        "page_exceptions": exceptions,
        "reached": {
            f"{t:.1%}": max(record["test_accuracy"], record.get("test_accuracy_mirrored") or 0) >= t
            for t in TARGETS
        },
    }


def recipe_unwatched(server: Server, network: str) -> dict:
    """The same recipe submitted to the server's job store with no page open: the server's
    worker alone, as when the user's browser runs on another machine (here the benchmark's
    Chromium shares the server's 2 cores, and TensorFlow's two threads wait for each other
    whenever one of them is pre-empted)."""
    config = TrainConfig(network=network, **NETWORKS[network].recipe)
    record, wall, cpu = train_unwatched(server, config, RECIPE_TIMEOUT_MS / 1000)
    return {
        "test_accuracy": record["test_accuracy"],
        "wall_seconds": round(wall, 1),
        "train_seconds": record["train_seconds"],
        "epoch_seconds": [round(m["seconds"], 1) for m in record["history"]],
        "cpu_seconds": cpu,
    }


def _json(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def run(server: Server, browser, networks: tuple[str, ...] = (SPEED_RECIPE,)) -> dict:
    start_up = round(tensorflow_start_up(server, browser), 1)
    results: dict = {"tensorflow_start_up_seconds": start_up}
    say(f"TensorFlow start-up (cold server to a ready worker): {start_up} s")
    for network in networks:
        say(f"{network}: training its recipe {NETWORKS[network].recipe} from the Train page")
        result = train_recipe(server, browser, network)
        say(
            f"  {network}: test accuracy {result['test_accuracy']:.2%} in "
            f"{result['wall_seconds']:.0f} s from Start to the saved run "
            f"({result['train_seconds']:.0f} s training; epochs {result['epoch_seconds']} s; "
            f"CPU-seconds {result['cpu_seconds']})"
        )
        if network == SPEED_RECIPE:
            alone = recipe_unwatched(server, network)
            say(
                f"  {network}, no page open: {alone['test_accuracy']:.2%} in "
                f"{alone['wall_seconds']:.0f} s (epochs {alone['epoch_seconds']} s; "
                f"CPU-seconds {alone['cpu_seconds']})"
            )
            result["unwatched"] = alone
        results[network] = result
    return results
