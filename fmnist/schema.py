"""The records that travel between processes: settings of a training, job states, progress.

Everything here is plain data (dataclasses, an enum, JSON-ready dicts) with no
TensorFlow and no Streamlit, so the web server, the worker processes, the
command line and Ray tasks all read and write the same shapes.
"""

from __future__ import annotations

import enum
import math
import time
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from fmnist import network_spec
from fmnist.messages import short
from fmnist.networks import CUSTOM, get_network

OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
# "cosine" lowers the learning rate smoothly to 1% of its start by the last
# batch: the final epochs then settle instead of jumping between minima.
# "one-cycle" (Smith, 2018) climbs from 1/25 of the rate to the rate over the first
# quarter of the batches, then falls along a cosine to nearly 0: the schedule of the
# speed records (airbench on CIFAR-10), which lets short runs use a high rate.
LR_SCHEDULES = ("constant", "cosine", "one-cycle")
# Light augmentation of the training images only (never validation or test), on the
# worker, a new draw every batch: a horizontal mirror, a shift of up to 2 pixels each
# way, random erasing (a grey box of 4-12 pixels a side over half the pictures), a
# rotation of up to 10 degrees either way and a zoom in or out of up to 10%. Each but the
# mirror takes a strength, written after a colon ("shift:3" shifts by up to 3 pixels);
# without one it has the strength above.
AUGMENTATIONS = ("flip", "shift", "erase", "rotate", "zoom")


@dataclass(frozen=True)
class Strength:
    """How strong an augmentation may be: whole numbers from ``low`` to ``high``."""

    default: int
    low: int
    high: int
    unit: str


AUGMENT_STRENGTHS = {
    "shift": Strength(2, 1, 6, "pixels"),
    "erase": Strength(50, 10, 100, "% of the pictures"),
    "rotate": Strength(10, 2, 45, "degrees"),
    "zoom": Strength(10, 2, 40, "%"),
}


def split_augment(entry: str) -> tuple[str, str]:
    """ "shift:3" -> ("shift", "3"); "flip" -> ("flip", "")."""
    name, _, strength = str(entry).partition(":")
    return name.strip(), strength.strip()


def augment_entry(name: str, strength: int | None = None) -> str:
    """The entry of ``name`` at ``strength``: the bare name at the default strength."""
    known = AUGMENT_STRENGTHS.get(name)
    if known is None or strength is None or int(strength) == known.default:
        return name
    return f"{name}:{int(strength)}"


def augment_strengths(augment: tuple[str, ...] | list[str]) -> dict[str, int | None]:
    """{name: strength} of checked entries, the default where none is written; None for
    the mirror, which has no strength."""
    found: dict[str, int | None] = {}
    for entry in augment:
        name, strength = split_augment(entry)
        known = AUGMENT_STRENGTHS.get(name)
        # The first entry of a name, as _canonical_augment keeps it.
        found.setdefault(name, None if known is None else int(strength or known.default))
    return found


def _whole(text: str) -> bool:
    """Digits 0-9 only: str.isdigit also takes "²" and "٣", which int() refuses or reads."""
    return text.isascii() and text.isdigit()


def describe_augment(entry: str) -> str:
    """An augmentation in words: "shift:3" -> "shift ±3 px"."""
    name, strength = split_augment(entry)
    if name not in AUGMENTATIONS or (strength and not _whole(strength)):
        return str(entry)  # unchecked text (a hand-edited run.json): shown as it is
    strength = augment_strengths((entry,))[name]
    words = {
        "flip": "mirror left-right",
        "shift": f"shift ±{strength} px",
        "erase": f"grey box on {strength}%",
        "rotate": f"rotate ±{strength}°",
        "zoom": f"zoom ±{strength}%",
    }
    return words.get(name, str(entry))


def check_augment(entry: str) -> None:
    """A ValueError in one line unless ``entry`` is a known augmentation at a valid strength."""
    name, strength = split_augment(entry)
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}")
    if not strength:
        return
    known = AUGMENT_STRENGTHS.get(name)
    if known is None:
        raise ValueError(f"{name} takes no strength (given {entry!r})")
    if not _whole(strength) or not known.low <= int(strength) <= known.high:
        raise ValueError(
            f"{name} strength must be a whole number from {known.low} to {known.high} "
            f"({known.unit}), not {strength[:12]!r}"
        )


def check_augments(entries: tuple[str, ...] | list[str]) -> None:
    """A ValueError in one line unless every entry is valid and each augmentation is
    given once: the one rule for a list of augmentations, wherever one arrives."""
    for entry in entries:
        check_augment(entry)
    names = [split_augment(entry)[0] for entry in entries]
    if len(set(names)) < len(names):
        raise ValueError("each augmentation may be given once")


def _canonical_augment(augment: tuple[str, ...]) -> tuple[str, ...]:
    """In the one order of AUGMENTATIONS, once each (the first entry of a name wins), the
    default strength written as the bare name; unknown entries kept at the end to be refused."""
    first: dict[str, str] = {}
    for entry in augment:
        first.setdefault(split_augment(entry)[0], str(entry))
    ordered = [first[name] for name in AUGMENTATIONS if name in first]
    ordered += [entry for name, entry in first.items() if name not in AUGMENTATIONS]
    tidy = []
    for entry in ordered:
        # Written anew from its parts: " flip", "flip:" and "shift:03" become "flip",
        # "flip" and "shift:3"; what cannot be read is kept, for validate to refuse.
        name, strength = split_augment(entry)
        if name in AUGMENTATIONS and not strength:
            tidy.append(name)
        elif name in AUGMENT_STRENGTHS and _whole(strength):
            tidy.append(augment_entry(name, int(strength)))
        else:
            tidy.append(entry)
    return tuple(tidy)


MAX_LABEL_SMOOTHING = 0.3
MAX_PATIENCE = 50
MAX_SEED = 2**31 - 1  # NumPy's and TensorFlow's seeds are 32-bit
# Points of the live curves kept per epoch: enough for smooth lines, few enough
# that a browser redraws them every second without effort.
LIVE_POINTS_PER_EPOCH = 40


class JobState(str, enum.Enum):  # noqa: UP042 (a StrEnum would change what str() gives)
    QUEUED = "queued"
    RUNNING = "running"
    STOPPING = "stopping"
    EVALUATING = "evaluating"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"
    # The process training it died (killed, out of memory, server restarted):
    # its last checkpoint can be resumed.
    INTERRUPTED = "interrupted"

    @property
    def active(self) -> bool:
        return self in ACTIVE_STATES

    @property
    def final(self) -> bool:
        return not self.active


ACTIVE_STATES = frozenset(
    {JobState.QUEUED, JobState.RUNNING, JobState.STOPPING, JobState.EVALUATING}
)
# States in which a worker process is attached to the job.
WORKING_STATES = frozenset({JobState.RUNNING, JobState.STOPPING, JobState.EVALUATING})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training. The page and the command line both build one."""

    network: str = "mlp"
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 0.001
    optimizer: str = "adam"
    lr_schedule: str = "constant"
    validation_split: float = 0.1
    seed: int = 42
    # Epochs without improvement of val_loss before stopping; 0 turns it off.
    early_stopping_patience: int = 0
    # Train on at most this many images (0 = all 60,000), for quick demos.
    limit: int = 0
    mixed_precision: bool = False
    # The share of each target spread over the other classes (0.1: 0.91 on the true class,
    # 0.01 on each other one): a network less sure of itself generalises better.
    label_smoothing: float = 0.0
    augment: tuple[str, ...] = ()  # some of AUGMENTATIONS
    name: str = ""
    # Devices to mirror the model over, for example ("/cpu:0", "/cpu:1") in tests;
    # empty means every visible GPU, or the CPU when there is none.
    devices: tuple[str, ...] = ()
    # Batches run per call into TensorFlow; 0 picks a value that keeps small
    # networks fast while the live curves still move many times per epoch.
    steps_per_execution: int = 0
    command: str = ""  # the command line that started it, recorded in run.json
    # The layers of a network built on the Train page or read from --network-spec (network
    # "custom"), as fmnist.network_spec has them; empty for the named networks.
    layers: tuple[dict[str, Any], ...] = ()
    # A saved run this one continues ("Train N more epochs"): its weights and optimizer
    # state, its epochs counted in ``epochs`` (the total), its curves carried on.
    parent_run: str = ""

    def validate(self) -> None:
        if self.network == CUSTOM:
            network_spec.summary(self.layers)  # a SpecError naming the impossible layer
        elif self.layers:
            raise ValueError(f"layers are given only with the network {CUSTOM!r}")
        else:
            get_network(self.network)
        if not 1 <= self.epochs <= 500:
            raise ValueError("epochs must be between 1 and 500")
        if not 1 <= self.batch_size <= 8192:
            raise ValueError("batch size must be between 1 and 8192")
        if not 0 < self.learning_rate <= 10:
            raise ValueError("learning rate must be above 0 and at most 10")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"learning-rate schedule must be one of {', '.join(LR_SCHEDULES)}")
        if not 0 <= self.validation_split < 0.5:
            raise ValueError("validation split must be at least 0 and below 0.5")
        if self.limit < 0 or (0 < self.limit < 100):
            raise ValueError("limit must be 0 (all images) or at least 100")
        if not 0 <= self.early_stopping_patience <= MAX_PATIENCE:
            raise ValueError(f"early stopping patience must be between 0 and {MAX_PATIENCE}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"the random seed must be between 0 and {MAX_SEED}")
        if self.steps_per_execution < 0:
            raise ValueError("steps per execution cannot be negative")
        if not 0 <= self.label_smoothing <= MAX_LABEL_SMOOTHING:
            raise ValueError(f"label smoothing must be between 0 and {MAX_LABEL_SMOOTHING}")
        check_augments(self.augment)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The inverse of to_dict; unknown keys (from a newer version) are ignored."""
        known = {f.name for f in fields(cls)}
        kept = {k: v for k, v in values.items() if k in known}
        for name in ("devices", "augment", "layers"):  # lists in JSON
            if name in kept:
                kept[name] = tuple(kept[name])
        return cls(**kept)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> TrainConfig:
        """Settings as a page form or argparse gives them -> a checked TrainConfig.

        The one mapping shared by the Train page and the command line: the same
        names, the same conversions, the same checks.
        """
        config = cls.from_dict(
            {
                key: value
                for key, value in settings.items()
                if value is not None and key in {f.name for f in fields(cls)}
            }
        )
        config = cls(
            **{
                **config.to_dict(),
                "epochs": int(config.epochs),
                "batch_size": int(config.batch_size),
                "learning_rate": float(config.learning_rate),
                "validation_split": float(config.validation_split),
                "seed": int(config.seed),
                "early_stopping_patience": int(config.early_stopping_patience),
                "limit": int(config.limit),
                "mixed_precision": bool(config.mixed_precision),
                "label_smoothing": float(config.label_smoothing),
                "augment": _canonical_augment(tuple(config.augment)),
                "name": str(config.name).strip(),
                "devices": tuple(config.devices),
                "layers": tuple(network_spec.clean(config.layers)) if config.layers else (),
            }
        )
        config.validate()
        return config


@dataclass(frozen=True)
class EpochMetrics:
    """One completed epoch: Keras's logs plus how long it took."""

    epoch: int
    loss: float
    accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    seconds: float = 0.0
    learning_rate: float | None = None
    # The validation images' confusion matrix after this epoch (rows: true class), and
    # the seconds that scoring them took (part of ``seconds``).
    val_confusion: list[list[int]] | None = None
    val_seconds: float | None = None
    # Each kernel layer's weight and gradient statistics after this epoch (fmnist.ml.health).
    layer_health: list[dict[str, Any]] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def scores(self) -> dict[str, float]:
        """The numbers of run.json's history (the matrices and layer statistics are kept
        beside it)."""
        return {
            k: v for k, v in self.as_dict().items() if k not in ("val_confusion", "layer_health")
        }


@dataclass(frozen=True)
class LivePoint:
    """The running training loss and accuracy at a fraction of an epoch."""

    epoch: float  # fractional: 2.5 is half-way through the third epoch
    loss: float
    accuracy: float


@dataclass
class JobView:
    """What a reader (page, command line) sees of a job: one consistent snapshot."""

    id: str
    config: TrainConfig
    state: JobState
    message: str = ""
    phase: str = ""  # what a running job is doing before its first batch
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    epoch: int = 0  # whole epochs completed
    batch: int = 0  # batches done in the current epoch
    batches: int = 0  # batches per epoch
    images_per_second: float = 0.0
    eta: float | None = None
    device: str = ""
    run_id: str = ""
    test_accuracy: float | None = None
    checkpoint_epoch: int = 0
    queue_position: int = 0
    source: str = "web"  # web, cli or ray
    history: list[EpochMetrics] = field(default_factory=list)
    live: list[LivePoint] = field(default_factory=list)

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else time.time()
        return max(0.0, end - self.started_at)

    @property
    def resumable(self) -> bool:
        return self.state is JobState.INTERRUPTED and self.checkpoint_epoch > 0


@dataclass(frozen=True)
class RunRecord:
    """run.json: what a finished training leaves beside its model.keras."""

    SCHEMA_VERSION = 2

    run_id: str
    name: str
    network: str
    parameters: int
    config: dict[str, Any]
    command: str
    status: str
    epochs_completed: int
    history: list[dict[str, float]]
    test_loss: float
    test_accuracy: float
    confusion_matrix: list[list[int]]
    device: str
    mixed_precision: bool
    train_images: int
    validation_images: int
    images_per_second: float
    train_seconds: float
    evaluate_seconds: float
    started_at: str
    finished_at: str
    tensorflow: str
    keras: str
    dataset_source: str
    # Fraction of the last epoch done when a Stop ended it part-way (0 = whole epochs).
    partial_epoch: float = 0.0
    # With test-time augmentation: each test picture scored as the average over it and its
    # mirror image. Measured only for runs trained on mirrored pictures ("flip").
    test_accuracy_mirrored: float | None = None
    # The network's layers (fmnist.network_spec), for a named network too: any run's
    # network can be loaded back into the builder.
    layers: list[dict[str, Any]] = field(default_factory=list)
    job_id: str = ""
    # One confusion matrix of the validation images per completed epoch, in order.
    validation_confusion_matrices: list[list[list[int]]] = field(default_factory=list)
    # Each kernel layer's weight and gradient statistics per completed epoch.
    layer_health: list[list[dict[str, Any]]] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Integers beyond 2**53 lose precision in JavaScript and overflow the tables' int64
# columns; no honest run has a count, a time or a rate anywhere near these.
_LARGEST_INT = 2**53
_LARGEST_FLOAT = 1e15
# A diverged training ends with a loss of NaN or infinity: those stay allowed here.
_MAY_BE_NON_FINITE = frozenset({"test_loss", "history"})
# Keys that run.json holds beside the RunRecord's fields.
_EXTRA_FIELDS: dict[str, Any] = {"shipped": bool, "owner": str}


def check_run_record(values: object) -> dict[str, Any]:
    """run.json as read from disk -> the same record, checked against RunRecord's types.

    ``network`` is required; every other field may be missing (older runs, tests)
    or null (taken as missing, and dropped), but one that is there must have its
    type: numbers finite, not negative and not absurdly large, ``test_accuracy``
    from 0 to 1, ``config`` as TrainConfig has it. Unknown keys (from a newer
    version) are kept. A ValueError says what is wrong in one short line, without
    repeating the value.
    """
    if not isinstance(values, dict):
        raise ValueError(f"{_kind(values)}, not an object")
    record = {key: value for key, value in values.items() if value is not None}
    if not isinstance(record.get("network"), str) or not record["network"]:
        raise ValueError("it names no network")
    hints = typing.get_type_hints(RunRecord) | _EXTRA_FIELDS
    for name, value in record.items():
        if name in hints:
            _check(value, hints[name], name, name in _MAY_BE_NON_FINITE)
    for name in ("test_accuracy", "test_accuracy_mirrored"):
        if name in record and not 0 <= record[name] <= 1:
            raise ValueError(f"{name} is not between 0 and 1")
    if "config" in record:
        config_hints = typing.get_type_hints(TrainConfig)
        for name, value in record["config"].items():
            if name in config_hints and value is not None:
                _check(value, config_hints[name], f"config.{name}", False)
    if any("epoch" not in entry for entry in record.get("history", [])):
        raise ValueError("history has an epoch without its number")
    owner = record.get("owner")
    if owner is not None and not owner.isascii():
        raise ValueError("owner is not a token's hash")
    return record


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true or false"}
    if value is None:
        return "null"
    return names.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _key(key: object) -> str:
    """A key from run.json as a message names it: as it is when it is a short name, else quoted.

    A key can be megabytes long or hold newlines; the message stays one short line.
    """
    text = str(key)
    return text if text.isidentifier() and len(text) <= 20 else short(text, 20)


def _check(value: object, hint: Any, where: str, non_finite_ok: bool) -> None:
    """Raise a ValueError naming ``where`` when ``value`` does not fit the type ``hint``."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return
    if origin in (typing.Union, types.UnionType):  # "float | None": null was dropped already
        kept = [argument for argument in arguments if argument is not type(None)]
        if len(kept) == 1:
            _check(value, kept[0], where, non_finite_ok)
        return
    if hint is bool:
        fits = isinstance(value, bool)
    elif hint is str:
        fits = isinstance(value, str)
    elif hint is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
        if fits and not 0 <= value <= _LARGEST_INT:
            raise ValueError(f"{where} is out of range")
    elif hint is float:
        fits = isinstance(value, (int, float)) and not isinstance(value, bool)
        out_of_range = fits and not 0 <= value <= _LARGEST_FLOAT  # NaN is never in range
        if out_of_range and (math.isfinite(value) or not non_finite_ok):
            raise ValueError(f"{where} is out of range")
    elif origin is list or origin is tuple:
        fits = isinstance(value, list)
        if fits:
            for index, item in enumerate(value):
                _check(item, arguments[0], f"{where}[{index}]", non_finite_ok)
    elif origin is dict:
        fits = isinstance(value, dict)
        if fits:
            for key, item in value.items():
                _check(item, arguments[1], f"{where}.{_key(key)}", non_finite_ok)
    else:  # a type this check does not know: nothing to say about it
        return
    if not fits:
        expected = {bool: "true or false", str: "text", int: "a whole number"}.get(
            hint, "a number" if hint is float else "an object" if origin is dict else "a list"
        )
        raise ValueError(f"{where} should be {expected}, not {_kind(value)}")


class ProgressSink(Protocol):
    """Where a training reports what it does, and learns whether to stop.

    The local worker writes to the SQLite job store, a Ray task sends to an
    actor the server drains, and tests keep everything in a list.
    """

    def phase(self, text: str) -> None:
        """What the job is doing before its first batch: loading data, building, compiling."""

    def started(self, device: str, batches: int) -> None:
        """The first batch is about to run on ``device``; an epoch has ``batches`` batches."""

    def batch(
        self, done: int, images_per_second: float, eta: float | None, point: LivePoint | None
    ) -> None:
        """``done`` batches of the current epoch are finished."""

    def epoch_end(self, metrics: EpochMetrics) -> None:
        """A whole epoch is finished."""

    def checkpoint(self, model: Any, epoch: int) -> None:
        """Keep ``model`` (after ``epoch`` whole epochs) so a dead job can resume."""

    def evaluating(self) -> None:
        """Training is over; the test set is being scored."""

    def should_stop(self) -> bool:
        """True once somebody asked the job to stop."""


@dataclass(frozen=True)
class ResumePoint:
    """Where an interrupted job picks up: its checkpoint after ``epoch`` whole epochs."""

    checkpoint: str
    epoch: int
    history: tuple[EpochMetrics, ...] = ()
    # A continued run whose schedule had decayed to its end: a new schedule over the new
    # epochs, with a fresh optimizer (a warm restart), instead of training at 0.1% of
    # the rate. An interrupted job always carries its own optimizer on.
    restart_schedule: bool = False
