"""Training runs on disk: one folder per run under models/, with model.keras and run.json.

A run is written into a hidden temporary folder and renamed into place only
once both files are complete, so a crash during a save never leaves a run that
the app would list. Folders whose names start with a dot are never listed.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmnist import config, keras_archive

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
RECORD_FILE = "run.json"
# TensorBoard event files of the run (`tensorboard --logdir models` shows every run).
TENSORBOARD_FOLDER = "tensorboard"
_RUN_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
# A run.json is a few kilobytes (its history grows by ~150 bytes an epoch).
MAX_RECORD_BYTES = 4_000_000


class RunError(Exception):
    """A run cannot be found or read. The message is one line, fit for users."""


def slugify(text: str, max_length: int = 40) -> str:
    """A user-given name -> lowercase letters, digits and dashes only."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_length].strip("-")


def new_run_id(network: str, name: str = "") -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parts = [stamp, slugify(network), slugify(name), uuid.uuid4().hex[:4]]
    return "-".join(part for part in parts if part)


def _root(models_dir: Path | str | None) -> Path:
    # Read config.MODELS_DIR at call time so tests and benchmarks can move it.
    return Path(models_dir) if models_dir else config.MODELS_DIR


def run_path(run_id: str, models_dir: Path | str | None = None) -> Path:
    """The folder of a run, refusing any id that could point outside models/."""
    root = _root(models_dir).resolve()
    if not _RUN_ID.match(run_id):
        raise RunError(f"{run_id!r} is not a valid run name")
    path = (root / run_id).resolve()
    if path.parent != root:
        raise RunError(f"{run_id!r} is not a valid run name")
    return path


def _save_atomically(
    record: dict[str, Any],
    write_model: Callable[[Path], object],
    models_dir: Path | str | None,
    logs: Path | None = None,
) -> Path:
    """Write a run through ``write_model`` into a hidden folder, then rename it into place.

    ``logs``, a folder of TensorBoard event files, moves into the run as ``tensorboard/``.
    """
    root = _root(models_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = run_path(record["run_id"], root)
    if final.exists():
        raise RunError(f"a run named {record['run_id']!r} exists already")
    temporary = root / f".tmp-{record['run_id']}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        write_model(temporary / MODEL_FILE)
        (temporary / RECORD_FILE).write_text(json.dumps(record, indent=1))
        if logs is not None and logs.is_dir():
            shutil.copytree(logs, temporary / TENSORBOARD_FOLDER)
        # A rename within one file system is atomic: readers see all or nothing.
        temporary.rename(final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return final


def save_run(
    model: keras.Model,
    record: dict[str, Any],
    models_dir: Path | str | None = None,
    logs: Path | None = None,
) -> Path:
    """Write model.keras and run.json (and ``logs``' event files) atomically; return the folder."""
    return _save_atomically(record, model.save, models_dir, logs)


def save_run_files(
    model_bytes: bytes, record: dict[str, Any], models_dir: Path | str | None = None
) -> Path:
    """Like save_run, for a model trained elsewhere whose .keras file arrives as bytes.

    The Ray backend's dispatcher saves with this: the web server never imports
    Keras, and worker machines need no disk shared with it.
    """
    # A .keras file is a zip archive: refuse anything else, and zip bombs, before
    # it becomes a run (fmnist.keras_archive reads only the zip's directory).
    try:
        keras_archive.check(model_bytes)
    except keras_archive.ArchiveError as error:
        raise RunError(f"the trained model was refused: {error}") from None
    return _save_atomically(record, lambda path: path.write_bytes(model_bytes), models_dir)


def read_record(run_id: str, models_dir: Path | str | None = None) -> dict[str, Any]:
    """A run's run.json, checked against RunRecord (``fmnist.schema.check_run_record``).

    A RunError says in one short line what is wrong, with no server path and no
    errno text (those go to the server's log), so pages can show it as it is.
    """
    path = run_path(run_id, models_dir) / RECORD_FILE
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise RunError(f"run {run_id!r} has a run.json too large to be one")
        record = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise RunError(f"no run named {run_id!r}") from None
    except OSError as error:
        log.info("cannot read %s: %s", path, error)
        raise RunError(f"run {run_id!r} has a run.json that cannot be read") from None
    except (ValueError, RecursionError):  # RecursionError: lists nested thousands deep
        raise RunError(f"run {run_id!r} has a run.json that is not valid JSON") from None
    # Imported here: fmnist.schema brings numpy (through the networks' table), which
    # the command line's quick commands would otherwise load for nothing.
    from fmnist.schema import check_run_record

    try:
        record = check_run_record(record)
    except ValueError as error:
        raise RunError(f"run {run_id!r} has a malformed run.json: {error}") from None
    record["run_id"] = run_id
    return record


def list_runs(models_dir: Path | str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Every readable run, newest first, and a warning for each folder skipped."""
    root = _root(models_dir)
    runs, warnings = [], []
    if not root.is_dir():
        return runs, warnings
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        try:
            record = read_record(folder.name, root)
            if not (folder / MODEL_FILE).is_file():
                raise RunError(f"run {folder.name!r} has no {MODEL_FILE}")
        except RunError as error:
            warnings.append(f"skipped {folder.name}: {error}")
            log.info("skipped run folder %s: %s", folder, error)  # the caller shows it
            continue
        runs.append(record)
    runs.sort(key=lambda r: r.get("finished_at", ""), reverse=True)
    return runs, warnings


def by_accuracy(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs that have a test accuracy, best first."""
    scored = [r for r in records if r.get("test_accuracy") is not None]
    return sorted(scored, key=lambda r: r["test_accuracy"], reverse=True)


def best_run(models_dir: Path | str | None = None) -> dict[str, Any] | None:
    """The finished run with the highest test accuracy, or None when there is none."""
    ranked = by_accuracy(list_runs(models_dir)[0])
    return ranked[0] if ranked else None


def find_run(text: str, models_dir: Path | str | None = None) -> dict[str, Any]:
    """The run a user means by ``text``: its id, a unique start of its id, or its name.

    An exact id always wins; otherwise the runs whose id starts with ``text`` and
    those named ``text`` (ignoring case) are the candidates, and there must be
    exactly one. The message of the RunError is one line, fit for users.
    """
    wanted = text.strip()
    if not wanted:
        raise RunError("give a run: its id, the start of its id, or its name")
    records, warnings = list_runs(models_dir)
    for record in records:
        if record["run_id"] == wanted:
            return record
    matches = [
        record
        for record in records
        if record["run_id"].startswith(wanted)
        or str(record.get("name") or "").casefold() == wanted.casefold()
    ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        ids = ", ".join(record["run_id"] for record in matches[:5])
        more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
        raise RunError(f"{wanted!r} matches {len(matches)} runs ({ids}{more}): give more of the id")
    # A folder of that name that could not be read says why, rather than "no run".
    for warning in warnings:
        if warning.startswith(f"skipped {wanted}: "):
            raise RunError(warning.split(": ", 1)[1])
    raise RunError(f"no run named {wanted!r}")


def load_model(run_id: str, models_dir: Path | str | None = None) -> keras.Model:
    """Moved to fmnist.ml.inference.load_run_model, with the other TensorFlow code.

    Kept for the tests that still call it here (test_runs); the
    web server never does: its models live in the inference service.
    """
    from fmnist.ml.inference import load_run_model

    return load_run_model(run_id, models_dir)


def delete_run(run_id: str, models_dir: Path | str | None = None) -> None:
    path = run_path(run_id, models_dir)
    if not path.is_dir():
        raise RunError(f"no run named {run_id!r}")
    # The run that ships with the app keeps Predict working on a fresh install.
    if read_record(run_id, models_dir).get("shipped"):
        raise RunError(f"{run_id} ships with the app and cannot be deleted")
    # Hide it first (atomic), then remove: a listing never sees half a run.
    hidden = path.with_name(f".deleted-{run_id}-{uuid.uuid4().hex[:8]}")
    path.rename(hidden)
    shutil.rmtree(hidden, ignore_errors=True)


def short_label(record: dict[str, Any]) -> str:
    """A name people can read: the run's name, or its network and when it finished."""
    finished = str(record.get("finished_at", ""))
    when = finished[5:16].replace("T", " ") if len(finished) >= 16 else record["run_id"][-4:]
    name = record.get("name") or ""
    return f"{name} ({record['network']})" if name else f"{record['network']} · {when}"


def clean_leftovers(models_dir: Path | str | None = None, older_than: float = 600.0) -> list[str]:
    """Remove the hidden folders of saves and deletes that a killed process left behind.

    A save writes into ``.tmp-…`` and renames it into place; a delete renames to
    ``.deleted-…`` first. A ``kill -9`` between the two steps leaves the hidden
    folder: nothing lists it, so it would stay forever. Only folders older than
    ``older_than`` seconds go, so a save in progress elsewhere is never touched.
    """
    root = _root(models_dir)
    removed: list[str] = []
    if not root.is_dir():
        return removed
    now = time.time()
    for folder in root.iterdir():
        if not folder.name.startswith((".tmp-", ".deleted-")) or not folder.is_dir():
            continue
        try:
            if now - folder.stat().st_mtime < older_than:
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder.name)
        log.info("removed the leftover %s", folder.name)
    return removed
