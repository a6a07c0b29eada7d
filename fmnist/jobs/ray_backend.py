"""Training on a Ray cluster: each job is a Ray task; the server keeps the store and the runs.

Chosen by ``FMNIST_RAY_ADDRESS`` (see ``fmnist.client.start_backend``):
``auto`` on a machine that joined the cluster with ``ray start``, ``ray://head:10001``
for Ray Client, ``head:6379`` for a cluster's GCS, or ``local`` for a private
Ray instance started inside the server (one machine sharing its GPUs).

How a job travels:

* A dispatcher thread in the server claims queued jobs from the store with the
  server's own pid as their worker, so a dead server leaves them ``interrupted``
  on its next start (``sweep_dead_workers``); Ray itself ends a dead driver's
  tasks and actors, so nothing keeps training for nobody.
* Per job it starts a ``Relay``, a tiny actor holding the progress the task has
  sent and the stop flag, and submits ``train_task`` with the dataset (put in the
  object store once) and the relay's handle.
* The task reports to a ``RelaySink``, which batches progress like the local
  ``StoreSink`` and sends it at most every FLUSH_SECONDS without waiting; the
  answer of each send is the stop flag, read at the next send.
* Every DRAIN_SECONDS the dispatcher drains each relay into the store and
  forwards Stop requests from the store to the relay.
* The finished task returns the bytes of its model.keras and its run record; the
  dispatcher saves them with ``runs.save_run_files``, so worker machines need no
  disk shared with the server and the server never imports TensorFlow or Keras.

Checkpoints are not written on Ray: a worker machine has no disk the server can
read, and shipping a model back after every epoch costs more than the minutes a
class's small trainings lose when a server restart interrupts them. A job that
was interrupted under the local pool still resumes here: its checkpoint is sent
to the task.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.exceptions

from fmnist import config, continuation, keras_archive, runs
from fmnist.data import Dataset, load_dataset
from fmnist.jobs.store import JobStore, Worker
from fmnist.jobs.worker import BatchedSink
from fmnist.messages import failure_line, first_line
from fmnist.schema import EpochMetrics, JobState, JobView, LivePoint, ResumePoint, TrainConfig

log = logging.getLogger(__name__)

# How often the dispatcher moves progress from the relays into the store: a
# little above the sinks' send interval, so each drain usually finds something,
# and well under the page's one-second poll.
DRAIN_SECONDS = 0.3
# Longest wait in a round for the relays' answers; later ones are read next round.
DRAIN_WAIT_SECONDS = 0.1
# How often the number of job slots follows the cluster's size (nodes join and leave).
RESIZE_SECONDS = 5.0
# Longest wait for a relay's last progress once its task has ended.
FINAL_DRAIN_SECONDS = 10.0
# Relays kept started between jobs: a relay is a process (about 120 MB, a second
# to start), so the next job reuses one instead of waiting for a new one.
IDLE_RELAYS = 2

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def env_float(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    value = float(text) if text else default
    if not value >= 0:
        raise ValueError(f"{name} must be a number of at least 0, not {text!r}")
    return value


def job_slots(resources: dict[str, float], cpus_per_job: float, gpus_per_job: float) -> int:
    """How many jobs the cluster can run at once with the resources each one asks for.

    Claiming more than that would only move jobs from the store's queue (where
    the page shows their position, and Stop simply cancels them) to Ray's, where
    they would look like running jobs that never progress.
    """
    counts = []
    if gpus_per_job > 0:
        counts.append(math.floor(resources.get("GPU", 0) / gpus_per_job + 1e-9))
    if cpus_per_job > 0:
        counts.append(math.floor(resources.get("CPU", 0) / cpus_per_job + 1e-9))
    if not counts:
        counts.append(math.floor(resources.get("CPU", 1)))
    return max(1, min(counts))


def runtime_env() -> dict[str, Any]:
    """What every task and relay needs: this version of ``fmnist``, and quiet TensorFlow.

    The package travels with the job (Ray uploads it once, by content hash), so
    worker machines need only the pinned requirements, not a checkout of the
    project, and always run the same code as the server that reads their results.
    """
    return {
        "py_modules": [str(PACKAGE_DIR)],
        "excludes": ["__pycache__", "*.pyc"],
        "env_vars": {
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            # The server's cap on GPU memory per training, for jobs sharing a GPU.
            **{k: v for k, v in os.environ.items() if k == "FMNIST_GPU_MEMORY_MB"},
        },
    }


# -- the cluster's side -------------------------------------------------------


@ray.remote(num_cpus=0, max_restarts=0)
class Relay:
    """One job's mailbox: progress from its task to the server, a stop flag the other way.

    It asks for no CPU, so relays never take a training's place, and holds only
    what arrived since the last drain (a few kilobytes).
    """

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._epochs: list[dict[str, float]] = []
        self._live: list[dict[str, float]] = []
        self._evaluating = False
        self._stop = False

    def push(
        self,
        values: dict[str, Any],
        epochs: list[dict[str, float]],
        live: list[dict[str, float]],
        evaluating: bool,
    ) -> bool:
        """Keep a batch of progress; answer whether the job should stop."""
        self._values.update(values)
        self._epochs.extend(epochs)
        self._live.extend(live)
        self._evaluating = self._evaluating or evaluating
        return self._stop

    def drain(self) -> tuple[dict[str, Any], list[dict], list[dict], bool]:
        """Everything pushed since the last drain, in order; the mailbox is emptied."""
        drained = (self._values, self._epochs, self._live, self._evaluating)
        self._values, self._epochs, self._live, self._evaluating = {}, [], [], False
        return drained

    def request_stop(self) -> None:
        self._stop = True

    def reset(self) -> None:
        """Empty, for the next job: the dispatcher waits for this before reusing the relay."""
        self.__init__()


class RelaySink(BatchedSink):
    """A ProgressSink inside a Ray task: batches progress and sends it to the job's relay.

    Sends never wait (``.remote()`` returns at once, and calls from one task reach
    the actor in order); the answer to a send is the stop flag, looked at without
    waiting when the next send goes out, so a Stop takes effect within about
    two FLUSH_SECONDS.
    """

    def __init__(self, relay: Any, host: str = "") -> None:
        super().__init__()
        self.relay = relay
        self.host = host or socket.gethostname()
        self._evaluating = False
        self._answer: ray.ObjectRef | None = None

    def phase(self, text: str) -> None:
        self._values["phase"] = text
        self.flush()

    def started(self, device: str, batches: int) -> None:
        self.batches = batches
        # On a cluster, which machine trains is worth knowing (its speed, its GPU).
        self._values.update(device=f"{device} on {self.host}", batches=batches)
        self.flush()

    def checkpoint(self, model: Any, epoch: int) -> None:
        """Not on Ray: no disk is shared with the server (see the module's docstring)."""

    def evaluating(self) -> None:
        self._evaluating = True
        self.flush()

    def stop_asked(self) -> bool:
        """Wait for the answer to the last send: the stop flag as the relay has it now."""
        if self._answer is not None:
            self._read_answer(self._answer)
        return self._stop

    def flush(self, wait: bool = False) -> None:
        super().flush()
        if wait:
            # The task's last send: once the relay has it, the server's final drain
            # finds every event before it reads the task's result.
            self.stop_asked()

    def _send(
        self, values: dict[str, Any], epochs: list[EpochMetrics], live: list[LivePoint]
    ) -> None:
        if self._answer is not None:
            ready, _ = ray.wait([self._answer], timeout=0)
            if ready:
                self._read_answer(ready[0])
        epochs_sent = [m.as_dict() for m in epochs]
        live_sent = [dict(p.__dict__) for p in live]
        self._answer = self.relay.push.remote(values, epochs_sent, live_sent, self._evaluating)

    def _read_answer(self, answer: ray.ObjectRef) -> None:
        try:
            stop = ray.get(answer)
        except ray.exceptions.RayError:
            # A lost relay costs the live view, not the training.
            stop = False
        self._stop = self._stop or bool(stop)
        self._answer = None


def train_task(
    config: dict[str, Any],
    dataset: Dataset,
    relay: Any,
    job_id: str,
    cpus: float,
    resume: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """One training on a Ray worker: the model.keras bytes and run.json, or None if stopped first.

    TensorFlow is imported here, in the task's body, never by the module: the
    server imports this module to submit the task.
    """
    sink = RelaySink(relay)
    keras = None
    try:
        sink.phase(f"starting TensorFlow on {sink.host}")
        import keras
        import tensorflow as tf

        if cpus >= 1:
            # As many threads as CPUs the task was given, not as the machine has:
            # several trainings share a node without slowing each other down.
            # A RuntimeError means this reused worker process configured it already.
            with contextlib.suppress(RuntimeError):
                tf.config.threading.set_intra_op_parallelism_threads(int(cpus))
        from fmnist.ml import engine

        if sink.stop_asked():
            return None
        with tempfile.TemporaryDirectory(prefix="fmnist-ray-") as folder:
            resume_point = None
            if resume is not None:
                checkpoint = Path(folder) / "checkpoint.keras"
                checkpoint.write_bytes(resume["checkpoint"])
                history = tuple(EpochMetrics(**values) for values in resume["history"])
                resume_point = ResumePoint(
                    str(checkpoint),
                    resume["epoch"],
                    history,
                    restart_schedule=resume.get("restart_schedule", False),
                )
            model, record = engine.train(
                TrainConfig.from_dict(config), dataset, sink, resume_point, job_id
            )
            path = Path(folder) / runs.MODEL_FILE
            model.save(path)
            return {"model": path.read_bytes(), "record": record.to_dict()}
    finally:
        with contextlib.suppress(ray.exceptions.RayError):
            sink.flush(wait=True)
        if keras is not None:
            # The worker process is reused by the next task: free this model's memory.
            keras.backend.clear_session()


# Defined once: every submission of the same function reuses one export to the cluster.
# A retried training would report its epochs a second time into the same job, so
# none is retried: a lost worker makes the job interrupted instead.
_train_on_cpu = ray.remote(max_retries=0)(train_task)
# A GPU training gets a fresh worker process: TensorFlow neither gives its GPU memory
# back nor rereads CUDA_VISIBLE_DEVICES, so a reused process would keep the previous
# task's memory, and device. Ray sets this itself only when num_gpus is in the
# decorator, and max_calls cannot be given through .options().
_train_on_gpu = ray.remote(max_retries=0, max_calls=1)(train_task)


# -- the server's side --------------------------------------------------------


@dataclass
class _Running:
    job_id: str
    relay: Any
    task: ray.ObjectRef
    drain: ray.ObjectRef | None = None
    stop_sent: bool = False
    # Its relay died (its node was lost): no more progress, and Stop cancels the task.
    relay_lost: bool = False


class RayBackend:
    """Dispatches the store's queued jobs to a Ray cluster and brings their results back."""

    def __init__(
        self,
        store: JobStore,
        address: str,
        *,
        workers: int | None = None,
        cpus_per_job: float | None = None,
        gpus_per_job: float | None = None,
        dataset: Dataset | None = None,
        models_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.address = address
        # Runs are saved here, by this process: the folder of the server that started it.
        self.models_dir = models_dir or config.MODELS_DIR
        self.cpus_per_job = (
            env_float("FMNIST_CPUS_PER_JOB", 1.0) if cpus_per_job is None else cpus_per_job
        )
        self.gpus_per_job = (
            env_float("FMNIST_GPUS_PER_JOB", 0.0) if gpus_per_job is None else gpus_per_job
        )
        if workers is None:
            configured = os.environ.get("FMNIST_WORKERS", "").strip()
            workers = int(configured) if configured else None
        if workers is not None and workers < 1:
            raise ValueError("FMNIST_WORKERS must be at least 1")
        # None: as many as the cluster has room for, followed as it grows or shrinks.
        self.workers = workers
        self.slots = workers or 1
        self._dataset = dataset
        self._dataset_ref: ray.ObjectRef | None = None
        self._running: dict[str, _Running] = {}
        self._idle_relays: list[Any] = []
        self._worker = Worker.this_process()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._described: list[str] = []

    # -- life ----------------------------------------------------------------
    def start(self) -> RayBackend:
        """Connect to Ray (or start the private instance) and begin dispatching.

        Both happen in the dispatcher thread, which lives as long as the backend:
        Ray's own processes of a ``local`` instance are set to die with the
        *thread* that started them (Linux's parent-death signal follows the
        thread), and the caller's thread may be a Streamlit script run that ends
        a moment later. Errors still reach the caller: start() waits for them.
        """
        if ray.is_initialized():
            raise RuntimeError("this process is connected to Ray already; start one RayBackend")
        self._thread = threading.Thread(target=self._run, name="ray-dispatch", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error
        return self

    def close(self) -> None:
        """Stop dispatching; jobs still running are ended and marked interrupted."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def running_jobs(self) -> list[str]:
        return list(self._running.copy())  # copy(): atomic while the dispatcher changes it

    # -- the dispatcher thread -----------------------------------------------
    def _run(self) -> None:
        try:
            self._connect()
        except BaseException as error:  # noqa: BLE001 - handed to start()'s caller
            self._start_error = error
            return
        finally:
            self._ready.set()
        try:
            self._dispatch_loop()
        finally:
            self._release()

    def _connect(self) -> None:
        options: dict[str, Any] = {"namespace": "fmnist", "runtime_env": runtime_env()}
        if self.address == "local":
            # A private instance inside the server: no dashboard to serve.
            options["include_dashboard"] = False
        ray.init(address=self.address, **options)
        try:
            # Jobs whose server died are interrupted, not lost; Ray ended their tasks with it.
            self.store.sweep_dead_workers()
            self._resize()
        except BaseException:
            ray.shutdown()
            raise

    def _release(self) -> None:
        for running in list(self._running.values()):
            with contextlib.suppress(Exception):
                ray.cancel(running.task, force=True)
            with contextlib.suppress(Exception):
                ray.kill(running.relay)
            with contextlib.suppress(Exception):
                self.store.interrupt(running.job_id, "the server stopped")
        self._running.clear()
        for relay in self._idle_relays:
            with contextlib.suppress(Exception):
                ray.kill(relay)
        self._idle_relays.clear()
        ray.shutdown()

    def _dispatch_loop(self) -> None:
        last_resize = time.monotonic()
        with contextlib.suppress(Exception):
            # Ready before the first job, which then starts as fast as later ones.
            self._dataset_object()
            self._idle_relays.append(Relay.remote())
        while not self._closed.is_set():
            try:
                self._step()
                if time.monotonic() - last_resize > RESIZE_SECONDS:
                    self._resize()
                    last_resize = time.monotonic()
            except Exception:
                log.exception("Ray dispatcher step failed; trying again")
            self._closed.wait(DRAIN_SECONDS)

    def _step(self) -> None:
        """One round: progress into the store, finished tasks saved, free slots filled."""
        running = list(self._running.values())
        for job in running:
            if job.relay_lost:
                self._cancel_if_stopped(job)
            elif job.drain is None:
                job.drain = job.relay.drain.remote()
        drains = [job.drain for job in running if job.drain is not None]
        ready: set[ray.ObjectRef] = set()
        if drains:
            # An answer takes a millisecond or two: wait for it now rather than a whole
            # round, but never hold every job up behind a relay that is still starting.
            done, _ = ray.wait(drains, num_returns=len(drains), timeout=DRAIN_WAIT_SECONDS)
            ready.update(done)
            tasks = [job.task for job in running]
            done, _ = ray.wait(tasks, num_returns=len(tasks), timeout=0)
            ready.update(done)
        for job in running:
            if job.drain is not None and job.drain in ready:
                self._apply_drain(job, job.drain)
            if job.task in ready:
                self._finish(job)
        while len(self._running) < self.slots and not self._closed.is_set():
            claimed = self.store.claim_next(self._worker)
            if claimed is None:
                break
            self._launch(claimed)

    def _apply_drain(self, job: _Running, drain: ray.ObjectRef) -> None:
        job.drain = None
        try:
            values, epochs, live, evaluating = ray.get(drain, timeout=FINAL_DRAIN_SECONDS)
        except ray.exceptions.RayActorError as error:
            log.warning("job %s: its relay was lost (%s)", job.job_id, first_line(error))
            job.relay_lost = True
            return
        except (ray.exceptions.RayError, TimeoutError) as error:
            log.warning("job %s: its relay did not answer (%s)", job.job_id, first_line(error))
            return
        if values or epochs or live:
            stop = self.store.report(
                job.job_id,
                values,
                [EpochMetrics(**m) for m in epochs],
                [LivePoint(**p) for p in live],
            )
        else:
            stop = self.store.stop_requested(job.job_id)
        if evaluating:
            self.store.start_evaluating(job.job_id)
        if stop and not job.stop_sent:
            job.relay.request_stop.remote()
            job.stop_sent = True

    def _finish(self, job: _Running) -> None:
        """Record a finished task's outcome: a saved run, a stop, a failure or a lost worker."""
        self._running.pop(job.job_id, None)
        try:
            # The task's last send reached the relay before it returned: drain it all.
            if job.drain is not None:
                self._apply_drain(job, job.drain)
            if not job.relay_lost:
                self._apply_drain(job, job.relay.drain.remote())
            result = ray.get(job.task)
            if result is None:
                self.store.set_state(job.job_id, JobState.STOPPED, "stopped before it started")
                return
            record = result["record"] | {"owner": self.store.owner_of(job.job_id)}
            runs.save_run_files(result["model"], record, self.models_dir)
            self.store.finish(
                job.job_id, JobState(record["status"]), record["run_id"], record["test_accuracy"]
            )
            # A local-pool checkpoint it resumed from is not needed any more (nor the event
            # files a local worker wrote before it was interrupted: Ray runs keep none).
            shutil.rmtree(self.store.checkpoint_path(job.job_id).parent, ignore_errors=True)
        except ray.exceptions.TaskCancelledError:
            self.store.set_state(job.job_id, JobState.STOPPED, "cancelled")
        except ray.exceptions.RayTaskError as error:
            cause = error.cause if isinstance(error.cause, BaseException) else error
            self.store.set_state(job.job_id, JobState.FAILED, failure_line(cause))
        except ray.exceptions.RayError as error:
            # The worker process or its machine died (out of memory, node lost).
            self.store.interrupt(job.job_id, f"its Ray worker was lost ({first_line(error)})")
        except Exception as error:  # noqa: BLE001 - any failure becomes the job's one line
            self.store.set_state(job.job_id, JobState.FAILED, failure_line(error))
        finally:
            self._recycle(job.relay)

    def _cancel_if_stopped(self, job: _Running) -> None:
        """Stop without a relay: interrupt the task (its model is lost, the job ends stopped)."""
        if not job.stop_sent and self.store.stop_requested(job.job_id):
            ray.cancel(job.task)
            job.stop_sent = True

    def _recycle(self, relay: Any) -> None:
        """Keep a finished job's relay for the next job, or end it when enough are kept."""
        if len(self._idle_relays) < IDLE_RELAYS:
            try:
                ray.get(relay.reset.remote(), timeout=FINAL_DRAIN_SECONDS)
                self._idle_relays.append(relay)
                return
            except (ray.exceptions.RayError, TimeoutError):
                pass
        with contextlib.suppress(Exception):
            ray.kill(relay)

    def _launch(self, job: JobView) -> None:
        try:
            if self.store.stop_requested(job.id):
                self.store.set_state(job.id, JobState.STOPPED, "stopped before it started")
                return
            # Before the relay is taken: a parent run that is gone fails the job here.
            resume = self._resume_payload(job)
            self.store.update(job.id, phase="waiting for a Ray worker")
            relay = self._idle_relays.pop() if self._idle_relays else Relay.remote()
            remote = _train_on_gpu if self.gpus_per_job > 0 else _train_on_cpu
            task = remote.options(
                num_cpus=self.cpus_per_job,
                num_gpus=self.gpus_per_job,
                name=f"fmnist-train-{job.id}",
            )
            ref = task.remote(
                job.config.to_dict(),
                self._dataset_object(),
                relay,
                job.id,
                self.cpus_per_job,
                resume,
            )
            self._running[job.id] = _Running(job.id, relay, ref)
        except Exception as error:  # noqa: BLE001 - the job says why it could not start
            self.store.set_state(job.id, JobState.FAILED, failure_line(error))

    def _dataset_object(self) -> ray.ObjectRef:
        """Fashion-MNIST in the cluster's object store, put there once for every task."""
        if self._dataset_ref is None:
            dataset = self._dataset if self._dataset is not None else load_dataset()
            self._dataset_ref = ray.put(dataset)
        return self._dataset_ref

    def _resume_payload(self, job: JobView) -> dict[str, Any] | None:
        """What the task starts from: the job's own checkpoint, or the run it continues
        (read here: worker machines need no disk shared with the server); None for neither."""
        path = self.store.checkpoint_path(job.id)
        if job.checkpoint_epoch and path.is_file():
            return {
                "checkpoint": path.read_bytes(),
                "epoch": job.checkpoint_epoch,
                "history": [m.as_dict() for m in job.history],
            }
        if job.config.parent_run:
            point = continuation.resume_point(job.config, self.models_dir)
            model = Path(point.checkpoint)
            if model.is_symlink():
                raise runs.RunError(f"run {job.config.parent_run} has a linked model file")
            payload = model.read_bytes()
            keras_archive.check(payload)  # a zip, and no bomb, before the cluster gets it
            return {
                "checkpoint": payload,
                "epoch": point.epoch,
                "history": [m.as_dict() for m in point.history],
                "restart_schedule": point.restart_schedule,
            }
        return None

    def _resize(self) -> None:
        resources = ray.cluster_resources()
        fits = job_slots(resources, self.cpus_per_job, self.gpus_per_job)
        self.slots = self.workers if self.workers is not None else fits
        described = [
            f"Ray cluster: {int(resources.get('CPU', 0))} CPUs,"
            f" {resources.get('GPU', 0):g} GPUs, {self.slots} trainings at once"
        ]
        if described != self._described:
            self.store.put_meta("devices", described)
            self._described = described
