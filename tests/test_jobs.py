"""The job store and the local worker pool: queue, ownership, crashes, resume, two at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fmnist import config, runs
from fmnist.client import NotOwnerError, TrainingClient
from fmnist.jobs.pool import LocalPool, describe_exit
from fmnist.jobs.store import JobStore, Worker, hash_token, process_alive
from fmnist.schema import EpochMetrics, JobState, JobView, LivePoint, TrainConfig

QUICK = TrainConfig(network="mlp", epochs=1, limit=1000)


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> JobStore:
    """A store in a private models folder, which worker processes also see."""
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setattr(config, "MODELS_DIR", models)
    monkeypatch.setenv("FMNIST_MODELS_DIR", str(models))
    return JobStore()


@pytest.fixture
def pool_of(store: JobStore) -> Iterator[Callable[[int], LocalPool]]:
    pools: list[LocalPool] = []

    def start(workers: int) -> LocalPool:
        pools.append(LocalPool(store, workers=workers).start())
        return pools[-1]

    yield start
    for pool in pools:
        pool.close()


# -- the store alone ----------------------------------------------------------


def test_queue_is_first_come_first_served_with_positions(store: JobStore) -> None:
    ids = [store.create(QUICK, f"token-{i}") for i in range(3)]
    assert [store.get(i).queue_position for i in ids] == [1, 2, 3]
    assert [j.id for j in store.active_jobs()] == ids
    first = store.claim_next(Worker("here", 1))
    assert first is not None and first.id == ids[0] and first.state is JobState.RUNNING
    assert [store.get(i).queue_position for i in ids[1:]] == [1, 2]
    # A queued job that is cancelled leaves the queue without running.
    assert store.request_stop(ids[1]) is JobState.STOPPED
    assert store.get(ids[2]).queue_position == 1
    assert store.claim_next(Worker("here", 2)).id == ids[2]
    assert store.claim_next(Worker("here", 3)) is None


def test_two_workers_never_claim_the_same_job(store: JobStore) -> None:
    ids = {store.create(QUICK, "t") for _ in range(40)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claim_all(worker: Worker) -> None:
        # Each thread opens its own connection, like a separate process.
        while (job := JobStore(store.path).claim_next(worker)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=claim_all, args=(Worker("h", n),)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)


def test_progress_events_and_stop_requests_round_trip(store: JobStore) -> None:
    job_id = store.create(QUICK, "owner")
    store.claim_next(Worker("h", 1))
    asked = store.report(
        job_id,
        {"batch": 5, "batches": 29, "images_per_second": 1234.5, "phase": ""},
        epochs=[EpochMetrics(1, 0.5, 0.8, 0.45, 0.82, 1.5)],
        live=[LivePoint(0.5, 0.7, 0.7), LivePoint(1.0, 0.5, 0.8)],
    )
    assert asked is False
    view = store.get(job_id)
    assert (view.batch, view.batches, view.images_per_second) == (5, 29, 1234.5)
    assert view.history == [EpochMetrics(1, 0.5, 0.8, 0.45, 0.82, 1.5)]
    assert [p.epoch for p in view.live] == [0.5, 1.0]
    assert store.request_stop(job_id) is JobState.STOPPING
    assert store.report(job_id, {"batch": 6}) is True
    with pytest.raises(ValueError, match="not a progress column"):
        store.update(job_id, state="done")


def test_only_the_owner_or_the_admin_controls_a_job(store: JobStore) -> None:
    client = TrainingClient(store, admin_token="operator-secret")
    job_id = client.submit(QUICK, "alice-secret")
    assert client.can_control(job_id, "alice-secret")
    assert not client.can_control(job_id, "bob-secret")
    assert not client.can_control(job_id, None)
    with pytest.raises(NotOwnerError):
        client.stop(job_id, "bob-secret")
    with pytest.raises(NotOwnerError):
        client.stop(job_id, job_id)  # knowing the job id is not enough
    assert store.get(job_id).state is JobState.QUEUED
    assert client.stop(job_id, "operator-secret") is JobState.STOPPED
    # Without an admin token set, nobody is admin, not even with an empty token.
    assert not TrainingClient(store, admin_token="").can_control(job_id, "")


def test_a_dead_process_interrupts_its_job_and_resume_requeues_it(store: JobStore) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    job_id = store.create(QUICK, "t")
    store.claim_next(Worker(Worker.this_process().host, dead.pid))
    store.update(job_id, checkpoint_epoch=2, epoch=2)
    store.report(job_id, {}, live=[LivePoint(1.5, 1, 1), LivePoint(2.5, 1, 1)])
    assert not process_alive(dead.pid) and process_alive(os.getpid())
    assert store.sweep_dead_workers() == [job_id]
    view = store.get(job_id)
    assert view.state is JobState.INTERRUPTED and view.resumable
    assert view.message == "interrupted at epoch 3: its worker process died"
    other = store.create(QUICK, "t")
    store.resume(job_id)
    view = store.get(job_id)
    # Back in the queue, behind the job that was waiting, without the lost half-epoch.
    assert view.state is JobState.QUEUED and view.queue_position == 2
    assert [p.epoch for p in view.live] == [1.5]
    assert store.claim_next(Worker("h", 1)).id == other
    with pytest.raises(ValueError, match="only an interrupted job can be resumed"):
        store.resume(other)


def test_exit_codes_read_as_one_line() -> None:
    assert describe_exit(-9) == "its worker process was killed (out of memory, or kill -9)"
    assert describe_exit(-11) == "its worker process was crashed (segmentation fault)"
    assert describe_exit(3) == "its worker process exited with code 3"


# -- real worker processes ----------------------------------------------------


def test_two_trainings_run_at_once_with_two_workers(
    store: JobStore, pool_of: Callable[[int], LocalPool]
) -> None:
    pool = pool_of(2)
    assert len(pool.pids()) == 2
    config_ = TrainConfig(network="mlp", epochs=2, limit=5000)
    ids = [store.create(config_, "t") for _ in range(2)]
    overlap: list[bool] = []

    def both_running() -> bool:
        views = [store.get(i, with_events=False) for i in ids]
        if all(v.state is JobState.RUNNING for v in views):
            overlap.append(True)
        return all(v.state.final for v in views)

    wait_for(both_running, 180, "two trainings", interval=0.05)
    views = [store.get(i) for i in ids]
    assert overlap, "the two trainings never ran at the same time"
    assert [v.state for v in views] == [JobState.DONE, JobState.DONE], [v.message for v in views]
    workers = {store.worker_of(i).pid for i in ids}
    assert workers == set(pool.pids())
    assert {r["run_id"] for r in runs.list_runs()[0]} == {v.run_id for v in views}
    # Each run remembers who trained it: only that session (or the operator) may delete it.
    client = TrainingClient(store, admin_token="operator")
    for record in runs.list_runs()[0]:
        assert record["owner"] == hash_token("t")
        assert client.may_delete(record, "t") and client.may_delete(record, "operator")
        assert not client.may_delete(record, "someone") and not client.may_delete(record, None)
        assert not client.may_delete({**record, "shipped": True}, "operator")
    assert store.get_meta("devices")  # the workers said what they train on


def test_kill_9_of_a_worker_interrupts_its_job_and_resume_finishes_it(
    store: JobStore, pool_of: Callable[[int], LocalPool]
) -> None:
    pool = pool_of(1)
    client = TrainingClient(store, admin_token="")
    job_id = client.submit(TrainConfig(network="mlp", epochs=3, limit=10_000), "owner")
    behind = client.submit(QUICK, "someone-else")

    def one_epoch_checkpointed() -> bool:
        view = store.get(job_id, with_events=False)
        return view.checkpoint_epoch >= 1 and view.state is JobState.RUNNING

    wait_for(one_epoch_checkpointed, 120, "the first checkpoint")
    victim = store.worker_of(job_id).pid
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: store.get(job_id).state.final, 30, "the job to be marked")
    view = store.get(job_id)
    assert view.state is JobState.INTERRUPTED
    assert "killed (out of memory, or kill -9)" in view.message and view.resumable
    kept = view.checkpoint_epoch
    assert [m.epoch for m in view.history][:kept] == list(range(1, kept + 1))

    # The pool replaced the worker; the job behind went on by itself.
    wait_for(lambda: store.get(behind).state is JobState.DONE, 120, "the queued job")
    assert victim not in pool.pids() and len(pool.pids()) == 1

    with pytest.raises(NotOwnerError):
        client.resume(job_id, "someone-else")
    client.resume(job_id, "owner")
    wait_for(lambda: store.get(job_id).state.final, 180, "the resumed job")
    view = store.get(job_id)
    assert view.state is JobState.DONE, view.message
    assert [m.epoch for m in view.history] == [1, 2, 3]
    record = runs.read_record(view.run_id)
    assert record["epochs_completed"] == 3 and record["job_id"] == job_id
    assert not store.checkpoint_path(job_id).exists()  # cleaned up after the run was saved
    # TensorBoard's files moved into the run: every epoch once, across the kill and resume,
    # and the test set's score at the last epoch.
    logs = runs.run_path(view.run_id) / runs.TENSORBOARD_FOLDER
    accuracy = tensorboard_points(logs / "train", "epoch_accuracy")
    assert sorted(accuracy) == [0, 1, 2]
    assert [round(accuracy[m.epoch - 1], 4) for m in view.history] == [
        round(m.accuracy, 4) for m in view.history
    ]
    assert sorted(tensorboard_points(logs / "validation", "epoch_loss")) == [0, 1, 2]
    assert tensorboard_points(logs / "test", "epoch_accuracy") == {
        2: pytest.approx(record["test_accuracy"], abs=1e-6)
    }
    assert not store.tensorboard_path(job_id).exists()


def tensorboard_points(folder: Path, tag: str) -> dict[int, float]:
    """{step: value} of one scalar in a folder of TensorBoard event files."""
    import tensorflow as tf

    points: dict[int, float] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == tag:
                    points[event.step] = float(tf.make_ndarray(value.tensor))
    return points


def test_a_failing_job_is_failed_with_one_line_and_the_worker_goes_on(
    store: JobStore, pool_of: Callable[[int], LocalPool]
) -> None:
    # An interrupted job whose checkpoint was damaged on disk: resuming it must fail cleanly.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    broken = store.create(QUICK, "t")
    store.claim_next(Worker(Worker.this_process().host, dead.pid))
    store.checkpoint_path(broken).parent.mkdir(parents=True)
    store.checkpoint_path(broken).write_bytes(b"PK\x03\x04 not really a zip")
    store.update(broken, checkpoint_epoch=1)
    store.sweep_dead_workers()
    store.resume(broken)
    fine = store.create(QUICK, "t")
    pool_of(1)
    wait_for(lambda: store.get(fine).state.final, 180, "the second job")
    failed: JobView = store.get(broken)
    assert failed.state is JobState.FAILED
    assert failed.message and "\n" not in failed.message
    assert store.get(fine).state is JobState.DONE


def test_kill_9_while_the_test_set_is_scored_loses_nothing_earlier(
    store: JobStore, pool_of: Callable[[int], LocalPool]
) -> None:
    pool_of(1)
    client = TrainingClient(store, admin_token="")
    earlier = client.submit(QUICK, "owner")
    wait_for(lambda: store.get(earlier).state is JobState.DONE, 120, "an earlier run")
    earlier_run = store.get(earlier).run_id
    job_id = client.submit(TrainConfig(network="cnn", epochs=1, limit=2_000), "owner")

    # The cnn scores the 10,000 test images for a second or two after its last epoch.
    def scoring_or_ended() -> bool:
        return store.get(job_id, with_events=False).state in (
            JobState.EVALUATING, JobState.DONE, JobState.FAILED,
        )  # fmt: skip

    wait_for(scoring_or_ended, 180, "the test set being scored", interval=0.005)
    assert store.get(job_id, with_events=False).state is JobState.EVALUATING
    os.kill(store.worker_of(job_id).pid, signal.SIGKILL)
    wait_for(lambda: store.get(job_id).state.final, 30, "the job to be marked")
    view = store.get(job_id)
    assert view.state is JobState.INTERRUPTED and view.resumable, view.message
    listed, warnings = runs.list_runs()
    assert [r["run_id"] for r in listed] == [earlier_run] and not warnings

    # Resume: the epoch is in the checkpoint; the test set is scored and the run saved.
    client.resume(job_id, "owner")
    wait_for(lambda: store.get(job_id).state.final, 180, "the resumed job")
    view = store.get(job_id)
    assert view.state is JobState.DONE, view.message
    assert [m.epoch for m in view.history] == [1]
    assert {r["run_id"] for r in runs.list_runs()[0]} == {earlier_run, view.run_id}
