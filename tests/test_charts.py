"""Figures and HTML built from user-given text show it as text; pictures arrive intact."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

from fmnist import charts


def test_run_names_in_the_comparison_legend_are_text_not_markup() -> None:
    record = {"history": [{"epoch": 1, "accuracy": 0.8, "val_accuracy": 0.79, "loss": 0.5}]}
    name = '<a href="http://10.255.255.1/">click</a> <b>me</b>'
    figure = charts.runs_comparison([record], [name])
    names = [trace.name for trace in figure.data]
    assert names and all("<a" not in n and "<b>" not in n for n in names), names
    assert all(n.startswith("&lt;a href=&quot;http://10.255.255.1/&quot;&gt;click") for n in names)


def test_the_softmax_bars_mark_the_top_and_the_true_class() -> None:
    probabilities = [0.05, 0.0, 0.1, 0.0, 0.6, 0.0, 0.25, 0.0, 0.0, 0.0]
    table = charts.softmax_html(probabilities, true_label=6)
    rows = table.split("<tr")[1:]
    assert len(rows) == 10
    assert rows[4].startswith(' class="top"') and "Coat" in rows[4] and "60.0%" in rows[4]
    assert rows[6].startswith(' class="truth"') and "(true class)" in rows[6]
    assert 'style="width:60.0%' in rows[4] and 'style="width:25.0%' in rows[6]
    # A right answer is only the top row.
    assert 'class="truth"' not in charts.softmax_html(probabilities, true_label=4)


def test_the_image_grid_carries_each_picture_exactly_with_its_caption_as_text() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    grid = charts.image_grid_html(images, ["Bag", "T-shirt/top", "<b>x</b>"], ["#1", "#2", "#3"], 2)
    assert "repeat(2, minmax(0, 1fr))" in grid
    sources = re.findall(r'src="data:image/png;base64,([^"]+)"', grid)
    assert len(sources) == 3
    for source, image in zip(sources, images, strict=True):
        decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(source))))
        assert np.array_equal(decoded, image)  # PNG: the 784 values, not an approximation
    assert "<b>T-shirt/top</b><br><span>#2</span>" in grid
    assert "&lt;b&gt;x&lt;/b&gt;" in grid and "<b><b>" not in grid


def _run(seconds: list[float], rates: list[float], accuracy: float, **config) -> dict:
    history = [
        {"epoch": i + 1, "accuracy": 0.8 + i / 100, "val_accuracy": 0.79 + i / 100,
         "loss": 0.5 / (i + 1), "val_loss": 0.6 / (i + 1), "seconds": s, "learning_rate": r}
        for i, (s, r) in enumerate(zip(seconds, rates, strict=True))
    ]  # fmt: skip
    settings = {"learning_rate": 0.004, "batch_size": 128, "epochs": len(seconds),
                "label_smoothing": 0.1, "validation_split": 0.1, "seed": 42}  # fmt: skip
    return {
        "history": history,
        "test_accuracy": accuracy,
        "parameters": 242_602,
        "config": settings | config,
    }


def test_runs_compare_by_wall_time_with_a_log_loss_and_their_learning_rates() -> None:
    fast = _run([10.0, 12.0, 11.0], [0.004, 0.002, 0.0001], 0.93)
    slow = _run([60.0, 61.0], [0.001, 0.001], 0.92)
    figure = charts.runs_comparison([fast, slow], ["fast", "slow"], by="time", log_loss=True)
    traces = {trace.name: trace for trace in figure.data}
    assert list(traces["fast (validation)"].x) == [10.0, 22.0, 33.0]  # seconds, added up
    assert list(traces["slow (training)"].x) == [60.0, 121.0]
    rates = [t for t in figure.data if t.yaxis == "y3"]
    assert [list(t.y) for t in rates] == [[0.004, 0.002, 0.0001], [0.001, 0.001]]
    assert figure.layout.yaxis2.type == "log" and figure.layout.xaxis1.title.text == (
        "seconds of training"
    )
    by_epoch = charts.runs_comparison([fast], ["fast"])
    assert list(by_epoch.data[0].x) == [1, 2, 3] and by_epoch.layout.yaxis2.type == "linear"


def test_parallel_coordinates_end_at_each_runs_test_accuracy() -> None:
    runs = [_run([1.0], [0.1], 0.93), _run([1.0], [0.1], 0.88, learning_rate=0.01, batch_size=32)]
    runs.append({"history": [], "config": {}})  # no test accuracy: left out
    (parallel,) = charts.runs_parallel(runs).data
    dimensions = {d.label: list(d.values) for d in parallel.dimensions}
    assert dimensions["test accuracy"] == [0.93, 0.88]
    assert dimensions["batch"] == [128.0, 32.0]
    assert np.allclose(dimensions["learning rate (log10)"], [np.log10(0.004), -2.0])
    assert list(parallel.line.color) == [0.93, 0.88]


def test_two_confusion_matrices_side_by_side_with_their_difference() -> None:
    first = np.diag([90] * 10)
    second = first.copy()
    second[6, 6], second[6, 0] = 80, 10  # ten shirts now called T-shirts
    figure = charts.confusion_difference(first, second, ("<b>a</b>", "b"))
    difference = np.array(figure.data[2].z)
    assert difference[6, 6] == -10 and difference[6, 0] == 10 and np.abs(difference).sum() == 20
    assert figure.data[2].zmid == 0 and figure.data[2].text[6][0] == "+10"
    assert figure.layout.annotations[0].text == "&lt;b&gt;a&lt;/b&gt;"
