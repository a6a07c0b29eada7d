"""The durable job store: every training's settings, state, owner, progress and stop requests.

SQLite in WAL mode, one file beside the runs (``models/.jobs/jobs.sqlite3``):
it ships with Python, survives a ``kill -9`` of any process (a transaction is
all or nothing), lets many readers (every browser watching, the command line)
read while one worker writes, and needs no server to install or start. The
web server, the worker processes and the command line each open it; a job is
claimed by one worker in a single ``BEGIN IMMEDIATE`` transaction, so two
workers never take the same job.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmnist import config
from fmnist.schema import (
    ACTIVE_STATES,
    WORKING_STATES,
    EpochMetrics,
    JobState,
    JobView,
    LivePoint,
    TrainConfig,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,            -- first come, first served
    owner TEXT NOT NULL,             -- sha256 of the owner's secret token
    source TEXT NOT NULL,            -- web, cli
    config TEXT NOT NULL,            -- TrainConfig as JSON
    state TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    phase TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    epoch INTEGER NOT NULL DEFAULT 0,
    batch INTEGER NOT NULL DEFAULT 0,
    batches INTEGER NOT NULL DEFAULT 0,
    images_per_second REAL NOT NULL DEFAULT 0,
    eta REAL,
    device TEXT NOT NULL DEFAULT '',
    run_id TEXT NOT NULL DEFAULT '',
    test_accuracy REAL,
    checkpoint_epoch INTEGER NOT NULL DEFAULT 0,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    worker_host TEXT NOT NULL DEFAULT '',
    worker_pid INTEGER NOT NULL DEFAULT 0,
    heartbeat REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    kind TEXT NOT NULL,              -- epoch or live
    epoch REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_job ON events (job_id, kind, epoch);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_PROGRESS_COLUMNS = frozenset(
    {
        "message", "phase", "started_at", "finished_at", "epoch", "batch", "batches",
        "images_per_second", "eta", "device", "run_id", "test_accuracy", "checkpoint_epoch",
        "heartbeat",
    }
)  # fmt: skip


class JobNotFoundError(LookupError):
    """No job with this id: it never existed, or its store was deleted."""


class NotOwnerError(PermissionError):
    """The caller's token does not own this job (and is not the admin token)."""


def default_path() -> Path:
    return config.MODELS_DIR / ".jobs" / "jobs.sqlite3"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Worker:
    """Which process is responsible for a job, so a dead one can be noticed."""

    host: str
    pid: int

    @classmethod
    def this_process(cls) -> Worker:
        return cls(socket.gethostname(), os.getpid())


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (dead, not yet reaped by its parent) is dead for our purposes.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


class JobStore:
    """Thread-safe access to one SQLite job file; one connection per thread."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # executescript commits on its own; IF NOT EXISTS makes it safe in every process.
        self._db().executescript(SCHEMA)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def checkpoint_path(self, job_id: str) -> Path:
        return self.folder / job_id / "checkpoint.keras"

    def tensorboard_path(self, job_id: str) -> Path:
        """Where a running job's TensorBoard event files grow, until its run is saved."""
        return self.folder / job_id / "tensorboard"

    # -- connections ----------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last commits, never
            # corrupt the file; a killed process loses nothing.
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- creating and reading -------------------------------------------------
    def create(
        self,
        train_config: TrainConfig,
        owner_token: str,
        source: str = "web",
        worker: Worker | None = None,
    ) -> str:
        """A new job at the end of the queue, or already running in ``worker`` (the CLI)."""
        train_config.validate()
        job_id = uuid.uuid4().hex[:12]
        now = time.time()
        with self._transaction() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            db.execute(
                "INSERT INTO jobs (id, seq, owner, source, config, state, created_at,"
                " started_at, worker_host, worker_pid, heartbeat)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    seq,
                    hash_token(owner_token),
                    source,
                    json.dumps(train_config.to_dict()),
                    (JobState.RUNNING if worker else JobState.QUEUED).value,
                    now,
                    now if worker else None,
                    worker.host if worker else "",
                    worker.pid if worker else 0,
                    now if worker else None,
                ),
            )
        return job_id

    def get(self, job_id: str, with_events: bool = True) -> JobView | None:
        db = self._db()
        # One read transaction: the row and its events are one consistent snapshot.
        db.execute("BEGIN")
        try:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            view = self._view(db, row)
            if with_events:
                self._attach_events(db, view)
            return view
        finally:
            db.execute("COMMIT")

    def jobs(self, states: frozenset[JobState] | None = None) -> list[JobView]:
        """Jobs in first-come order (without their events), optionally only some states."""
        db = self._db()
        rows = db.execute("SELECT * FROM jobs ORDER BY seq").fetchall()
        views = [self._view(db, row, rows) for row in rows]
        return [v for v in views if states is None or v.state in states]

    def active_jobs(self) -> list[JobView]:
        return self.jobs(ACTIVE_STATES)

    def _view(
        self, db: sqlite3.Connection, row: sqlite3.Row, all_rows: list | None = None
    ) -> JobView:
        state = JobState(row["state"])
        position = 0
        if state is JobState.QUEUED:
            if all_rows is None:
                position = db.execute(
                    "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND seq <= ?",
                    (row["seq"],),
                ).fetchone()[0]
            else:
                position = sum(
                    1 for r in all_rows if r["state"] == "queued" and r["seq"] <= row["seq"]
                )
        return JobView(
            id=row["id"],
            config=TrainConfig.from_dict(json.loads(row["config"])),
            state=state,
            message=row["message"],
            phase=row["phase"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            epoch=row["epoch"],
            batch=row["batch"],
            batches=row["batches"],
            images_per_second=row["images_per_second"],
            eta=row["eta"],
            device=row["device"],
            run_id=row["run_id"],
            test_accuracy=row["test_accuracy"],
            checkpoint_epoch=row["checkpoint_epoch"],
            queue_position=position,
            source=row["source"],
        )

    @staticmethod
    def _attach_events(db: sqlite3.Connection, view: JobView) -> None:
        for kind, payload in db.execute(
            "SELECT kind, payload FROM events WHERE job_id = ? ORDER BY rowid", (view.id,)
        ):
            values = json.loads(payload)
            if kind == "epoch":
                view.history.append(EpochMetrics(**values))
            else:
                view.live.append(LivePoint(**values))

    # -- ownership and control ------------------------------------------------
    def owns(self, job_id: str, token: str | None) -> bool:
        if not token:
            return False
        row = self._db().execute("SELECT owner FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        return hmac.compare_digest(row["owner"], hash_token(token))

    def owner_of(self, job_id: str) -> str:
        """The hash of the owner's token, which a saved run keeps so its owner may delete it."""
        row = self._db().execute("SELECT owner FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        return row["owner"]

    def request_stop(self, job_id: str) -> JobState:
        """Stop a running job after its current step, or take a queued one out of the queue."""
        with self._transaction() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFoundError(job_id)
            state = JobState(row["state"])
            if state is JobState.QUEUED:
                state = JobState.STOPPED
                db.execute(
                    "UPDATE jobs SET state = ?, message = 'cancelled before it started',"
                    " finished_at = ?, stop_requested = 1 WHERE id = ?",
                    (state.value, time.time(), job_id),
                )
            elif state is JobState.RUNNING:
                state = JobState.STOPPING
                db.execute(
                    "UPDATE jobs SET state = ?, stop_requested = 1 WHERE id = ?",
                    (state.value, job_id),
                )
            elif state in WORKING_STATES:
                db.execute("UPDATE jobs SET stop_requested = 1 WHERE id = ?", (job_id,))
        return state

    def stop_requested(self, job_id: str) -> bool:
        row = (
            self._db().execute("SELECT stop_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        )
        return bool(row and row["stop_requested"])

    def resume(self, job_id: str) -> None:
        """An interrupted job goes back to the end of the queue, to continue from its checkpoint."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT state, checkpoint_epoch FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None:
                raise JobNotFoundError(job_id)
            if row["state"] != JobState.INTERRUPTED.value:
                raise ValueError(
                    f"only an interrupted job can be resumed, not a {row['state']} one"
                )
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            epoch = row["checkpoint_epoch"]
            # What came after the checkpoint is redone: drop its events.
            db.execute("DELETE FROM events WHERE job_id = ? AND epoch > ?", (job_id, float(epoch)))
            db.execute(
                "UPDATE jobs SET state = 'queued', seq = ?, message = ?, phase = '',"
                " epoch = ?, batch = 0, eta = NULL, stop_requested = 0, finished_at = NULL,"
                " worker_host = '', worker_pid = 0 WHERE id = ?",
                (seq, f"resumes after epoch {epoch}" if epoch else "starts again", epoch, job_id),
            )

    # -- the worker's side ----------------------------------------------------
    def claim_next(self, worker: Worker, job_id: str | None = None) -> JobView | None:
        """Take the oldest queued job (or ``job_id``) for ``worker``; None when there is none."""
        with self._transaction() as db:
            if job_id is None:
                row = db.execute(
                    "SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1"
                ).fetchone()
            else:
                row = db.execute(
                    "SELECT id FROM jobs WHERE state = 'queued' AND id = ?", (job_id,)
                ).fetchone()
            if row is None:
                return None
            now = time.time()
            db.execute(
                "UPDATE jobs SET state = 'running', phase = 'starting', message = '',"
                " started_at = COALESCE(started_at, ?), worker_host = ?, worker_pid = ?,"
                " heartbeat = ? WHERE id = ?",
                (now, worker.host, worker.pid, now, row["id"]),
            )
        return self.get(row["id"])

    def update(self, job_id: str, **values: Any) -> None:
        unknown = set(values) - _PROGRESS_COLUMNS
        if unknown:
            raise ValueError(f"not a progress column: {', '.join(sorted(unknown))}")
        assignments = ", ".join(f"{key} = ?" for key in values)
        with self._transaction() as db:
            db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*values.values(), job_id))

    def report(
        self,
        job_id: str,
        values: dict[str, Any],
        epochs: list[EpochMetrics] = (),  # type: ignore[assignment]
        live: list[LivePoint] = (),  # type: ignore[assignment]
    ) -> bool:
        """Progress values and new events in one transaction; returns whether a stop is asked."""
        unknown = set(values) - _PROGRESS_COLUMNS
        if unknown:
            raise ValueError(f"not a progress column: {', '.join(sorted(unknown))}")
        values = {**values, "heartbeat": time.time()}
        assignments = ", ".join(f"{key} = ?" for key in values)
        with self._transaction() as db:
            db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*values.values(), job_id))
            db.executemany(
                "INSERT INTO events (job_id, kind, epoch, payload) VALUES (?, ?, ?, ?)",
                [(job_id, "epoch", float(m.epoch), json.dumps(m.as_dict())) for m in epochs]
                + [(job_id, "live", p.epoch, json.dumps(p.__dict__)) for p in live],
            )
            row = db.execute("SELECT stop_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row["stop_requested"])

    def set_state(self, job_id: str, state: JobState, message: str | None = None) -> None:
        """Move a job to ``state``; a final state also stamps when it finished."""
        with self._transaction() as db:
            finished = time.time() if state.final else None
            db.execute(
                "UPDATE jobs SET state = ?, message = COALESCE(?, message),"
                " finished_at = COALESCE(?, finished_at), phase = CASE WHEN ? THEN '' ELSE phase"
                " END, eta = CASE WHEN ? THEN NULL ELSE eta END WHERE id = ?",
                (state.value, message, finished, state.final, state.final, job_id),
            )

    def start_evaluating(self, job_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state = 'evaluating', phase = '', eta = NULL,"
                " message = 'scoring the 10,000 test images' WHERE id = ?",
                (job_id,),
            )

    def finish(self, job_id: str, state: JobState, run_id: str, test_accuracy: float) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state = ?, run_id = ?, test_accuracy = ?, finished_at = ?,"
                " eta = NULL, phase = '', message = ? WHERE id = ?",
                (
                    state.value,
                    run_id,
                    test_accuracy,
                    time.time(),
                    f"test accuracy {test_accuracy:.2%}",
                    job_id,
                ),
            )

    def interrupt(self, job_id: str, reason: str) -> bool:
        """Mark a job whose process died; returns False if it had ended meanwhile."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT state, epoch, checkpoint_epoch FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None or JobState(row["state"]) not in WORKING_STATES:
                return False
            epoch = row["checkpoint_epoch"]
            where = f"interrupted at epoch {epoch + 1}" if epoch else "interrupted before epoch 1"
            db.execute(
                "UPDATE jobs SET state = 'interrupted', message = ?, finished_at = ?, eta = NULL,"
                " phase = '' WHERE id = ?",
                (f"{where}: {reason}", time.time(), job_id),
            )
        return True

    def sweep_dead_workers(self, skip: Collection[int] = ()) -> list[str]:
        """Jobs held by a process of this machine that no longer runs become interrupted.

        ``skip``: a pool's own children, which it reaps itself and whose exit it can
        describe (killed, out of memory) better than "died".
        """
        host = socket.gethostname()
        swept = []
        for view_row in (
            self._db()
            .execute(
                "SELECT id, worker_pid FROM jobs WHERE worker_host = ? AND state IN"
                " ('running', 'stopping', 'evaluating')",
                (host,),
            )
            .fetchall()
        ):
            pid = view_row["worker_pid"]
            if (
                pid not in skip
                and not process_alive(pid)
                and self.interrupt(view_row["id"], "its worker process died")
            ):
                swept.append(view_row["id"])
        return swept

    def worker_of(self, job_id: str) -> Worker | None:
        row = (
            self._db()
            .execute("SELECT worker_host, worker_pid FROM jobs WHERE id = ?", (job_id,))
            .fetchone()
        )
        if row is None or not row["worker_pid"]:
            return None
        return Worker(row["worker_host"], row["worker_pid"])

    # -- small shared facts (the devices the workers found) -------------------
    def put_meta(self, key: str, value: Any) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    def get_meta(self, key: str) -> Any:
        row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else None
