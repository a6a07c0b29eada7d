"""Choosing and importing models, and predicting a whole upload in one call."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from fmnist import config, evaluation, imaging, predictor
from fmnist.networks import build_model

from .test_imaging import boot_picture, encode


def keras_bytes(model: keras.Model, tmp_path: Path) -> bytes:
    path = tmp_path / "model.keras"
    model.save(path)
    return path.read_bytes()


def test_import_a_good_model(tmp_path: Path) -> None:
    model = predictor.load_imported(keras_bytes(build_model("mlp"), tmp_path))
    assert model.count_params() == 101_770


def test_seed_style_model_with_28x28_input_and_logits(tmp_path: Path) -> None:
    # Seed 002's network: Flatten(input_shape=(28, 28)) ... Dense(10) without softmax.
    seed_model = keras.Sequential(
        [keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model = predictor.load_imported(keras_bytes(seed_model, tmp_path))
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    probabilities = evaluation.predict_probabilities(model, images)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


def test_wrong_shapes_are_refused(tmp_path: Path) -> None:
    wrong_input = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    with pytest.raises(predictor.ModelError, match=r"takes \(32, 32, 3\), not 28x28"):
        predictor.load_imported(keras_bytes(wrong_input, tmp_path))
    wrong_output = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(5)]
    )
    with pytest.raises(predictor.ModelError, match="not 10 class scores"):
        predictor.load_imported(keras_bytes(wrong_output, tmp_path))


def test_files_that_are_not_keras_models(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(predictor.ModelError, match=r"not a \.keras file"):
        predictor.load_imported(b"GIF89a...")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("hello.txt", "not a model")
    with pytest.raises(predictor.ModelError, match="Keras could not load this file"):
        predictor.load_imported(archive.getvalue())
    monkeypatch.setattr(config, "MAX_MODEL_BYTES", 10)
    with pytest.raises(predictor.ModelError, match="model file too large"):
        predictor.load_imported(b"PK" + bytes(100))


def test_unsafe_lambda_layer_is_refused(tmp_path: Path) -> None:
    unsafe = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Lambda(lambda x: x * 2),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    with pytest.raises(predictor.ModelError, match="Keras could not load"):
        predictor.load_imported(keras_bytes(unsafe, tmp_path))


def test_one_call_for_the_whole_upload_and_errors_keep_their_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []
    original = evaluation.predict_probabilities

    def counting(model: keras.Model, images: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        return original(model, images)

    monkeypatch.setattr(evaluation, "predict_probabilities", counting)
    good = encode(boot_picture(), "PNG")
    prepared = [
        imaging.prepare_upload("a.png", good),
        imaging.prepare_upload("broken.png", good[:100]),
        imaging.prepare_upload("b.jpg", encode(boot_picture(), "JPEG")),
    ]
    results = predictor.predict_prepared(build_model("mlp"), prepared)
    assert calls == [2]
    assert [r["file"] for r in results] == ["a.png", "broken.png", "b.jpg"]
    assert "truncated" in results[1]["error"]
    assert len(results[0]["probabilities"]) == 10 and len(results[2]["top3"]) == 3
    assert results[0]["confidence"] == max(results[0]["probabilities"])


def test_default_model_is_the_best_run(shipped_run: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import PROJECT_ROOT

    monkeypatch.setattr(config, "MODELS_DIR", PROJECT_ROOT / "models")
    model = predictor.load()
    assert model.count_params() == shipped_run["parameters"]


def test_no_run_and_no_file_is_a_clear_error(models_dir: Path) -> None:
    with pytest.raises(predictor.ModelError, match="no saved run yet"):
        predictor.load()
