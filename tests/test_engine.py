"""The training engine on the real dataset: progress to a sink, stop, partial epochs, resume."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from fmnist import runs
from fmnist.data import Dataset
from fmnist.jobs.store import JobStore
from fmnist.jobs.worker import run_job
from fmnist.messages import failure_line
from fmnist.ml import engine
from fmnist.ml.callbacks import TrainingDivergedError
from fmnist.schema import EpochMetrics, JobState, LivePoint, ResumePoint, TrainConfig

from .conftest import PROJECT_ROOT


class ListSink:
    """A ProgressSink that keeps everything, and asks to stop after ``stop_after`` batches."""

    def __init__(
        self,
        stop_after: int | None = None,
        checkpoint_dir: Path | None = None,
        stop_after_epochs: int | None = None,
    ) -> None:
        self.stop_after = stop_after
        self.stop_after_epochs = stop_after_epochs
        self.checkpoint_dir = checkpoint_dir
        self.phases: list[str] = []
        self.device = ""
        self.batches = 0
        self.calls = 0
        self.speeds: list[float] = []
        self.live: list[LivePoint] = []
        self.epochs: list[EpochMetrics] = []
        self.checkpoints: list[int] = []
        self.evaluated = False

    def phase(self, text: str) -> None:
        self.phases.append(text)

    def started(self, device: str, batches: int) -> None:
        self.device, self.batches = device, batches

    def batch(self, done: int, images_per_second: float, eta: Any, point: Any) -> None:
        self.calls += 1
        self.speeds.append(images_per_second)
        if point is not None:
            self.live.append(point)

    def epoch_end(self, metrics: EpochMetrics) -> None:
        self.epochs.append(metrics)

    def checkpoint(self, model: keras.Model, epoch: int) -> None:
        self.checkpoints.append(epoch)
        if self.checkpoint_dir is not None:
            model.save(self.checkpoint_dir / f"epoch-{epoch}.keras")

    def evaluating(self) -> None:
        self.evaluated = True

    def should_stop(self) -> bool:
        if self.stop_after_epochs is not None and len(self.epochs) >= self.stop_after_epochs:
            return True
        return self.stop_after is not None and self.calls >= self.stop_after


def test_one_epoch_of_mlp_reports_progress_and_scores(dataset: Dataset, models_dir: Path) -> None:
    sink = ListSink()
    config = TrainConfig(network="mlp", epochs=1, limit=2000, name="unit")
    model, record = engine.train(config, dataset, sink)
    assert sink.phases[:2] == ["preparing the data", "building the network"]
    assert sink.device == "CPU" and sink.batches == 57  # 1,800 images in batches of 32
    assert len(sink.live) >= 5  # the curves moved during the epoch
    assert [m.epoch for m in sink.epochs] == [1] and sink.epochs[0].val_accuracy is not None
    assert sink.checkpoints == [1] and sink.evaluated
    assert max(sink.speeds) > 0

    assert record.status == "done" and record.train_images == 1800
    assert record.epochs_completed == 1 and record.partial_epoch == 0
    assert record.test_accuracy > 0.5  # chance is 0.1
    matrix = np.array(record.confusion_matrix)
    assert matrix.shape == (10, 10) and matrix.sum() == 10_000
    assert np.trace(matrix) / 10_000 == pytest.approx(record.test_accuracy)
    # The run's average speed, not the last moment's.
    assert 0 < record.images_per_second <= max(sink.speeds) * 1.5

    runs.save_run(model, record.to_dict(), models_dir)
    loaded = runs.load_model(record.run_id, models_dir)
    probabilities = np.asarray(loaded(dataset.x_test[:500, ..., None] / 255.0))
    accuracy = (probabilities.argmax(axis=1) == dataset.y_test[:500]).mean()
    assert accuracy == pytest.approx(record.test_accuracy, abs=0.06)


def test_mixed_precision_computes_in_bfloat16_on_a_cpu_that_has_it(
    dataset: Dataset, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fmnist import hardware
    from fmnist.ml import devices, tflite
    from fmnist.ml.inference import load_run_model, predict_probabilities

    monkeypatch.setattr(devices, "configure_gpus", lambda: [])  # the CPU's path, GPU or not
    config = TrainConfig(network="cnn", epochs=1, limit=1000, mixed_precision=True)
    # Where bfloat16 would be emulated (slower than float32), the setting is not applied,
    # and the record says so.
    monkeypatch.setattr(hardware, "cpu_computes_bfloat16", lambda: False)
    _, emulated = engine.train(replace(config, network="mlp"), dataset, ListSink())
    assert emulated.mixed_precision is False

    monkeypatch.setattr(hardware, "cpu_computes_bfloat16", lambda: True)
    sink = ListSink()
    model, record = engine.train(config, dataset, sink)
    assert record.mixed_precision is True
    assert sink.device == record.device == "CPU, bfloat16 arithmetic"  # the job's page says it
    assert {layer.dtype_policy.name for layer in model.layers[:-1]} == {"mixed_bfloat16"}
    assert model.layers[0].kernel.dtype == "float32"  # the weights stay 32-bit
    assert model.layers[-1].dtype_policy.name == "float32"  # and the softmax
    # The worker's next training starts from float32 again.
    assert keras.mixed_precision.global_policy().name == "float32"
    assert record.test_accuracy > 0.5

    runs.save_run(model, record.to_dict(), models_dir)
    loaded = load_run_model(record.run_id, models_dir)
    probabilities = predict_probabilities(loaded, dataset.x_test[:1000])
    assert probabilities.dtype == np.float64
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-3)
    accuracy = (probabilities.argmax(axis=1) == dataset.y_test[:1000]).mean()
    assert accuracy == pytest.approx(record.test_accuracy, abs=0.05)
    # TensorFlow Lite has no bfloat16 kernels: the network is converted as its float32
    # self, which answers as the bfloat16 one does.
    lite = tflite.convert(loaded, dataset.x_test[:100])
    assert lite.same_class == 100
    agree = (tflite.predict(lite.content, dataset.x_test[:1000]).argmax(axis=1)
             == probabilities.argmax(axis=1)).mean()  # fmt: skip
    assert agree > 0.97
    # A continued run computes as its parent's layers do, whatever its box says, and says so.
    continued = replace(config, epochs=2, mixed_precision=False, parent_run=record.run_id)
    _, child = engine.train(continued, dataset, ListSink())
    assert child.mixed_precision is True and child.device == "CPU, bfloat16 arithmetic"


def test_a_stop_mid_epoch_is_recorded_as_a_partial_epoch(dataset: Dataset) -> None:
    # 10,000 images, batch 32: 282 batches an epoch, 7 per call into TensorFlow.
    sink = ListSink(stop_after=12)
    config = TrainConfig(network="mlp", epochs=3, limit=10_000)
    _, record = engine.train(config, dataset, sink)
    assert record.status == "stopped"
    # Stopped part-way through the first epoch: no completed epoch is claimed.
    assert record.epochs_completed == 0 and record.history == [] and sink.epochs == []
    assert 0 < record.partial_epoch < 1
    assert sink.checkpoints == []  # a partial epoch is not a checkpoint
    assert record.test_accuracy > 0.3  # it learned something and was still scored


def test_resume_carries_on_from_a_checkpoint(dataset: Dataset, tmp_path: Path) -> None:
    config = TrainConfig(network="mlp", epochs=3, limit=3000, lr_schedule="cosine")
    # Stopped early in the third epoch: the checkpoint after epoch 2 is what a
    # worker killed at that moment would leave.
    first = ListSink(checkpoint_dir=tmp_path, stop_after_epochs=2)
    engine.train(config, dataset, first)
    checkpoint = tmp_path / "epoch-2.keras"
    saved = keras.models.load_model(checkpoint)
    steps_done = int(saved.optimizer.iterations.numpy())
    assert steps_done == 2 * 85  # 2,700 images in batches of 32, twice

    second = ListSink()
    resume = ResumePoint(str(checkpoint), 2, tuple(first.epochs))
    model, record = engine.train(config, dataset, second, resume)
    # Only the third epoch ran; the history holds all three.
    assert [m.epoch for m in second.epochs] == [3]
    assert [m["epoch"] for m in record.history] == [1, 2, 3]
    assert record.epochs_completed == 3
    # The optimizer carried on counting (so the cosine schedule carried on falling).
    assert int(model.optimizer.iterations.numpy()) == 3 * 85
    assert second.epochs[0].learning_rate < first.epochs[-1].learning_rate


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
            TrainConfig(**bad).validate()
    with pytest.raises(ValueError, match="epochs must be between 1 and 500"):
        TrainConfig.from_settings({"network": "mlp", "epochs": "0"})


def test_settings_map_to_a_config_the_same_way_for_page_and_command_line() -> None:
    config = TrainConfig.from_settings(
        {
            "network": "cnn",
            "epochs": 3.0,
            "batch_size": "64",
            "learning_rate": "0.003",
            "name": "  demo ",
            "json": True,  # argparse extras are ignored
            "devices": ["/cpu:0"],
        }
    )
    assert config == TrainConfig(
        network="cnn", epochs=3, batch_size=64, learning_rate=0.003, name="demo",
        devices=("/cpu:0",),
    )  # fmt: skip
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_mirrored_strategy_over_two_logical_devices(tmp_path: Path) -> None:
    # Logical devices must be set before TensorFlow initialises, hence a new process.
    script = textwrap.dedent(
        """
        import json, sys
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from fmnist.data import load_dataset
        from fmnist.ml import engine
        from fmnist.schema import TrainConfig
        from tests.test_engine import ListSink
        config = TrainConfig(network="mlp", epochs=1, limit=2000, batch_size=64,
                             devices=("/cpu:0", "/cpu:1"))
        sink = ListSink()
        model, record = engine.train(config, load_dataset(), sink)
        print(json.dumps({"device": record.device, "accuracy": record.test_accuracy,
                          "sink_device": sink.device}))
        """
    )
    # fmnist is installed in the venv; `tests` comes from the working directory.
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["device"].startswith("MirroredStrategy over 2 devices")
    assert result["sink_device"] == result["device"]
    assert result["accuracy"] > 0.5


def test_each_epoch_keeps_its_validation_confusion_matrix_and_early_stopping_reads_it(
    dataset: Dataset, models_dir: Path
) -> None:
    config = TrainConfig(network="mlp", epochs=3, limit=3000, early_stopping_patience=2)
    sink = ListSink()
    model, record = engine.train(config, dataset, sink)
    assert [m.epoch for m in sink.epochs] == [1, 2, 3]
    _, _, x_val, y_val = engine.split_data(dataset, config)
    for metrics in sink.epochs:
        matrix = np.array(metrics.val_confusion)
        assert matrix.shape == (10, 10) and matrix.sum() == len(y_val) == 300
        assert np.array_equal(matrix.sum(axis=1), np.bincount(y_val, minlength=10))
        assert np.trace(matrix) / 300 == pytest.approx(metrics.val_accuracy)
        assert 0 <= metrics.val_seconds < metrics.seconds
    # EarlyStopping read the val_loss this callback put in the logs: it kept the weights of
    # the best epoch, whose scores Keras finds again on the validation images.
    keras_loss, keras_accuracy = model.evaluate(x_val[..., None] / 255.0, y_val, verbose=0)
    best = min(sink.epochs, key=lambda m: m.val_loss)
    assert best.val_loss == pytest.approx(keras_loss, rel=1e-3)
    assert best.val_accuracy == pytest.approx(keras_accuracy, abs=1e-6)
    assert record.validation_confusion_matrices == [m.val_confusion for m in sink.epochs]
    assert all("val_confusion" not in entry for entry in record.history)
    # run.json keeps them, and reads back through the checks of a record from disk.
    runs.save_run(model, record.to_dict(), models_dir)
    saved = runs.read_record(record.run_id, models_dir)
    assert saved["validation_confusion_matrices"] == record.validation_confusion_matrices


def test_a_learning_rate_of_10_ends_the_training_at_once_in_one_line(dataset: Dataset) -> None:
    # The tutorial network's loss explodes within the first epoch (to 900-60,000 with sgd,
    # rmsprop or adam), then sits at chance with dead units: nothing more to learn.
    config = TrainConfig(network="mlp", epochs=3, limit=5000, learning_rate=10.0)
    sink = ListSink()
    with pytest.raises(TrainingDivergedError) as diverged:
        engine.train(config, dataset, sink)
    message = str(diverged.value)
    assert re.fullmatch(
        r"the loss exploded to [\d,]+ \(random guessing scores 2\.3\) at epoch 1, "
        r"batch [\d,]+: lower the learning rate \(now 10\)",
        message,
    ), message
    assert not sink.epochs  # no epoch was completed, nor reported as one
    assert failure_line(diverged.value) == message  # what the job and the page say


def test_a_loss_that_becomes_nan_ends_the_training_at_its_first_report(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A network whose weights are NaN, as after an overflow: the first report ends it.
    def diverged(name: str, layers: object = ()) -> keras.Model:
        model = keras.Sequential(
            [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
        )
        kernel, bias = model.layers[-1].get_weights()
        model.layers[-1].set_weights([np.full_like(kernel, np.nan), bias])
        return model

    monkeypatch.setattr(engine, "build_model", diverged)
    config = TrainConfig(network="mlp", epochs=2, limit=2000, learning_rate=0.1)
    sink = ListSink()
    with pytest.raises(TrainingDivergedError, match=r"^the loss became NaN at epoch 1, batch "):
        engine.train(config, dataset, sink)
    assert not sink.epochs and not sink.evaluated


def test_a_diverged_job_fails_with_that_line_and_saves_no_run(
    dataset: Dataset, models_dir: Path, tmp_path: Path
) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    job_id = store.create(
        TrainConfig(network="mlp", epochs=2, limit=2000, learning_rate=10.0), "owner"
    )
    assert run_job(store, store.get(job_id), dataset) is JobState.FAILED
    job = store.get(job_id)
    assert job.message.startswith("the loss exploded to ")
    assert "lower the learning rate" in job.message
    assert not list(models_dir.iterdir())


def test_a_learning_rate_given_as_a_whole_number_is_taken() -> None:
    # A config read from JSON or a link may hold 1 rather than 1.0; Keras wants a float.
    for schedule in ("constant", "cosine"):
        optimizer = engine.make_optimizer("adam", 1, schedule, total_steps=10)
        assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(1.0)


def test_the_same_seed_and_settings_give_the_same_weights_on_the_cpu(dataset: Dataset) -> None:
    # The mlp: the seed decides its first weights and the shuffled order (a convolutional
    # network only adds compile time here, a minute of the suite's).
    config = TrainConfig(network="mlp", epochs=1, limit=640, batch_size=64, seed=5)
    first, _ = engine.train(config, dataset, ListSink())
    again, _ = engine.train(config, dataset, ListSink())
    other, _ = engine.train(replace(config, seed=6), dataset, ListSink())
    for mine, same in zip(first.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, same)
    assert not all(
        np.array_equal(a, b) for a, b in zip(first.get_weights(), other.get_weights(), strict=True)
    )


def test_batches_fetched_on_the_device_train_as_tf_datas_batches(dataset: Dataset) -> None:
    import tensorflow as tf

    from fmnist.ml.networks import build_model

    images, labels = dataset.x_train[:512], dataset.y_train[:512]
    feed = engine.TrainingFeed(images, labels)
    # The pictures come back exactly from their float16 store.
    pictures, same_labels = feed.fetch(tf.constant([5, 0, 511]))
    np.testing.assert_array_equal(pictures[..., 0], images[[5, 0, 511]] / np.float32(255))
    np.testing.assert_array_equal(same_labels, labels[[5, 0, 511]])

    trained = []
    for on_device in (True, False):
        keras.utils.set_random_seed(3)
        model = build_model("mlp")
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], steps_per_execution=3)  # fmt: skip
        if on_device:
            with feed.feeding(model):
                model.fit(feed.positions(64, 1), epochs=2, shuffle=False, verbose=0)
            assert "train_step" not in vars(model)  # the model is left as it was
        else:
            model.fit(feed.pipeline(64, 1), epochs=2, shuffle=False, verbose=0)
        trained.append(model.get_weights())
    for mine, theirs in zip(*trained, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    assert not np.allclose(trained[0][0], build_model("mlp").get_weights()[0], atol=1e-3)


def test_xla_compiles_dense_networks_on_the_cpu_and_their_step_takes_the_image_transforms(
    dataset: Dataset,
) -> None:
    dense, long = [{"type": "flatten"}, {"type": "dense"}], engine.XLA_MIN_STEPS
    assert engine.use_xla(dense, [], 1, long) is True
    assert engine.use_xla(dense, [], 1, long - 1) is False  # the compile would not pay
    assert engine.use_xla([{"type": "conv"}, *dense], [], 1, long) is False
    assert engine.use_xla(dense, [], 2, long) is False  # several replicas
    assert engine.use_xla([{"type": "conv"}], ["NVIDIA H100"], 1, 10) == "auto"  # Keras's
    # XLA has no kernel for the shift's image transform: it runs before the compiled step.
    # Several steps to a call: the compiled step inside Keras's loop over them.
    config = TrainConfig(
        network="mlp", epochs=1, limit=640, batch_size=64, augment=("shift",),
        steps_per_execution=3,
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "XLA_MIN_STEPS", 1)
        model, record = engine.train(config, dataset, ListSink())
    assert model.jit_compile is True and record.test_accuracy > 0.5


def test_a_checkpoint_comes_once_its_epochs_tensorboard_points_are_on_disk(
    dataset: Dataset, tmp_path: Path
) -> None:
    from .test_jobs import tensorboard_points

    class WatchingSink(ListSink):
        """Reads TensorBoard's files at each checkpoint, as a resume after a kill would."""

        def __init__(self) -> None:
            super().__init__()
            self.seen: list[list[int]] = []

        def checkpoint(self, model: keras.Model, epoch: int) -> None:
            super().checkpoint(model, epoch)
            self.seen.append(sorted(tensorboard_points(tmp_path / "train", "epoch_accuracy")))

    sink = WatchingSink()
    config = TrainConfig(network="mlp", epochs=2, limit=640, batch_size=64)
    engine.train(config, dataset, sink, log_dir=tmp_path)
    assert sink.checkpoints == [1, 2] and sink.seen == [[0], [0, 1]]


def test_a_run_continues_with_its_weights_optimizer_state_and_curves(
    dataset: Dataset, models_dir: Path
) -> None:
    from fmnist import runs

    config = TrainConfig(network="mlp", epochs=1, limit=1000, learning_rate=0.003)
    parent_model, parent = engine.train(config, dataset, ListSink())
    runs.save_run(parent_model, parent.to_dict())
    steps = int(parent_model.optimizer.iterations.numpy())
    more = replace(config, epochs=3, parent_run=parent.run_id)
    sink = ListSink()
    model, record = engine.train(more, dataset, sink)
    assert [m.epoch for m in sink.epochs] == [2, 3]  # it starts after the parent's epoch
    assert record.epochs_completed == 3 and record.history[0] == parent.history[0]
    assert int(model.optimizer.iterations.numpy()) == 3 * steps  # Adam's count went on
    assert record.config["parent_run"] == parent.run_id
    # Its first new epoch starts from the parent's weights, not from scratch: the loss
    # carries on below the parent's first epoch.
    assert record.history[1]["loss"] < parent.history[0]["loss"]

    # A decayed schedule restarts over the new epochs, instead of crawling at its end.
    cycled, parent_cycle = engine.train(
        replace(config, lr_schedule="one-cycle"), dataset, ListSink()
    )
    runs.save_run(cycled, parent_cycle.to_dict())
    assert parent_cycle.history[-1]["learning_rate"] < 0.003 * 0.01
    again = ListSink()
    engine.train(
        replace(config, lr_schedule="one-cycle", epochs=3, parent_run=parent_cycle.run_id),
        dataset,
        again,
    )
    assert again.epochs[0].learning_rate > 0.003 * 0.5  # half-way: past the new peak

    with pytest.raises(ValueError, match="has 1 epochs already: ask for more"):
        engine.train(replace(more, epochs=1), dataset, ListSink())
    with pytest.raises(ValueError, match="has another network"):
        engine.train(replace(more, network="mlp-2"), dataset, ListSink())
