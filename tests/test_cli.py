"""`python -m fmnist` as a user runs it: a fresh process, JSON on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fmnist import evaluation
from fmnist.jobs.store import JobStore
from fmnist.schema import JobState

from .conftest import PROJECT_ROOT
from .test_imaging import boot_picture, encode


def fmnist(*args: str, models_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    if models_dir is not None:
        env["FMNIST_MODELS_DIR"] = str(models_dir)
    return subprocess.run(
        [sys.executable, "-m", "fmnist", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=600,
        check=False,
    )


def test_info_json() -> None:
    done = fmnist("info", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert (
        info["dataset_path"] == "/usr/share/datasets/fashion-mnist"
        or Path(info["dataset_path"]).is_dir()
    )
    assert (info["train_count"], info["test_count"]) == (60_000, 10_000)
    assert info["tensorflow"].startswith("2.")
    assert info["devices"] and all(isinstance(d, str) for d in info["devices"])


def test_train_then_evaluate(tmp_path: Path) -> None:
    done = fmnist(
        "train",
        "--network",
        "mlp",
        "--epochs",
        "1",
        "--limit",
        "3000",
        "--seed",
        "1",
        "--json",
        models_dir=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert set(result) >= {
        "run_id",
        "path",
        "network",
        "test_accuracy",
        "epochs_completed",
        "images_per_second",
    }
    assert result["network"] == "mlp" and result["epochs_completed"] == 1
    assert Path(result["path"]).parent == tmp_path
    record = json.loads((Path(result["path"]) / "run.json").read_text())
    assert record["command"].startswith("python -m fmnist train --network mlp")
    # The command line recorded its job in the same store the Train page reads.
    job = JobStore(tmp_path / ".jobs" / "jobs.sqlite3").get(result["job_id"])
    assert job is not None and job.source == "cli" and job.run_id == result["run_id"]
    assert job.state is JobState.DONE and [m.epoch for m in job.history] == [1]
    assert record["job_id"] == job.id

    done = fmnist("evaluate", "--run", result["run_id"], "--json", models_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    scored = json.loads(done.stdout)
    matrix = np.array(scored["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 10_000
    assert scored["test_accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-6)
    assert evaluation.accuracy(matrix) == pytest.approx(scored["test_accuracy"])


def test_predict_json_with_good_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "sneaker.png").write_bytes(encode(boot_picture(), "PNG"))
    (tmp_path / "notes.txt").write_text("not a picture")
    done = fmnist(
        "predict",
        str(tmp_path / "sneaker.png"),
        str(tmp_path / "notes.txt"),
        str(tmp_path / "missing.jpg"),
        "--json",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    assert [Path(r["file"]).name for r in results] == ["sneaker.png", "notes.txt", "missing.jpg"]
    first = results[0]
    assert set(first) >= {"file", "label", "class_name", "confidence", "probabilities"}
    assert len(first["probabilities"]) == 10
    assert sum(first["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert "not a picture" in results[1]["error"]
    assert "cannot read" in results[2]["error"]


def test_unusable_arguments_exit_non_zero(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(encode(boot_picture(), "PNG"))
    unknown_run = fmnist("predict", "--run", "no-such-run", str(tmp_path / "a.png"))
    assert unknown_run.returncode != 0 and "no run named" in unknown_run.stderr
    assert "Traceback" not in unknown_run.stderr
    bad_model = tmp_path / "bad.keras"
    bad_model.write_bytes(b"nope")
    refused = fmnist("predict", "--model", str(bad_model), str(tmp_path / "a.png"))
    assert refused.returncode != 0 and "not a .keras file" in refused.stderr
    bad_epochs = fmnist("train", "--epochs", "0", models_dir=tmp_path)
    assert bad_epochs.returncode == 2 and "epochs must be" in bad_epochs.stderr
