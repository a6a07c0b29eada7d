"""What this machine offers, found without importing TensorFlow.

Importing TensorFlow takes seconds; `fmnist info` only needs its version (from
the installed package's metadata) and the names of the GPUs (from the NVIDIA
driver), so it answers at once. Training itself reports the device it used.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

NVIDIA_GPUS_DIR = Path("/proc/driver/nvidia/gpus")

# The distributions that provide the `tensorflow` module, most usual first.
_TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly")


def tensorflow_version() -> str:
    """The installed TensorFlow's version, or "not installed"."""
    for name in _TENSORFLOW_DISTRIBUTIONS:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def _model_name(gpu_dir: Path) -> str:
    """The "Model:" line of the driver's information file, e.g. "NVIDIA H100 80GB HBM3"."""
    try:
        text = (gpu_dir / "information").read_text(errors="replace")
    except OSError:
        return "NVIDIA GPU"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model" and value.strip():
            return value.strip()
    return "NVIDIA GPU"


def gpu_names(gpus_dir: Path = NVIDIA_GPUS_DIR) -> list[str]:
    """The NVIDIA GPUs the driver reports, in PCI bus order, as CUDA_VISIBLE_DEVICES limits them."""
    try:
        names = [_model_name(d) for d in sorted(gpus_dir.iterdir()) if d.is_dir()]
    except OSError:
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return names
    chosen = []
    for entry in (part.strip() for part in visible.split(",")):
        if entry.isdigit():
            if int(entry) >= len(names):
                break  # CUDA ignores everything from the first invalid index on
            chosen.append(names[int(entry)])
        elif entry.startswith(("GPU-", "MIG-")):
            chosen.append(f"NVIDIA GPU {entry}")
        else:
            break  # "", "-1" and the like: no (further) GPU
    return chosen


def describe_devices(gpus_dir: Path = NVIDIA_GPUS_DIR) -> list[str]:
    """Human names of the devices training would use, as fmnist.ml.devices words them."""
    gpus = gpu_names(gpus_dir)
    if gpus:
        return [f"GPU {i}: {name}" for i, name in enumerate(gpus)]
    return [f"CPU ({platform.processor() or platform.machine()})"]
