"""The inspected image on Explore, pixel by pixel: a Streamlit component of our own.

A canvas drawn by ``pixel_picture.js``: each cell shaded by its value, row and column
numbers at the edges, a cell's value on hover. It replaced a table of 784 cells, which
the browser parsed, styled and laid out each time the map tab opened (346 ms instead of
364 to open it).
The numbers written in their cells, to read or copy, stay a table
(``fmnist.charts.pixel_values_html``): the page shows it on request.
"""

from __future__ import annotations

import numpy as np

from fmnist import charts
from fmnist.ui.canvas_component import canvas_component

_draw = canvas_component("fmnist_pixel_picture", "pixel_picture.js")


def pixel_picture(image: np.ndarray, title: str, key: str) -> None:
    """Draw ``image`` (2-D, values 0-255) under ``title``."""
    _draw(charts.pixel_picture(image, title), key)


def load_pixel_picture_code() -> None:
    """An empty, invisible picture: the browser loads this file now, before it is needed."""
    _draw(None, "fmnist_pixel_picture_code")
