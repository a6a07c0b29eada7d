"""FMNIST_ACCESS_CODE through AppTest, on a page of one line; ui.plain's escaping."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from fmnist import ui


def a_page() -> None:
    import streamlit as st

    from fmnist import ui

    # What every page's ui.setup_page does first (its sidebar links need app.py as
    # the entry point; the browser test opens the real pages).
    ui.require_access_code()
    st.write("the page itself")


def open_a_page() -> AppTest:
    # AppTest's default of 3 s per run is too short for a busy machine: `make test` runs
    # these tests at the lowest priority beside the browser tests.
    return AppTest.from_function(a_page, default_timeout=60).run()


def texts(app: AppTest) -> str:
    return " ".join(m.value for m in app.markdown) + " ".join(e.value for e in app.error)


def test_without_a_code_the_page_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FMNIST_ACCESS_CODE", raising=False)
    app = open_a_page()
    assert "the page itself" in texts(app) and not app.text_input


@pytest.mark.parametrize("wrong", ["", "wrong", "été ✓", "s3cret " * 1000])
def test_a_wrong_code_gets_one_line_and_nothing_of_the_page(
    monkeypatch: pytest.MonkeyPatch, wrong: str
) -> None:
    monkeypatch.setenv("FMNIST_ACCESS_CODE", "s3cret")
    app = open_a_page()
    assert app.text_input[0].label == "Access code" and "the page itself" not in texts(app)
    app.text_input[0].input(wrong)
    app.button[0].click().run()
    assert not app.exception
    assert [e.value for e in app.error] == ["Wrong access code."]
    assert "the page itself" not in texts(app)


def test_the_right_code_opens_the_page_for_the_rest_of_the_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FMNIST_ACCESS_CODE", "s3cret ✓")
    app = open_a_page()
    app.text_input[0].input("s3cret ✓")
    app.button[0].click().run()
    assert "the page itself" in texts(app) and not app.error and not app.text_input
    app.run()
    assert "the page itself" in texts(app)


def test_plain_shows_markdown_and_html_literally() -> None:
    hostile = "![t](http://10.255.255.1/t.png) <img src=x> :red[a] $x$ **b** `c` &lt;"
    escaped = ui.plain(hostile)
    assert "](" not in escaped and "**" not in escaped and "\\<img" in escaped
    # Removing the backslashes gives the text back: nothing else was changed.
    assert escaped.replace("\\", "") == hostile
    assert ui.plain("default (cnn-bn)") == "default \\(cnn\\-bn\\)"
