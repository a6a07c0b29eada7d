"""Predictions for the web server, computed in a separate process that holds TensorFlow.

The web server must never import TensorFlow or Keras: once Keras is loaded,
Streamlit clears its session after every script run, which pauses the whole
server and throws away compiled kernels. Every model step therefore runs in
``fmnist.ml.inference_service``, started on first use and kept for the life
of the server. This module imports numpy and the protocol only.

One lock serialises the requests of all sessions (Streamlit serves them from
threads); the service does one thing at a time anyway, and a request for one
picture takes about a millisecond. A service that died is started again and
the request retried once; what cannot be answered raises ``InferenceError``
(or ``ModelError`` for a model that cannot be used) with a one-line message.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from fmnist import config, keras_archive
from fmnist.data import NUM_CLASSES
from fmnist.evaluation import mirror_average, mirror_images
from fmnist.inference_protocol import (
    AUGMENT,
    AUTO,
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
    Explanation,
    FirstLayer,
    ImportedModel,
    InferenceError,
    LayerMaps,
    LayerSeparation,
    ModelError,
    ModelInfo,
    ModelRef,
    RunModel,
    ServiceInfo,
    TfliteModel,
    receive,
    send,
)

__all__ = [
    "Explanation",
    "FirstLayer",
    "ImportedModel",
    "InferenceClient",
    "InferenceError",
    "LayerMaps",
    "LayerSeparation",
    "ModelError",
    "ModelInfo",
    "ModelRef",
    "RunModel",
    "ServiceInfo",
    "TfliteModel",
    "augmented",
    "check_imported",
    "check_model",
    "devices",
    "info",
    "predict",
    "service_pid",
    "shutdown",
    "test_probabilities",
    "tflite",
    "warm_up",
]

# Importing TensorFlow and naming the devices takes seconds, more on a busy machine.
STARTUP_TIMEOUT_S = 180.0
# Scoring the 10,000 test images with a large imported model on a slow CPU.
REQUEST_TIMEOUT_S = 600.0
# Imported files kept here to send again to a restarted service (as many as
# the pages used to keep loaded models of imported files).
MAX_PAYLOADS = 2
MAX_IMPORT_ERRORS = 16


class _ServiceDiedError(Exception):
    pass


class InferenceClient:
    """One inference service process, started lazily, shared by every thread."""

    def __init__(self, command: list[str] | None = None) -> None:
        self._command = command or [sys.executable, "-m", "fmnist.ml.inference_service"]
        self._lock = threading.Lock()  # one request and its reply at a time
        self._process: subprocess.Popen | None = None
        self._connection: Connection | None = None
        self._request_ids = itertools.count(1)
        # Devices and versions do not change when the service is restarted.
        self._info: ServiceInfo | None = None
        self._state_lock = threading.Lock()  # for the caches below and the warm-up thread
        self._payloads: OrderedDict[str, bytes] = OrderedDict()
        self._import_errors: OrderedDict[str, str] = OrderedDict()
        self._warming: threading.Thread | None = None
        self._warm_error: str | None = None

    # -- what pages and tests call -------------------------------------------------

    def info(self, timeout: float | None = None) -> ServiceInfo | None:
        """Devices and TensorFlow version, or None if the service is not up within ``timeout``.

        The service keeps starting in the background after a timeout, so a page
        can show "detecting…" now and the answer on a later run.
        """
        if self._info is not None:
            return self._info
        with self._state_lock:
            if self._warming is None or not self._warming.is_alive():
                self._warm_error = None
                self._warming = threading.Thread(
                    target=self._warm, name="inference-service-start", daemon=True
                )
                self._warming.start()
            warming = self._warming
        warming.join(timeout)
        if self._info is not None:
            return self._info
        if not warming.is_alive() and self._warm_error:
            raise InferenceError(self._warm_error)
        return None

    def check_model(self, ref: ModelRef) -> ModelInfo:
        """Load a model in the service (if not loaded yet) and return its parameter count."""
        return self._call_model(CHECK, ref)

    def check_imported(self, payload: bytes) -> ModelInfo:
        """Load a user's .keras file in the service, sent only if the service lacks it.

        The zip's directory is checked here first (``fmnist.keras_archive``, no
        TensorFlow): a zip bomb or a foreign archive never reaches the service.
        A refused file is remembered by its digest, so that the page's reruns
        neither check it again nor send it again.
        """
        digest = hashlib.sha256(payload).hexdigest()
        with self._state_lock:
            known_error = self._import_errors.get(digest)
        if known_error is not None:
            raise ModelError(known_error)
        try:
            keras_archive.check(payload)
        except keras_archive.ArchiveError as error:
            self._remember_refusal(digest, str(error))
            raise ModelError(str(error)) from None
        with self._state_lock:
            self._payloads[digest] = payload
            self._payloads.move_to_end(digest)
            while len(self._payloads) > MAX_PAYLOADS:
                self._payloads.popitem(last=False)
        try:
            return self._call_model(CHECK, ImportedModel(digest))
        except ModelError as error:
            self._remember_refusal(digest, str(error))
            raise

    def predict(self, ref: ModelRef, pixels: np.ndarray) -> np.ndarray:
        """uint8 (28, 28) or (N, 28, 28) pictures -> float64 (N, 10) softmax."""
        pixels = np.asarray(pixels)
        if pixels.ndim == 2:
            pixels = pixels[None]
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[1:] != (28, 28):
            raise ValueError(f"expected uint8 28x28 pictures, got {pixels.dtype} {pixels.shape}")
        if len(pixels) == 0:
            return np.empty((0, NUM_CLASSES))
        return self._call_model(PREDICT, ref, np.ascontiguousarray(pixels))

    def predict_mirrored(self, ref: ModelRef, pixels: np.ndarray) -> np.ndarray:
        """Test-time augmentation: the average of each picture's softmax and its mirror
        image's (left and right swapped), both in one call to the service."""
        pixels = np.asarray(pixels)
        if pixels.ndim == 2:
            pixels = pixels[None]
        both = self.predict(ref, np.concatenate([pixels, mirror_images(pixels)]))
        return mirror_average(both[: len(pixels)], both[len(pixels) :])

    def test_probabilities(self, ref: ModelRef) -> np.ndarray:
        """float64 (10000, 10) softmax of the test images (cached in the service)."""
        return self._call_model(TEST_PROBABILITIES, ref)

    def explain(
        self, ref: ModelRef, pixels: np.ndarray, class_index: int, method: str = AUTO
    ) -> Explanation:
        """The heatmap of what pushed the model towards ``class_index`` for one picture."""
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.shape != (28, 28):
            raise ValueError(f"expected one uint8 28x28 picture, got {pixels.dtype} {pixels.shape}")
        return self._call_model(
            EXPLAIN, ref, np.ascontiguousarray(pixels), int(class_index), method
        )

    def feature_maps(self, ref: ModelRef, pixels: np.ndarray) -> list[LayerMaps]:
        """Each convolution block's and pooling layer's maps for one 28x28 picture."""
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.shape != (28, 28):
            raise ValueError(f"expected one uint8 28x28 picture, got {pixels.dtype} {pixels.shape}")
        return self._call_model(FEATURE_MAPS, ref, np.ascontiguousarray(pixels))

    def features(self, ref: ModelRef, pixels: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) pictures -> float32 (N, D): their last hidden layer's output."""
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[1:] != (28, 28):
            raise ValueError(f"expected uint8 28x28 pictures, got {pixels.dtype} {pixels.shape}")
        return self._call_model(FEATURES, ref, np.ascontiguousarray(pixels))

    def first_layer(self, ref: ModelRef) -> FirstLayer | None:
        return self._call_model(FIRST_LAYER, ref)

    def separation(self, ref: ModelRef) -> list[LayerSeparation]:
        return self._call_model(SEPARATION, ref)

    def augmented(
        self, augment: tuple[str, ...], picture: np.ndarray, count: int, seed: int
    ) -> np.ndarray:
        """``count`` draws of the training augmentation of one uint8 28x28 picture."""
        picture = np.asarray(picture)
        if picture.dtype != np.uint8 or picture.shape != (28, 28):
            raise ValueError(f"expected one uint8 28x28 picture, not {picture.shape}")
        return _result(*self._call(AUGMENT, (tuple(augment), picture, count, seed)))

    def tflite(self, ref: ModelRef) -> TfliteModel:
        """The model converted to TensorFlow Lite, checked against Keras on test images."""
        return self._call_model(TFLITE, ref)

    def service_pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def shutdown(self, timeout: float = 5.0) -> None:
        """Close the socket (the service exits on its end) and wait for the process."""
        with self._lock:
            self._stop_locked(timeout)

    def _remember_refusal(self, digest: str, message: str) -> None:
        with self._state_lock:
            self._payloads.pop(digest, None)
            self._import_errors[digest] = message
            while len(self._import_errors) > MAX_IMPORT_ERRORS:
                self._import_errors.popitem(last=False)

    # -- requests ----------------------------------------------------------------

    def _warm(self) -> None:
        try:
            self._call(PING, ())
        except InferenceError as error:
            self._warm_error = str(error)

    def _call_model(self, op: str, ref: ModelRef, *args: Any) -> Any:
        kind, value = self._call(op, (ref, *args))
        if kind == UNKNOWN_MODEL and isinstance(ref, ImportedModel):
            # A restarted service has lost the imported files: send this one again.
            with self._state_lock:
                payload = self._payloads.get(ref.digest)
            if payload is None:
                raise ModelError("this imported model is no longer loaded: choose the file again")
            _result(*self._call(IMPORT, (ref.digest, payload)))
            kind, value = self._call(op, (ref, *args))
        return _result(kind, value)

    def _call(self, op: str, args: tuple[Any, ...]) -> tuple[str, Any]:
        """(kind, value) of the reply; a dead service is started again and asked again once."""
        with self._lock:
            try:
                return self._exchange_locked(op, args)
            except _ServiceDiedError:
                self._stop_locked()
            try:
                return self._exchange_locked(op, args)
            except _ServiceDiedError as died:
                self._stop_locked()
                raise InferenceError(f"the inference service stopped: {died}") from None

    def _exchange_locked(self, op: str, args: tuple[Any, ...]) -> tuple[str, Any]:
        connection = self._start_locked()
        request_id = next(self._request_ids)
        try:
            send(connection, (request_id, op, args))
        except OSError as error:
            raise _ServiceDiedError(f"cannot send ({error})") from None
        while True:
            reply_id, kind, value = self._receive_locked(connection, REQUEST_TIMEOUT_S)
            # Replies to requests abandoned half-way (an exception in the caller) are skipped.
            if reply_id == request_id:
                return kind, value

    def _receive_locked(self, connection: Connection, timeout: float) -> tuple[Any, ...]:
        deadline = time.monotonic() + timeout
        process = self._process
        assert process is not None
        # Poll in short steps so a crash is noticed at once rather than at the deadline.
        while not connection.poll(min(1.0, max(0.0, deadline - time.monotonic()))):
            if process.poll() is not None:
                raise _ServiceDiedError(f"exit code {process.returncode}")
            if time.monotonic() >= deadline:
                # Stuck or far too slow: stop it, the next request starts a fresh one.
                self._stop_locked(timeout=0)
                raise InferenceError(f"the inference service gave no answer in {timeout:.0f} s")
        try:
            return receive(connection)
        except (EOFError, OSError) as error:
            try:
                code = process.wait(timeout=5)  # EOF: it is exiting
            except subprocess.TimeoutExpired:
                raise _ServiceDiedError(f"closed its socket ({error!r})") from None
            raise _ServiceDiedError(f"exit code {code}") from None

    def _start_locked(self) -> Connection:
        if self._connection is not None and self._process is not None:
            if self._process.poll() is None:
                return self._connection
            self._stop_locked()
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # The service imports fmnist from this checkout whatever the working folder.
        env["PYTHONPATH"] = os.pathsep.join(
            [str(config.PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        try:
            process = subprocess.Popen(
                [
                    *self._command,
                    "--fd",
                    str(theirs.fileno()),
                    "--parent-pid",
                    str(os.getpid()),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except OSError as error:
            ours.close()
            raise InferenceError(f"cannot start the inference service: {error}") from None
        finally:
            theirs.close()
        self._process = process
        self._connection = Connection(ours.detach())
        try:
            _, kind, value = self._receive_locked(self._connection, STARTUP_TIMEOUT_S)
        except _ServiceDiedError as died:
            self._stop_locked()
            raise InferenceError(f"the inference service did not start ({died})") from None
        if kind != READY:
            self._stop_locked()
            raise InferenceError(f"the inference service did not start: {value}")
        self._info = value
        return self._connection

    def _stop_locked(self, timeout: float = 5.0) -> None:
        connection, process = self._connection, self._process
        self._connection = self._process = None
        if connection is not None:
            connection.close()
        if process is not None:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _result(kind: str, value: Any) -> Any:
    if kind == OK:
        return value
    if kind == MODEL_ERROR:
        raise ModelError(value)
    if kind == UNKNOWN_MODEL:
        raise ModelError("this imported model is no longer loaded: choose the file again")
    if kind == ERROR:
        raise InferenceError(value)
    raise InferenceError(f"unexpected reply {kind!r} from the inference service")


# -- the server's one client ---------------------------------------------------------

_client = InferenceClient()


def _forget_in_child() -> None:
    # A process forked from the server (a training worker) must not talk over
    # the server's socket; it starts its own service if it ever asks.
    global _client
    _client = InferenceClient()


os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(lambda: _client.shutdown(timeout=2.0))


def info(timeout: float | None = None) -> ServiceInfo | None:
    return _client.info(timeout)


def devices(timeout: float | None = None) -> list[str] | None:
    """Names of the service's compute devices; None if it is not up within ``timeout``."""
    answer = _client.info(timeout)
    return None if answer is None else list(answer.devices)


def warm_up() -> None:
    """Start the service in the background, if it is not running, without waiting."""
    with contextlib.suppress(InferenceError):
        _client.info(timeout=0)


def check_model(ref: ModelRef) -> ModelInfo:
    return _client.check_model(ref)


def check_imported(payload: bytes) -> ModelInfo:
    return _client.check_imported(payload)


def predict(ref: ModelRef, pixels: np.ndarray) -> np.ndarray:
    return _client.predict(ref, pixels)


def predict_mirrored(ref: ModelRef, pixels: np.ndarray) -> np.ndarray:
    return _client.predict_mirrored(ref, pixels)


def test_probabilities(ref: ModelRef) -> np.ndarray:
    return _client.test_probabilities(ref)


def explain(ref: ModelRef, pixels: np.ndarray, class_index: int, method: str = AUTO) -> Explanation:
    return _client.explain(ref, pixels, class_index, method)


def feature_maps(ref: ModelRef, pixels: np.ndarray) -> list[LayerMaps]:
    return _client.feature_maps(ref, pixels)


def features(ref: ModelRef, pixels: np.ndarray) -> np.ndarray:
    return _client.features(ref, pixels)


def first_layer(ref: ModelRef) -> FirstLayer | None:
    return _client.first_layer(ref)


def separation(ref: ModelRef) -> list[LayerSeparation]:
    return _client.separation(ref)


def augmented(augment: tuple[str, ...], picture: np.ndarray, count: int, seed: int) -> np.ndarray:
    return _client.augmented(augment, picture, count, seed)


def tflite(ref: ModelRef) -> TfliteModel:
    return _client.tflite(ref)


def service_pid() -> int | None:
    return _client.service_pid()


def shutdown() -> None:
    _client.shutdown()
