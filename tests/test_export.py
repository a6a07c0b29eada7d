"""A run to take away: the zip bundle and the plain Keras script inside it."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from fmnist import export, network_spec, runs
from fmnist.config import DEBIAN_DATA_DIR

from .conftest import PROJECT_ROOT


def test_the_bundle_holds_the_model_record_tables_curves_and_script(shipped_run: dict) -> None:
    run_id = shipped_run["run_id"]
    archive = zipfile.ZipFile(io.BytesIO(export.bundle(run_id, PROJECT_ROOT / "models")))
    names = {Path(name).name for name in archive.namelist()}
    # The run's TensorBoard event files go too (the shipped run has its train and test ones).
    events = {p.name for p in (PROJECT_ROOT / "models" / run_id / "tensorboard").rglob("*.v2")}
    assert len(events) == 2
    assert names == {
        "model.keras", "run.json", "history.csv", "confusion_matrix.csv", "curves.png",
        f"train_{run_id}.py", *events,
    }  # fmt: skip
    member = {Path(name).name: name for name in archive.namelist()}
    model = (PROJECT_ROOT / "models" / run_id / "model.keras").read_bytes()
    assert archive.read(member["model.keras"]) == model
    assert (
        json.loads(archive.read(member["run.json"]))["test_accuracy"]
        == (shipped_run["test_accuracy"])
    )
    history = list(csv.DictReader(io.StringIO(archive.read(member["history.csv"]).decode())))
    assert [int(row["epoch"]) for row in history] == list(
        range(1, shipped_run["epochs_completed"] + 1)
    )
    assert float(history[-1]["accuracy"]) == shipped_run["history"][-1]["accuracy"]
    validated = shipped_run["history"][-1].get("val_accuracy")
    assert history[-1]["val_accuracy"] == ("" if validated is None else str(validated))
    rows = list(csv.reader(io.StringIO(archive.read(member["confusion_matrix.csv"]).decode())))
    counts = np.array([[int(v) for v in row[1:]] for row in rows[1:]])
    assert rows[0][1] == "T-shirt/top" and counts.shape == (10, 10) and counts.sum() == 10_000
    assert np.trace(counts) / 10_000 == shipped_run["test_accuracy"]
    picture = np.asarray(Image.open(io.BytesIO(archive.read(member["curves.png"]))))
    assert picture.shape == (420, 1000, 3)
    drawn = {"training": True, "validation": validated is not None}
    for label, colour in export._COLOURS.items():  # the curves it has, and no other
        pixels = (np.abs(picture.astype(int) - colour).sum(axis=2) < 30).sum()
        assert pixels > 200 if drawn[label] else pixels == 0, label


def test_the_script_trains_the_same_network_with_plain_keras(tmp_path: Path) -> None:
    layers = [
        network_spec.conv(8, 3, "same", "none"),
        {"type": "maxpool", "size": 2},
        {"type": "batchnorm"},
        {"type": "activation", "activation": "relu"},
        {"type": "dropout", "rate": 0.1},
        {"type": "flatten"},
        network_spec.dense(16),
    ]
    record = {
        "run_id": "20261207-000000-custom-test-0000",
        "network": "custom",
        "test_accuracy": 0.5,
        "layers": network_spec.clean(layers),
        "config": {
            "epochs": 3, "batch_size": 64, "learning_rate": 0.01, "optimizer": "adamw",
            "lr_schedule": "one-cycle", "validation_split": 0.1, "seed": 3,
            "label_smoothing": 0.1, "augment": ["flip", "shift:3", "erase:80"],
        },
    }  # fmt: skip
    script = tmp_path / "train.py"
    script.write_text(export.training_script(record))
    assert "'augment': {'flip': None, 'shift': 3, 'erase': 80}" in script.read_text()
    saved = tmp_path / "model.keras"
    done = subprocess.run(
        [sys.executable, str(script), "--epochs", "1", "--limit", "2000",
         "--data", str(DEBIAN_DATA_DIR), "--save", str(saved)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    accuracy = float(done.stdout.split("test accuracy: ")[1].split()[0])
    assert 0.3 < accuracy <= 1.0  # it learnt something in one epoch of 1,800 pictures
    parameters = network_spec.parameters(layers)
    assert f"({parameters:,} parameters)" in done.stdout and saved.is_file()


def test_the_bundle_carries_the_runs_tensorboard_files_but_never_a_link(
    shipped_run: dict, tmp_path: Path
) -> None:
    run_id = shipped_run["run_id"]
    folder = tmp_path / run_id
    shutil.copytree(PROJECT_ROOT / "models" / run_id, folder)
    logs = folder / runs.TENSORBOARD_FOLDER
    shutil.rmtree(logs, ignore_errors=True)
    (logs / "train").mkdir(parents=True)
    (logs / "train" / "events.out.tfevents.1.host.1.v2").write_bytes(b"\x00event")
    secret = tmp_path / "secret.txt"
    secret.write_text("not the run's")
    (logs / "train" / "events.out.tfevents.2.host.2.v2").symlink_to(secret)
    (logs / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    archive = zipfile.ZipFile(io.BytesIO(export.bundle(run_id, tmp_path)))
    events = [name for name in archive.namelist() if "/tensorboard/" in name]
    assert events == [f"{run_id}/tensorboard/train/events.out.tfevents.1.host.1.v2"]
    assert archive.read(events[0]) == b"\x00event"


def test_a_run_without_validation_draws_no_validation_curve_nor_its_legend(
    shipped_run: dict,
) -> None:
    history = [
        {k: v for k, v in entry.items() if not k.startswith("val_")}
        for entry in shipped_run["history"]
    ]
    png = export.curves_png(shipped_run | {"history": history})
    picture = np.asarray(Image.open(io.BytesIO(png))).astype(int)
    orange = np.abs(picture - export._COLOURS["validation"]).sum(axis=2) < 30
    blue = np.abs(picture - export._COLOURS["training"]).sum(axis=2) < 30
    assert blue.sum() > 200 and orange.sum() == 0
