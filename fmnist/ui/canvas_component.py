"""How our own Streamlit components are made and fed: the map of images
(``fmnist.ui.point_map``) and Explore's inspected image (``fmnist.ui.pixel_picture``), each
a canvas drawn by a JavaScript file beside its module.

Components v2 in the page's own DOM, not a shadow root: the tests and the benchmarks' probe
see their elements like any other (their CSS names all start with "fmnist-"). Their data
goes as JSON text in bytes, which Streamlit sends as they are (each file decodes it): given
a dict, Streamlit looks for data frames in it, and that first look imports pandas (0.4 s of
a fresh server's first map, and 40 MB the server has no other use for).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st


def canvas_component(name: str, js_file: str) -> Callable[..., None]:
    """The component ``name`` drawn by ``js_file``, as a function: its ``payload`` (None: the
    component mounted empty and unseen, for the browser to load its code before it is
    needed), its key, and its callbacks (``on_<trigger>_change``)."""
    mount = st.components.v2.component(
        name,
        js=Path(__file__).with_name(js_file).read_text(encoding="utf-8"),
        isolate_styles=False,
    )

    def draw(payload: dict[str, Any] | None, key: str, **callbacks: Callable[[], None]) -> None:
        data = None if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        mount(data=data, key=key, height="content", **callbacks)

    return draw
