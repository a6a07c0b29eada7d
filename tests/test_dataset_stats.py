"""Explore's statistics and figures: numpy and Plotly only, on the real training set."""

from __future__ import annotations

import base64
import html
import json
import re

import numpy as np
import pytest

from fmnist import charts, dataset_stats
from fmnist.data import CLASS_NAMES, Dataset


def test_top_components_agree_with_a_full_eigendecomposition(dataset: Dataset) -> None:
    sample = dataset.x_train[:3000].reshape(3000, -1).astype(np.float32) / 255.0
    centred = sample - sample.mean(axis=0)
    _, vectors = np.linalg.eigh((centred.T @ centred).astype(np.float64))
    components = dataset_stats.top_components(centred)
    overlap = np.abs(components.T @ vectors[:, [-1, -2]])
    np.testing.assert_allclose(overlap, np.eye(2), atol=1e-4)


def test_smaller_pca_maps_are_the_first_points_of_the_larger_one(dataset: Dataset) -> None:
    small = dataset_stats.pca_2d(dataset.x_train, 1000)
    large = dataset_stats.pca_2d(dataset.x_train, 5000)
    np.testing.assert_array_equal(small[0], large[0][:1000])
    assert 0.4 < large[2].sum() < 0.55  # two directions: about 47% of the variance


def test_histograms_in_bands_are_shares_and_skip_the_background(dataset: Dataset) -> None:
    counts = dataset_stats.pixel_counts(dataset.x_train[:2000], dataset.y_train[:2000])
    assert counts.sum() == 2000 * 28 * 28
    bands = dataset_stats.histogram_shares(counts, skip_background=True, bin_width=8)
    assert bands.shape == (10, 32)
    np.testing.assert_allclose(bands.sum(axis=1), 1.0)
    with_background = dataset_stats.histogram_shares(counts, skip_background=False)
    assert (with_background[:, 0] > 0.3).all()  # every class is at least 30% background


def test_an_index_is_clamped_with_one_line_saying_so() -> None:
    assert dataset_stats.clamp_index(123, 60_000) == (123, None)
    index, note = dataset_stats.clamp_index(99_999, 60_000)
    assert index == 59_999
    assert note == (
        "There is no training image #99,999: they are numbered 0–59,999. "
        "Showing #59,999, the last one."
    )
    assert dataset_stats.clamp_index(-4, 60_000)[0] == 0


def test_the_sample_grid_puts_nine_in_one_row_and_more_in_rows_of_eight() -> None:
    assert [dataset_stats.images_per_row(n) for n in (4, 9, 16, 32)] == [4, 9, 8, 8]


def test_pixel_values_are_written_in_cells_shaded_by_them(dataset: Dataset) -> None:
    image = dataset.x_train[0]
    dark, light = int(image[5, 14]), int(image[9, 14])  # 102 and 225
    table = charts.pixel_values_html(image, "#0: Ankle boot <its values>")
    assert table.count("<td") == 784
    assert "&lt;its values&gt;" in table
    assert f'background:#{dark:02x}{dark:02x}{dark:02x};color:#fff">{dark}</td>' in table
    assert f'background:#{light:02x}{light:02x}{light:02x};color:#000">{light}</td>' in table
    assert f'title="row 5, column 14: {dark}"' in table


def test_the_inspected_picture_is_its_values_row_by_row(dataset: Dataset) -> None:
    image = dataset.x_train[0]
    picture = charts.pixel_picture(image, "#0: Ankle boot <b>")
    assert (picture["rows"], picture["columns"]) == (28, 28)
    assert picture["pixels"][5 * 28 + 14] == image[5, 14] == 102
    assert picture["pixels"] == image.ravel().tolist()
    assert picture["title"] == "#0: Ankle boot <b>"  # the canvas writes it as text
    json.dumps(picture)  # plain JSON for the browser: numpy's integers are not
    odd = charts.pixel_picture(np.array([[-3.0, 12.6, 300.0, np.nan, np.inf]]), "floats")
    assert odd["pixels"] == [0, 13, 255, 0, 255] and (odd["rows"], odd["columns"]) == (1, 5)
    for shape in ((784,), (28, 28, 1)):
        with pytest.raises(ValueError, match="2-D"):
            charts.pixel_picture(image.reshape(shape), "not a flat picture")


def test_explore_figures_are_light(dataset: Dataset) -> None:
    stats = dataset_stats.explore_stats(dataset.x_train[:3000], dataset.y_train[:3000])
    shares = stats.histograms(True)
    panels = charts.intensity_histograms_html(shares, log_scale=True)
    assert 'data-scale="log"' in panels
    # Each class over all classes, in its own panel: ten SVG pictures, on one log scale.
    svgs = [
        base64.b64decode(source).decode()
        for source in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', panels)
    ]
    assert len(svgs) == 10 and all(svg.count("<polyline") == 2 for svg in svgs)
    assert all(">1%</text>" in svg and ">10%</text>" in svg for svg in svgs)
    assert [re.search(r'alt="pixel intensities of ([^"]+)"', f).group(1) for f in
            panels.split("<figure>")[1:]] == [html.escape(n) for n in CLASS_NAMES]  # fmt: skip


def test_the_map_sends_each_point_once_with_its_index_and_class(dataset: Dataset) -> None:
    stats = dataset_stats.explore_stats(dataset.x_train[:3000], dataset.y_train[:3000])
    indices, points = stats.pca_sample(1000)
    labels = dataset.y_train[indices]
    stars = [("<my boot>.jpg", 1.5, -2.0)]
    payload = charts.pca_map(points, labels, indices, stats.pca_explained, stars, picked=7)
    # Plain JSON for the page's canvas: one entry per point in each column.
    assert json.loads(json.dumps(payload)) == payload
    assert {len(payload[column]) for column in ("x", "y", "label", "index")} == {1000}
    assert payload["index"] == indices.tolist() and payload["label"] == labels.tolist()
    assert payload["classes"] == list(CLASS_NAMES) and len(payload["colours"]) == 10
    # Each axis rounded to about a thousandth of its own range, no more.
    for axis, column in enumerate(("x", "y")):
        error = np.abs(np.array(payload[column]) - points[:, axis]).max()
        assert error <= np.ptp(points[:, axis]) / 2000
    assert len(json.dumps(payload)) < 40 * 1000  # about 30 bytes a point
    share = f"{stats.pca_explained[0]:.0%}"
    assert payload["xTitle"] == f"PC 1 ({share} of variance)"
    assert payload["stars"] == [{"name": "<my boot>.jpg", "x": 1.5, "y": -2.0}]
    assert payload["picked"] == 7
    plain = charts.pca_map(points, labels, indices, stats.pca_explained)
    assert plain["stars"] == [] and plain["picked"] is None


def test_the_maps_narrow_axis_keeps_its_detail_and_bad_numbers_are_left_out() -> None:
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(-300, 300, 500), rng.uniform(-0.01, 0.01, 500)])
    points[7] = (np.nan, 0.0)
    points[9] = (1.0, np.inf)
    stars = [("fine", 1.0, 0.0), ("broken", np.nan, 0.0)]
    labels, indices = np.arange(500) % 10, np.arange(500) + 1000
    payload = charts.pca_map(points, labels, indices, np.array([0.5, 0.1]), stars)
    kept = np.isfinite(points).all(axis=1)
    assert payload["index"] == indices[kept].tolist() and len(payload["y"]) == 498
    assert payload["label"] == labels[kept].tolist()
    # The y axis spans 0.02: its values keep their differences (not all rounded to 0).
    assert len(set(payload["y"])) > 400
    assert np.abs(np.array(payload["y"]) - points[kept, 1]).max() <= 0.02 / 2000
    assert [star["name"] for star in payload["stars"]] == ["fine"]
    json.dumps(payload, allow_nan=False)  # no NaN or Infinity, which browsers refuse


def test_a_projection_keeps_the_two_widest_directions_and_places_new_points_alike() -> None:
    rng = np.random.default_rng(0)
    # Wide along x, narrower along y, thin along z.
    values = rng.normal(size=(500, 3)) * np.array([10.0, 3.0, 0.1]) + 5.0
    projection = dataset_stats.project_2d(values)
    assert projection.explained[0] > 0.85 and projection.explained.sum() > 0.999
    assert np.allclose(projection.place(values), projection.coordinates)
    assert abs(projection.components[0, 0]) > 0.99  # the first direction is x
    labels = (values[:, 0] > 5).astype(int)  # two classes split along the widest direction
    assert dataset_stats.nearest_centre_accuracy(projection.coordinates, labels) > 0.85
    assert list(dataset_stats.nearest(values, 0, 3)) == list(
        np.argsort(((values - values[0]) ** 2).sum(axis=1))[1:4]
    )


def test_features_one_value_wide_still_make_a_two_axis_map() -> None:
    # A network whose last hidden layer has one unit: the map needs two axes all the same.
    values = np.arange(12, dtype=np.float64).reshape(12, 1)
    projection = dataset_stats.project_2d(values)
    assert projection.coordinates.shape == (12, 2) and projection.explained.shape == (2,)
    assert np.allclose(projection.coordinates[:, 1], 0)
    assert projection.explained[0] == pytest.approx(1)
    assert projection.place(values[:3]).shape == (3, 2)
