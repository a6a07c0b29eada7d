"""Shared fixtures: the real dataset, a private models folder, small IDX files."""

from __future__ import annotations

import atexit
import gzip
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The dataset's decompressed copies in a folder of this test session's (and of the servers
# and workers it starts): tests load copies of the files from folders of their own, which
# would otherwise evict the user's copies in ~/.cache.
os.environ["FMNIST_CACHE_DIR"] = tempfile.mkdtemp(prefix="fmnist-test-cache-")

from fmnist import config, runs
from fmnist.data import Dataset, load_dataset

atexit.register(shutil.rmtree, config.CACHE_DIR, ignore_errors=True)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
OUTPUT_DIR = PROJECT_ROOT / "test-output"


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return load_dataset(allow_download=False)


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty models folder used by everything that saves or lists runs."""
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setattr(config, "MODELS_DIR", folder)
    return folder


@pytest.fixture(scope="session")
def shipped_run() -> dict:
    """The run that ships in models/ so Predict works before anyone trains."""
    best = runs.best_run(PROJECT_ROOT / "models")
    if best is None:
        pytest.fail("no shipped run in models/: the Predict page would be empty on a fresh install")
    return best


@pytest.fixture(scope="session")
def shipped_model(shipped_run: dict):
    from fmnist.ml.inference import load_run_model

    return load_run_model(shipped_run["run_id"], PROJECT_ROOT / "models")


def copy_shipped_runs(destination: Path) -> None:
    for folder in (PROJECT_ROOT / "models").iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            shutil.copytree(folder, destination / folder.name)


def write_idx(
    path: Path, magic: int, dims: tuple[int, ...], payload: bytes, gz: bool = True
) -> str:
    """Write an IDX file with the given header and body; return the body's sha256 with header."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    raw = header + payload
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return hashlib.sha256(raw).hexdigest()


@pytest.fixture
def small_images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)


# -- Chromium for the browser tests (pytest-playwright's fixtures, pointed at Debian's) ------

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM}: run `make test`, or set CHROMIUM_PATH"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}
