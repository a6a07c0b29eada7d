"""The training engine on the real dataset: progress, saving, stop, queue, devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from fmnist import runs
from fmnist.data import Dataset
from fmnist.training import (
    DONE,
    QUEUED,
    STOPPED,
    TrainConfig,
    TrainingJob,
    TrainingManager,
)

from .conftest import PROJECT_ROOT


def test_one_epoch_of_mlp_is_measured_saved_and_loads_back(
    dataset: Dataset, models_dir: Path
) -> None:
    job = TrainingJob(TrainConfig(network="mlp", epochs=1, limit=2000, name="unit"))
    progress = job.run(dataset, models_dir)
    assert progress.state == DONE, progress.message
    (epoch,) = progress.history
    assert set(epoch) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(progress.live) >= 5  # the curves moved during the epoch
    assert progress.batch == progress.batches == 57  # 1,800 images in batches of 32
    assert progress.images_per_second > 0 and progress.device == "CPU"

    record = runs.read_record(progress.run_id, models_dir)
    assert record["status"] == "done" and record["train_images"] == 1800
    assert record["test_accuracy"] > 0.5  # chance is 0.1
    matrix = np.array(record["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 10_000
    assert np.trace(matrix) / 10_000 == pytest.approx(record["test_accuracy"])

    model = runs.load_model(progress.run_id, models_dir)
    probabilities = np.asarray(model(dataset.x_test[:500, ..., None] / 255.0))
    accuracy = (probabilities.argmax(axis=1) == dataset.y_test[:500]).mean()
    assert accuracy == pytest.approx(record["test_accuracy"], abs=0.06)


def test_stop_ends_the_job_mid_epoch_and_keeps_a_stopped_run(
    dataset: Dataset, models_dir: Path
) -> None:
    manager = TrainingManager(dataset_loader=lambda: dataset, models_dir=models_dir)
    job = manager.submit(TrainConfig(network="cnn", epochs=3))
    deadline = time.time() + 60
    while job.snapshot().batch < 20 and time.time() < deadline:
        time.sleep(0.05)
    manager.cancel(job)
    asked = time.time()
    while job.snapshot().state not in ("evaluating", STOPPED) and time.time() < asked + 30:
        time.sleep(0.05)
    stopped_after = time.time() - asked
    assert job.finished.wait(60)
    progress = job.snapshot()
    assert progress.state == STOPPED, progress.message
    assert progress.batch < progress.batches  # it did not finish the epoch
    assert stopped_after < 5, f"training went on for {stopped_after:.1f}s after Stop"
    record = runs.read_record(progress.run_id, models_dir)
    assert record["status"] == "stopped" and record["test_accuracy"] > 0.1


def test_two_jobs_queue_and_run_one_after_the_other(dataset: Dataset, models_dir: Path) -> None:
    manager = TrainingManager(
        max_concurrent=1, dataset_loader=lambda: dataset, models_dir=models_dir
    )
    first = manager.submit(TrainConfig(network="mlp", epochs=1, limit=1000))
    second = manager.submit(TrainConfig(network="mlp", epochs=1, limit=1000))
    third = manager.submit(TrainConfig(network="mlp", epochs=1, limit=1000))
    assert second.snapshot().state == QUEUED and second.snapshot().queue_position == 1
    assert third.snapshot().queue_position == 2
    manager.cancel(third)  # leaves the queue without running
    assert first.finished.wait(120) and second.finished.wait(120)
    assert first.snapshot().state == second.snapshot().state == DONE
    assert third.snapshot().state == STOPPED and third.snapshot().run_id == ""
    # The second started only after the first had finished.
    first_end = first.snapshot().started_at + first.snapshot().elapsed
    assert second.snapshot().started_at >= first_end - 0.01
    assert len(runs.list_runs(models_dir)[0]) == 2


def test_bad_hyper_parameters_are_refused() -> None:
    for bad in (
        {"epochs": 0},
        {"batch_size": 0},
        {"learning_rate": -1.0},
        {"optimizer": "magic"},
        {"validation_split": 0.7},
        {"limit": 5},
        {"network": "resnet"},
    ):
        with pytest.raises(ValueError):
            TrainingJob(TrainConfig(**bad))


def test_a_failure_becomes_a_failed_state_with_its_message(
    dataset: Dataset, models_dir: Path
) -> None:
    def broken_loader() -> Dataset:
        raise RuntimeError("the disk went away")

    manager = TrainingManager(dataset_loader=broken_loader, models_dir=models_dir)
    job = manager.submit(TrainConfig(network="mlp", epochs=1, limit=1000))
    assert job.finished.wait(30)
    progress = job.snapshot()
    assert progress.state == "failed" and "the disk went away" in progress.message


def test_mirrored_strategy_over_two_logical_devices(tmp_path: Path) -> None:
    # Logical devices must be set before TensorFlow initialises, hence a new process.
    script = textwrap.dedent(
        """
        import json, sys
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from fmnist.training import TrainConfig, TrainingJob
        job = TrainingJob(TrainConfig(network="mlp", epochs=1, limit=2000, batch_size=64,
                                      devices=("/cpu:0", "/cpu:1")))
        p = job.run(models_dir=sys.argv[1])
        print(json.dumps({"state": p.state, "device": p.device, "message": p.message,
                          "accuracy": p.test_accuracy}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["state"] == DONE, result["message"]
    assert result["device"].startswith("MirroredStrategy over 2 devices")
    assert result["accuracy"] > 0.5
    record_files = list(tmp_path.glob("*/run.json"))
    assert len(record_files) == 1
    assert "MirroredStrategy" in json.loads(record_files[0].read_text())["device"]
