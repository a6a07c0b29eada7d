"""What the web server and the inference service say to each other: no TensorFlow here.

The server (through ``fmnist.inference_client``) and the service
(``fmnist.ml.inference_service``) both import this module, so the errors,
model references and message framing are defined once. A message is one
pickle (protocol 5) sent with ``Connection.send_bytes``: a 4-byte length and
the bytes, which costs a few microseconds for a stack of 28x28 pictures.

Requests are ``(request_id, op, args)``; replies are ``(request_id, kind, value)``
with ``kind`` one of ``OK``, ``MODEL_ERROR``, ``UNKNOWN_MODEL`` or ``ERROR``. The
very first message the service sends, before any request, is
``(0, READY, ServiceInfo)``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from fmnist import config

# Operations the service answers.
PING = "ping"
CHECK = "check"  # ModelRef -> ModelInfo (UNKNOWN_MODEL: an imported file it lacks)
IMPORT = "import"  # (sha256 digest, payload) -> ModelInfo
PREDICT = "predict"  # (ModelRef, uint8 (N, 28, 28)) -> float64 (N, 10)
TEST_PROBABILITIES = "test_probabilities"  # ModelRef -> float64 (10000, 10)
EXPLAIN = "explain"  # (ModelRef, uint8 (28, 28), class index, method) -> Explanation
FEATURE_MAPS = "feature_maps"  # (ModelRef, uint8 (28, 28)) -> list[LayerMaps]
FIRST_LAYER = "first_layer"  # ModelRef -> FirstLayer | None
SEPARATION = "separation"  # ModelRef -> list[LayerSeparation] (on 2,000 test images)
FEATURES = "features"  # (ModelRef, uint8 (N, 28, 28)) -> float32 (N, D): the last hidden layer
AUGMENT = "augment"  # (augmentations, uint8 (28, 28), count, seed) -> uint8 (count, 28, 28)
TFLITE = "tflite"  # ModelRef -> TfliteModel, checked on the first 100 test images

# How an Explanation is computed: "auto" is Grad-CAM where the network has a
# convolution, integrated gradients otherwise.
AUTO = "auto"
GRAD_CAM = "Grad-CAM"
INTEGRATED_GRADIENTS = "integrated gradients"
METHODS = (AUTO, GRAD_CAM, INTEGRATED_GRADIENTS)

# Reply kinds.
READY = "ready"
OK = "ok"
MODEL_ERROR = "model_error"
UNKNOWN_MODEL = "unknown_model"
ERROR = "error"


class InferenceError(Exception):
    """The inference service could not answer. The message is one line, fit for users."""


class ModelError(InferenceError):
    """A model that cannot be used here. The message is one line, fit for users."""


@dataclass(frozen=True)
class RunModel:
    """The model of a saved run.

    ``finished_at`` is part of the identity: a run deleted and trained again
    under the same id is another model. ``models_dir`` travels with the
    reference because the service does not share the server's settings (tests
    and benchmarks move the folder at run time).
    """

    run_id: str
    finished_at: str
    models_dir: str

    @classmethod
    def of(cls, record: dict[str, Any], models_dir: Path | str | None = None) -> RunModel:
        folder = Path(models_dir) if models_dir else config.MODELS_DIR
        return cls(record["run_id"], record.get("finished_at", ""), str(folder.resolve()))


@dataclass(frozen=True)
class ImportedModel:
    """A user's .keras file, known by the SHA-256 of its bytes (sent to the service once)."""

    digest: str


ModelRef = RunModel | ImportedModel


@dataclass(frozen=True)
class ModelInfo:
    ref: ModelRef
    parameters: int


@dataclass(frozen=True)
class ServiceInfo:
    pid: int
    tensorflow: str
    devices: tuple[str, ...]


@dataclass(frozen=True)
class Explanation:
    """What pushed a network towards one class, over the 28x28 input."""

    heatmap: Any  # float32 (28, 28) in [0, 1]: 1 where the push was strongest
    method: str  # GRAD_CAM or INTEGRATED_GRADIENTS: how it was computed
    class_index: int
    fallback: str = ""  # why Grad-CAM was asked for and not used, in words; "" otherwise


@dataclass(frozen=True)
class LayerMaps:
    """One layer's maps for one picture."""

    name: str
    kind: str  # its type and output shape, in words
    maps: Any  # float32 (H, W, shown): the first maps only
    total: int  # how many maps the layer has


@dataclass(frozen=True)
class FirstLayer:
    """What the first layer learned, as pictures."""

    name: str
    kind: str  # "filters" (kh, kw, n) of a convolution, or "templates" (28, 28, n) of a dense layer
    weights: Any  # float32
    class_templates: Any  # float32 (28, 28, 10) for a network of dense layers only, else None


@dataclass(frozen=True)
class LayerSeparation:
    """How well the classes stand apart at one layer: nearest-class-mean accuracy."""

    name: str
    kind: str
    accuracy: float


@dataclass(frozen=True)
class TfliteModel:
    """A model converted to TensorFlow Lite, and how it compared with Keras."""

    content: bytes  # the .tflite flat buffer
    images: int  # test images both answered
    same_class: int  # of which the top class agreed
    max_difference: float  # the largest gap between their probabilities


def send(connection: Connection, message: tuple[Any, ...]) -> None:
    connection.send_bytes(pickle.dumps(message, protocol=5))


def receive(connection: Connection) -> tuple[Any, ...]:
    # Both ends are our own processes (the service is started by the server
    # with a private socket pair), so unpickling is not a trust boundary.
    return pickle.loads(connection.recv_bytes())
