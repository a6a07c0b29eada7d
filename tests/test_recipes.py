"""The levers of a fast training: the one-cycle schedule, label smoothing, augmentation.

Each is checked for what it does to numbers a test can compute itself, then the whole
recipe goes through the engine and a checkpoint of it resumes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from fmnist.data import Dataset
from fmnist.ml import engine
from fmnist.ml.inference import predict_mirrored, predict_probabilities
from fmnist.ml.networks import build_model
from fmnist.schema import (
    AUGMENTATIONS,
    ResumePoint,
    TrainConfig,
    augment_strengths,
    describe_augment,
)

from .test_engine import ListSink


def test_one_cycle_climbs_for_a_quarter_then_falls_to_nearly_zero() -> None:
    schedule = engine.make_schedule(0.01, "one-cycle", total_steps=1000)
    assert callable(schedule)
    rates = np.array([float(schedule(step)) for step in range(0, 1001, 10)])
    assert rates[0] == pytest.approx(0.01 / 25)
    peak = int(np.argmax(rates))
    assert peak * 10 == 250 and rates[peak] == pytest.approx(0.01)
    assert np.all(np.diff(rates[: peak + 1]) > 0) and np.all(np.diff(rates[peak:]) <= 0)
    assert rates[-1] == pytest.approx(0.01 * 0.001, rel=0.01)


def test_label_smoothing_is_the_cross_entropy_against_softened_targets() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 10)).astype(np.float32)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([0, 3, 9, 9, 1, 5])
    targets = np.full((6, 10), 0.01)
    targets[np.arange(6), labels] = 0.91
    expected = -(targets * np.log(probabilities)).sum(axis=1).mean()
    loss = engine.SmoothedCrossentropy(0.1)
    assert float(loss(labels, probabilities)) == pytest.approx(expected, rel=1e-5)
    plain = engine.SmoothedCrossentropy(0.0)
    assert float(plain(labels, probabilities)) == pytest.approx(
        -np.log(probabilities[np.arange(6), labels]).mean(), rel=1e-5
    )
    assert engine.make_loss(0.0) == "sparse_categorical_crossentropy"


def batch_of(dataset: Dataset, names: tuple[str, ...], count: int = 256) -> tuple[np.ndarray, ...]:
    images, labels = dataset.x_train[:count], dataset.y_train[:count]
    changed, same_labels = engine.TrainingFeed(images, labels, names).fetch(tf.range(count))
    assert np.array_equal(same_labels, labels)  # the order is kept without a shuffle seed
    return images[..., None] / 255.0, np.asarray(changed)


def test_a_flip_mirrors_about_half_the_pictures_and_nothing_else(dataset: Dataset) -> None:
    original, changed = batch_of(dataset, ("flip",))
    mirrored = np.array(
        [np.allclose(c, o[:, ::-1]) for c, o in zip(changed, original, strict=True)]
    )
    kept = np.array([np.allclose(c, o) for c, o in zip(changed, original, strict=True)])
    assert np.all(mirrored | kept) and 0.3 < mirrored.mean() < 0.7


@pytest.mark.parametrize(("entry", "pixels"), [("shift", 2), ("shift:4", 4)])
def test_a_shift_moves_each_picture_by_at_most_its_strength(
    dataset: Dataset, entry: str, pixels: int
) -> None:
    original, changed = batch_of(dataset, (entry,))
    moves = []
    for before, after in zip(original[..., 0], changed[..., 0], strict=True):
        # Find the whole-pixel move that explains the picture best.
        best = min(
            (
                np.abs(np.roll(before, (dy, dx), axis=(0, 1)) - after)[6:-6, 6:-6].mean(),
                dy,
                dx,
            )
            for dy in range(-pixels, pixels + 1)
            for dx in range(-pixels, pixels + 1)
        )
        assert best[0] < 1e-6  # an exact copy, moved by whole pixels
        moves.append(max(abs(best[1]), abs(best[2])))
    assert sum(m > 0 for m in moves) > 128  # most pictures moved
    assert max(moves) == pixels  # and some as far as the strength allows


def test_a_stronger_augmentation_changes_the_pictures_more(dataset: Dataset) -> None:
    def change(entry: str) -> float:
        original, changed = batch_of(dataset, (entry,))
        return float(np.abs(changed - original).mean())

    for weak, strong in [
        ("rotate:3", "rotate:30"), ("zoom:3", "zoom:30"), ("erase:20", "erase:100"),
    ]:  # fmt: skip
        assert change(strong) > 2 * change(weak), (weak, strong)


def test_random_erasing_greys_one_box_in_about_half_the_pictures(dataset: Dataset) -> None:
    original, changed = batch_of(dataset, ("erase",))
    boxes = 0
    for before, after in zip(original[..., 0], changed[..., 0], strict=True):
        different = ~np.isclose(before, after)
        if not different.any():
            continue
        boxes += 1
        rows, columns = np.nonzero(different)
        height, width = np.ptp(rows) + 1, np.ptp(columns) + 1
        assert height <= 12 and width <= 12  # within one box of at most 12 pixels a side
        assert np.allclose(after[different], 0.5)  # everything changed became mid grey
    assert 0.35 < boxes / len(original) < 0.65


def _centre_and_width(picture: np.ndarray) -> tuple[np.ndarray, int]:
    rows, columns = np.nonzero(picture > 0.2)
    weights = picture[rows, columns]
    centre = np.array([np.average(rows, weights=weights), np.average(columns, weights=weights)])
    return centre, int(np.ptp(columns)) + 1


def test_a_rotation_turns_pictures_about_their_centre_by_a_little(dataset: Dataset) -> None:
    original, changed = batch_of(dataset, ("rotate",))
    turned = 0
    for before, after in zip(original[..., 0], changed[..., 0], strict=True):
        turned += not np.allclose(before, after, atol=0.02)
        centre_before, _ = _centre_and_width(before)
        centre_after, _ = _centre_and_width(after)
        assert np.abs(centre_after - centre_before).max() < 2.5  # turned in place
        assert abs(after.sum() - before.sum()) < 0.15 * before.sum()  # nothing much lost
    assert turned > 200


def test_a_zoom_scales_pictures_by_at_most_a_tenth(dataset: Dataset) -> None:
    original, changed = batch_of(dataset, ("zoom",))
    ratios = []
    for before, after in zip(original[..., 0], changed[..., 0], strict=True):
        _, width_before = _centre_and_width(before)
        _, width_after = _centre_and_width(after)
        if 10 <= width_before < 20:  # wide enough to measure, clear of the sides
            # A tenth at most, give or take the pixel lost or gained at each edge.
            assert abs(width_after - width_before) <= 0.1 * width_before + 2
            ratios.append(width_after / width_before)
    assert len(ratios) > 50 and np.std(ratios) > 0.02  # some in, some out


def test_unknown_augmentations_and_too_much_smoothing_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown augmentation 'blur'"):
        TrainConfig(augment=("flip", "blur")).validate()
    with pytest.raises(ValueError, match=r"label smoothing must be between 0 and 0\.3"):
        TrainConfig(label_smoothing=0.5).validate()
    config = TrainConfig.from_settings({"augment": ["erase", "flip", "flip"], "epochs": 1})
    assert config.augment == ("flip", "erase")  # one order, once each
    assert TrainConfig.from_dict(config.to_dict() | {"augment": ["flip"]}).augment == ("flip",)
    assert set(AUGMENTATIONS) == {"flip", "shift", "erase", "rotate", "zoom"}
    # Strengths: whole numbers in range, never for the mirror; the default is the bare name.
    config = TrainConfig.from_settings({"augment": ["rotate:30", "shift:2", "shift:5", "flip"]})
    assert config.augment == ("flip", "shift", "rotate:30")
    assert augment_strengths(config.augment) == {"flip": None, "shift": 2, "rotate": 30}
    # Written anew, whatever the spacing or zeros: the engine's "flip" test then holds.
    tidy = TrainConfig.from_settings({"augment": [" flip", "shift:03", "zoom:", "erase:50"]})
    assert tidy.augment == ("flip", "shift:3", "erase", "zoom")
    assert describe_augment("shift:x") == "shift:x" and describe_augment("zoom:7") == "zoom ±7%"
    with pytest.raises(ValueError, match="each augmentation may be given once"):
        TrainConfig(augment=("shift:3", "shift:5")).validate()
    for entry, message in [
        ("shift:²", "shift strength must be a whole number"),
        ("shift:9", r"shift strength must be a whole number from 1 to 6 \(pixels\), not '9'"),
        ("rotate:2.5", "rotate strength must be a whole number from 2 to 45"),
        ("zoom:-5", "zoom strength must be"),
        ("flip:3", "flip takes no strength"),
        ("blur:3", "unknown augmentation 'blur'"),
    ]:
        with pytest.raises(ValueError, match=message):
            TrainConfig.from_settings({"augment": [entry]})


def test_the_whole_recipe_trains_records_its_settings_and_resumes(
    dataset: Dataset, tmp_path: Path
) -> None:
    config = TrainConfig(
        network="mlp",
        epochs=2,
        limit=3000,
        batch_size=64,
        learning_rate=0.003,
        lr_schedule="one-cycle",
        label_smoothing=0.1,
        augment=AUGMENTATIONS,
    )
    first = ListSink(checkpoint_dir=tmp_path, stop_after_epochs=1)
    engine.train(config, dataset, first)
    # Half-way (43 of 86 steps): past the peak at step 22, a third of the way down.
    expected = float(engine.make_schedule(0.003, "one-cycle", 86)(43))
    assert first.epochs[0].learning_rate == pytest.approx(expected, rel=1e-3)
    assert 0.5 * 0.003 < expected < 0.003
    saved = keras.models.load_model(tmp_path / "epoch-1.keras")  # the custom loss loads
    assert isinstance(saved.loss, engine.SmoothedCrossentropy) and saved.loss.smoothing == 0.1

    second = ListSink()
    resume = ResumePoint(str(tmp_path / "epoch-1.keras"), 1, tuple(first.epochs))
    _, record = engine.train(config, dataset, second, resume)
    assert record.epochs_completed == 2 and record.test_accuracy > 0.6
    assert record.config["augment"] == AUGMENTATIONS and record.config["label_smoothing"] == 0.1
    assert second.epochs[0].learning_rate == pytest.approx(0.003 * 0.001, rel=0.01)  # the end


def test_mirrored_scores_treat_a_picture_and_its_mirror_alike(dataset: Dataset) -> None:
    keras.utils.set_random_seed(0)
    model = build_model("fast")  # untrained: its scores of a picture and its mirror differ
    images = dataset.x_test[:64]
    mirrors = images[:, :, ::-1]
    plain = predict_probabilities(model, images)
    assert not np.allclose(plain, predict_probabilities(model, mirrors), atol=1e-4)
    averaged = predict_mirrored(model, images)
    np.testing.assert_allclose(averaged, predict_mirrored(model, mirrors), atol=1e-6)
    np.testing.assert_allclose(averaged.sum(axis=1), 1.0, rtol=1e-6)


def test_only_runs_trained_on_mirrors_are_scored_with_mirrors(dataset: Dataset) -> None:
    config = TrainConfig(network="mlp", epochs=1, limit=1000, augment=("flip",))
    model, record = engine.train(config, dataset, ListSink())
    expected = (predict_mirrored(model, dataset.x_test).argmax(axis=1) == dataset.y_test).mean()
    assert record.test_accuracy_mirrored == pytest.approx(expected)
    assert record.test_accuracy_mirrored != record.test_accuracy
    _, plain = engine.train(replace(config, augment=("shift",)), dataset, ListSink())
    assert plain.test_accuracy_mirrored is None


def test_mixed_precision_is_bfloat16_where_every_gpu_has_it() -> None:
    from fmnist.ml import devices

    assert devices.mixed_policy([(9, 0)]) == "mixed_bfloat16"  # H100
    assert devices.mixed_policy([(8, 0), (8, 6)]) == "mixed_bfloat16"  # A100, RTX 30
    assert devices.mixed_policy([(8, 0), (7, 5)]) == "mixed_float16"  # one T4 among them
    assert devices.mixed_policy([]) == "mixed_float16"
    assert all(len(found) == 2 for found in devices.gpu_capabilities())
