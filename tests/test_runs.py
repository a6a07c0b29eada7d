"""Runs on disk: atomic saves, listing that skips damage, names that stay inside models/."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from fmnist import runs
from fmnist.ml.networks import build_model


def small_keras_zip() -> bytes:
    """A zip shaped like a .keras file (the members Keras writes), for tests that never load it."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for name in ("metadata.json", "config.json", "model.weights.h5"):
            zipped.writestr(name, b"{}")
    return archive.getvalue()


def record(run_id: str, accuracy: float = 0.5) -> dict:
    return {"run_id": run_id, "network": "mlp", "test_accuracy": accuracy, "finished_at": run_id}


def test_save_list_load_delete(models_dir: Path) -> None:
    model = build_model("mlp")
    runs.save_run(model, record("a-run", 0.8), models_dir)
    runs.save_run(model, record("b-run", 0.9), models_dir)
    listed, warnings = runs.list_runs(models_dir)
    assert [r["run_id"] for r in listed] == ["b-run", "a-run"] and warnings == []
    assert runs.best_run(models_dir)["run_id"] == "b-run"
    assert runs.load_model("a-run", models_dir).count_params() == model.count_params()
    runs.delete_run("b-run", models_dir)
    assert [r["run_id"] for r in runs.list_runs(models_dir)[0]] == ["a-run"]
    assert sorted(p.name for p in models_dir.iterdir()) == ["a-run"]


def test_crash_during_save_leaves_no_listed_run(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(runs.json, "dumps", crash)
    with pytest.raises(OSError, match="disk full"):
        runs.save_run(build_model("mlp"), record("crashed"), models_dir)
    assert runs.list_runs(models_dir) == ([], [])
    assert list(models_dir.iterdir()) == []  # not even a hidden temporary folder


def test_unreadable_run_is_skipped_with_a_warning(models_dir: Path) -> None:
    runs.save_run(build_model("mlp"), record("good"), models_dir)
    (models_dir / "broken").mkdir()
    (models_dir / "broken" / "run.json").write_text("{not json")
    (models_dir / "no-model").mkdir()
    (models_dir / "no-model" / "run.json").write_text(json.dumps(record("no-model")))
    listed, warnings = runs.list_runs(models_dir)
    assert [r["run_id"] for r in listed] == ["good"]
    assert len(warnings) == 2 and any("broken" in w for w in warnings)


@pytest.mark.parametrize("bad", ["../escape", "/etc", "..", "a/b", "", ".hidden", "A" * 101])
def test_run_names_never_escape_models(models_dir: Path, bad: str) -> None:
    with pytest.raises(runs.RunError):
        runs.run_path(bad, models_dir)


def test_user_names_become_safe_slugs() -> None:
    assert runs.slugify("../../My Best Run!!") == "my-best-run"
    run_id = runs.new_run_id("cnn-bn", "../../etc/passwd")
    assert "/" not in run_id and ".." not in run_id and "cnn-bn-etc-passwd" in run_id


def test_runs_ranked_by_accuracy_leave_out_unscored_ones() -> None:
    records = [record("a", 0.8), {**record("b"), "test_accuracy": None}, record("c", 0.9)]
    assert [r["run_id"] for r in runs.by_accuracy(records)] == ["c", "a"]


def test_the_shipped_run_cannot_be_deleted(models_dir: Path) -> None:
    runs.save_run(build_model("mlp"), {**record("shipped-one"), "shipped": True}, models_dir)
    runs.save_run(build_model("mlp"), record("mine"), models_dir)
    with pytest.raises(runs.RunError, match="ships with the app and cannot be deleted"):
        runs.delete_run("shipped-one", models_dir)
    runs.delete_run("mine", models_dir)
    assert [r["run_id"] for r in runs.list_runs(models_dir)[0]] == ["shipped-one"]


def test_short_labels_use_the_name_or_the_network_and_time() -> None:
    named = {"run_id": "x", "name": "demo", "network": "cnn", "finished_at": "2026-11-23T10:02:03"}
    assert runs.short_label(named) == "demo (cnn)"
    assert runs.short_label({**named, "name": ""}) == "cnn · 11-23 10:02"


def test_find_run_by_id_unique_start_or_name(models_dir: Path) -> None:
    for run_id, name in (
        ("20261123-100000-mlp-aaaa", "Baseline"),
        ("20261123-110000-cnn-bbbb", "wide"),
        ("20261124-090000-cnn-cccc", "wide"),
    ):
        runs.save_run_files(small_keras_zip(), {**record(run_id), "name": name}, models_dir)
    assert runs.find_run("20261123-110000-cnn-bbbb", models_dir)["name"] == "wide"
    assert runs.find_run("20261124", models_dir)["run_id"] == "20261124-090000-cnn-cccc"
    assert runs.find_run("baseline", models_dir)["run_id"] == "20261123-100000-mlp-aaaa"
    with pytest.raises(runs.RunError, match=r"'20261123' matches 2 runs \(.*\): give more"):
        runs.find_run("20261123", models_dir)
    with pytest.raises(runs.RunError, match="'wide' matches 2 runs"):
        runs.find_run("wide", models_dir)
    with pytest.raises(runs.RunError, match="no run named 'cnn'"):
        runs.find_run("cnn", models_dir)
    with pytest.raises(runs.RunError, match="give a run"):
        runs.find_run("  ", models_dir)
    # A damaged run asked for by its id says what is wrong with it.
    (models_dir / "half-saved").mkdir()
    (models_dir / "half-saved" / "run.json").write_text(json.dumps(record("half-saved")))
    with pytest.raises(runs.RunError, match=r"has no model\.keras"):
        runs.find_run("half-saved", models_dir)


def test_runs_module_needs_neither_numpy_nor_tensorflow() -> None:
    script = "import sys, fmnist.runs; sys.exit(bool({'numpy', 'tensorflow'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 0


def test_leftovers_of_killed_saves_are_cleaned_once_old(models_dir: Path) -> None:
    runs.save_run(build_model("mlp"), record("kept"), models_dir)
    old = models_dir / ".tmp-kept-abc"
    old.mkdir()
    (old / "model.keras").write_bytes(b"")
    deleted = models_dir / ".deleted-gone-123"
    deleted.mkdir()
    fresh = models_dir / ".tmp-saving-now"
    fresh.mkdir()
    hour_ago = time.time() - 3600
    for folder in (old, deleted):
        os.utime(folder, (hour_ago, hour_ago))
    assert sorted(runs.clean_leftovers(models_dir)) == [deleted.name, old.name]
    assert fresh.is_dir() and (models_dir / "kept").is_dir()
