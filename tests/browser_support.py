"""Shared helpers of the browser tests: the app under `streamlit run`, waiting, screenshots."""

from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from playwright.sync_api import Locator, Page, expect

from .conftest import OUTPUT_DIR, PROJECT_ROOT, copy_shipped_runs

# Workers and the inference service load TensorFlow on first use: allow for it.
expect.set_options(timeout=60_000)

SCREENSHOTS = OUTPUT_DIR / "screenshots"
TRAINING_TIMEOUT_MS = 180_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server(NamedTuple):
    url: str
    models: Path
    process: subprocess.Popen


def start_server(models: Path, log_name: str = "streamlit-server") -> Server:
    """The app on a free port with its own models folder, once healthy, started as `make run`
    starts it: `streamlit run app.py` through fmnist.ui.server."""
    port = free_port()
    log_path = OUTPUT_DIR / f"{log_name}.log"
    OUTPUT_DIR.mkdir(exist_ok=True)
    env = {**os.environ, "FMNIST_MODELS_DIR": str(models), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with log_path.open("a") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fmnist.ui.server",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--server.fileWatcherType",
                "none",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read() == b"ok":
                    break
        except OSError:
            pass
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            pytest.fail(f"streamlit did not start; see {log_path}:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.3)
    return Server(url, models, process)


def stop_server(server: Server, log_name: str = "streamlit-server") -> None:
    server.process.terminate()
    server.process.wait(timeout=20)
    server_log = (OUTPUT_DIR / f"{log_name}.log").read_text()
    assert "Traceback" not in server_log, server_log[-3000:]


def serve_shipped_runs(
    tmp_path_factory: pytest.TempPathFactory, log_name: str = "streamlit-server"
) -> Iterator[Server]:
    """For a module's server fixture: the app under `streamlit run`, with its own models
    folder holding the shipped run and a fresh log; stopped (its log checked) after."""
    models = tmp_path_factory.mktemp("models")
    copy_shipped_runs(models)
    (OUTPUT_DIR / f"{log_name}.log").unlink(missing_ok=True)
    running = start_server(models, log_name)
    yield running
    stop_server(running, log_name)


def open_page(page: Page, url: str, path: str, title: str) -> None:
    page.goto(url + path)
    expect(page.get_by_role("heading", name=title)).to_be_visible(timeout=90_000)
    wait_until_idle(page)


def wait_until_idle(page: Page) -> None:
    # Streamlit shows its status widget ("Running...") while a script runs.
    page.wait_for_timeout(500)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=90_000)


def runs_table(page: Page) -> Locator:
    """The Train page's runs table, its lazy expander opened first when it is closed."""
    wait_until_idle(page)
    expander = page.locator("details").filter(has_text="📋 The runs table")
    if expander.get_attribute("open") is None:
        expander.get_by_text("📋 The runs table").click()
        wait_until_idle(page)
    grid = expander.get_by_test_id("stDataFrame")
    expect(grid).to_be_visible()
    return grid


def assert_no_exception(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)


def screenshot(page: Page, name: str) -> None:
    """The whole page: Streamlit scrolls an inner container, so grow the viewport to fit it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size or {"width": 1400, "height": 1000}
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], "
        "[data-testid=stMainBlockContainer]')].map(e => e.scrollHeight), 1000)"
    )
    page.set_viewport_size({"width": viewport["width"], "height": min(int(height) + 100, 9000)})
    page.wait_for_timeout(800)  # charts redraw at the new viewport's width
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    page.set_viewport_size(viewport)


def spiral(steps: int = 400, spacing: float = 6.0) -> Iterator[tuple[float, float]]:
    """Offsets from a centre, outwards along a spiral, about ``spacing`` px apart."""
    for step in range(steps):
        angle = (4 * step) ** 0.5  # equal arc lengths: the spiral's turns stay evenly spaced
        radius = spacing * angle / 2
        yield radius * math.cos(angle), radius * math.sin(angle)


def point_on_the_map(page: Page, chart: Locator) -> tuple[float, float, int]:
    """Where the mouse, moved out from the middle of the map, first finds a point: its
    tooltip names the image, the same point a click there picks."""
    box = chart.bounding_box()
    assert box
    tip = page.locator(".fmnist-map-tip.visible")
    for dx, dy in spiral():
        x, y = box["x"] + box["width"] * 0.5 + dx, box["y"] + box["height"] * 0.45 + dy
        page.mouse.move(x, y)
        try:
            expect(tip).to_contain_text("index", timeout=200)
        except AssertionError:
            continue
        found = re.search(r"index\s*(\d+)", tip.inner_text())
        if found:
            return x, y, int(found.group(1))
    pytest.fail("no point of the map answered the mouse")
