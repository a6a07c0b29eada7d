"""A training worker process: claims queued jobs from the store and trains them, one at a time.

Started by the server's pool as ``python -m fmnist.jobs.worker --store PATH``.
The command line's ``train`` runs its own job through ``run_job``, the same
code. TensorFlow is loaded once per worker and stays warm between jobs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fmnist import runs
from fmnist.data import Dataset, load_dataset
from fmnist.jobs.store import JobStore, Worker
from fmnist.messages import failure_line
from fmnist.schema import EpochMetrics, JobState, JobView, LivePoint, ResumePoint

# How often a worker writes progress to the store (and looks for a stop
# request): often enough that the page's once-a-second poll always has
# something new, rarely enough to cost nothing (a transaction takes ~0.2 ms).
FLUSH_SECONDS = 0.25


class BatchedSink:
    """The batching every job's ProgressSink shares: what happens between two sends is
    gathered, and sent every FLUSH_SECONDS and at each epoch's end by the subclass's
    ``_send``, which also keeps the stop flag up to date."""

    def __init__(self) -> None:
        self.batches = 0
        self._values: dict[str, Any] = {}
        self._epochs: list[EpochMetrics] = []
        self._live: list[LivePoint] = []
        self._last_flush = 0.0
        self._stop = False

    def batch(
        self, done: int, images_per_second: float, eta: float | None, point: LivePoint | None
    ) -> None:
        self._values.update(batch=done, phase="")
        if images_per_second > 0:
            self._values.update(images_per_second=images_per_second, eta=eta)
        if point is not None:
            self._live.append(point)
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def epoch_end(self, metrics: EpochMetrics) -> None:
        self._values.update(epoch=metrics.epoch, batch=self.batches)
        self._epochs.append(metrics)
        self.flush()

    def should_stop(self) -> bool:
        return self._stop

    def flush(self) -> None:
        self._send(self._values, self._epochs, self._live)
        self._values, self._epochs, self._live = {}, [], []
        self._last_flush = time.monotonic()

    def _send(
        self, values: dict[str, Any], epochs: list[EpochMetrics], live: list[LivePoint]
    ) -> None:
        raise NotImplementedError


class StoreSink(BatchedSink):
    """A ProgressSink writing to the job store."""

    def __init__(self, store: JobStore, job_id: str) -> None:
        super().__init__()
        self.store = store
        self.job_id = job_id
        self._stop = store.stop_requested(job_id)

    def phase(self, text: str) -> None:
        self.store.update(self.job_id, phase=text)

    def started(self, device: str, batches: int) -> None:
        self.batches = batches
        self.store.update(self.job_id, device=device, batches=batches)

    def checkpoint(self, model: Any, epoch: int) -> None:
        path = self.store.checkpoint_path(self.job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name("checkpoint.partial.keras")
        model.save(partial)
        # The rename is atomic: a crash leaves the previous checkpoint or this one.
        os.replace(partial, path)
        self.store.update(self.job_id, checkpoint_epoch=epoch)

    def evaluating(self) -> None:
        self.flush()
        self.store.start_evaluating(self.job_id)

    def _send(
        self, values: dict[str, Any], epochs: list[EpochMetrics], live: list[LivePoint]
    ) -> None:
        self._stop = self.store.report(self.job_id, values, epochs, live)


def resume_point(store: JobStore, job: JobView) -> ResumePoint | None:
    path = store.checkpoint_path(job.id)
    if job.checkpoint_epoch and path.is_file():
        return ResumePoint(str(path), job.checkpoint_epoch, tuple(job.history))
    return None


def run_job(store: JobStore, job: JobView, dataset: Dataset | None = None) -> JobState:
    """Train a claimed job to its end, save its run, record the outcome in the store."""
    from fmnist.ml import engine

    try:
        if store.stop_requested(job.id):
            store.set_state(job.id, JobState.STOPPED, "stopped before it started")
            return JobState.STOPPED
        if dataset is None:
            store.update(job.id, phase="loading Fashion-MNIST")
            dataset = load_dataset()
        logs = store.tensorboard_path(job.id)
        model, record = engine.train(
            job.config, dataset, StoreSink(store, job.id), resume_point(store, job), job.id, logs
        )
        runs.save_run(model, record.to_dict() | {"owner": store.owner_of(job.id)}, logs=logs)
        state = JobState(record.status)
        store.finish(job.id, state, record.run_id, record.test_accuracy)
        shutil.rmtree(store.folder / job.id, ignore_errors=True)
        return state
    except Exception as error:  # noqa: BLE001 - any failure becomes the job's one-line message
        store.set_state(job.id, JobState.FAILED, failure_line(error))
        return JobState.FAILED


def _die_with_parent(parent_pid: int) -> None:
    """End this worker when the server that started it ends, however it ended."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    if os.getppid() != parent_pid:
        os._exit(0)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def lower_priority() -> None:
    """Give way to the people using the app: a training is a batch job, a page or an upload
    is someone waiting. With ``FMNIST_WORKER_NICE`` (default 10) the web server and the
    inference service get about nine tenths of a core they share with a training thread,
    and the training loses only the CPU they actually use."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.nice(int(os.environ.get("FMNIST_WORKER_NICE", "10")))


def serve(store: JobStore, poll_seconds: float = 0.3) -> None:
    """Claim and train queued jobs, first come first served, until killed."""
    import keras

    from fmnist.ml import devices

    store.put_meta("devices", devices.describe_devices())
    dataset = load_dataset()
    worker = Worker.this_process()
    while True:
        job = store.claim_next(worker)
        if job is None:
            time.sleep(poll_seconds)
            continue
        run_job(store, job, dataset)
        # Free the finished model's graphs and memory before the next job.
        keras.backend.clear_session()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--parent", type=int, default=0, help="exit when this process ends")
    args = parser.parse_args(argv)
    if args.parent:
        _die_with_parent(args.parent)
    lower_priority()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    serve(JobStore(args.store))
    return 0


if __name__ == "__main__":
    sys.exit(main())
