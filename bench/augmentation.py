"""What augmentation does to cnn-bn's test accuracy at the README's epochs.

cnn-bn's recipe (15 epochs, batch 64, cosine) trained twice through the server's
worker, as a job with no page open: once as it is, once with the mirror, a shift and
the grey box (flip, shift, erase). The two runs differ in nothing else, the seed
included; the mirrored run is also scored with the mirror at test time. ``--quick``
trains 1 epoch on 5,000 images instead, which checks the path, not the effect.
"""

from __future__ import annotations

from bench.accuracy import tensorflow_start_up
from bench.product import Server, say, train_unwatched
from fmnist.networks import NETWORKS
from fmnist.schema import TrainConfig

NETWORK = "cnn-bn"
AUGMENT = ("flip", "shift", "erase")
TIMEOUT_S = 60 * 60


def run(server: Server, browser, quick: bool = False) -> dict:
    # The server starts its training workers with its first page.
    tensorflow_start_up(server, browser)
    recipe = dict(NETWORKS[NETWORK].recipe) | ({"epochs": 1, "limit": 5000} if quick else {})
    results: dict = {"network": NETWORK, "recipe": recipe, "augment": list(AUGMENT)}
    for label, augment in (("plain", ()), ("augmented", AUGMENT)):
        config = TrainConfig(network=NETWORK, augment=augment, **recipe)
        say(f"{NETWORK} {label}: {recipe}, augment {list(augment) or 'none'}")
        record, seconds, _ = train_unwatched(server, config, TIMEOUT_S)
        results[label] = {
            "test_accuracy": record["test_accuracy"],
            "test_accuracy_mirrored": record.get("test_accuracy_mirrored"),
            "val_accuracy": record["history"][-1].get("val_accuracy"),
            "train_accuracy": record["history"][-1]["accuracy"],
            "wall_seconds": round(seconds, 1),
            "run_id": record["run_id"],
        }
        say(f"  test accuracy {record['test_accuracy']:.2%} in {seconds:.0f} s")
    plain, augmented = results["plain"], results["augmented"]
    results["test_accuracy_gain_points"] = round(
        100 * (augmented["test_accuracy"] - plain["test_accuracy"]), 2
    )
    return results
