"""Background training jobs: hyper-parameters, live progress, stop, a queue, devices.

A job trains in its own thread and publishes its progress to a plain object
guarded by a lock. Nothing here imports Streamlit: the Train page and the
command line both read ``TrainingJob.snapshot()`` and draw it their own way.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import platform
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fmnist import config, evaluation, runs
from fmnist.data import Dataset, load_dataset
from fmnist.messages import first_line
from fmnist.networks import build_model, get_network

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
# "cosine" lowers the learning rate smoothly to 1% of its start by the last
# batch: the final epochs then settle instead of jumping between minima.
LR_SCHEDULES = ("constant", "cosine")
# Points of the live curves kept per epoch: enough for smooth lines, few enough
# that a browser redraws them every second without effort.
LIVE_POINTS_PER_EPOCH = 40

QUEUED, RUNNING, STOPPING, EVALUATING = "queued", "running", "stopping", "evaluating"
DONE, STOPPED, FAILED = "done", "stopped", "failed"
FINAL_STATES = (DONE, STOPPED, FAILED)


@dataclass(frozen=True)
class TrainConfig:
    network: str = "mlp"
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 0.001
    optimizer: str = "adam"
    lr_schedule: str = "constant"
    validation_split: float = 0.1
    seed: int = 42
    # Epochs without improvement of val_loss before stopping; 0 turns it off.
    early_stopping_patience: int = 0
    # Train on at most this many images (0 = all 60,000), for quick demos.
    limit: int = 0
    mixed_precision: bool = False
    name: str = ""
    # Devices to mirror the model over, for example ("/cpu:0", "/cpu:1") in tests;
    # empty means every visible GPU, or the CPU when there is none.
    devices: tuple[str, ...] = ()
    # Batches run per call into TensorFlow; 0 picks a value that keeps small
    # networks fast while the live curves still move many times per epoch.
    steps_per_execution: int = 0
    command: str = ""  # the command line that started it, recorded in run.json

    def validate(self) -> None:
        get_network(self.network)
        if not 1 <= self.epochs <= 500:
            raise ValueError("epochs must be between 1 and 500")
        if not 1 <= self.batch_size <= 8192:
            raise ValueError("batch size must be between 1 and 8192")
        if not 0 < self.learning_rate <= 10:
            raise ValueError("learning rate must be above 0 and at most 10")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"learning-rate schedule must be one of {', '.join(LR_SCHEDULES)}")
        if not 0 <= self.validation_split < 0.5:
            raise ValueError("validation split must be at least 0 and below 0.5")
        if self.limit < 0 or (0 < self.limit < 100):
            raise ValueError("limit must be 0 (all images) or at least 100")
        if self.early_stopping_patience < 0:
            raise ValueError("early stopping patience cannot be negative")


@dataclass
class Progress:
    """What a job publishes. Copied under the job's lock by snapshot()."""

    state: str = QUEUED
    message: str = ""
    epoch: int = 0  # epochs completed
    epochs: int = 0
    batch: int = 0  # batches done in the current epoch
    batches: int = 0  # batches per epoch
    history: list[dict[str, float]] = field(default_factory=list)
    # Running training metrics within epochs: {"epoch": fractional, "loss", "accuracy"}.
    live: list[dict[str, float]] = field(default_factory=list)
    images_per_second: float = 0.0
    started_at: float = 0.0
    elapsed: float = 0.0
    eta: float | None = None
    device: str = ""
    run_id: str = ""
    test_accuracy: float | None = None
    queue_position: int = 0


def configure_gpus() -> list[str]:
    """Turn on memory growth on every GPU (so two processes can share one); return names."""
    import tensorflow as tf

    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        # A RuntimeError means the GPU was initialised by an earlier call already.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    return names


def describe_devices() -> list[str]:
    """Human names of the compute devices training will use."""
    gpus = configure_gpus()
    if gpus:
        return [f"GPU {i}: {name}" for i, name in enumerate(gpus)]
    return [f"CPU ({platform.processor() or platform.machine()})"]


def choose_strategy(devices: tuple[str, ...] = ()) -> tf.distribute.Strategy:
    """MirroredStrategy over several devices, the default strategy for one."""
    import tensorflow as tf

    if len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices=list(devices))
    if devices:
        return tf.distribute.OneDeviceStrategy(devices[0])
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def split_data(dataset: Dataset, cfg: TrainConfig) -> tuple[np.ndarray, ...]:
    """Training and validation arrays after the limit, shuffled with the run's seed."""
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(dataset.y_train))
    if cfg.limit:
        order = order[: cfg.limit]
    n_val = round(len(order) * cfg.validation_split)
    val_idx, train_idx = order[:n_val], order[n_val:]
    return (
        dataset.x_train[train_idx],
        dataset.y_train[train_idx],
        dataset.x_train[val_idx],
        dataset.y_train[val_idx],
    )


def make_pipeline(
    images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle_seed: int | None
) -> tf.data.Dataset:
    """uint8 arrays -> batched float32 tensors in [0, 1], shuffled, prefetched.

    The uint8 images stay in memory once (a quarter of float32), are shuffled
    by index each epoch and scaled a whole batch at a time, which is far
    cheaper than Keras's per-call conversion of float64 numpy arrays.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images[..., None], labels.astype(np.int32)))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(
        lambda x, y: (tf.cast(x, tf.float32) / 255.0, y), num_parallel_calls=tf.data.AUTOTUNE
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def auto_steps_per_execution(batches_per_epoch: int) -> int:
    # About 40 progress updates per epoch: small networks run many batches per
    # call into TensorFlow, and the curves still move within the epoch.
    return max(1, min(64, batches_per_epoch // LIVE_POINTS_PER_EPOCH))


def make_optimizer(
    name: str, learning_rate: float, schedule: str = "constant", total_steps: int = 1
) -> keras.optimizers.Optimizer:
    import keras

    rate: float | keras.optimizers.schedules.LearningRateSchedule = learning_rate
    if schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, total_steps, alpha=0.01)

    classes = {
        "adam": keras.optimizers.Adam,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
        "adamw": keras.optimizers.AdamW,
    }
    return classes[name](learning_rate=rate)


class TrainingJob:
    """One training: its settings, its progress, and a way to stop it."""

    def __init__(self, cfg: TrainConfig) -> None:
        cfg.validate()
        self.id = uuid.uuid4().hex[:12]
        self.config = cfg
        self.created_at = time.time()
        self._lock = threading.Lock()
        self._progress = Progress(epochs=cfg.epochs)
        self._stop = threading.Event()
        self.finished = threading.Event()

    # -- progress, shared with readers ---------------------------------------
    def snapshot(self) -> Progress:
        with self._lock:
            progress = copy.deepcopy(self._progress)
        if progress.state not in FINAL_STATES and progress.started_at:
            progress.elapsed = time.time() - progress.started_at
        return progress

    def update(self, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self._progress, key, value)

    def _with_progress(self, change: Callable[[Progress], None]) -> None:
        with self._lock:
            change(self._progress)

    # -- control -------------------------------------------------------------
    def stop(self) -> None:
        """Ask the job to end after the current batch; it keeps what it learned."""
        self._stop.set()
        with self._lock:
            if self._progress.state == RUNNING:
                self._progress.state = STOPPING

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    # -- the work ------------------------------------------------------------
    def run(
        self,
        dataset: Dataset | None = None,
        models_dir: Any = None,
        dataset_loader: Callable[[], Dataset] = load_dataset,
    ) -> Progress:
        """Train, evaluate on the test set, save the run. Blocks; used by the thread and CLI."""
        try:
            if self.stop_requested:
                self.update(state=STOPPED, message="cancelled before it started")
                return self.snapshot()
            self._train(dataset if dataset is not None else dataset_loader(), models_dir)
        except Exception as error:  # noqa: BLE001 - any failure becomes the job's message
            self.update(state=FAILED, message=f"{type(error).__name__}: {first_line(error)}")
        finally:
            with self._lock:
                if self._progress.started_at:
                    self._progress.elapsed = time.time() - self._progress.started_at
                self._progress.eta = 0.0
            self.finished.set()
        return self.snapshot()

    def _train(self, dataset: Dataset, models_dir: Any) -> None:
        import keras
        import tensorflow as tf

        cfg = self.config
        started = time.time()
        self.update(state=RUNNING, started_at=started, message="preparing")
        keras.utils.set_random_seed(cfg.seed)
        gpus = configure_gpus()
        strategy = choose_strategy(cfg.devices)
        device = self._device_label(strategy, gpus)
        use_mixed = cfg.mixed_precision and bool(gpus)

        x_train, y_train, x_val, y_val = split_data(dataset, cfg)
        batches = math.ceil(len(y_train) / cfg.batch_size)
        steps_per_execution = cfg.steps_per_execution or auto_steps_per_execution(batches)
        train_ds = make_pipeline(x_train, y_train, cfg.batch_size, cfg.seed)
        val_ds = make_pipeline(x_val, y_val, max(cfg.batch_size, 256), None) if len(y_val) else None

        if use_mixed:
            keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            with strategy.scope():
                model = build_model(cfg.network)
                model.compile(
                    optimizer=make_optimizer(
                        cfg.optimizer, cfg.learning_rate, cfg.lr_schedule, cfg.epochs * batches
                    ),
                    loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"],
                    steps_per_execution=steps_per_execution,
                )
        finally:
            if use_mixed:
                keras.mixed_precision.set_global_policy("float32")

        callbacks: list[keras.callbacks.Callback] = [_progress_callback_class()(self, batches)]
        if cfg.early_stopping_patience and val_ds is not None:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_loss",
                    patience=cfg.early_stopping_patience,
                    restore_best_weights=True,
                )
            )
        self.update(device=device, batches=batches, message="")
        fit_started = time.perf_counter()
        model.fit(
            train_ds,
            epochs=cfg.epochs,
            validation_data=val_ds,
            callbacks=callbacks,
            shuffle=False,  # the pipeline shuffles already
            verbose=0,
        )
        train_seconds = time.perf_counter() - fit_started

        stopped = self.stop_requested
        self.update(state=EVALUATING, message="evaluating on the 10,000 test images", eta=None)
        eval_started = time.perf_counter()
        with strategy.scope():
            probabilities = evaluation.predict_probabilities(model, dataset.x_test)
        predictions = probabilities.argmax(axis=1)
        matrix = evaluation.confusion_matrix(dataset.y_test, predictions)
        test_loss = float(
            -np.mean(
                np.log(
                    np.clip(probabilities[np.arange(len(predictions)), dataset.y_test], 1e-12, 1)
                )
            )
        )
        test_accuracy = evaluation.accuracy(matrix)
        eval_seconds = time.perf_counter() - eval_started

        progress = self.snapshot()
        record = {
            "run_id": runs.new_run_id(cfg.network, cfg.name),
            "name": cfg.name,
            "network": cfg.network,
            "parameters": int(model.count_params()),
            "config": {k: v for k, v in asdict(cfg).items() if k not in ("name", "command")},
            "command": cfg.command,
            "status": STOPPED if stopped else DONE,
            "epochs_completed": len(progress.history),
            "history": progress.history,
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
            "confusion_matrix": matrix.tolist(),
            "device": device,
            "mixed_precision": use_mixed,
            "train_images": len(y_train),
            "validation_images": len(y_val),
            "images_per_second": progress.images_per_second,
            "train_seconds": round(train_seconds, 2),
            "evaluate_seconds": round(eval_seconds, 2),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "dataset_source": dataset.source,
        }
        runs.save_run(model, record, models_dir)
        self.update(
            state=STOPPED if stopped else DONE,
            run_id=record["run_id"],
            test_accuracy=test_accuracy,
            message=f"test accuracy {test_accuracy:.2%}",
        )

    @staticmethod
    def _device_label(strategy: tf.distribute.Strategy, gpus: list[str]) -> str:
        replicas = strategy.num_replicas_in_sync
        if replicas > 1:
            devices = getattr(strategy.extended, "worker_devices", ())
            return f"MirroredStrategy over {replicas} devices ({', '.join(devices)})"
        if gpus:
            return f"GPU: {gpus[0]}"
        return "CPU"


@functools.cache
def _progress_callback_class() -> type:
    """The Keras callback class, made on first use so importing this module stays light."""
    import keras

    class ProgressCallback(keras.callbacks.Callback):
        """Publishes batch and epoch progress to the job, and stops when asked."""

        def __init__(self, job: TrainingJob, batches: int) -> None:
            super().__init__()
            self.job = job
            self.batches = batches
            self.epoch = 0
            self.epoch_started = 0.0
            self.next_live_point = 0.0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch
            self.next_live_point = 0.0
            self.epoch_started = time.perf_counter()
            self.job.update(batch=0)

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            done = batch + 1
            fraction = done / self.batches
            elapsed = time.perf_counter() - self.epoch_started
            rate = min(done, self.batches) * self.job.config.batch_size / elapsed
            remaining = (self.job.config.epochs - self.epoch - fraction) * self.batches
            eta = remaining * elapsed / done
            point = None
            if fraction >= self.next_live_point and logs:
                point = {
                    "epoch": self.epoch + fraction,
                    "loss": float(logs["loss"]),
                    "accuracy": float(logs["accuracy"]),
                }
                self.next_live_point = fraction + 1.0 / LIVE_POINTS_PER_EPOCH

            def change(p: Progress) -> None:
                p.batch = done
                # The first calls of the first epoch include tracing the graph:
                # leave them out of the speed users see.
                if self.epoch > 0 or done > self.batches // 4:
                    p.images_per_second = rate
                p.eta = eta
                if point:
                    p.live.append(point)

            self.job._with_progress(change)
            if self.job.stop_requested:
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            entry = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
            entry["seconds"] = round(time.perf_counter() - self.epoch_started, 3)

            def change(p: Progress) -> None:
                p.epoch = epoch + 1
                p.history.append(entry)

            self.job._with_progress(change)

    return ProgressCallback


class TrainingManager:
    """Runs jobs in background threads, ``max_concurrent`` at a time, first come first served."""

    def __init__(
        self,
        max_concurrent: int = config.MAX_CONCURRENT_TRAININGS,
        dataset_loader: Callable[[], Dataset] = load_dataset,
        models_dir: Any = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.max_concurrent = max_concurrent
        self._dataset_loader = dataset_loader
        self._models_dir = models_dir
        self._lock = threading.Lock()
        self._jobs: dict[str, TrainingJob] = {}
        self._waiting: list[TrainingJob] = []
        self._running: set[str] = set()

    def submit(self, cfg: TrainConfig) -> TrainingJob:
        job = TrainingJob(cfg)
        with self._lock:
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._dispatch_locked()
        return job

    def get(self, job_id: str) -> TrainingJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[TrainingJob]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created_at)

    def active_jobs(self) -> list[TrainingJob]:
        return [j for j in self.jobs() if j.snapshot().state not in FINAL_STATES]

    def cancel(self, job: TrainingJob) -> None:
        """Stop a running job, or take a queued one out of the queue."""
        job.stop()
        with self._lock:
            if job in self._waiting:
                self._waiting.remove(job)
                job.update(state=STOPPED, message="cancelled before it started")
                job.finished.set()
                self._renumber_locked()

    def _dispatch_locked(self) -> None:
        while self._waiting and len(self._running) < self.max_concurrent:
            job = self._waiting.pop(0)
            self._running.add(job.id)
            threading.Thread(
                target=self._work, args=(job,), name=f"training-{job.id}", daemon=True
            ).start()
        self._renumber_locked()

    def _renumber_locked(self) -> None:
        for position, job in enumerate(self._waiting, start=1):
            job.update(queue_position=position, state=QUEUED)

    def _work(self, job: TrainingJob) -> None:
        job.update(queue_position=0)
        try:
            job.run(models_dir=self._models_dir, dataset_loader=self._dataset_loader)
        finally:
            with self._lock:
                self._running.discard(job.id)
                self._dispatch_locked()
