"""The inference service through its client: real processes, real models, real failures."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fmnist.data import Dataset
from fmnist.inference_client import InferenceClient, InferenceError, ModelError, RunModel
from fmnist.inference_protocol import AUTO, INTEGRATED_GRADIENTS

from .conftest import PROJECT_ROOT

DEADLINE_S = 30


@pytest.fixture(scope="module")
def client() -> Iterator[InferenceClient]:
    # A client of its own, so these tests neither share nor kill the service the
    # page tests use through the module-level client.
    client = InferenceClient()
    yield client
    client.shutdown()


@pytest.fixture(scope="module")
def shipped_ref(shipped_run: dict) -> RunModel:
    return RunModel.of(shipped_run, PROJECT_ROOT / "models")


def gone(pid: int) -> bool:
    """True once a process has exited (a zombie no one reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_until_gone(pid: int, deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not gone(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.05)  # polling, with the deadline above as the limit


def test_predictions_match_the_same_model_in_process(
    client: InferenceClient, shipped_ref: RunModel, shipped_model, dataset: Dataset
) -> None:
    from fmnist.ml.inference import predict_probabilities

    info = client.check_model(shipped_ref)
    assert info.ref == shipped_ref and info.parameters == shipped_model.count_params()
    pictures = dataset.x_test[:64]
    through_service = client.predict(shipped_ref, pictures)
    assert through_service.shape == (64, 10) and through_service.dtype == np.float64
    np.testing.assert_allclose(
        through_service, predict_probabilities(shipped_model, pictures), atol=1e-5
    )
    one = client.predict(shipped_ref, dataset.x_test[7])  # a single (28, 28) picture
    np.testing.assert_allclose(one, through_service[7:8], atol=1e-5)
    assert client.predict(shipped_ref, np.empty((0, 28, 28), np.uint8)).shape == (0, 10)


def test_a_heatmap_through_the_service_is_the_one_computed_in_process(
    client: InferenceClient, shipped_ref: RunModel, shipped_model, dataset: Dataset
) -> None:
    from fmnist.ml import saliency

    for method in (AUTO, INTEGRATED_GRADIENTS):
        through_service = client.explain(shipped_ref, dataset.x_test[0], 9, method)
        in_process = saliency.explain(shipped_model, dataset.x_test[0], 9, method)
        assert through_service.method == in_process.method
        np.testing.assert_allclose(through_service.heatmap, in_process.heatmap, atol=1e-4)
    with pytest.raises(InferenceError, match="class must be 0-9"):
        client.explain(shipped_ref, dataset.x_test[0], 12)
    with pytest.raises(ValueError, match="one uint8 28x28 picture"):
        client.explain(shipped_ref, dataset.x_test[:2], 1)


def test_test_set_probabilities_score_the_recorded_accuracy(
    client: InferenceClient, shipped_ref: RunModel, shipped_run: dict, dataset: Dataset
) -> None:
    probabilities = client.test_probabilities(shipped_ref)
    assert probabilities.shape == (10_000, 10)
    accuracy = (probabilities.argmax(axis=1) == dataset.y_test).mean()
    assert accuracy == pytest.approx(shipped_run["test_accuracy"], abs=1e-4)
    np.testing.assert_allclose(
        probabilities[:64], client.predict(shipped_ref, dataset.x_test[:64]), atol=1e-5
    )


def test_bad_requests_get_one_line_and_the_service_survives(
    client: InferenceClient, shipped_ref: RunModel, dataset: Dataset, tmp_path: Path
) -> None:
    client.check_model(shipped_ref)
    pid = client.service_pid()
    assert pid is not None
    with pytest.raises(ModelError, match=r"not a \.keras file") as refused:
        client.check_imported(b"this is not a model")
    assert "\n" not in str(refused.value)
    # The same file again is refused from the client's memory of it.
    with pytest.raises(ModelError, match=r"not a \.keras file"):
        client.check_imported(b"this is not a model")
    with pytest.raises(ModelError, match="zip archive is damaged") as refused:
        client.check_imported(b"PK\x03\x04" + bytes(200))
    # A zip that passes the archive check but that Keras cannot load: the service says so.
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("config.json", "not JSON")
    with pytest.raises(ModelError, match="Keras could not load this file") as refused:
        client.check_imported(archive.getvalue())
    assert "\n" not in str(refused.value)
    missing = RunModel("no-such-run", "", str(tmp_path))
    with pytest.raises(ModelError, match="no run named 'no-such-run'"):
        client.predict(missing, dataset.x_test[:1])
    with pytest.raises(ValueError, match="uint8 28x28"):
        client.predict(shipped_ref, np.zeros((2, 32, 32), np.float32))
    assert client.service_pid() == pid
    assert client.predict(shipped_ref, dataset.x_test[:2]).shape == (2, 10)


def test_a_killed_service_is_restarted_by_the_next_request(
    client: InferenceClient, shipped_ref: RunModel, dataset: Dataset
) -> None:
    before = client.predict(shipped_ref, dataset.x_test[:4])
    pid = client.service_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    after = client.predict(shipped_ref, dataset.x_test[:4])
    assert client.service_pid() not in (None, pid)
    np.testing.assert_allclose(after, before, atol=1e-6)


def test_an_imported_model_survives_a_restart(
    client: InferenceClient, dataset: Dataset, tmp_path: Path
) -> None:
    from fmnist.ml.networks import build_model

    path = tmp_path / "mine.keras"
    build_model("mlp").save(path)
    info = client.check_imported(path.read_bytes())
    assert info.parameters == 101_770
    before = client.predict(info.ref, dataset.x_test[:3])
    pid = client.service_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until_gone(pid)
    # The new service never saw the file: the client sends it again by itself.
    np.testing.assert_allclose(client.predict(info.ref, dataset.x_test[:3]), before, atol=1e-6)
    assert client.service_pid() != pid


def test_a_service_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    broken = InferenceClient(command=[sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(InferenceError, match=r"did not start.*exit code 3"):
        broken.info()
    assert broken.service_pid() is None


@pytest.mark.parametrize("value", ["4GB", "-5"])
def test_a_malformed_memory_limit_warns_once_and_the_default_applies(
    value: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FMNIST_INFERENCE_MEMORY_MB", value)
    client = InferenceClient()
    try:
        info = client.info(timeout=120)  # it starts, where int("4GB") used to end it
        assert info is not None
        pid = client.service_pid()
        assert pid is not None
        limits = Path(f"/proc/{pid}/limits").read_text()
    finally:
        client.shutdown()
    warnings = [line for line in capfd.readouterr().err.splitlines() if "MEMORY_MB" in line]
    assert warnings == [
        f"warning: FMNIST_INFERENCE_MEMORY_MB={value!r} is not a whole number of megabytes "
        "(0 or more); the inference service uses 4096"
    ]
    (address_space,) = [line for line in limits.splitlines() if "address space" in line]
    if not any(device.startswith("GPU") for device in info.devices):
        assert "unlimited" not in address_space.split()[3], address_space  # the default cap


def run_parent(script: str) -> subprocess.Popen:
    """A Python process that imports the client the way the web server does."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_the_server_side_never_imports_tensorflow(shipped_run: dict) -> None:
    # The run's identity only: its whole run.json is longer than one argument may be.
    identity = {key: shipped_run[key] for key in ("run_id", "finished_at")}
    parent = run_parent(
        f"""
        import json, sys
        import numpy as np
        from fmnist import inference_client
        ref = inference_client.RunModel.of({identity!r}, {str(PROJECT_ROOT / "models")!r})
        probabilities = inference_client.predict(ref, np.zeros((2, 28, 28), np.uint8))
        print(json.dumps({{
            "shape": probabilities.shape,
            "devices": inference_client.devices(),
            "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")),
        }}))
        """
    )
    out, _ = parent.communicate(timeout=300)
    assert parent.returncode == 0
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["shape"] == [2, 10] and answer["devices"]
    assert answer["loaded"] == []


@pytest.mark.parametrize("socket_kept_open", [False, True], ids=["eof", "reparented"])
def test_the_service_exits_when_the_server_dies(socket_kept_open: bool) -> None:
    # With socket_kept_open, a forked child of the server holds a copy of its end
    # of the socket, so no EOF reaches the service: it must notice that its
    # parent changed instead.
    parent = run_parent(
        f"""
        import os, sys
        from fmnist import inference_client
        inference_client.devices()
        keeper = 0
        if {socket_kept_open!r}:
            copy = os.dup(inference_client._client._connection.fileno())
            keeper = os.fork()
            if keeper == 0:
                sys.stdin.read()  # holds the copy until the test closes stdin
                os._exit(0)
        print(inference_client.service_pid(), keeper, flush=True)
        sys.stdin.read()
        """
    )
    assert parent.stdout is not None and parent.stdin is not None
    service_pid, keeper = (int(word) for word in parent.stdout.readline().split())
    assert not gone(service_pid)
    parent.kill()
    parent.wait(timeout=DEADLINE_S)
    try:
        wait_until_gone(service_pid)
    finally:
        parent.stdin.close()  # ends the keeper, if any
        if keeper:
            wait_until_gone(keeper)


def test_mirrored_scores_are_the_average_with_the_mirror_in_one_call(
    client: InferenceClient, shipped_ref: RunModel, dataset: Dataset
) -> None:
    pictures = dataset.x_test[:20]
    mirrors = np.ascontiguousarray(pictures[:, :, ::-1])
    averaged = client.predict_mirrored(shipped_ref, pictures)
    expected = (client.predict(shipped_ref, pictures) + client.predict(shipped_ref, mirrors)) / 2
    np.testing.assert_allclose(averaged, expected, atol=1e-6)
    # A picture and its mirror now get the same answer, which the plain scores do not.
    np.testing.assert_allclose(client.predict_mirrored(shipped_ref, mirrors), averaged, atol=1e-6)
    assert not np.allclose(
        client.predict(shipped_ref, mirrors), client.predict(shipped_ref, pictures), atol=1e-3
    )
    assert client.predict_mirrored(shipped_ref, pictures[0]).shape == (1, 10)


def test_the_tflite_model_answers_as_keras_does_on_test_images(
    client: InferenceClient, shipped_ref: RunModel, dataset: Dataset
) -> None:
    from fmnist.ml import tflite

    converted = client.tflite(shipped_ref)
    assert converted.content[4:8] == b"TFL3"  # the flat buffer's file identifier
    assert converted.images == tflite.CHECK_IMAGES == 100
    assert converted.same_class == 100 and converted.max_difference < 1e-3
    # Run here, on other test images than the service's check: the same answers as Keras.
    pictures = dataset.x_test[5000:5100]
    lite = tflite.predict(converted.content, pictures)
    np.testing.assert_allclose(lite, client.predict(shipped_ref, pictures), atol=1e-3)


def test_a_conversion_that_changed_the_answers_is_refused(
    shipped_model, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fmnist.ml import tflite

    keep = tflite.predict
    # A converter that swapped two outputs: the check catches it before anyone gets the file.
    monkeypatch.setattr(tflite, "predict", lambda content, images: keep(content, images)[:, ::-1])
    with pytest.raises(ModelError, match="answers differently from Keras"):
        tflite.convert(shipped_model, dataset.x_test[:20])


def test_augmented_samples_are_the_training_pipelines_own_draws(
    client: InferenceClient, dataset: Dataset
) -> None:
    from fmnist.ml import engine

    picture = dataset.x_train[0]
    samples = client.augmented(("flip", "rotate:30"), picture, 8, seed=5)
    assert samples.shape == (8, 28, 28) and samples.dtype == np.uint8
    # The same draws as the layers the worker trains with, seeded alike.
    in_process = engine.augmented_samples(("flip", "rotate:30"), picture, 8, 5)
    assert np.abs(samples.astype(int) - in_process).max() <= 1
    assert all(not np.array_equal(sample, picture) for sample in samples)  # every one turned
    assert not np.array_equal(client.augmented(("flip", "rotate:30"), picture, 8, 6), samples)
    with pytest.raises(InferenceError, match="shift strength must be a whole number from 1 to 6"):
        client.augmented(("shift:60",), picture, 8, seed=5)
    assert np.array_equal(client.augmented((), picture, 2, seed=5), [picture, picture])
