"""The Ray backend: trainings as Ray tasks, progress and Stop through relays, runs saved here.

The Ray tests start a private Ray instance (address ``local``: a head owned by
this process, shut down at the end) and train real networks on it, so they
take the ``ray`` marker: ``pytest -m "not ray"`` leaves them out.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import ray

from fmnist import config, runs
from fmnist.data import Dataset
from fmnist.jobs.ray_backend import RayBackend, job_slots
from fmnist.jobs.store import JobStore, Worker
from fmnist.schema import EpochMetrics, JobState, JobView, TrainConfig

from .test_runs import small_keras_zip


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def has_progress(view: JobView) -> bool:
    return view.batch > 0 or bool(view.live) or bool(view.history)


# -- without a cluster --------------------------------------------------------


def test_job_slots_follow_what_each_job_asks_for() -> None:
    cluster = {"CPU": 16.0, "GPU": 2.0}
    assert job_slots(cluster, cpus_per_job=1, gpus_per_job=0) == 16
    assert job_slots(cluster, cpus_per_job=1, gpus_per_job=0.25) == 8
    assert job_slots(cluster, cpus_per_job=4, gpus_per_job=0.25) == 4
    assert job_slots({"CPU": 2.0}, cpus_per_job=1, gpus_per_job=0.5) == 1  # waits for a GPU
    assert job_slots({"CPU": 3.0}, cpus_per_job=0, gpus_per_job=0) == 3


def test_save_run_files_is_atomic_and_wants_a_keras_file(tmp_path: Path) -> None:
    record = {"run_id": "20260101-000000-mlp-abcd", "network": "mlp"}
    with pytest.raises(runs.RunError, match=r"model was refused: not a \.keras file \(a \.keras"):
        runs.save_run_files(b"<html>not a model</html>", record, tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(runs.RunError, match="zip archive is damaged"):
        runs.save_run_files(b"PK\x03\x04 the rest of a zip", record, tmp_path)
    assert list(tmp_path.iterdir()) == []
    payload = small_keras_zip()
    folder = runs.save_run_files(payload, record, tmp_path)
    assert (folder / runs.MODEL_FILE).read_bytes() == payload
    assert json.loads((folder / runs.RECORD_FILE).read_text())["network"] == "mlp"
    assert [p.name for p in tmp_path.iterdir()] == [record["run_id"]]
    with pytest.raises(runs.RunError, match="exists already"):
        runs.save_run_files(small_keras_zip(), record, tmp_path)


# -- on a private Ray instance -----------------------------------------------


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, dataset: Dataset
) -> Iterator[tuple[RayBackend, JobStore, Path]]:
    models = tmp_path_factory.mktemp("ray") / "models"
    models.mkdir()
    patch = pytest.MonkeyPatch()
    patch.setattr(config, "MODELS_DIR", models)
    patch.delenv("FMNIST_WORKERS", raising=False)  # one job per CPU, as found by Ray
    store = JobStore(models / ".jobs" / "jobs.sqlite3")
    backend = RayBackend(
        store, "local", workers=None, cpus_per_job=1, gpus_per_job=0, dataset=dataset
    ).start()
    try:
        yield backend, store, models
    finally:
        backend.close()
        patch.undo()


@pytest.mark.ray
def test_a_training_runs_as_a_ray_task_and_the_server_saves_its_run(
    cluster: tuple[RayBackend, JobStore, Path],
) -> None:
    backend, store, models = cluster
    tensorflow_was_loaded = "tensorflow" in sys.modules or "keras" in sys.modules
    # One job per CPU of the private instance (FMNIST_CPUS_PER_JOB=1).
    assert backend.slots == int(ray.cluster_resources()["CPU"])

    submitted = time.monotonic()
    job_id = store.create(TrainConfig(network="mlp", epochs=2, limit=2000), "token")
    first_progress = None
    deadline = submitted + 120
    while not (view := store.get(job_id)).state.final:
        if first_progress is None and has_progress(view):
            first_progress = time.monotonic() - submitted
        if time.monotonic() > deadline:
            pytest.fail(f"the job is still {view.state.value} after 120s: {view.message}")
        time.sleep(0.05)
    saved = time.monotonic() - submitted

    assert view.state is JobState.DONE, view.message
    assert first_progress is not None, "no progress reached the store before the job ended"
    assert [m.epoch for m in view.history] == [1, 2]
    assert view.live and view.batches > 0 and view.device.startswith("CPU on ")
    records, warnings = runs.list_runs(models)
    assert warnings == []
    [record] = records
    assert record["run_id"] == view.run_id and record["job_id"] == job_id
    assert record["status"] == "done" and record["epochs_completed"] == 2
    assert record["test_accuracy"] > 0.5
    assert view.test_accuracy == pytest.approx(record["test_accuracy"])
    assert not [p for p in models.iterdir() if p.name.startswith(".tmp-")]
    assert backend.running_jobs() == []
    if not tensorflow_was_loaded:
        # The server's side of the backend (dispatcher, saving) never needs TensorFlow.
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
    print(f"\nmlp 2,000 images on Ray: first progress {first_progress:.1f}s, saved {saved:.1f}s")


@pytest.mark.ray
def test_stop_reaches_the_ray_task_and_saves_a_stopped_run(
    cluster: tuple[RayBackend, JobStore, Path],
) -> None:
    _, store, models = cluster
    job_id = store.create(TrainConfig(network="cnn", epochs=3, limit=5000), "token")
    wait_for(lambda: has_progress(store.get(job_id)), 90, "the cnn's first progress")
    assert store.request_stop(job_id) is JobState.STOPPING
    wait_for(lambda: store.get(job_id).state.final, 90, "the stopped job to end")

    view = store.get(job_id)
    assert view.state is JobState.STOPPED, view.message
    record = runs.read_record(view.run_id, models)
    assert record["status"] == "stopped" and record["job_id"] == job_id
    assert record["epochs_completed"] < 3
    assert (models / view.run_id / runs.MODEL_FILE).is_file()


@pytest.mark.ray
def test_an_interrupted_job_resumes_on_ray_from_its_checkpoint_or_fails_in_one_line(
    cluster: tuple[RayBackend, JobStore, Path],
) -> None:
    _, store, models = cluster
    finished = [r for r in runs.list_runs(models)[0] if r["network"] == "mlp"]
    if not finished:
        pytest.skip("needs the mlp run of the first test as a checkpoint")
    checkpoint_model = models / finished[0]["run_id"] / runs.MODEL_FILE

    def interrupted_job(checkpoint: bytes) -> str:
        """A job a local worker left after epoch 1 with ``checkpoint``, back in the queue."""
        job_id = store.create(
            TrainConfig(network="mlp", epochs=2, limit=2000), "token", worker=Worker("elsewhere", 1)
        )
        path = store.checkpoint_path(job_id)
        path.parent.mkdir(parents=True)
        path.write_bytes(checkpoint)
        first_epoch = EpochMetrics(1, 0.9, 0.7, 0.8, 0.72, 1.0)
        store.report(job_id, {"epoch": 1, "checkpoint_epoch": 1}, epochs=[first_epoch])
        assert store.interrupt(job_id, "its worker process died")
        store.resume(job_id)
        return job_id

    broken = interrupted_job(b"PK\x03\x04 not really a model")
    resumed = interrupted_job(checkpoint_model.read_bytes())
    wait_for(lambda: store.get(broken).state.final, 90, "the broken resume to end")
    wait_for(lambda: store.get(resumed).state.final, 90, "the resumed job to end")

    view = store.get(broken)
    assert view.state is JobState.FAILED and view.run_id == ""
    assert view.message.split(":")[0].endswith("Error") and "\n" not in view.message
    view = store.get(resumed)
    assert view.state is JobState.DONE, view.message
    record = runs.read_record(view.run_id, models)
    # Epoch 1 came from the checkpoint's history; only epoch 2 was trained on Ray.
    assert [m["epoch"] for m in record["history"]] == [1, 2]
    assert record["history"][0]["loss"] == 0.9
    assert not store.checkpoint_path(resumed).exists()


@pytest.mark.ray
def test_a_run_is_continued_on_ray_from_the_parent_the_server_sends(
    cluster: tuple[RayBackend, JobStore, Path],
) -> None:
    _, store, models = cluster
    finished = [r for r in runs.list_runs(models)[0] if r["network"] == "mlp"]
    if not finished:
        pytest.skip("needs the mlp run of the first test as a parent")
    parent = finished[0]
    done = parent["epochs_completed"]
    # The parent lives in this test's models folder, which the Ray worker process (a
    # fresh Python, default settings) does not know: it trains from what the server sent.
    child = TrainConfig.from_dict(parent["config"]).to_dict() | {
        "network": "mlp", "epochs": done + 1, "parent_run": parent["run_id"],
    }  # fmt: skip
    job_id = store.create(TrainConfig.from_settings(child), "token")
    wait_for(lambda: store.get(job_id).state.final, 120, "the continued run to end")
    view = store.get(job_id)
    assert view.state is JobState.DONE, view.message
    record = runs.read_record(view.run_id, models)
    assert record["config"]["parent_run"] == parent["run_id"]
    assert [m["epoch"] for m in record["history"]] == list(range(1, done + 2))
    assert record["history"][:done] == parent["history"]  # the parent's curves, carried on


@pytest.mark.ray
def test_closing_the_backend_interrupts_the_jobs_it_runs(
    cluster: tuple[RayBackend, JobStore, Path],
) -> None:
    """Last in this module: it closes the module's backend (closing twice is harmless)."""
    backend, store, _ = cluster
    job_id = store.create(TrainConfig(network="cnn", epochs=50, limit=5000), "token")
    wait_for(lambda: has_progress(store.get(job_id)), 90, "the long job's first progress")
    backend.close()
    view = store.get(job_id)
    assert view.state is JobState.INTERRUPTED and "the server stopped" in view.message
    assert backend.running_jobs() == []
