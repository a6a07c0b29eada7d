"""What the pages and the command line call to train: submit, watch, stop, resume.

Pages never learn where a training runs: in a local worker process, or as a
Ray task when FMNIST_RAY_ADDRESS is set. Everything goes through the job
store, so any number of browsers can watch a job without costing its worker
anything. Only the session holding a job's secret token (or the operator's
FMNIST_ADMIN_TOKEN) may stop or resume it.
"""

from __future__ import annotations

import hmac
import os
import secrets
from typing import Protocol

from fmnist import runs
from fmnist.jobs.store import JobNotFoundError, JobStore, NotOwnerError, hash_token
from fmnist.schema import JobState, JobView, TrainConfig

__all__ = ["JobNotFoundError", "NotOwnerError", "TrainingClient", "new_token"]


class Backend(Protocol):
    def start(self) -> Backend: ...

    def close(self) -> None: ...


def new_token() -> str:
    """A secret that proves a browser session started a job (kept in its URL)."""
    return secrets.token_urlsafe(16)


def start_backend(store: JobStore) -> Backend:
    """Ray when FMNIST_RAY_ADDRESS is set, otherwise local worker processes."""
    # A server (re)start is when half-written saves of killed processes are swept away.
    runs.clean_leftovers()
    address = os.environ.get("FMNIST_RAY_ADDRESS", "").strip()
    if address:
        from fmnist.jobs.ray_backend import RayBackend

        return RayBackend(store, address).start()
    from fmnist.jobs.pool import LocalPool

    return LocalPool(store).start()


class TrainingClient:
    """Submit and control trainings stored in ``store``."""

    def __init__(self, store: JobStore | None = None, admin_token: str | None = None) -> None:
        self.store = store or JobStore()
        if admin_token is None:
            admin_token = os.environ.get("FMNIST_ADMIN_TOKEN", "")
        self._admin_token = admin_token
        # The workers (or Ray dispatcher) the server started; None in the command line.
        self.backend: Backend | None = None

    def submit(self, config: TrainConfig, token: str, source: str = "web") -> str:
        return self.store.create(config, token, source)

    def job(self, job_id: str) -> JobView | None:
        return self.store.get(job_id)

    def active_jobs(self) -> list[JobView]:
        return self.store.active_jobs()

    def is_admin(self, token: str | None) -> bool:
        return bool(self._admin_token and token) and hmac.compare_digest(
            self._admin_token, token or ""
        )

    def can_control(self, job_id: str, token: str | None) -> bool:
        """The owner's token, or the admin token, may stop and resume a job."""
        return self.is_admin(token) or self.store.owns(job_id, token)

    def stop(self, job_id: str, token: str | None) -> JobState:
        if not self.can_control(job_id, token):
            raise NotOwnerError("only the session that started this training can stop it")
        return self.store.request_stop(job_id)

    def resume(self, job_id: str, token: str | None) -> None:
        if not self.can_control(job_id, token):
            raise NotOwnerError("only the session that started this training can resume it")
        self.store.resume(job_id)

    def may_delete(self, record: dict, token: str | None) -> bool:
        """A saved run may be deleted by the session that trained it, or by the operator.

        The run that ships with the app is read-only for everyone.
        """
        if record.get("shipped"):
            return False
        if self.is_admin(token):
            return True
        owner = record.get("owner")
        return bool(token and owner) and hmac.compare_digest(owner, hash_token(token or ""))

    def devices(self) -> list[str] | None:
        """The devices the workers found, or None before the first worker started."""
        return self.store.get_meta("devices")

    def server_load(self, own_id: str | None = None) -> tuple[int, int]:
        """(trainings running, trainings waiting) on this server, not counting ``own_id``."""
        jobs = [j for j in self.active_jobs() if j.id != own_id]
        queued = sum(1 for j in jobs if j.state is JobState.QUEUED)
        return len(jobs) - queued, queued
