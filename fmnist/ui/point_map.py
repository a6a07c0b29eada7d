"""The map of images that Explore and Predict draw: a Streamlit component of our own.

A canvas drawn by ``point_map.js`` (no charting library): the page loads about 27 KB for
it (that file and Streamlit's component runtime), where Vega-Lite's 1.2 MB of JavaScript
made opening Explore's map tab take over a second on this machine, and Plotly's 4.7 MB
more. The points come from
``fmnist.charts.pca_map``; a click on one reruns the page with its dataset index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from fmnist.ui.canvas_component import canvas_component

PICK = "pick"  # the trigger a click sends: the clicked image's dataset index

_draw = canvas_component("fmnist_point_map", "point_map.js")


def point_map(payload: dict[str, Any], key: str, on_pick: Callable[[], None]) -> None:
    """Draw the map; ``on_pick`` runs before the page's rerun that a click on a point asks for
    (``picked_index(key)`` then gives the point)."""
    _draw(payload, key, on_pick_change=on_pick)


def load_point_map_code() -> None:
    """An empty, invisible map: the browser loads the map's code (Streamlit's component
    runtime and this file) now, and draws the real map sooner when it is asked for."""
    _draw(None, "fmnist_point_map_code")


def picked_index(key: str) -> int | None:
    """The dataset index of the point just clicked on the map ``key``, if one was."""
    state = st.session_state.get(key)
    value = state.get(PICK) if state is not None else None
    return int(value) if value is not None else None
