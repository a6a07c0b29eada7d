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
    return [cpu_description()]


CPU_INFO = Path("/proc/cpuinfo")
# x86 instructions for bfloat16 arithmetic, which oneDNN (TensorFlow's CPU kernels on x86
# Linux) uses for bfloat16 convolutions and matrix products: AVX-512 BF16 (AMD Zen 4,
# Intel Cooper Lake) and AMX (Intel Sapphire Rapids).
BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
BFLOAT16_WORDS = "bfloat16"  # how the CPU's description says it has them


def cpu_computes_bfloat16(cpu_info: Path = CPU_INFO) -> bool:
    """Whether this CPU has bfloat16 arithmetic that TensorFlow uses: without it, Keras's
    bfloat16 policy would be emulated, slower than float32."""
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() in ("0", "false"):
        return False  # TensorFlow's own kernels, without oneDNN, have no bfloat16 speed
    try:
        text = cpu_info.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return bool(BFLOAT16_FLAGS & set(value.split()))
    return False


def cpu_description(cpu_info: Path = CPU_INFO) -> str:
    """ "CPU (x86_64)", or "CPU (x86_64, bfloat16)" where it computes in bfloat16."""
    words = [platform.processor() or platform.machine()]
    if cpu_computes_bfloat16(cpu_info):
        words.append(BFLOAT16_WORDS)
    return f"CPU ({', '.join(words)})"


def computes_16_bit(devices: list[str]) -> bool | None:
    """Whether a training on ``devices`` (as describe_devices names them) can use mixed
    precision: a GPU, or a CPU with bfloat16 arithmetic. None where the names do not tell:
    no devices named yet, or a Ray cluster's (its machines decide for themselves)."""
    if any(
        name.startswith("GPU") or (name.startswith("CPU (") and f", {BFLOAT16_WORDS})" in name)
        for name in devices
    ):
        return True
    if devices and all(name.startswith("CPU (") for name in devices):
        return False
    return None
