"""The training engine's speed against the seeds' plain ``model.fit``, and what fetching
batches on the device (fmnist.ml.engine.TrainingFeed) gives over tf.data's batches.

Three contenders per case, each a fresh process, in a rotating order each round:

- ``device feed``: ``engine.train`` as the worker runs it (the images whole on the
  device, batches gathered, scaled and augmented inside the compiled step);
- ``tf.data``: the same, with tf.data making the batches on the host (``feed_on_device=False``);
- ``plain Keras``: the seeds' ``model.fit(x / 255.0, y, batch_size=32, ...)`` (bench/training.py),
  for the cases at the seeds' batch size of 32. Where the CPU has bfloat16 arithmetic, a
  "cnn, mixed precision" case trains with the Train page's "Mixed precision" ticked; it is
  compared with the ``cnn`` case's float32 fit (the seeds' fit knows no mixed precision).

Figures are run averages (training images x epochs / the epochs' seconds, validation and
the first epoch's tracing included for all) and the last epoch's rate. Library-level: no
server, no browser (bench/training.py measures the same jobs through the Train page).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from bench.product import ROOT, environment, median, say
from bench.training import PLAIN_FIT
from fmnist import hardware

CASES = {
    # The seeds' settings, as in bench/training.py.
    "mlp": {"network": "mlp", "epochs": 3, "limit": 10_000, "batch_size": 32},
    "cnn": {"network": "cnn", "epochs": 2, "limit": 5_000, "batch_size": 32},
    # What users train: all the images (54,000 after the validation tenth).
    "mlp, all images": {"network": "mlp", "epochs": 3, "limit": 60_000, "batch_size": 32},
    # The time-to-accuracy recipe with its augmentation, on a fifth of the images.
    "fast, augmented": {
        "network": "fast", "epochs": 2, "limit": 12_000, "batch_size": 128,
        "learning_rate": 0.004, "lr_schedule": "one-cycle", "label_smoothing": 0.1,
        "augment": ["flip", "shift", "erase"],
    },
}  # fmt: skip
if hardware.cpu_computes_bfloat16():
    # The seeds' cnn with the Train page's "Mixed precision" ticked: bfloat16 arithmetic,
    # which this CPU has (the seeds' fit stays float32, as they wrote it).
    CASES["cnn, mixed precision"] = {**CASES["cnn"], "mixed_precision": True}
CONTENDERS = ("device feed", "tf.data", "plain Keras")

ENGINE = """
    import json, sys
    from fmnist.data import load_dataset
    from fmnist.ml import engine
    from fmnist.schema import TrainConfig
    from bench.product import QuietSink

    settings, on_device = json.loads(sys.argv[1]), sys.argv[2] == "device"
    model, record = engine.train(
        TrainConfig(**settings), load_dataset(allow_download=False), QuietSink(),
        feed_on_device=on_device,
    )
    print(json.dumps({"seconds": [m["seconds"] for m in record.history],
                      "train_images": record.train_images, "device": record.device,
                      "test_accuracy": record.test_accuracy,
                      "mixed_precision": record.mixed_precision}))
"""


def run_python(arguments: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, *arguments], capture_output=True, text=True, cwd=ROOT,
        env=environment(), timeout=900, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def contender(name: str, settings: dict) -> dict:
    if name == "plain Keras":
        answer = run_python(
            ["-c", textwrap.dedent(PLAIN_FIT), settings["network"], str(settings["limit"]),
             str(settings["epochs"])]
        )  # fmt: skip
    else:
        where = "device" if name == "device feed" else "tf.data"
        answer = run_python(["-c", textwrap.dedent(ENGINE), json.dumps(settings), where])
    seconds, images = answer["seconds"], answer["train_images"]
    return {
        "images_per_s": images * len(seconds) / sum(seconds),
        "last_epoch_images_per_s": images / seconds[-1],
        "epoch_seconds": [round(s, 2) for s in seconds],
        "test_accuracy": answer.get("test_accuracy"),
        "device": answer.get("device", ""),
        "mixed_precision": answer.get("mixed_precision", False),
    }


def run(rounds: int) -> dict:
    results: dict = {}
    # The seeds' fits by (network, images, epochs): the mixed-precision case's is the same
    # float32 fit as its float32 case's, measured once and compared with both.
    plain_fits: dict[tuple, list[dict]] = {}
    for case, settings in CASES.items():
        plain = (settings["network"], settings["limit"], settings["epochs"])
        names = [
            n
            for n in CONTENDERS
            if n != "plain Keras" or (settings["batch_size"] == 32 and plain not in plain_fits)
        ]
        say(f"{case}: {settings}, {rounds} round(s) of {', '.join(names)}")
        samples: dict[str, list[dict]] = {name: [] for name in names}
        for number in range(rounds):
            order = names[number % len(names) :] + names[: number % len(names)]
            for name in order:
                sample = contender(name, settings)
                if name != "plain Keras" and sample["mixed_precision"] != bool(
                    settings.get("mixed_precision")
                ):
                    raise RuntimeError(f"{case}: the engine's run had mixed precision "
                                       f"{sample['mixed_precision']}")  # fmt: skip
                samples[name].append(sample)
                say(
                    f"  round {number + 1}, {name:<12} {sample['images_per_s']:>8,.0f} images/s"
                    f" (last epoch {sample['last_epoch_images_per_s']:,.0f});"
                    f" epochs {sample['epoch_seconds']} s"
                )
        if "plain Keras" in samples:
            plain_fits[plain] = samples["plain Keras"]
        elif plain in plain_fits:
            samples["plain Keras"] = plain_fits[plain]
        best = {
            name: {
                key: round(max(s[key] for s in runs))
                for key in ("images_per_s", "last_epoch_images_per_s")
            }
            for name, runs in samples.items()
        }
        medians = {
            name: round(median([s["images_per_s"] for s in runs])) for name, runs in samples.items()
        }
        summary = {"settings": settings, "rounds": rounds, "best": best, "median": medians}
        summary["device_over_tf_data"] = round(
            best["device feed"]["images_per_s"] / best["tf.data"]["images_per_s"], 3
        )
        if "plain Keras" in best:
            for name, key in (("device feed", "engine"), ("tf.data", "tf_data")):
                summary[f"{key}_over_plain_keras"] = round(
                    best[name]["images_per_s"] / best["plain Keras"]["images_per_s"], 3
                )
        results[case] = summary
    return results
