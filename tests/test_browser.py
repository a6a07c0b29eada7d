"""Every page in a real Chromium, against the app started with `streamlit run`.

Screenshots go to test-output/screenshots/ for a human to look at.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from fmnist.data import Dataset

from .conftest import OUTPUT_DIR, PROJECT_ROOT, copy_shipped_runs
from .test_roundtrip import as_photo

pytestmark = pytest.mark.browser
# Pages import TensorFlow or score 10,000 images on first use: allow for it.
expect.set_options(timeout=60_000)

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = OUTPUT_DIR / "screenshots"
TRAINING_TIMEOUT_MS = 180_000


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM}: run `make test`, or set CHROMIUM_PATH"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app under `streamlit run`, with its own models folder holding the shipped run."""
    models = tmp_path_factory.mktemp("models")
    copy_shipped_runs(models)
    port = free_port()
    log_path = OUTPUT_DIR / "streamlit-server.log"
    OUTPUT_DIR.mkdir(exist_ok=True)
    env = {**os.environ, "FMNIST_MODELS_DIR": str(models), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
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
    yield url, models
    process.terminate()
    process.wait(timeout=20)
    server_log = log_path.read_text()
    assert "Traceback" not in server_log, server_log[-3000:]


def open_page(page: Page, url: str, path: str, title: str) -> None:
    page.goto(url + path)
    expect(page.get_by_role("heading", name=title)).to_be_visible(timeout=90_000)
    wait_until_idle(page)


def wait_until_idle(page: Page) -> None:
    # Streamlit shows its status widget ("Running...") while a script runs.
    page.wait_for_timeout(500)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=90_000)


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
    page.wait_for_timeout(800)  # Plotly charts resize to the new viewport
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    page.set_viewport_size(viewport)


def test_home(page: Page, server: tuple[str, Path]) -> None:
    url, _ = server
    open_page(page, url, "/", "👕 Fashion-MNIST Studio")
    expect(page.get_by_text("60,000 training and 10,000 test images")).to_be_visible()
    expect(page.get_by_text("Compute:")).to_be_visible()
    for label in ("Explore", "Train", "Predict"):
        expect(page.get_by_test_id("stPageLink").filter(has_text=label)).to_have_count(2)
    expect(page.get_by_test_id("stSidebar").get_by_text("Home")).to_be_visible()
    assert_no_exception(page)
    screenshot(page, "home")


def test_explore(page: Page, server: tuple[str, Path]) -> None:
    url, _ = server
    open_page(page, url, "/Explore", "🔍 Explore Fashion-MNIST")
    charts = page.locator(".js-plotly-plot")
    expect(charts).to_have_count(6, timeout=60_000)
    expect(page.locator(".js-plotly-plot .main-svg").first).to_be_visible()
    screenshot(page, "explore")
    expect(page.locator("[data-testid=stImage] img")).to_have_count(16)  # the sample grid
    expect(page.get_by_text("T-shirt/top").first).to_be_visible()
    page.get_by_role("button", name="Reshuffle").click()
    wait_until_idle(page)
    assert_no_exception(page)
    screenshot(page, "explore")


def test_train_mlp_to_done(page: Page, server: tuple[str, Path]) -> None:
    url, models = server
    open_page(page, url, "/Train", "🏋️ Train a network")
    expect(page.get_by_text("101,770 parameters")).to_be_visible()
    page.get_by_test_id("stSelectbox").filter(has_text="Training images").click()
    page.get_by_role("option", name="2,000").click()
    epochs = page.get_by_label("Epochs")
    epochs.fill("2")
    epochs.press("Tab")
    page.get_by_role("button", name="Start training").click()
    expect(
        page.get_by_text("Epoch 0 of 2 done")
        .or_(page.get_by_text("Epoch 1 of 2 done"))
        .or_(page.get_by_text("Epoch 2 of 2 done"))
    ).to_be_visible(timeout=60_000)
    screenshot(page, "train-running")
    expect(page.get_by_text("Saved as run")).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    expect(page.get_by_text("Epoch 2 of 2 done")).to_be_visible()
    expect(page.locator(".js-plotly-plot")).to_have_count(1)  # the training curves
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    assert len([p for p in models.glob("*-mlp-*/run.json")]) == 1
    assert_no_exception(page)
    screenshot(page, "train-done")

    # A reload finds the job again (its id is in the URL).
    page.reload()
    expect(page.get_by_text("Saved as run")).to_be_visible(timeout=60_000)
    assert_no_exception(page)


def test_predict_one_good_one_broken_upload(
    page: Page, server: tuple[str, Path], dataset: Dataset
) -> None:
    url, _ = server
    open_page(page, url, "/Predict", "🔮 Predict")
    # A real test-set ankle boot, drawn as a colour product photo.
    boot = next(i for i, label in enumerate(dataset.y_test) if label == 9)
    good = as_photo(dataset.x_test[boot], np.random.default_rng(0))
    page.locator("input[type=file]").first.set_input_files(
        [
            {"name": "ankle-boot.jpg", "mimeType": "image/jpeg", "buffer": good},
            {"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n junk"},
        ]
    )
    expect(page.get_by_text("broken.png:")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("what the network sees (28×28)")).to_have_count(1, timeout=60_000)
    wait_until_idle(page)
    expect(page.get_by_text("Accuracy on your pictures")).to_be_visible()
    expect(page.get_by_test_id("stMetricValue")).to_have_text("100%")  # it is an ankle boot
    assert_no_exception(page)
    screenshot(page, "predict-uploads")

    page.get_by_role("tab", name="Confusion matrix").click()
    expect(page.get_by_text("Most confused pairs")).to_be_visible(timeout=60_000)
    page.get_by_role("tab", name="Gallery").click()
    wait_until_idle(page)
    assert_no_exception(page)
    screenshot(page, "predict-matrix")
