"""Where a continued run starts: its parent run's model, epochs and curves.

No TensorFlow here: the Ray backend's dispatcher reads the parent on the server and
ships it to a worker machine, which may share no disk with the server.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fmnist import runs
from fmnist.networks import CUSTOM
from fmnist.schema import EpochMetrics, ResumePoint, TrainConfig


def resume_point(config: TrainConfig, models_dir: Path | str | None = None) -> ResumePoint:
    """The parent's saved model (weights and optimizer state, the step count included)
    after the parent's whole epochs, with the parent's curves. A decayed schedule
    (cosine, one-cycle) restarts over the new epochs. A RunError or ValueError in one
    line when the parent is gone or is another network."""
    record = runs.read_record(config.parent_run, models_dir)
    if record["network"] != config.network or (
        config.network == CUSTOM and record.get("layers") != list(config.layers)
    ):
        raise ValueError(f"run {config.parent_run} has another network: it cannot be continued")
    done = int(record.get("epochs_completed") or 0)
    if config.epochs <= done:
        raise ValueError(f"run {config.parent_run} has {done} epochs already: ask for more")
    known = {f.name for f in dataclasses.fields(EpochMetrics)}
    history = tuple(
        EpochMetrics(**{k: v for k, v in entry.items() if k in known})
        for entry in record.get("history", [])[:done]
    )
    model_file = runs.run_path(config.parent_run, models_dir) / runs.MODEL_FILE
    return ResumePoint(
        str(model_file), done, history, restart_schedule=config.lr_schedule != "constant"
    )
