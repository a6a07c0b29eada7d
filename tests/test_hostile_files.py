"""Hostile .keras files: zip bombs, foreign archives, models with several inputs or NaN outputs.

The corpus is written here, by the tests, each file small on disk. Every file
must be refused in one line before it can cost memory, and the real .keras
files (the shipped run, a model Keras has just saved) must pass.

``python -m tests.test_hostile_files`` prints the corpus as the README's table:
each file, its size, and the one line it gets.
"""

from __future__ import annotations

import hashlib
import io
import json
import resource
import struct
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fmnist import keras_archive, runs
from fmnist.inference_client import ImportedModel, InferenceClient, ModelError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


def shipped_keras() -> bytes:
    best = runs.best_run(PROJECT_ROOT / "models")
    assert best is not None, "no shipped run in models/"
    return (runs.run_path(best["run_id"], PROJECT_ROOT / "models") / runs.MODEL_FILE).read_bytes()


def rezipped(
    source: bytes,
    replace: dict[str, Callable[[zipfile.ZipFile], None]] | None = None,
    extra: Callable[[zipfile.ZipFile], None] | None = None,
) -> bytes:
    """A copy of a .keras archive with some members written by ``replace`` and more by ``extra``."""
    replace = replace or {}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(source)) as original, zipfile.ZipFile(out, "w") as copy:
        for member in original.infolist():
            if member.filename in replace:
                replace[member.filename](copy)
            else:
                copy.writestr(member, original.read(member))
        if extra is not None:
            extra(copy)
    return out.getvalue()


def zeros_member(name: str, size: int) -> Callable[[zipfile.ZipFile], None]:
    """A deflated member of ``size`` zero bytes (a thousandth of that on disk)."""

    def write(archive: zipfile.ZipFile) -> None:
        chunk = bytes(4 * MB)
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=size > 2**31) as member:
            for start in range(0, size, len(chunk)):
                member.write(chunk[: min(len(chunk), size - start)])

    return write


def deflated_member(
    name: str, size: int, filler: bytes = b" "
) -> Callable[[zipfile.ZipFile], None]:
    def write(archive: zipfile.ZipFile) -> None:
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w") as member:
            member.write(b'{"class_name": "Sequential", "padding": "')
            chunk = filler * MB
            for start in range(0, size, len(chunk)):
                member.write(chunk[: min(len(chunk), size - start)])
            member.write(b'"}')

    return write


def many_entries(count: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for number in range(count):
            archive.writestr(f"e{number}", b"")
    return out.getvalue()


def lying_count(archive: bytes, count: int) -> bytes:
    """``archive`` with the entry counts of its end records (ZIP64's too) patched to ``count``.

    zipfile does not read that count: it parses entries until it has read the
    directory's declared size, so every entry is still there to be parsed.
    """
    patched = bytearray(archive)
    end = patched.rindex(b"PK\x05\x06")
    patched[end + 8 : end + 12] = struct.pack("<HH", count, count)
    end64 = patched.rfind(b"PK\x06\x06")
    if end64 != -1:
        patched[end64 + 24 : end64 + 40] = struct.pack("<QQ", count, count)
    return bytes(patched)


def keras_model_bytes(build: Callable[[], object], folder: Path, name: str) -> bytes:
    path = folder / f"{name}.keras"
    build().save(path)  # type: ignore[attr-defined]
    return path.read_bytes()


def two_inputs():
    import keras

    first, second = keras.Input((28, 28, 1)), keras.Input((28, 28, 1))
    merged = keras.layers.Concatenate()([first, second])
    scores = keras.layers.Dense(10)(keras.layers.Flatten()(merged))
    return keras.Model([first, second], scores)


def two_outputs():
    import keras

    picture = keras.Input((28, 28, 1))
    flat = keras.layers.Flatten()(picture)
    return keras.Model(picture, [keras.layers.Dense(10)(flat), keras.layers.Dense(10)(flat)])


def nan_outputs():
    import keras

    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([np.full_like(kernel, np.nan), bias])
    return model


def good_model():
    import keras

    return keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def archive_corpus() -> dict[str, bytes]:
    """Hostile archives that need no TensorFlow to write, and the shipped model as the control."""
    shipped = shipped_keras()
    return {
        "the shipped cnn-bn run (control)": shipped,
        "weights bomb: model.weights.h5 of 400 MB of zeros": rezipped(
            shipped, {"model.weights.h5": zeros_member("model.weights.h5", 400 * MB)}
        ),
        "config.json bomb: 300 MB of spaces": rezipped(
            shipped,
            {
                "config.json": deflated_member("config.json", 300 * MB),
                "model.weights.h5": lambda archive: None,
            },
        ),
        "config.json of 20 MB, stored (ratio 1)": rezipped(
            shipped,
            {"config.json": lambda archive: archive.writestr("config.json", b" " * (20 * MB))},
        ),
        "an extra member ../../evil.py": rezipped(
            shipped, extra=lambda archive: archive.writestr("../../evil.py", b"print('hi')")
        ),
        "a zip of 100,000 empty entries": many_entries(100_000),
        "a zip of 1,000 entries whose end record says 3": lying_count(many_entries(1_000), 3),
        "a zip of 100,000 entries whose ZIP64 end record says 3": lying_count(
            many_entries(100_000), 3
        ),
        "a zip without config.json": rezipped(shipped, {"config.json": lambda archive: None}),
        "zip header, then zeros": b"PK\x03\x04" + bytes(300),
        "a GIF named .keras": b"GIF89a" + bytes(100),
    }


def model_corpus(folder: Path) -> dict[str, bytes]:
    """Models saved by Keras itself: they pass the archive check and must be refused after."""
    return {
        "a model Keras just saved (control)": keras_model_bytes(good_model, folder, "good"),
        "a functional model with 2 inputs": keras_model_bytes(two_inputs, folder, "inputs"),
        "a functional model with 2 outputs": keras_model_bytes(two_outputs, folder, "outputs"),
        "a model whose weights are NaN": keras_model_bytes(nan_outputs, folder, "nan"),
    }


def layer_bomb(units: int) -> bytes:
    """A .keras file of a few kilobytes whose config builds a Dense layer of 784 x ``units``."""
    layers = [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 28, 28, 1], "name": "in"}},
        {"class_name": "Flatten", "config": {"name": "flat"}},
        {"class_name": "Dense", "config": {"name": "huge", "units": units}},
        {"class_name": "Dense", "config": {"name": "scores", "units": 10}},
    ]
    config = {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "bomb", "layers": [{"module": "keras.layers", **x} for x in layers]},
        "build_config": {"input_shape": [None, 28, 28, 1]},
    }
    return rezipped(
        shipped_keras(),
        {
            "config.json": lambda archive: archive.writestr("config.json", json.dumps(config)),
            "model.weights.h5": lambda archive: archive.writestr("model.weights.h5", b""),
        },
    )


def archive_outcome(payload: bytes) -> str:
    try:
        keras_archive.check(payload)
    except keras_archive.ArchiveError as error:
        return str(error)
    return "accepted"


# -- the archive check, without TensorFlow -------------------------------------------------


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    return archive_corpus()


def test_real_keras_files_pass_the_archive_check(tmp_path: Path) -> None:
    keras_archive.check(shipped_keras())
    keras_archive.check(keras_model_bytes(good_model, tmp_path, "good"))
    keras_archive.check(tmp_path / "good.keras")  # a path works as well as bytes


def test_every_hostile_archive_is_refused_in_one_line(corpus: dict[str, bytes]) -> None:
    expected = {
        "weights bomb": "refused as a zip bomb: model.weights.h5 would expand",
        "config.json bomb": "refused as a zip bomb: config.json would expand",
        "config.json of 20 MB": "config.json would take 21.0 MB, the limit is 16 MB",
        "an extra member": "unexpected member '../../evil.py'",
        "a zip of 100,000 empty": "its archive holds 100,000 entries",
        "a zip of 1,000 entries whose": "its zip directory takes 49.9 KB, the limit is 2.9 KB",
        "a zip of 100,000 entries whose": "its zip directory takes",
        "a zip without config.json": "has no config.json",
        "zip header, then zeros": "zip archive is damaged",
        "a GIF": "not a .keras file",
    }
    for name, payload in corpus.items():
        if "control" in name:
            assert archive_outcome(payload) == "accepted", name
            continue
        if "bomb" in name:
            assert len(payload) < 2 * MB, f"{name}: a bomb is small on disk"
        (want,) = [line for start, line in expected.items() if name.startswith(start)]
        outcome = archive_outcome(payload)
        assert want in outcome, (name, outcome)
        assert "\n" not in outcome and "/tmp" not in outcome and len(outcome) < 160


def test_a_lying_entry_count_is_refused_before_any_entry_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_zipfile(*args: object, **kwargs: object) -> None:
        raise AssertionError("ZipFile would parse every entry of the directory")

    lying = lying_count(many_entries(1_000), 3)
    with zipfile.ZipFile(io.BytesIO(lying)) as archive:  # what the check must not do
        assert len(archive.infolist()) == 1_000
    monkeypatch.setattr(zipfile, "ZipFile", no_zipfile)
    with pytest.raises(keras_archive.ArchiveError, match="its zip directory takes"):
        keras_archive.check(lying)


def test_npz_weights_are_refused() -> None:
    # An .npz is a zip of its own, which numpy unpacks by the shapes it declares.
    npz = io.BytesIO()
    np.savez_compressed(npz, weights=np.zeros(1000))
    payload = rezipped(
        shipped_keras(),
        extra=lambda archive: archive.writestr("model.weights.npz", npz.getvalue()),
    )
    with pytest.raises(keras_archive.ArchiveError, match=r"member 'model\.weights\.npz'"):
        keras_archive.check(payload)


def test_a_file_that_fails_to_read_is_closed_and_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.keras"
    path.write_bytes(shipped_keras())
    opened: list[io.BufferedReader] = []

    class Unreadable(io.BufferedReader):
        def read(self, size: int | None = -1) -> bytes:
            raise OSError(5, "Input/output error")

    def open_unreadable(self: Path, mode: str = "r") -> io.BufferedReader:
        opened.append(Unreadable(io.FileIO(self, mode)))
        return opened[-1]

    monkeypatch.setattr(Path, "open", open_unreadable)
    with pytest.raises(keras_archive.ArchiveError, match=r"cannot read the model file \(Input"):
        keras_archive.check(path)
    assert len(opened) == 1 and opened[0].closed


def test_the_total_unpacked_size_is_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keras_archive, "MAX_UNPACKED_BYTES", 5 * MB)
    monkeypatch.setattr(keras_archive, "MAX_UNPACKED_MB", 5)
    with pytest.raises(
        keras_archive.ArchiveError, match=r"5\.3 MB once unpacked, the limit is 5 MB"
    ):
        keras_archive.check(shipped_keras())


def test_refusing_a_bomb_reads_no_member() -> None:
    bomb = rezipped(
        shipped_keras(), {"model.weights.h5": zeros_member("model.weights.h5", 400 * MB)}
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(3):
        with pytest.raises(keras_archive.ArchiveError, match="zip bomb"):
            keras_archive.check(bomb)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    # Decompressing the member would need 400 MB; reading the directory needs nothing.
    assert grown_kb < 50 * 1024


def test_the_web_server_refuses_a_bomb_before_the_inference_service_sees_it(
    corpus: dict[str, bytes],
) -> None:
    client = InferenceClient()
    try:
        for name, payload in corpus.items():
            if "control" in name:
                continue
            with pytest.raises(ModelError) as refused:
                client.check_imported(payload)
            assert "\n" not in str(refused.value), name
        # Nothing was sent: the service was never started.
        assert client.service_pid() is None
    finally:
        client.shutdown()


def test_a_refused_file_is_not_checked_again_on_every_rerun(
    corpus: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[int] = []
    check = keras_archive.check

    def counted(source: bytes) -> None:
        checked.append(len(source))
        check(source)

    monkeypatch.setattr(keras_archive, "check", counted)
    bomb = corpus["weights bomb: model.weights.h5 of 400 MB of zeros"]
    client = InferenceClient()
    try:
        messages = set()
        for _ in range(3):  # three clicks on Predict with the same file
            with pytest.raises(ModelError) as refused:
                client.check_imported(bomb)
            messages.add(str(refused.value))
        assert len(checked) == 1
        assert len(messages) == 1 and "refused as a zip bomb" in messages.pop()
        assert client.service_pid() is None
    finally:
        client.shutdown()


def test_a_bomb_never_becomes_a_run(corpus: dict[str, bytes], tmp_path: Path) -> None:
    record = {"run_id": "20261123-000000-cnn-bomb", "network": "cnn"}
    bomb = corpus["weights bomb: model.weights.h5 of 400 MB of zeros"]
    with pytest.raises(runs.RunError, match="refused as a zip bomb"):
        runs.save_run_files(bomb, record, tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- models Keras can load, refused after loading (TensorFlow in this process) -----------------


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return model_corpus(tmp_path_factory.mktemp("models"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a functional model with 2 inputs", "the model takes 2 inputs, not one 28x28 picture"),
        ("a functional model with 2 outputs", "the model gives 2 outputs, not one set of 10"),
        ("a model whose weights are NaN", "the model gives NaN or infinite scores"),
    ],
)
def test_models_with_several_inputs_outputs_or_nan_scores_are_refused(
    models: dict[str, bytes], name: str, message: str
) -> None:
    from fmnist.ml import inference

    payload = models[name]
    keras_archive.check(payload)  # a real Keras file: only loading it can tell
    with pytest.raises(ModelError) as refused:
        inference.load_imported(payload)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_good_imported_model_still_loads(models: dict[str, bytes]) -> None:
    from fmnist.ml import inference

    model = inference.load_imported(models["a model Keras just saved (control)"])
    probabilities = inference.predict_probabilities(model, inference.sample_pictures())
    assert np.isfinite(probabilities).all() and probabilities.shape == (8, 10)


def test_the_service_refuses_them_in_one_line_and_keeps_serving(
    models: dict[str, bytes],
) -> None:
    client = InferenceClient()
    try:
        for name, payload in models.items():
            if "control" in name:
                assert client.check_imported(payload).parameters == 7_850
                continue
            with pytest.raises(ModelError) as refused:
                client.check_imported(payload)
            message = str(refused.value)
            assert "\n" not in message and "Traceback" not in message, message
            assert "/" not in message.replace("28x28", ""), message  # no server paths
        pid = client.service_pid()
        assert pid is not None
        good = models["a model Keras just saved (control)"]
        assert client.check_imported(good).parameters == 7_850
        assert client.service_pid() == pid
    finally:
        client.shutdown()


def test_a_config_that_builds_a_huge_layer_is_refused_under_the_memory_cap(
    models: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fmnist.ml.inference import OUT_OF_MEMORY

    bomb = layer_bomb(1_000_000)  # 784 million weights: 3.1 GB, in a file of a few KB
    assert len(bomb) < 10_000
    keras_archive.check(bomb)  # nothing in the archive gives it away
    monkeypatch.setenv("FMNIST_INFERENCE_MEMORY_MB", "1024")
    client = InferenceClient()
    try:
        good = models["a model Keras just saved (control)"]
        assert client.check_imported(good).parameters == 7_850
        pid = client.service_pid()
        with pytest.raises(ModelError, match=OUT_OF_MEMORY):
            client.check_imported(bomb)
        assert client.service_pid() == pid  # refused, not killed
        ones = np.full((1, 28, 28), 255, np.uint8)
        assert client.predict(ImportedModel(hashlib.sha256(good).hexdigest()), ones).shape == (
            1,
            10,
        )
    finally:
        client.shutdown()


# -- the table for the README ------------------------------------------------------------------


def main() -> None:
    """Every file through the inference client, as the Predict page sends it; one row each."""
    import tempfile

    corpus = archive_corpus()
    with tempfile.TemporaryDirectory() as folder:
        corpus.update(model_corpus(Path(folder)))
    corpus["a config that builds a 784 x 4,000,000 layer (12.5 GB)"] = layer_bomb(4_000_000)
    client = InferenceClient()
    print("| file | size on disk | outcome |")
    print("|---|---|---|")
    try:
        for name, payload in corpus.items():
            try:
                outcome = f"accepted ({client.check_imported(payload).parameters:,} parameters)"
            except ModelError as error:
                outcome = str(error) if str(error).startswith("refused") else f"refused: {error}"
            size = len(payload)
            shown = f"{size / 1e6:.2f} MB" if size >= 100_000 else f"{size / 1e3:.1f} KB"
            print(f"| {name} | {shown} | {outcome} |", flush=True)
    finally:
        client.shutdown()


if __name__ == "__main__":
    sys.exit(main())
