"""One training, start to finish: data, network, fit with progress, test-set scores.

``train`` is what a local worker process, the command line and a Ray task all
call. It reports to a ProgressSink and returns the trained model with its
RunRecord; saving the run is the caller's job (a Ray task ships the model
back to the server, which saves it).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf

from fmnist import continuation, evaluation, runs
from fmnist.data import Dataset
from fmnist.ml import batch_norm, devices
from fmnist.ml.callbacks import CheckpointCallback, ProgressCallback
from fmnist.ml.inference import predict_mirrored, predict_probabilities
from fmnist.ml.networks import build_model
from fmnist.networks import spec_of
from fmnist.schema import (
    LIVE_POINTS_PER_EPOCH,
    JobState,
    ProgressSink,
    ResumePoint,
    RunRecord,
    TrainConfig,
    augment_strengths,
    check_augments,
)

HEALTH_PROBE = 256  # training images behind each epoch's gradient statistics


def split_data(dataset: Dataset, config: TrainConfig) -> tuple[np.ndarray, ...]:
    """Training and validation arrays after the limit, shuffled with the run's seed."""
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(dataset.y_train))
    if config.limit:
        order = order[: config.limit]
    n_val = round(len(order) * config.validation_split)
    val_idx, train_idx = order[:n_val], order[n_val:]
    return (
        dataset.x_train[train_idx],
        dataset.y_train[train_idx],
        dataset.x_train[val_idx],
        dataset.y_train[val_idx],
    )


class TrainingFeed:
    """The training images and labels as tensors on the training device, and the function
    that turns a batch of positions into the network's input there.

    tf.data then carries only the shuffled positions (a batch of 128 is 1 KB); the
    images stay whole on the device, once (85 MB for 54,000), and each batch is gathered,
    scaled to [0, 1] and augmented inside the compiled training step. On a GPU that takes
    the host and its copies out of the hot loop; on this CPU it saves tf.data's per-picture
    work (``python -m bench --only feed`` measures both ways).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        augment: tuple[str, ...] = (),
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        # As float16, which holds 0-255 exactly: GPUs gather floats, not bytes, and
        # TensorFlow keeps int32 tensors of a GPU in host memory.
        with tf.device(device or "/cpu:0"):
            self.images = tf.identity(images[..., None].astype(np.float16))
            self.labels = tf.identity(labels.astype(np.int32))
            # The random layers' state beside the pictures, not a copy away.
            self.changes = augmentation(augment, seed) if augment else None
        self.count = len(labels)

    def fetch(self, positions: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Float pictures (n, 28, 28, 1) in [0, 1], augmented, and their labels."""
        pictures = tf.cast(tf.gather(self.images, positions), tf.float32) / 255.0
        if self.changes is not None:
            pictures = self.changes(pictures, training=True)
        return pictures, tf.gather(self.labels, positions)

    def positions(self, batch_size: int, shuffle_seed: int | None) -> tf.data.Dataset:
        """Batches of positions, reshuffled each epoch when ``shuffle_seed`` is given."""
        ds = tf.data.Dataset.range(self.count)
        if shuffle_seed is not None:
            ds = ds.shuffle(self.count, seed=shuffle_seed, reshuffle_each_iteration=True)
        return _fixed_sizes(ds.batch(batch_size).prefetch(PREFETCH_BATCHES))

    def pipeline(self, batch_size: int, shuffle_seed: int | None) -> tf.data.Dataset:
        """The same batches made by tf.data on the host, as (pictures, labels): for several
        replicas, whose steps could not all update the random layers' one seed state."""
        ds = self.positions(batch_size, shuffle_seed).map(self.fetch, num_parallel_calls=PARALLEL)
        return _fixed_sizes(ds.prefetch(PREFETCH_BATCHES))

    @contextlib.contextmanager
    def feeding(self, model: keras.Model) -> Iterator[None]:
        """Within the block, ``model.fit`` takes batches of positions (``self.positions``):
        the model's training step fetches its batch on the device before Keras's own step."""
        keras_step = type(model).train_step
        # Keras may build the loss and metrics from the first batch it sees, which would
        # be positions here: they are built first, from two blank pictures, under the
        # strategy (as Keras does), so that their variables live on the training device.
        with model.distribute_strategy.scope():
            pictures, labels = tf.zeros((2, 28, 28, 1)), tf.zeros((2,), tf.int32)
            predicted = model(pictures, training=False)
            model.compute_loss(pictures, labels, predicted, training=False)
            model.compute_metrics(pictures, labels, predicted, sample_weight=None)
        model.reset_metrics()

        def network_step(data: tuple[tf.Tensor, tf.Tensor]) -> dict:
            return keras_step(model, data)

        xla = model.jit_compile
        if xla:
            # XLA compiles the network's step only: it has no kernels for the shift,
            # rotation and zoom layers' image transform, which run before it, uncompiled.
            network_step = tf.function(network_step, jit_compile=True)

        def train_step(positions: tf.Tensor) -> dict:
            return network_step(self.fetch(positions))

        model.jit_compile = False
        model.train_step = train_step
        model.train_function = None
        try:
            yield
        finally:
            del model.train_step  # back to the class's own
            model.jit_compile = xla
            model.train_function = None


def _fixed_sizes(ds: tf.data.Dataset) -> tf.data.Dataset:
    # No tf.data autotuning. Its model thread sleeps between optimisations for up to a
    # minute once a pipeline has run a while, and Keras's end of each epoch (deleting the
    # epoch's iterator) waited for that sleep to end: gdb found the training thread in
    # ~RootDataset::Iterator waiting on Model::OptimizeLoop, and epochs of fast-wide took
    # 87-154 s with whole-process pauses of up to 46 s. Fixed sizes do as well here.
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


# Batches prepared side by side and ahead of the training step (tf.data's fixed sizes).
PARALLEL = max(2, min(8, os.cpu_count() or 2))
PREFETCH_BATCHES = 4
ERASE_SIDES = (4, 12)  # pixels, the box's least and greatest side


def augmentation(entries: tuple[str, ...], seed: int) -> keras.Sequential:
    """Keras's preprocessing layers for the augmentations (fmnist.schema.AUGMENTATIONS, each
    at its strength), applied to float batches (n, 28, 28, 1) in [0, 1], each picture drawn
    anew."""
    strength = augment_strengths(entries)
    steps: list[keras.layers.Layer] = []
    if "flip" in strength:
        steps.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if "shift" in strength:
        share = strength["shift"] / 28
        steps.append(
            # Whole pixels (nearest): a bilinear sub-pixel shift would also blur the picture.
            keras.layers.RandomTranslation(
                share, share, fill_mode="constant", interpolation="nearest", seed=seed + 1
            )
        )
    if "rotate" in strength:
        steps.append(
            keras.layers.RandomRotation(
                strength["rotate"] / 360,  # a share of a full turn, either way
                fill_mode="constant",
                interpolation="bilinear",
                seed=seed + 3,
            )
        )
    if "zoom" in strength:
        steps.append(
            keras.layers.RandomZoom(strength["zoom"] / 100, fill_mode="constant", seed=seed + 4)
        )
    # Erasing last: its grey box is not turned or scaled with the garment.
    if "erase" in strength:
        steps.append(RandomErasing(share=strength["erase"] / 100, seed=seed + 2))
    return keras.Sequential(steps, name="augmentation")


def augmented_samples(
    entries: tuple[str, ...], picture: np.ndarray, count: int, seed: int
) -> np.ndarray:
    """``count`` draws of the training pipeline's augmentation of one uint8 28x28 picture,
    as uint8 (count, 28, 28): what the network will see of it."""
    check_augments(entries)
    if not entries:
        return np.repeat(picture[None], count, axis=0)
    batch = np.repeat(picture[None, :, :, None].astype(np.float32) / 255.0, count, axis=0)
    changed = np.asarray(augmentation(entries, seed)(batch, training=True))
    return np.clip(np.rint(changed[..., 0] * 255), 0, 255).astype(np.uint8)


class RandomErasing(keras.layers.Layer):
    """Random erasing (Zhong et al., 2017): a box of mid grey over part of some pictures, so
    that the network cannot lean on any one region. Keras 3 has no such layer."""

    def __init__(self, share: float = 0.5, seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.share = share  # of the pictures of a batch
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images: tf.Tensor, training: bool = True) -> tf.Tensor:
        n, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
        low, high = ERASE_SIDES
        draw = keras.random.randint((4, n), 0, 1 << 30, seed=self.generator)
        sides_y = low + draw[0] % (high - low + 1)
        sides_x = low + draw[1] % (high - low + 1)
        top = draw[2] % (height - sides_y + 1)
        left = draw[3] % (width - sides_x + 1)
        chosen = keras.random.uniform((n,), seed=self.generator) < self.share
        rows = tf.range(height)[None, :, None]
        columns = tf.range(width)[None, None, :]
        inside = (
            (rows >= top[:, None, None])
            & (rows < (top + sides_y)[:, None, None])
            & (columns >= left[:, None, None])
            & (columns < (left + sides_x)[:, None, None])
            & chosen[:, None, None]
        )
        return tf.where(inside[..., None], tf.constant(0.5, images.dtype), images)


def auto_steps_per_execution(batches_per_epoch: int) -> int:
    # About 40 progress updates per epoch: small networks run many batches per
    # call into TensorFlow, and the curves still move within the epoch.
    return max(1, min(64, batches_per_epoch // LIVE_POINTS_PER_EPOCH))


ONE_CYCLE_WARM_UP = 0.25  # of the batches, climbing to the rate
ONE_CYCLE_START = 1 / 25  # of the rate, where the climb starts (Smith's div_factor)


def make_optimizer(
    name: str, learning_rate: float, schedule: str = "constant", total_steps: int = 1
) -> keras.optimizers.Optimizer:
    classes = {
        "adam": keras.optimizers.Adam,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
        "adamw": keras.optimizers.AdamW,
    }
    return classes[name](learning_rate=make_schedule(learning_rate, schedule, total_steps))


def make_schedule(
    learning_rate: float, schedule: str, total_steps: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate of fmnist.schema.LR_SCHEDULES's ``schedule`` over ``total_steps``."""
    rate: float | keras.optimizers.schedules.LearningRateSchedule = float(learning_rate)
    if schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, total_steps, alpha=0.01)
    elif schedule == "one-cycle":
        # Keras's cosine decay with its linear warm-up: from rate/25 up to the rate, then
        # down to 0.1% of it. A built-in schedule, so checkpoints resume without custom code.
        warm_up = max(1, round(ONE_CYCLE_WARM_UP * total_steps))
        rate = keras.optimizers.schedules.CosineDecay(
            learning_rate * ONE_CYCLE_START,
            max(1, total_steps - warm_up),
            alpha=0.001,  # of the peak, where it ends
            warmup_target=learning_rate,
            warmup_steps=warm_up,
        )
    return rate


def make_loss(label_smoothing: float) -> str | keras.losses.Loss:
    if not label_smoothing:
        return "sparse_categorical_crossentropy"
    return SmoothedCrossentropy(label_smoothing)


@keras.saving.register_keras_serializable("fmnist")
class SmoothedCrossentropy(keras.losses.Loss):
    """Cross-entropy against class numbers with label smoothing, which Keras's sparse loss
    lacks: the numbers become one-hot targets with ``smoothing`` spread over all classes."""

    def __init__(self, smoothing: float = 0.1, **kwargs) -> None:
        super().__init__(name=kwargs.pop("name", "smoothed_crossentropy"), **kwargs)
        self.smoothing = float(smoothing)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        classes = keras.ops.shape(y_pred)[-1]
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        return keras.losses.categorical_crossentropy(
            keras.ops.one_hot(labels, classes, dtype=y_pred.dtype),
            y_pred,
            label_smoothing=self.smoothing,
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "smoothing": self.smoothing}


# XLA's compile costs this CPU about a second (the training step, and the test set's
# predict) and then saves 0.22 ms a step of mlp (a step of 32 pictures: 0.85 -> 0.62 ms):
# it pays for itself after about 5,000 steps, three epochs of all the images.
XLA_MIN_STEPS = 5_000


def use_xla(layers: list[dict], gpus: list[str], replicas: int, steps: int) -> bool | str:
    """Whether the training step is compiled by XLA: Keras's choice on a GPU (XLA without a
    distribution strategy, so not with --devices); on a CPU for one replica of a network
    without convolutions, when the training is long enough to win back the compile. XLA
    made convolutions 2 times slower here."""
    if gpus:
        return "auto"
    dense = not any(layer["type"] == "conv" for layer in layers)
    return replicas == 1 and dense and steps >= XLA_MIN_STEPS


def _compiled_model(
    config: TrainConfig,
    total_steps: int,
    steps_per_execution: int,
    resume: ResumePoint | None,
    jit_compile: bool | str = "auto",
) -> keras.Model:
    if resume is not None:
        # The checkpoint holds the weights and the optimizer's state (its step
        # count included, so a cosine schedule carries on where it was).
        model = keras.models.load_model(resume.checkpoint, compile=True)
        optimizer = model.optimizer
        if resume.restart_schedule:
            optimizer = make_optimizer(
                config.optimizer, config.learning_rate, config.lr_schedule, total_steps
            )
        model.compile(
            optimizer=optimizer,
            loss=make_loss(config.label_smoothing),
            metrics=["accuracy"],
            steps_per_execution=steps_per_execution,
            jit_compile=jit_compile,
        )
        return model
    model = build_model(config.network, config.layers)
    model.compile(
        optimizer=make_optimizer(
            config.optimizer, config.learning_rate, config.lr_schedule, total_steps
        ),
        loss=make_loss(config.label_smoothing),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    return model


def train(
    config: TrainConfig,
    dataset: Dataset,
    sink: ProgressSink,
    resume: ResumePoint | None = None,
    job_id: str = "",
    log_dir: os.PathLike | str | None = None,
    feed_on_device: bool = True,
) -> tuple[keras.Model, RunRecord]:
    """Train ``config`` on ``dataset``, reporting to ``sink``; return the model and its record.

    With ``log_dir``, TensorBoard event files go there as the epochs end (``train/`` and
    ``validation/`` curves, the learning rate) and the test scores at the end (``test/``).
    The batches are fetched on the training device when it is one (``TrainingFeed``), by
    tf.data for several; ``feed_on_device=False`` asks for tf.data (the benchmark's "before").
    """
    config.validate()
    started = time.time()
    if resume is None and config.parent_run:
        resume = continuation.resume_point(config)
    initial_epoch = resume.epoch if resume else 0
    sink.phase("preparing the data")
    # A resumed job reseeds differently so it does not replay the first epochs' order.
    keras.utils.set_random_seed(config.seed + initial_epoch)
    gpus = devices.configure_gpus()
    strategy = devices.choose_strategy(config.devices)
    policy = devices.mixed_precision_policy(gpus) if config.mixed_precision else None

    x_train, y_train, x_val, y_val = split_data(dataset, config)
    batches = math.ceil(len(y_train) / config.batch_size)
    steps_per_execution = config.steps_per_execution or auto_steps_per_execution(batches)
    # One replica fetches its batches on its device; several take tf.data's (below).
    on_device = strategy.num_replicas_in_sync == 1 and feed_on_device
    shuffle_seed = config.seed + initial_epoch
    feed = TrainingFeed(
        x_train,
        y_train,
        config.augment,
        seed=shuffle_seed,
        device=devices.training_device(strategy) if on_device else None,
    )

    sink.phase("building the network")
    if policy is not None:
        keras.mixed_precision.set_global_policy(policy)
    try:
        with strategy.scope():
            # A restarted schedule spans the new epochs only.
            epochs = config.epochs - (initial_epoch if resume and resume.restart_schedule else 0)
            model = _compiled_model(
                config,
                epochs * batches,
                steps_per_execution,
                resume,
                use_xla(
                    spec_of(config.network, config.layers),
                    gpus,
                    strategy.num_replicas_in_sync,
                    (config.epochs - initial_epoch) * batches,
                ),
            )
    finally:
        if policy is not None:
            keras.mixed_precision.set_global_policy("float32")
    # What the network computes in, as built: a continued run keeps its parent's layers.
    sixteen_bit = sorted({layer.dtype_policy.compute_dtype for layer in model.layers} - {"float32"})
    use_mixed = bool(sixteen_bit)
    device = devices.device_label(strategy, gpus)
    if use_mixed:  # the job's page says it
        device += f", {sixteen_bit[0]} arithmetic"

    calibration = (
        x_train[: batch_norm.RECALIBRATION_IMAGES] if batch_norm.has_batch_norm(model) else None
    )
    # The callback scores the validation images itself after each epoch, instead of
    # Keras's validation pass: the same forward pass also gives the epoch's confusion
    # matrix. It comes first, so EarlyStopping reads the val_loss it adds to the logs.
    progress = ProgressCallback(
        sink,
        batches,
        config.batch_size,
        config.epochs,
        initial_epoch=initial_epoch,
        validation=(x_val, y_val) if len(y_val) else None,
        # A fixed batch of training images for the gradients of the weight health.
        probe=(x_train[:HEALTH_PROBE], y_train[:HEALTH_PROBE]),
        calibration=calibration,
    )
    callbacks: list[keras.callbacks.Callback] = [progress]
    if config.early_stopping_patience and len(y_val):
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=config.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    if log_dir is not None:
        # After the progress callback, whose val_* entries it writes as validation curves.
        callbacks.append(EpochTensorBoard(str(log_dir), write_graph=False, profile_batch=0))
    callbacks.append(CheckpointCallback(sink, progress))  # last: the epoch is all written
    sink.phase("compiling the first training step")
    sink.started(device, batches)
    fit_started = time.perf_counter()
    if initial_epoch < config.epochs:
        with feed.feeding(model) if on_device else contextlib.nullcontext():
            model.fit(
                feed.positions(config.batch_size, shuffle_seed)
                if on_device
                else feed.pipeline(config.batch_size, shuffle_seed),
                epochs=config.epochs,
                initial_epoch=initial_epoch,
                callbacks=callbacks,
                shuffle=False,  # the positions are shuffled already
                verbose=0,
            )
    del feed  # its copy of the images, on a GPU too, is not needed to score the test set
    if calibration is not None and progress.partial_epoch:
        # A stop cut the last epoch: its end did not measure the statistics.
        batch_norm.recalibrate(model, calibration)
    train_seconds = time.perf_counter() - fit_started

    sink.evaluating()
    eval_started = time.perf_counter()
    with strategy.scope():
        probabilities = predict_probabilities(model, dataset.x_test, refuse_non_finite=False)
        # A network that learnt from mirrored pictures is also scored with test-time
        # augmentation; one that never saw a mirror image could lose from it.
        mirrored = (
            evaluation.score(
                predict_mirrored(model, dataset.x_test, False, kept=probabilities), dataset.y_test
            ).accuracy
            if "flip" in augment_strengths(config.augment)
            else None
        )
    scores = evaluation.score(probabilities, dataset.y_test)
    eval_seconds = time.perf_counter() - eval_started
    if log_dir is not None:
        write_test_scores(log_dir, initial_epoch + len(progress.history), scores, mirrored)

    history = [*(resume.history if resume else ()), *progress.history]
    epoch_seconds = sum(m.seconds for m in history)
    images_trained = len(y_train) * (len(history) + progress.partial_epoch)
    stopped = progress.stopped_by_user
    record = RunRecord(
        run_id=runs.new_run_id(config.network, config.name),
        name=config.name,
        network=config.network,
        parameters=int(model.count_params()),
        config={k: v for k, v in config.to_dict().items() if k not in ("name", "command")},
        command=config.command,
        status=(JobState.STOPPED if stopped else JobState.DONE).value,
        epochs_completed=len(history),
        history=[m.scores() for m in history],
        validation_confusion_matrices=[m.val_confusion for m in history if m.val_confusion],
        layer_health=[m.layer_health for m in history if m.layer_health],
        test_loss=scores.log_loss,
        test_accuracy=scores.accuracy,
        test_accuracy_mirrored=mirrored,
        layers=spec_of(config.network, config.layers),
        confusion_matrix=scores.confusion_matrix.tolist(),
        device=device,
        mixed_precision=use_mixed,
        train_images=len(y_train),
        validation_images=len(y_val),
        # The run's average, not the last moment's rate.
        images_per_second=round(images_trained / epoch_seconds, 1) if epoch_seconds else 0.0,
        train_seconds=round(train_seconds, 2),
        evaluate_seconds=round(eval_seconds, 2),
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        tensorflow=tf.__version__,
        keras=keras.__version__,
        dataset_source=dataset.source,
        partial_epoch=round(progress.partial_epoch, 4),
        job_id=job_id,
    )
    return model, record


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras's TensorBoard callback, with each epoch's points on disk when the epoch ends.

    Its writers flush every two minutes or ten points: a live ``tensorboard`` would lag
    behind the page, and a worker killed mid-run would lose the epochs it had written.
    """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        for writer in getattr(self, "_writers", {}).values():  # Keras's own, by name
            writer.flush()


def write_test_scores(
    log_dir: os.PathLike | str, epoch: int, scores: evaluation.Scores, mirrored: float | None
) -> None:
    """The test set's scores as TensorBoard points at the last epoch, beside Keras's curves."""
    writer = tf.summary.create_file_writer(os.path.join(log_dir, "test"))
    with writer.as_default(step=max(epoch - 1, 0)):
        # Keras's callback names its points epoch_*: the test point lands on the same charts.
        tf.summary.scalar("epoch_accuracy", scores.accuracy)
        tf.summary.scalar("epoch_loss", scores.log_loss)
        if mirrored is not None:
            tf.summary.scalar("epoch_accuracy_mirrored", mirrored)
    writer.close()
