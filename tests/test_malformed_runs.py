"""Malformed run.json files on disk: each is skipped with one short line, the others listed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fmnist import runs
from fmnist.schema import RunRecord, check_run_record

from .conftest import PROJECT_ROOT

GOOD = {
    "run_id": "20261123-100000-mlp-good",
    "name": "good",
    "network": "mlp",
    "config": {"learning_rate": 0.001, "batch_size": 32, "optimizer": "adam", "seed": 42},
    "status": "done",
    "epochs_completed": 2,
    "history": [{"epoch": 1, "loss": 0.5, "accuracy": 0.8, "val_loss": float("nan")}],
    "test_loss": 0.4,
    "test_accuracy": 0.85,
    "images_per_second": 1234.5,
    "finished_at": "2026-11-23T10:00:00",
}


def _with(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def _without(key: str) -> bytes:
    return json.dumps({k: v for k, v in GOOD.items() if k != key}).encode()


# Folder name -> the bytes of its run.json (None: run.json is a folder). Every folder
# also holds a model.keras, so that run.json is the only thing wrong with it.
MALFORMED: dict[str, bytes | None] = {
    "accuracy-as-text": _with(test_accuracy="0.93"),
    "accuracy-nan": _with(test_accuracy=float("nan")),
    "accuracy-above-one": _with(test_accuracy=93.5),
    "speed-infinite": _with(images_per_second=float("inf")),
    "speed-huge": _with(images_per_second=1e300),
    "epochs-huge": _with(epochs_completed=10**30),
    "epochs-negative": _with(epochs_completed=-1),
    "epochs-true": _with(epochs_completed=True),
    "digits-5000": b'{"network": "mlp", "epochs_completed": 1' + b"0" * 5000 + b"}",
    "name-as-number": _with(name=7),
    "network-missing": _without("network"),
    "network-null": _with(network=None),
    "config-as-list": _with(config=[1, 2]),
    "config-lr-as-text": _with(config={"learning_rate": "fast"}),
    "mirrored-as-text": _with(test_accuracy_mirrored="0.9"),
    "mirrored-above-one": _with(test_accuracy_mirrored=1.5),
    "layers-as-text": _with(layers="conv"),
    "history-as-text": _with(history="many"),
    "history-loss-as-text": _with(history=[{"epoch": 1, "loss": "low"}]),
    "history-no-epoch": _with(history=[{"loss": 0.5}]),
    # A key of 100,000 characters, newlines among them: the message names it in one short line.
    "history-key-huge": _with(history=[{"epoch": 1, "k\n" * 50_000: "low"}]),
    "matrix-with-text": _with(confusion_matrix=[[1, 2], [3, "4"]]),
    "owner-not-ascii": _with(owner="é" * 64),
    "shipped-as-text": _with(shipped="no"),
    "not-json": b"{not json",
    "empty-file": b"",
    "not-utf8": b"\xff\xfe\xfa\x00garbage",
    "not-an-object": b"[1, 2, 3]",
    "a-string": b'"run"',
    "nested-deep": b"[" * 100_000 + b"]" * 100_000,
    "too-large": b'{"network": "mlp", "pad": "' + b"x" * 5_000_000 + b'"}',
    "run-json-a-folder": None,
}


def write_malformed_runs(models: Path) -> None:
    for name, payload in MALFORMED.items():
        folder = models / name
        folder.mkdir(parents=True)
        (folder / runs.MODEL_FILE).write_bytes(b"PK\x03\x04 a model")
        if payload is None:
            (folder / runs.RECORD_FILE).mkdir()
        else:
            (folder / runs.RECORD_FILE).write_bytes(payload)


@pytest.fixture
def damaged_models(models_dir: Path) -> Path:
    good = models_dir / GOOD["run_id"]
    good.mkdir()
    (good / runs.MODEL_FILE).write_bytes(b"PK\x03\x04 a model")  # listing never opens it
    (good / runs.RECORD_FILE).write_text(json.dumps(GOOD))
    write_malformed_runs(models_dir)
    return models_dir


def test_each_malformed_run_is_skipped_with_one_short_line(damaged_models: Path) -> None:
    listed, warnings = runs.list_runs(damaged_models)
    assert [r["run_id"] for r in listed] == [GOOD["run_id"]]
    assert len(warnings) == len(MALFORMED), warnings
    for name, warning in zip(sorted(MALFORMED), warnings, strict=True):
        assert warning.startswith(f"skipped {name}: run {name!r} has "), warning
        assert len(warning) - 2 * len(name) < 110 and "\n" not in warning, warning
        # No server path, no errno text, no repeated value.
        for leak in (str(damaged_models), "/", "Errno", "Traceback", "xxxx", "0000"):
            assert leak not in warning, warning
    text = "\n".join(warnings)
    assert "test_accuracy should be a number, not text" in text
    assert "run.json that is not valid JSON" in text
    assert "run.json that cannot be read" in text
    assert "malformed run.json: a list, not an object" in text
    assert "history[0].'k\\nk\\nk" in text and "\\nk…' should be a number, not text" in text
    # The best run and the lookups by name skip the damage; asking for it says why.
    assert runs.best_run(damaged_models)["run_id"] == GOOD["run_id"]
    with pytest.raises(runs.RunError, match="test_accuracy should be a number"):
        runs.find_run("accuracy-as-text", damaged_models)


def test_records_that_the_app_writes_pass_the_check(shipped_run: dict) -> None:
    record = {
        **{name: 1 for name in ("parameters", "epochs_completed", "train_images")},
        **GOOD,
        "confusion_matrix": [[1] * 10] * 10,
        "owner": "ab" * 32,
        "shipped": False,
        "schema_version": RunRecord.SCHEMA_VERSION,
    }
    assert check_run_record(record) == record
    assert check_run_record(shipped_run) == shipped_run
    # Null means missing: the pages' record.get(key, default) then gets its default.
    assert check_run_record({"network": "mlp", "config": None}) == {"network": "mlp"}
    # A diverged training's loss is NaN or infinite: that run is kept.
    check_run_record({**GOOD, "test_loss": float("nan"), "history": [{"epoch": 1, "loss": 1e400}]})


def test_the_command_line_lists_the_others_and_warns_in_one_line_each(
    damaged_models: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["FMNIST_MODELS_DIR"] = str(damaged_models)
    done = subprocess.run(
        [sys.executable, "-m", "fmnist", "runs", "--json"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [row["run_id"] for row in json.loads(done.stdout)] == [GOOD["run_id"]]
    lines = done.stderr.splitlines()
    assert len(lines) == len(MALFORMED), done.stderr
    assert all(line.startswith("warning: skipped ") for line in lines), done.stderr
    assert str(damaged_models) not in done.stderr and "Traceback" not in done.stderr
