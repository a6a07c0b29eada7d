"""The inference service: a long-lived process that holds models and answers predictions.

Started by ``fmnist.inference_client`` as ``python -m fmnist.ml.inference_service
--fd N --parent-pid P``, with one end of a private socket pair as file
descriptor N. It talks only over that socket (TensorFlow may print to stdout
and stderr, which stay the server's terminal), one request at a time, with the
framing of ``fmnist.inference_protocol``.

It keeps the recently used models loaded, loads the dataset once for scoring
the test set, and keeps the test-set probabilities of recent models. A failing
request is answered with a one-line message; only the end of the server stops
the service: its end of the socket closes, or, should a forked child of the
server still hold that end open, the service sees that its parent changed.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
from collections import OrderedDict
from collections.abc import Hashable
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

# TensorFlow's C++ start-up chatter would land in the server's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from fmnist import data
from fmnist.inference_protocol import (
    AUGMENT,
    CHECK,
    ERROR,
    EXPLAIN,
    FEATURE_MAPS,
    FEATURES,
    FIRST_LAYER,
    IMPORT,
    MODEL_ERROR,
    OK,
    PING,
    PREDICT,
    READY,
    SEPARATION,
    TEST_PROBABILITIES,
    TFLITE,
    UNKNOWN_MODEL,
    ImportedModel,
    LayerSeparation,
    ModelError,
    ModelInfo,
    ModelRef,
    RunModel,
    ServiceInfo,
    receive,
    send,
)
from fmnist.messages import first_line, short
from fmnist.ml import inference, inside, saliency

MAX_MODELS = 6
# Imported files are kept as bytes too, so an imported model pushed out of the
# model cache can be loaded again without the server sending the file again.
MAX_PAYLOADS = 4
MAX_TEST_PROBABILITIES = 6
# Test images behind the layer-by-layer separation: half give the class means, half are
# classified by them.
SEPARATION_IMAGES = 2000
# How often an idle service checks that the server is still its parent.
PARENT_CHECK_S = 0.5
# The most address space the service may add to what it holds once TensorFlow
# is up (RLIMIT_AS); 0 turns the limit off. A model whose config builds a 3 GB
# layer in a 2 KB file is then refused rather than taking the machine's memory.
MEMORY_VARIABLE = "FMNIST_INFERENCE_MEMORY_MB"
DEFAULT_MEMORY_MB = 4096

Value = TypeVar("Value")


class _Lru(Generic[Value]):
    """A dict that forgets its least recently used entry beyond ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Value] = OrderedDict()

    def get(self, key: Hashable) -> Value | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: Value) -> Value:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


class UnknownModelError(Exception):
    """An imported model this process has never seen (it was restarted): resend the file."""


class InferenceService:
    """The state behind the requests: models, imported files, the dataset, scores."""

    def __init__(self) -> None:
        self._models: _Lru[keras.Model] = _Lru(MAX_MODELS)
        self._payloads: _Lru[bytes] = _Lru(MAX_PAYLOADS)
        self._test_probabilities: _Lru[np.ndarray] = _Lru(MAX_TEST_PROBABILITIES)
        self._separations: _Lru[list[LayerSeparation]] = _Lru(MAX_TEST_PROBABILITIES)
        self._dataset: data.Dataset | None = None
        self.info = ServiceInfo(
            pid=os.getpid(),
            tensorflow=inference.tensorflow_version(),
            # First, so that GPUs get memory growth before anything touches them.
            devices=tuple(inference.describe_devices()),
        )

    def answer(self, op: str, args: tuple[Any, ...]) -> tuple[str, Any]:
        """(kind, value) for one request; never raises."""
        try:
            return OK, self._handle(op, args)
        except ModelError as error:
            return MODEL_ERROR, str(error)
        except UnknownModelError as error:
            return UNKNOWN_MODEL, str(error)
        except Exception as error:  # noqa: BLE001 - any failure is one reply, not the end
            return ERROR, f"{type(error).__name__}: {first_line(error)}"

    def _handle(self, op: str, args: tuple[Any, ...]) -> Any:
        if op == PING:
            return self.info
        if op == CHECK:
            (ref,) = args
            return ModelInfo(ref, int(self.model(ref).count_params()))
        if op == IMPORT:
            digest, payload = args
            return self.import_model(digest, payload)
        if op == PREDICT:
            ref, pixels = args
            return inference.predict_probabilities(self.model(ref), _checked_pixels(pixels))
        if op == TEST_PROBABILITIES:
            (ref,) = args
            return self.test_probabilities(ref)
        if op == FEATURE_MAPS:
            ref, pixels = args
            (picture,) = _checked_pixels(pixels[None] if np.ndim(pixels) == 2 else pixels)
            return inside.feature_maps(self.model(ref), picture)
        if op == FEATURES:
            ref, pixels = args
            return inside.features(self.model(ref), _checked_pixels(pixels))
        if op == FIRST_LAYER:
            (ref,) = args
            return inside.first_layer(self.model(ref))
        if op == SEPARATION:
            (ref,) = args
            return self.separation(ref)
        if op == EXPLAIN:
            ref, pixels, class_index, method = args
            (picture,) = _checked_pixels(pixels[None] if np.ndim(pixels) == 2 else pixels)
            return saliency.explain(self.model(ref), picture, int(class_index), method)
        if op == AUGMENT:
            entries, pixels, count, seed = args
            (picture,) = _checked_pixels(pixels[None] if np.ndim(pixels) == 2 else pixels)
            if not 1 <= int(count) <= 64:
                raise ValueError("between 1 and 64 samples")
            from fmnist.ml import engine  # the training pipeline's own layers

            return engine.augmented_samples(tuple(entries), picture, int(count), int(seed))
        if op == TFLITE:
            (ref,) = args
            # Imported here: the converter loads MLIR's libraries, which no other request needs.
            from fmnist.ml import tflite

            return tflite.convert(self.model(ref), self.dataset().x_test[: tflite.CHECK_IMAGES])
        raise ValueError(f"unknown request {op!r}")

    def model(self, ref: ModelRef) -> keras.Model:
        model = self._models.get(ref)
        if model is not None:
            return model
        if isinstance(ref, RunModel):
            try:
                model = inference.load_run_model(ref.run_id, ref.models_dir)
            except Exception as error:  # noqa: BLE001 - missing, damaged or foreign files
                raise ModelError(first_line(error)) from None
            inference.check_outputs(model)  # a training that diverged saves NaN weights
        elif isinstance(ref, ImportedModel):
            payload = self._payloads.get(ref.digest)
            if payload is None:
                raise UnknownModelError(ref.digest)
            model = inference.load_imported(payload)
        else:
            raise TypeError(f"not a model reference: {ref!r}")
        return self._models.put(ref, model)

    def import_model(self, digest: str, payload: bytes) -> ModelInfo:
        """Check a user's file and keep it; the server sends it once, or again after a restart."""
        ref = ImportedModel(digest)
        model = inference.load_imported(payload)  # a ModelError keeps nothing
        self._payloads.put(digest, payload)
        self._models.put(ref, model)
        return ModelInfo(ref, int(model.count_params()))

    def separation(self, ref: ModelRef) -> list[LayerSeparation]:
        found = self._separations.get(ref)
        if found is None:
            dataset = self.dataset()
            images = dataset.x_test[:SEPARATION_IMAGES]
            labels = dataset.y_test[:SEPARATION_IMAGES]
            found = self._separations.put(ref, inside.separation(self.model(ref), images, labels))
        return found

    def dataset(self) -> data.Dataset:
        if self._dataset is None:
            self._dataset = data.load_dataset()
        return self._dataset

    def test_probabilities(self, ref: ModelRef) -> np.ndarray:
        probabilities = self._test_probabilities.get(ref)
        if probabilities is None:
            model = self.model(ref)
            probabilities = inference.predict_probabilities(model, self.dataset().x_test)
            self._test_probabilities.put(ref, probabilities)
        return probabilities


def _checked_pixels(pixels: Any) -> np.ndarray:
    if not (
        isinstance(pixels, np.ndarray)
        and pixels.dtype == np.uint8
        and pixels.ndim == 3
        and pixels.shape[1:] == (28, 28)
    ):
        raise ValueError("pictures must be a uint8 array of shape (N, 28, 28)")
    return pixels


def memory_allowance_mb() -> int:
    """FMNIST_INFERENCE_MEMORY_MB, or the default (with one warning line) when it is malformed.

    0 turns the cap off; a negative or non-integer value is taken for a typo,
    not for "no cap", and must not stop the service from starting.
    """
    value = os.environ.get(MEMORY_VARIABLE)
    if value is None or not value.strip():
        return DEFAULT_MEMORY_MB
    try:
        allowance = int(value)
    except ValueError:
        allowance = -1
    if allowance < 0:
        print(
            f"warning: {MEMORY_VARIABLE}={short(value)} is not a whole number of megabytes "
            f"(0 or more); the inference service uses {DEFAULT_MEMORY_MB}",
            file=sys.stderr,
            flush=True,
        )
        return DEFAULT_MEMORY_MB
    return allowance


def limit_memory(devices: tuple[str, ...]) -> int | None:
    """Cap the address space at its size now plus FMNIST_INFERENCE_MEMORY_MB; the cap or None.

    Measured on a CPU: TensorFlow holds 1.6 GB of address space once started
    and 3.0 GB after scoring the 10,000 test images, so the default 4096 MB
    leaves room for every request the pages make. With a GPU there is no cap:
    CUDA reserves address space by the tens of gigabytes and would fail under
    one. Nor on systems without /proc (macOS).
    """
    extra_mb = memory_allowance_mb()
    if extra_mb == 0 or any(name.startswith("GPU") for name in devices):
        return None
    try:
        status = dict(line.split(":", 1) for line in open("/proc/self/status"))  # noqa: SIM115
        size = int(status["VmSize"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = size + extra_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    return cap


def serve(connection: Connection, parent_pid: int) -> None:
    """Answer requests until the server goes away."""
    service = InferenceService()
    limit_memory(service.info.devices)
    send(connection, (0, READY, service.info))
    while True:
        if not connection.poll(PARENT_CHECK_S):
            # Reparented: the server died while something else (a child it
            # forked) keeps its end of the socket open, so no EOF arrives.
            if os.getppid() != parent_pid:
                return
            continue
        try:
            request_id, op, args = receive(connection)
        except (EOFError, OSError):
            return  # the server closed its end, or died
        kind, value = service.answer(op, args)
        try:
            send(connection, (request_id, kind, value))
        except OSError:
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmnist.ml.inference_service")
    parser.add_argument("--fd", type=int, required=True, help="our end of the socket pair")
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)
    if os.getppid() != args.parent_pid:
        return 0  # the server died while this process was starting
    # Ctrl-C in the server's terminal reaches this process too; the server's
    # own exit is what ends it, without a second traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with Connection(args.fd) as connection:
        serve(connection, args.parent_pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
