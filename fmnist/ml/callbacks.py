"""The Keras callback that reports a training's progress to a sink and stops it on request."""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from fmnist import evaluation
from fmnist.messages import PlainError
from fmnist.ml import batch_norm, health
from fmnist.ml.inference import predict_probabilities
from fmnist.schema import LIVE_POINTS_PER_EPOCH, EpochMetrics, LivePoint, ProgressSink

# The cross-entropy of guessing every class alike is ln 10 = 2.3. A running loss 100
# times that means the scores have blown up (a learning rate of 10 takes the tutorial
# network to 900-60,000 within an epoch, then to a dead network at 2.3): nothing more
# will be learned, so the training ends there, like one whose loss became NaN.
CHANCE_LOSS = math.log(10)
DIVERGED_LOSS = 100 * CHANCE_LOSS


class TrainingDivergedError(PlainError):
    """The loss became NaN or infinite, or exploded: nothing more can be learned from here."""


class ProgressCallback(keras.callbacks.Callback):
    """Publishes batch and epoch progress to ``sink``, and stops when asked.

    ``on_train_batch_end`` runs once per ``steps_per_execution`` batches, about
    40 times an epoch, so the work here stays a few microseconds per call; the
    sink decides how often it really writes.
    """

    def __init__(
        self,
        sink: ProgressSink,
        batches: int,
        batch_size: int,
        epochs: int,
        initial_epoch: int = 0,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
        probe: tuple[np.ndarray, np.ndarray] | None = None,
        calibration: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.validation = validation
        self.probe = probe
        # Training images that batch normalisation's test-time statistics are measured on
        # at each epoch's end, before the validation images are scored (fmnist.ml.batch_norm).
        self.calibration = calibration
        self.sink = sink
        self.batches = batches
        self.batch_size = batch_size
        self.epochs = epochs
        self.epoch = initial_epoch
        self.done = 0
        self.epoch_started = 0.0
        # The first batch-end of an epoch: times are measured from it, so
        # tracing and compiling (seconds, in the first epoch) do not count
        # towards the speed and the ETA users see.
        self.first_mark: tuple[float, int] | None = None
        self.next_live_point = 0.0
        self.epoch_seconds: list[float] = []
        self.history: list[EpochMetrics] = []
        self.stopped_by_user = False
        self.partial_epoch = 0.0  # fraction of the last epoch done when a stop cut it

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch
        self.done = 0
        self.next_live_point = 0.0
        self.first_mark = None
        self.epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        self.done = min(batch + 1, self.batches)
        fraction = self.done / self.batches
        rate, eta = 0.0, None
        if self.first_mark is None:
            self.first_mark = (now, self.done)
        elif now > self.first_mark[0]:
            rate = (self.done - self.first_mark[1]) * self.batch_size / (now - self.first_mark[0])
            eta = self._eta(rate, fraction)
        if logs and not float(logs["loss"]) <= DIVERGED_LOSS:  # NaN compares False
            self._diverged(float(logs["loss"]))
        point = None
        if logs and fraction >= self.next_live_point:
            point = LivePoint(self.epoch + fraction, float(logs["loss"]), float(logs["accuracy"]))
            # The next multiple of 1/40 of an epoch: evenly spaced points.
            self.next_live_point = (
                int(fraction * LIVE_POINTS_PER_EPOCH) + 1
            ) / LIVE_POINTS_PER_EPOCH
        self.sink.batch(self.done, rate, eta, point)
        if self.sink.should_stop():
            self.stopped_by_user = True
            self.model.stop_training = True

    def _diverged(self, loss: float) -> None:
        """End the training at once, in one line that says what to do about it."""
        self.model.stop_training = True
        if math.isfinite(loss):
            what = f"exploded to {loss:,.0f} (random guessing scores {CHANCE_LOSS:.1f})"
        else:
            what = "became NaN" if math.isnan(loss) else "became infinite"
        rate = self._learning_rate()
        advice = "lower the learning rate" + (f" (now {rate:.3g})" if rate is not None else "")
        raise TrainingDivergedError(
            f"the loss {what} at epoch {self.epoch + 1}, batch {self.done:,}: {advice}"
        )

    def _learning_rate(self) -> float | None:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return None
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))

    def _eta(self, rate: float, fraction: float) -> float | None:
        if rate <= 0:
            return None
        left_in_epoch = (self.batches - self.done) * self.batch_size / rate
        epochs_left = self.epochs - self.epoch - 1
        if self.epoch_seconds:
            # Whole epochs measured so far include validation: the better guide.
            per_epoch = sum(self.epoch_seconds) / len(self.epoch_seconds)
        else:
            per_epoch = self.batches * self.batch_size / rate
        return left_in_epoch + epochs_left * per_epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self.done < self.batches:
            # A stop ended this epoch part-way: it is not a completed epoch.
            self.partial_epoch = self.done / self.batches
            return
        confusion, val_seconds = None, None
        if self.calibration is not None:
            batch_norm.recalibrate(self.model, self.calibration)
        if self.validation is not None:
            scored = time.perf_counter()
            scores = evaluation.score(
                _probabilities(self.model, self.validation[0]), self.validation[1]
            )
            # Keras's names, so that EarlyStopping (after this callback) reads them.
            logs["val_loss"], logs["val_accuracy"] = scores.log_loss, scores.accuracy
            confusion = scores.confusion_matrix.tolist()
            val_seconds = round(time.perf_counter() - scored, 3)
        seconds = time.perf_counter() - self.epoch_started
        self.epoch_seconds.append(seconds)
        metrics = EpochMetrics(
            epoch=epoch + 1,
            loss=float(logs["loss"]),
            accuracy=float(logs["accuracy"]),
            val_loss=float(logs["val_loss"]) if "val_loss" in logs else None,
            val_accuracy=float(logs["val_accuracy"]) if "val_accuracy" in logs else None,
            seconds=round(seconds, 3),
            learning_rate=self._learning_rate(),
            val_confusion=confusion,
            val_seconds=val_seconds,
            layer_health=health.layer_health(self.model, *self.probe) if self.probe else None,
        )
        self.history.append(metrics)
        self.sink.epoch_end(metrics)


class CheckpointCallback(keras.callbacks.Callback):
    """Hands ``sink`` a checkpoint at the end of each whole epoch, after every other
    callback: a checkpoint then means that the epoch is all on disk, its TensorBoard
    points included (a worker killed between the checkpoint and TensorBoard's writer,
    when the checkpoint came first, lost the epoch's points on resume)."""

    def __init__(self, sink: ProgressSink, progress: ProgressCallback) -> None:
        super().__init__()
        self.sink = sink
        self.progress = progress

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        history = self.progress.history
        if history and history[-1].epoch == epoch + 1:  # not an epoch a stop cut short
            self.sink.checkpoint(self.model, epoch + 1)


def _probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Softmax of uint8 pictures in chunks of 1,024 through one traced forward pass: no
    tf.data pipeline per call, and a bounded memory for the activations."""
    return np.concatenate(
        [
            predict_probabilities(model, images[start : start + 1024], refuse_non_finite=False)
            for start in range(0, len(images), 1024)
        ]
    )
