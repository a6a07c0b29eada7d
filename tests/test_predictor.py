"""Loading and checking models (fmnist.ml.inference), and what is made of their softmax."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from fmnist import charts, config, imaging, novelty, predictor
from fmnist.data import CLASS_NAMES
from fmnist.inference_protocol import ModelError
from fmnist.ml import inference
from fmnist.ml.networks import build_model

from .test_imaging import boot_picture, encode


def keras_bytes(model: keras.Model, tmp_path: Path) -> bytes:
    path = tmp_path / "model.keras"
    model.save(path)
    return path.read_bytes()


def test_import_a_good_model(tmp_path: Path) -> None:
    model = inference.load_imported(keras_bytes(build_model("mlp"), tmp_path))
    assert model.count_params() == 101_770


def test_seed_style_model_with_28x28_input_and_logits(tmp_path: Path) -> None:
    # Seed 002's network: Flatten(input_shape=(28, 28)) ... Dense(10) without softmax.
    seed_model = keras.Sequential(
        [keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model = inference.load_imported(keras_bytes(seed_model, tmp_path))
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    probabilities = inference.predict_probabilities(model, images)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


def test_wrong_shapes_are_refused(tmp_path: Path) -> None:
    wrong_input = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    with pytest.raises(ModelError, match=r"takes \(32, 32, 3\), not 28x28"):
        inference.load_imported(keras_bytes(wrong_input, tmp_path))
    wrong_output = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(5)]
    )
    with pytest.raises(ModelError, match="not 10 class scores"):
        inference.load_imported(keras_bytes(wrong_output, tmp_path))


def test_files_that_are_not_keras_models(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelError, match=r"not a \.keras file"):
        inference.load_imported(b"GIF89a...")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("hello.txt", "not a model")
    with pytest.raises(ModelError, match=r"unexpected member 'hello\.txt'"):
        inference.load_imported(archive.getvalue())
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("config.json", "not JSON")
    with pytest.raises(ModelError, match="Keras could not load this file"):
        inference.load_imported(archive.getvalue())
    monkeypatch.setattr(config, "MAX_MODEL_BYTES", 10)
    with pytest.raises(ModelError, match="model file too large"):
        inference.load_imported(b"PK" + bytes(100))


def test_unsafe_lambda_layer_is_refused(tmp_path: Path) -> None:
    unsafe = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Lambda(lambda x: x * 2),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    with pytest.raises(ModelError, match="Keras could not load"):
        inference.load_imported(keras_bytes(unsafe, tmp_path))


def test_one_call_for_the_whole_upload_and_errors_keep_their_place() -> None:
    model = build_model("mlp")
    calls = []

    def counting(images: np.ndarray) -> np.ndarray:
        calls.append(images.shape)
        return inference.predict_probabilities(model, images)

    good = encode(boot_picture(), "PNG")
    prepared = [
        imaging.prepare_upload("a.png", good),
        imaging.prepare_upload("broken.png", good[:100]),
        imaging.prepare_upload("b.jpg", encode(boot_picture(), "JPEG")),
    ]
    results = predictor.predict_prepared(prepared, counting)
    assert calls == [(2, 28, 28)]
    assert [r["file"] for r in results] == ["a.png", "broken.png", "b.jpg"]
    assert "damaged or incomplete" in results[1]["error"]
    assert len(results[0]["probabilities"]) == 10 and len(results[2]["top3"]) == 3
    assert results[0]["confidence"] == max(results[0]["probabilities"])


def test_an_upload_without_usable_pictures_calls_no_model() -> None:
    def never(images: np.ndarray) -> np.ndarray:
        raise AssertionError("called")

    results = predictor.predict_prepared([imaging.PreparedImage("x.png", error="empty")], never)
    assert results == [{"file": "x.png", "error": "empty"}]


def test_default_model_is_the_best_run(shipped_run: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import PROJECT_ROOT

    monkeypatch.setattr(config, "MODELS_DIR", PROJECT_ROOT / "models")
    model = inference.load()
    assert model.count_params() == shipped_run["parameters"]


def test_no_run_and_no_file_is_a_clear_error(models_dir: Path) -> None:
    with pytest.raises(ModelError, match="no saved run yet"):
        inference.load()


def test_describe_puts_a_softmax_into_words() -> None:
    probabilities = np.array([0.05, 0, 0, 0, 0, 0.15, 0, 0.2, 0, 0.6])
    described = predictor.describe(probabilities)
    assert described["label"] == 9 and described["class_name"] == "Ankle boot"
    assert described["confidence"] == pytest.approx(0.6)
    assert [name for name, _ in described["top3"]] == ["Ankle boot", "Sneaker", "Sandal"]


def test_a_clicked_cell_and_the_pictures_behind_it() -> None:
    assert predictor.confusion_cell({"x": "Shirt", "y": "T-shirt/top"}) == (0, 6)
    # What Streamlit reports for a click on the clickable matrix: one of its markers.
    figure = charts.confusion_heatmap(np.arange(100).reshape(10, 10), clickable=True)
    markers = figure.data[1]
    assert markers.type == "scatter" and len(markers.x) == 100
    cell = 6 * 10 + 0  # true Shirt, predicted T-shirt/top
    point = {"x": markers.x[cell], "y": markers.y[cell], "customdata": markers.customdata[cell]}
    assert predictor.confusion_cell(point) == (6, 0) and point["customdata"] == 60
    assert figure.layout.hoverdistance == -1 and figure.data[0].hoverinfo == "skip"
    labels = np.array([0, 0, 6, 0, 6])
    predictions = np.array([6, 0, 6, 6, 0])
    np.testing.assert_array_equal(predictor.cell_images(labels, predictions, 0, 6), [0, 3])
    assert len(predictor.cell_images(labels, predictions, 1, 1)) == 0


def test_gallery_sample_is_reproducible_and_can_show_only_mistakes() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 1000)
    predictions = np.where(rng.random(1000) < 0.9, labels, (labels + 1) % 10)
    every = predictor.gallery_sample(labels, predictions, only_mistakes=False, seed=3)
    assert len(every) == 24 and len(set(every)) == 24
    np.testing.assert_array_equal(
        every, predictor.gallery_sample(labels, predictions, only_mistakes=False, seed=3)
    )
    mistakes = predictor.gallery_sample(labels, predictions, only_mistakes=True, seed=3)
    assert len(mistakes) == 24 and np.all(predictions[mistakes] != labels[mistakes])
    none_wrong = predictor.gallery_sample(labels, labels, only_mistakes=True, seed=3)
    assert len(none_wrong) == 0


def test_own_set_is_scored_on_the_classes_that_occur() -> None:
    own = predictor.score_own_set(truths=[9, 9, 7], guesses=[9, 7, 7])
    assert own.classes == [7, 9] and own.names == [CLASS_NAMES[7], CLASS_NAMES[9]]
    np.testing.assert_array_equal(own.matrix, [[1, 0], [1, 1]])
    assert (own.right, own.total) == (2, 3) and own.accuracy == pytest.approx(2 / 3)


def test_pictures_unlike_fashion_mnist_are_flagged() -> None:
    good = encode(boot_picture(), "PNG")
    prepared = [
        imaging.prepare_upload("a.png", good),
        imaging.prepare_upload("broken.png", good[:100]),
        imaging.prepare_upload("b.png", good),
    ]
    results = predictor.predict_prepared(
        prepared,
        lambda images: np.full((len(images), 10), 0.1),
        lambda images: np.array([0.2, novelty.THRESHOLD + 0.1]),
    )
    assert [r.get("unusual") for r in results] == [False, None, True]
    assert results[2]["unlikeness"] == pytest.approx(novelty.THRESHOLD + 0.1)
    # Without the signal (the command line), results are as before.
    plain = predictor.predict_prepared(prepared, lambda images: np.full((len(images), 10), 0.1))
    assert "unusual" not in plain[0]


def test_short_softmax() -> None:
    probabilities = np.array([0.3, 0, 0, 0, 0, 0, 0.62, 0, 0.08, 0])
    assert predictor.short_softmax(probabilities) == "Shirt 62% · T-shirt/top 30%"
