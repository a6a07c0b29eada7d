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
