"""Which devices TensorFlow trains on: GPUs with memory growth, several through mirroring."""

from __future__ import annotations

import contextlib
import os

import tensorflow as tf

from fmnist import hardware


def configure_gpus(memory_limit_mb: int | None = None) -> list[str]:
    """Memory growth on every GPU (so several processes can share one); return their names.

    ``memory_limit_mb`` caps what this process may take of each GPU, so that
    several small trainings fit side by side on one device.
    """
    if memory_limit_mb is None:
        memory_limit_mb = int(os.environ.get("FMNIST_GPU_MEMORY_MB", "0") or 0)
    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        # A RuntimeError means the GPU was initialised by an earlier call already.
        with contextlib.suppress(RuntimeError):
            if memory_limit_mb:
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=memory_limit_mb)]
                )
            else:
                tf.config.experimental.set_memory_growth(gpu, True)
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    return names


def describe_devices() -> list[str]:
    """Human names of the compute devices training will use."""
    gpus = configure_gpus()
    if gpus:
        return [f"GPU {i}: {name}" for i, name in enumerate(gpus)]
    return [hardware.cpu_description()]


def choose_strategy(devices: tuple[str, ...] = ()) -> tf.distribute.Strategy:
    """MirroredStrategy over several devices, the default strategy for one."""
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices=list(devices))
    if devices:
        return tf.distribute.OneDeviceStrategy(devices[0])
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def training_device(strategy: tf.distribute.Strategy) -> str:
    """The device a one-replica strategy trains on: its own, or the first GPU, or the CPU."""
    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        return strategy.extended.worker_devices[0]
    return "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0"


def device_label(strategy: tf.distribute.Strategy, gpus: list[str]) -> str:
    replicas = strategy.num_replicas_in_sync
    if replicas > 1:
        devices = getattr(strategy.extended, "worker_devices", ())
        return f"MirroredStrategy over {replicas} devices ({', '.join(devices)})"
    if gpus:
        return f"GPU: {gpus[0]}"
    return "CPU"


def mixed_policy(capabilities: list[tuple[int, int]]) -> str:
    """The Keras mixed-precision policy for GPUs of these compute capabilities: bfloat16
    where every one has it (Ampere, 8.0, and later: Hopper's tensor cores run it as fast as
    float16, with float32's range, so no loss scaling), float16 otherwise."""
    if capabilities and all(major >= 8 for major, _ in capabilities):
        return "mixed_bfloat16"
    return "mixed_float16"


def mixed_precision_policy(gpus: list[str]) -> str | None:
    """The Keras mixed-precision policy this machine computes natively: the GPUs'
    (mixed_policy), bfloat16 on a CPU with bfloat16 arithmetic, or None where 16 bits would
    be emulated (slower than float32)."""
    if gpus:
        return mixed_policy(gpu_capabilities())
    return "mixed_bfloat16" if hardware.cpu_computes_bfloat16() else None


def gpu_capabilities() -> list[tuple[int, int]]:
    """(major, minor) compute capability of each visible GPU; (0, 0) where not reported."""
    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        found.append(tuple(details.get("compute_capability") or (0, 0)))
    return found
