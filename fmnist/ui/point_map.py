"""The map of images that Explore and Predict draw: a Streamlit component of our own.

A canvas drawn by ``point_map.js`` (no charting library): the page loads about 27 KB for
it (that file and Streamlit's component runtime), where Vega-Lite's 1.2 MB of JavaScript
made opening Explore's map tab take over a second on this machine, and Plotly's 4.7 MB
more. The points come from
``fmnist.charts.pca_map``; a click on one reruns the page with its dataset index.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

PICK = "pick"  # the trigger a click sends: the clicked image's dataset index

_mount = st.components.v2.component(
    "fmnist_point_map",
    js=(Path(__file__).with_name("point_map.js")).read_text(encoding="utf-8"),
    # In the page's own DOM, not a shadow root: the tests and the benchmarks' probe see
    # its elements like any other (its CSS names all start with "fmnist-map").
    isolate_styles=False,
)


def point_map(payload: dict[str, Any], key: str, on_pick: Callable[[], None]) -> None:
    """Draw the map; ``on_pick`` runs before the page's rerun that a click on a point asks for
    (``picked_index(key)`` then gives the point)."""
    _mount(data=as_bytes(payload), key=key, on_pick_change=on_pick, height="content")


def as_bytes(payload: dict[str, Any]) -> bytes:
    """A component's data as JSON text in bytes, which Streamlit sends as they are: given a
    dict, it looks for data frames in it, and its first look imports pandas (0.4 s of a
    fresh server's first map, and 40 MB that the server has no other use for)."""
    return json.dumps(payload, separators=(",", ":")).encode()


def load_point_map_code() -> None:
    """An empty, invisible map: the browser loads the map's code (Streamlit's component
    runtime and this file) now, and draws the real map sooner when it is asked for."""
    _mount(data=None, key="fmnist_point_map_code", height="content")


def picked_index(key: str) -> int | None:
    """The dataset index of the point just clicked on the map ``key``, if one was."""
    state = st.session_state.get(key)
    value = state.get(PICK) if state is not None else None
    return int(value) if value is not None else None
