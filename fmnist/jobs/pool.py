"""The server's local worker pool: N training processes, watched and replaced when they die.

The pool lives in the web server process but never imports TensorFlow: it
only starts ``python -m fmnist.jobs.worker`` processes and looks after them.
Each worker claims queued jobs from the store itself, so the queue is first
come, first served across every worker (and every server sharing the store).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from fmnist import config
from fmnist.jobs.store import JobStore

log = logging.getLogger(__name__)

SUPERVISE_SECONDS = 0.5
# A worker that keeps dying at start-up (a broken install) is not restarted in a tight loop.
MAX_RESTARTS_PER_MINUTE = 5


def count_gpus() -> int:
    """NVIDIA GPUs on this machine, found without loading TensorFlow."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    folder = Path("/proc/driver/nvidia/gpus")
    return len(list(folder.iterdir())) if folder.is_dir() else 0


def default_worker_count() -> int:
    """FMNIST_WORKERS, or one per GPU, or one on a CPU machine."""
    configured = os.environ.get("FMNIST_WORKERS", "").strip()
    if configured:
        count = int(configured)
        if count < 1:
            raise ValueError("FMNIST_WORKERS must be at least 1")
        return count
    return max(1, count_gpus())


def describe_exit(returncode: int) -> str:
    """A worker's exit status as the one line a user reads."""
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        why = {
            "SIGKILL": "killed (out of memory, or kill -9)",
            "SIGSEGV": "crashed (segmentation fault)",
            "SIGTERM": "terminated",
            "SIGABRT": "aborted",
        }
        return f"its worker process was {why.get(name, f'ended by {name}')}"
    return f"its worker process exited with code {returncode}"


class LocalPool:
    """``workers`` training processes on this machine, restarted when they die."""

    def __init__(
        self, store: JobStore, workers: int | None = None, models_dir: Path | None = None
    ) -> None:
        self.store = store
        # Workers save runs here: the folder of the server that started them.
        self.models_dir = models_dir or config.MODELS_DIR
        self.size = workers if workers is not None else default_worker_count()
        self._processes: list[subprocess.Popen | None] = [None] * self.size
        self._restarts: list[float] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LocalPool:
        # Jobs whose processes died with an earlier server are interrupted, not lost.
        self.store.sweep_dead_workers()
        spawned = threading.Event()
        # Workers are started from the supervisor's own long-lived thread: Linux
        # ties a child's "die with the parent" signal to the thread that forked
        # it, and Streamlit's script threads end after every run.
        self._thread = threading.Thread(
            target=self._supervise, args=(spawned,), name="worker-pool", daemon=True
        )
        self._thread.start()
        spawned.wait()
        return self

    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._processes if p is not None and p.poll() is None]

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            for process in self._processes:
                if process is not None and process.poll() is None:
                    process.terminate()
            for process in self._processes:
                if process is not None:
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        process.kill()

    def _spawn(self) -> subprocess.Popen:
        env = {
            **os.environ,
            "FMNIST_MODELS_DIR": str(self.models_dir),
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        }
        return subprocess.Popen(
            [
                sys.executable, "-m", "fmnist.jobs.worker",
                "--store", str(self.store.path), "--parent", str(os.getpid()),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def _supervise(self, spawned: threading.Event) -> None:
        with self._lock:
            for slot in range(self.size):
                self._processes[slot] = self._spawn()
        spawned.set()
        last_sweep = 0.0
        while not self._closed.wait(SUPERVISE_SECONDS):
            try:
                self._replace_dead_workers()
                if time.monotonic() - last_sweep > 5:
                    # Also catches command-line trainings whose process died.
                    self.store.sweep_dead_workers(skip=self._spawned_pids())
                    last_sweep = time.monotonic()
            except Exception:
                log.exception("worker pool supervision failed; trying again")

    def _spawned_pids(self) -> set[int]:
        with self._lock:
            return {p.pid for p in self._processes if p is not None}

    def _replace_dead_workers(self) -> None:
        with self._lock:
            for slot, process in enumerate(self._processes):
                if process is None or process.poll() is None:
                    continue
                reason = describe_exit(process.returncode)
                for job in self.store.active_jobs():
                    worker = self.store.worker_of(job.id)
                    if worker is not None and worker.pid == process.pid:
                        self.store.interrupt(job.id, reason)
                now = time.monotonic()
                self._restarts = [t for t in self._restarts if now - t < 60]
                if len(self._restarts) >= MAX_RESTARTS_PER_MINUTE:
                    log.error("training workers keep dying (%s); not restarting for now", reason)
                    continue
                self._restarts.append(now)
                log.warning("training worker %d: %s; starting a new one", process.pid, reason)
                self._processes[slot] = self._spawn()
