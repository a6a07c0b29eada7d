"""Every page in a real Chromium, against the app started with `streamlit run`.

Screenshots go to test-output/screenshots/ for a human to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, Download, Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from fmnist import hardware
from fmnist.data import Dataset
from fmnist.jobs.store import JobStore, hash_token, process_alive
from fmnist.schema import JobState, TrainConfig

from .browser_support import (
    TRAINING_TIMEOUT_MS,
    Server,
    assert_no_exception,
    open_page,
    runs_table,
    screenshot,
    serve_shipped_runs,
    start_server,
    stop_server,
    wait_until_idle,
)
from .conftest import OUTPUT_DIR, PROJECT_ROOT, copy_shipped_runs
from .test_roundtrip import as_photo

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app under `streamlit run`, with its own models folder holding the shipped run."""
    yield from serve_shipped_runs(tmp_path_factory)


def test_home(page: Page, server: Server) -> None:
    url = server.url
    open_page(page, url, "/", "👕 Fashion-MNIST Studio")
    expect(page.get_by_text("60,000 training and 10,000 test images")).to_be_visible()
    expect(page.get_by_text("Compute:")).to_be_visible()
    for label in ("Explore", "Train", "Predict"):
        expect(page.get_by_test_id("stPageLink").filter(has_text=label)).to_have_count(2)
    expect(page.get_by_test_id("stSidebar").get_by_text("Home")).to_be_visible()
    assert_no_exception(page)
    screenshot(page, "home")


def test_explore(page: Page, server: Server) -> None:
    url = server.url
    open_page(page, url, "/Explore", "🔍 Explore Fashion-MNIST")
    expect(page.locator(".fmnist-grid img")).to_have_count(16)  # the sample grid
    # The map tab's index box and toggle, there for the browser to load their code: unseen.
    preload = page.locator(".st-key-explore_preload")
    for widget in ("stNumberInput", "stCheckbox"):
        expect(preload.get_by_test_id(widget)).to_have_count(1)
        expect(preload.get_by_test_id(widget)).to_be_hidden()
    expect(page.get_by_text("T-shirt/top").first).to_be_visible()
    page.get_by_role("button", name="Reshuffle").click()
    wait_until_idle(page)
    screenshot(page, "explore")
    # Tab by tab, only the open tab is drawn: the map and the inspected image (two
    # canvases), the mean and spread pictures of each class, the ten histograms.
    tabs = (
        ("One image and the map", ".fmnist-map [data-drawn], .fmnist-picture [data-drawn]", 2),
        ("Average garments", ".fmnist-grid img", 20),
        ("Pixel", ".fmnist-hist img", 10),
    )
    for tab, drawn, count in tabs:
        page.get_by_role("tab", name=tab).click()
        expect(page.locator(drawn)).to_have_count(count, timeout=60_000)
        wait_until_idle(page)
    assert_no_exception(page)


def test_train_mlp_to_done(page: Page, server: Server) -> None:
    url, models = server.url, server.models
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
    # The curves, and the validation images' confusion matrix after the last epoch.
    expect(page.locator(".js-plotly-plot")).to_have_count(2)
    expect(page.get_by_text("Validation images after epoch 2")).to_be_visible()
    matrix = page.locator(".st-key-train_epoch_matrix .js-plotly-plot")
    after_two = matrix.locator(".heatmaplayer").inner_html()
    # The slider replays the first epoch's matrix.
    replay = page.get_by_test_id("stSlider").filter(has_text="Replay the epochs")
    replay.get_by_role("slider").focus()
    replay.get_by_role("slider").press("ArrowLeft")
    expect(page.get_by_text("Validation images after epoch 1")).to_be_visible()
    expect(page.get_by_text("Most confused now:")).to_be_visible()
    page.wait_for_timeout(500)
    assert matrix.locator(".heatmaplayer").inner_html() != after_two
    # Weight health: both dense layers, their weights' and gradients' numbers and histograms.
    page.get_by_text("🩺 Weight health, layer by layer").click()
    wait_until_idle(page)
    table = page.locator("table.fmnist-health")
    expect(table.locator("tr")).to_have_count(2 + 2)  # two header rows, two layers
    expect(table.locator(".spark")).to_have_count(4)
    expect(page.locator(".st-key-train_health_curves .js-plotly-plot")).to_be_visible()
    # The runs table opens by itself when the session's training has saved its run.
    expect(page.get_by_test_id("stDataFrame").filter(has_text="images/s")).to_be_visible()
    assert len([p for p in models.glob("*-mlp-*/run.json")]) == 1
    assert_no_exception(page)
    screenshot(page, "train-done")

    # A reload finds the job again (its id is in the URL).
    page.reload()
    expect(page.get_by_text("Saved as run")).to_be_visible(timeout=60_000)
    assert_no_exception(page)


def test_predict_one_good_one_broken_upload(page: Page, server: Server, dataset: Dataset) -> None:
    url = server.url
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
    # The softmax: ten bars, the predicted class first in weight; no Plotly chart, whose
    # 4.7 MB of code the browser would load for a session's first upload.
    softmax = page.locator("table.fmnist-softmax")
    expect(softmax.locator("tr")).to_have_count(10)
    expect(softmax.locator("tr.top td.name")).to_have_text("Ankle boot")
    expect(page.locator(".js-plotly-plot")).to_have_count(0)
    # The class guessed from the file name counts once the user confirms it.
    page.get_by_role("button", name="Confirm").first.click()
    wait_until_idle(page)
    expect(page.get_by_text("Accuracy on your pictures")).to_be_visible()
    own = page.get_by_role("tabpanel", name="📤 Your pictures")
    expect(own.get_by_test_id("stMetricValue")).to_have_text("100%")  # it is an ankle boot
    assert_no_exception(page)
    screenshot(page, "predict-uploads")

    page.get_by_role("tab", name="Confusion matrix").click()
    expect(page.get_by_text("Most confused pairs")).to_be_visible(timeout=60_000)
    page.get_by_role("tab", name="Gallery").click()
    wait_until_idle(page)
    # Each caption: the prediction on one line, the true class on the next, names whole.
    captions = page.get_by_role("tabpanel", name="🖼️ Gallery").get_by_test_id("stImageCaption")
    expect(captions.first).to_be_visible()
    lines = captions.evaluate_all(
        "cs => cs.map(c => Math.round(c.getBoundingClientRect().height"
        " / parseFloat(getComputedStyle(c).lineHeight)))"
    )
    assert lines and set(lines) == {2}, lines
    # The predicted class (bold) never breaks over two lines, "T-shirt/top" included.
    names = captions.locator("strong")
    expect(names).to_have_count(captions.count())
    assert names.evaluate_all("ns => ns.every(n => n.getClientRects().length === 1)")
    assert_no_exception(page)
    screenshot(page, "predict-gallery")


# -- training in worker processes, seen through the product -------------------


def select_option(page: Page, label: str, option: str) -> None:
    choice = page.get_by_role("option", name=option, exact=True)
    # A rerun that ends as the list opens closes it again (a fresh server's page reruns
    # once its worker has named the devices).
    for _ in range(3):
        page.get_by_test_id("stSelectbox").filter(has_text=label).click()
        page.wait_for_timeout(400)
        if choice.is_visible():
            break
    choice.click()


def start_training(page: Page, network: str, images: str, epochs: int) -> str:
    """Fill the Train form, press Start; return the job's URL (with its secret key)."""
    select_option(page, "Network", next(o for o in NETWORK_OPTIONS if o.startswith(network)))
    select_option(page, "Training images", images)
    field = page.get_by_label("Epochs")
    field.fill(str(epochs))
    field.press("Tab")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r"job=\w+&key="), timeout=30_000)
    return page.url


NETWORK_OPTIONS = [
    "mlp — the TensorFlow tutorial network",
    "mlp-2 — a deeper two-layer perceptron",
    "cnn — a classic two-convolution CNN",
    "cnn-bn — Fashion-MNIST Studio's own CNN",
    "fast — Fashion-MNIST Studio's time-to-accuracy CNN",
    "fast-wide — Fashion-MNIST Studio's best-accuracy CNN",
]


def computes_16_bit(page: Page) -> bool | None:
    """What the Train page's "Compute:" line says of 16-bit arithmetic, once a worker has
    named the devices."""
    line = page.get_by_text(re.compile("^Compute: (CPU|GPU)"))
    expect(line).to_be_visible(timeout=90_000)
    return hardware.computes_16_bit([line.inner_text().removeprefix("Compute: ")])


def test_a_networks_recipe_fills_the_form_and_trains_with_its_settings(
    page: Page, server: Server
) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})  # a laptop: Start stays in view
    open_page(page, server.url, "/Train", "🏋️ Train a network")
    sixteen_bit = computes_16_bit(page)
    select_option(page, "Network", NETWORK_OPTIONS[4])
    expect(page.get_by_text("242,602 parameters")).to_be_visible()
    expect(page.get_by_role("button", name="Start training")).to_be_in_viewport()
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.get_by_role("button", name="📋 Recipe").click()
    wait_until_idle(page)
    expect(page.get_by_label("Epochs")).to_have_value("6")
    expect(page.get_by_role("combobox", name="Schedule")).to_have_value("one-cycle")
    expect(page.get_by_role("combobox", name="Batch size")).to_have_value("128")
    page.get_by_text("More settings").click()
    smoothing = page.get_by_test_id("stSlider").filter(has_text="Label smoothing")
    expect(smoothing).to_contain_text("0.1")
    # A short version of it: 2,000 images, one epoch, and the shift on top.
    select_option(page, "Training images", "2,000")
    epochs = page.get_by_label("Epochs")
    epochs.fill("1")
    epochs.press("Tab")
    choose_augmentation(page, "shift")
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text("Saved as run")).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    expect(
        page.get_by_text(re.compile("label smoothing 0.1 · augmented: shift ±2 px"))
    ).to_be_visible()
    # "-fast-" and four characters: not the shipped fast-wide run.
    record = next(json.loads(p.read_text()) for p in server.models.glob("*-fast-????/run.json"))
    config = record["config"]
    assert (config["lr_schedule"], config["learning_rate"], config["batch_size"]) == (
        "one-cycle",
        0.004,
        128,
    )
    assert config["label_smoothing"] == 0.1 and config["augment"] == ["shift"]
    # The recipe ticks "Mixed precision", which a machine without 16 bits leaves unticked.
    assert config["mixed_precision"] is record["mixed_precision"] is sixteen_bit
    if sixteen_bit:
        expect(page.get_by_text(re.compile(r"^Device: .+, b?float16 arithmetic$"))).to_be_visible()
    assert record["epochs_completed"] == 1 and record["train_images"] == 1800
    assert_no_exception(page)
    screenshot(page, "train-recipe")


def test_more_settings_come_with_their_first_opening_and_keep_an_unsent_value(
    page: Page, server: Server
) -> None:
    open_page(page, server.url, "/Train", "🏋️ Train a network")
    wait_until_idle(page)
    seed = page.get_by_label("Random seed")
    expect(seed).to_have_count(0)  # not drawn for a first load: its browser is spared them
    more = page.get_by_text("More settings")
    more.click()
    expect(seed).to_have_value("42")
    # 16-bit arithmetic is offered where the machine has it: a GPU, or a CPU with bfloat16.
    mixed = expect(page.get_by_role("checkbox", name="Mixed precision"))
    if computes_16_bit(page):
        mixed.to_be_enabled()
    else:
        mixed.to_be_disabled()
    seed.fill("77")
    seed.press("Tab")  # typed, not sent: the form sends it with Start or Copy link
    more.click()  # closed again: a rerun of the page, which keeps the widgets drawn
    wait_until_idle(page)
    more.click()
    expect(seed).to_have_value("77")
    page.get_by_role("button", name="Copy link").click()
    expect(page.get_by_test_id("stCode")).to_contain_text("seed=77")
    assert_no_exception(page)


def builder_total(page: Page) -> Locator:
    return page.get_by_role("row").filter(has_text="total")


def edit_layer(page: Page, number: int) -> None:
    wait_until_idle(page)
    option = page.get_by_role("option", name=re.compile(rf"^{number}\. "))
    for _ in range(3):  # a rerun that ends as the list opens closes it again
        page.get_by_test_id("stSelectbox").filter(has_text="Layer to edit").click()
        page.wait_for_timeout(500)
        if option.is_visible():
            break
    option.click()
    wait_until_idle(page)


def test_the_builder_makes_a_network_trains_it_and_shares_it_as_a_link(
    page: Page, server: Server, browser: Browser
) -> None:
    page.set_viewport_size({"width": 1400, "height": 1100})
    open_page(page, server.url, "/Train", "🏋️ Train a network")
    # Once the worker has named the devices the page reruns no more by itself.
    expect(page.get_by_text("Compute: CPU")).to_be_visible(timeout=90_000)
    select_option(page, "Network", "custom — your own layers (builder)")
    expect(builder_total(page)).to_contain_text("242,602")  # it starts from fast's layers
    wait_until_idle(page)
    select_option(page, "Start again from", "cnn")
    page.get_by_role("button", name="Load its layers").click()
    expect(builder_total(page)).to_contain_text("862,410")

    # cnn with a Dense layer of 32 units: the shapes and counts follow each edit at once.
    edit_layer(page, 6)
    units = page.get_by_label("Units")
    units.fill("32")
    units.press("Tab")
    expect(builder_total(page)).to_contain_text("89,130")
    # A field emptied and left goes back to the layer's value, not to its least (1 unit),
    # once the rerun has brought the field its new value (it came with the run's end).
    wait_until_idle(page)
    units.fill("")
    units.press("Tab")
    wait_until_idle(page)
    expect(units).to_have_value("32")
    expect(builder_total(page)).to_contain_text("89,130")
    screenshot(page, "train-builder")

    # Without its Flatten the network is impossible: one line names the layer and why.
    edit_layer(page, 5)
    page.get_by_role("button", name="✕").click()
    problem = "layer 5 (Dense) needs a vector, but its input is 5x5x64 maps"
    expect(page.get_by_text(problem)).to_be_visible()
    expect(builder_total(page)).to_have_count(0)
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text(re.compile(r"Cannot start: layer 5 \(Dense\) needs"))).to_be_visible()

    # Global average pooling after the second pool: 64 numbers into Dense 32.
    edit_layer(page, 4)
    select_option(
        page,
        "New layer",
        "GlobalAveragePooling2D: averages each map to one number: a vector of channels",
    )
    page.get_by_role("button", name="Add after it").click()
    expect(builder_total(page)).to_contain_text("39,978")
    # Moved above the pool it no longer has maps to pool; moved back, all is well.
    # While a rerun redraws a button that has a tooltip, Streamlit's page holds two copies
    # of it for a moment (one of them hidden, or not yet): click once the run has ended.
    wait_until_idle(page)
    page.get_by_role("button", name="▲").click()
    expect(page.get_by_text("layer 5 (MaxPooling2D) needs maps")).to_be_visible()
    wait_until_idle(page)
    page.get_by_role("button", name="▼").click()
    expect(builder_total(page)).to_contain_text("39,978")

    select_option(page, "Training images", "2,000")
    epochs = page.get_by_label("Epochs")
    epochs.fill("1")
    epochs.press("Tab")
    page.get_by_text("More settings").click()
    choose_augmentation(page, "mirror left-right")
    # What the network will see: a training picture and eleven draws of its augmentation.
    drawn = page.get_by_text(re.compile(r"then 11 draws of mirror left-right"))
    for _ in range(3):  # a click that only closes the list of augmentations is lost
        page.keyboard.press("Escape")
        page.get_by_role("button", name="Show what the network will see").click()
        wait_until_idle(page)
        if drawn.is_visible():
            break
    expect(drawn).to_be_visible()
    expect(page.get_by_test_id("stImageContainer")).to_have_count(12)
    screenshot(page, "train-augmented")
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text("Saved as run")).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    record = next(
        json.loads(path.read_text()) for path in server.models.glob("*-custom-*/run.json")
    )
    assert record["config"]["augment"] == ["flip"] and record["train_images"] == 1800
    assert record["network"] == "custom" and record["parameters"] == 39_978
    assert [layer["type"] for layer in record["layers"]] == [
        "conv", "maxpool", "conv", "maxpool", "gap", "dense",
    ]  # fmt: skip
    assert record["layers"][-1]["units"] == 32 and record["config"]["layers"] == record["layers"]
    assert_no_exception(page)
    screenshot(page, "train-builder-trained")

    # The run taken away: the runs table's download is the whole bundle.
    tick_row(page, 1)
    bundle = download_from(page, page.get_by_role("button", name=re.compile("^⬇️")))
    archive = zipfile.ZipFile(bundle.path())
    assert {Path(name).name for name in archive.namelist()} >= {
        "model.keras", "run.json", "history.csv", "confusion_matrix.csv", "curves.png",
    }  # fmt: skip
    assert json.loads(archive.read(f"{record['run_id']}/run.json"))["layers"] == record["layers"]
    assert any("/tensorboard/train/events.out.tfevents." in n for n in archive.namelist())
    # And as TensorFlow Lite, checked against Keras on the server before it is offered.
    page.get_by_role("button", name="📱 TensorFlow Lite").click()
    expect(
        page.get_by_text(re.compile(r"the same class as Keras for \d+ of 100 test"))
    ).to_be_visible(timeout=60_000)
    tflite = download_from(page, page.get_by_role("button", name=re.compile(r"^📱 .*\.tflite$")))
    assert Path(tflite.path()).read_bytes()[4:8] == b"TFL3"
    assert tflite.suggested_filename == f"{record['run_id']}.tflite"

    # Compared with another run: curves by training time on a log loss, the two confusion
    # matrices and their difference, every run's settings against its accuracy.
    tick_row(page, 2)
    expect(page.get_by_text("Their test confusion matrices")).to_be_visible()
    page.get_by_test_id("stButtonGroup").get_by_text("seconds of training").click()
    wait_until_idle(page)
    page.get_by_text("Log-scale loss").click()
    wait_until_idle(page)
    page.get_by_text("Every run's settings against its test accuracy").click()
    wait_until_idle(page)
    expect(page.locator(".js-plotly-plot .parcoords")).to_have_count(1)
    expect(page.get_by_text("difference (second − first)")).to_be_visible()
    assert_no_exception(page)
    screenshot(page, "train-compare")

    # One more epoch of the custom run: a new run that carries the first one's curve on.
    tick_row(page, 2)  # untick the other run
    more = page.get_by_label("More epochs")
    more.fill("1")
    more.press("Tab")
    page.get_by_role("button", name="Train them on this run").click()
    expect(page.get_by_text(re.compile("Epoch 2 of 2 done"))).to_be_visible(
        timeout=TRAINING_TIMEOUT_MS
    )
    expect(page.get_by_text("Saved as run")).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    child = next(
        json.loads(path.read_text())
        for path in server.models.glob("*-custom-*/run.json")
        if json.loads(path.read_text())["config"].get("parent_run") == record["run_id"]
    )
    assert child["epochs_completed"] == 2 and child["history"][0] == record["history"][0]
    assert child["layers"] == record["layers"]

    # The settings as a link, opened in a fresh browser (no session, no job): the same form.
    page.get_by_role("button", name="Copy link").click()
    address = page.get_by_test_id("stCode").inner_text().strip()
    assert "network=custom" in address and "key=" not in address and "job=" not in address
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    try:
        other = context.new_page()
        other.goto(address)
        expect(other.get_by_role("heading", name="🏋️ Train a network")).to_be_visible()
        wait_until_idle(other)
        expect(builder_total(other)).to_contain_text("39,978")
        expect(other.get_by_role("table").first).to_contain_text("GlobalAveragePooling2D")
        expect(other.get_by_label("Epochs")).to_have_value("1")
        expect(other.get_by_role("combobox", name="Training images")).to_have_value("2,000")
        other.get_by_text("More settings").click()
        expect(other.get_by_test_id("stMultiSelect")).to_contain_text("mirror left-right")
        seed = other.get_by_label("Random seed")
        expect(seed).to_have_value(str(record["config"]["seed"]))
        assert_no_exception(other)
        screenshot(other, "train-from-link")
    finally:
        context.close()


def download_from(page: Page, button: Locator) -> Download:
    """The file a download button gives; the click is tried again after the page's rerun
    when it landed while the page was redrawing the button (lost under load)."""
    for _ in range(2):
        try:
            with page.expect_download(timeout=20_000) as download:
                button.click()
            return download.value
        except PlaywrightTimeout:
            wait_until_idle(page)
    with page.expect_download() as download:
        button.click()
    return download.value


def choose_augmentation(page: Page, name: str) -> None:
    augment = page.get_by_role("combobox", name="Augment the training images")
    option = page.get_by_role("option", name=name)
    for _ in range(3):  # a click right after a number field's Tab may only focus it
        augment.click()
        page.wait_for_timeout(700)
        if option.is_visible():
            break
    option.click()
    page.keyboard.press("Escape")


def server_process_facts(pid: int) -> tuple[bool, float]:
    """(TensorFlow's libraries mapped into the process, resident memory in MB)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    tensorflow = any(
        "_pywrap_tensorflow" in line or "libtensorflow" in line for line in maps.splitlines()
    )
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return tensorflow, rss_kb / 1024


def test_server_never_loads_tensorflow_through_a_full_walk(
    page: Page, server: Server, dataset: Dataset
) -> None:
    # Streamlit clears the Keras session after every script run once Keras is
    # loaded, pausing the whole server; training and prediction run elsewhere.
    open_page(page, server.url, "/", "👕 Fashion-MNIST Studio")
    open_page(page, server.url, "/Explore", "🔍 Explore Fashion-MNIST")
    open_page(page, server.url, "/Train", "🏋️ Train a network")
    start_training(page, "mlp", "2,000", 1)
    expect(page.get_by_text("Saved as run")).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    open_page(page, server.url, "/Predict", "🔮 Predict")
    coat = next(i for i, label in enumerate(dataset.y_test) if label == 4)
    photo = as_photo(dataset.x_test[coat], np.random.default_rng(1))
    page.locator("input[type=file]").first.set_input_files(
        [{"name": "coat.jpg", "mimeType": "image/jpeg", "buffer": photo}]
    )
    expect(page.get_by_text("what the network sees (28×28)")).to_have_count(1, timeout=60_000)
    wait_until_idle(page)
    assert_no_exception(page)
    tensorflow, rss_mb = server_process_facts(server.process.pid)
    assert not tensorflow, "the web server process has TensorFlow loaded"
    (OUTPUT_DIR / "server-memory.txt").write_text(
        f"server RSS after a full walk: {rss_mb:.0f} MB\n"
    )
    assert rss_mb < 600, f"the server holds {rss_mb:.0f} MB"


def steady_speed(run_json: Path, last_epoch: int = 4) -> float:
    """Images per second of a run's epochs 2..last_epoch (the first includes tracing)."""
    record = json.loads(run_json.read_text())
    seconds = sorted(epoch["seconds"] for epoch in record["history"][1:last_epoch])
    return record["train_images"] / seconds[len(seconds) // 2]


def test_watched_training_keeps_its_speed_and_only_its_owner_can_stop_it(
    page: Page, server: Server, tmp_path: Path, browser
) -> None:
    # The same training from the command line, for comparison.
    env = {**os.environ, "FMNIST_MODELS_DIR": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    arguments = ["--network", "mlp", "--epochs", "4", "--limit", "10000", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "fmnist", "train", *arguments],
        capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    command_line = steady_speed(Path(json.loads(done.stdout)["path"]) / "run.json")

    open_page(page, server.url, "/Train", "🏋️ Train a network")
    job_url = start_training(page, "mlp", "10,000", 50)
    job_id = re.search(r"[?&]job=([^&]+)", job_url).group(1)
    # Epochs 2-4 are watched by their owner alone; only then does another person come.
    store = JobStore(server.models / ".jobs" / "jobs.sqlite3")
    deadline = time.time() + TRAINING_TIMEOUT_MS / 1000
    while (job := store.get(job_id, with_events=False)).epoch < 4:
        assert job.state.active and time.time() < deadline, (job.state, job.message)
        time.sleep(0.1)
    # Another person opens the same job without its key: they watch, they cannot stop it.
    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    other.goto(job_url.split("&key=")[0].replace("?key=", "?"))
    expect(other.get_by_text("Only the browser session that started this training")).to_be_visible(
        timeout=60_000
    )
    expect(other.get_by_role("button", name="Stop")).to_have_count(0)
    other.context.close()
    # The job's panel reruns as the job runs, and while Streamlit redraws a button that has
    # a tooltip its page holds a second copy of it for a moment (the builder test met it).
    page.get_by_role("button", name="⏹️ Stop").first.click()
    expect(page.get_by_text("Saved as run")).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    run_id = page.get_by_text("Saved as run").inner_text().split("`")[0].split()[-1].strip(".")
    run_json = server.models / run_id / "run.json"
    assert json.loads(run_json.read_text())["status"] == "stopped"
    watched = steady_speed(run_json)
    (OUTPUT_DIR / "watched-training.txt").write_text(
        f"mlp 10,000 images, epochs 2-4: watched {watched:,.0f} images/s, "
        f"command line {command_line:,.0f} images/s, ratio {watched / command_line:.2f}\n"
    )
    # The benchmark holds the real target (0.90); this only catches a collapse, such as
    # the 10-30x slowdown of a training living inside the web server.
    assert watched >= 0.5 * command_line, (watched, command_line)


def test_a_training_whose_loss_explodes_fails_at_once_with_one_line(
    page: Page, server: Server
) -> None:
    # A learning rate of 10 (the command line takes it; the page's slider stops at 0.1).
    store = JobStore(server.models / ".jobs" / "jobs.sqlite3")
    config = TrainConfig(network="mlp", epochs=5, limit=10_000, learning_rate=10.0)
    job_id = store.create(config, "exploding-key", source="cli")
    open_page(page, server.url, f"/Train?job={job_id}&key=exploding-key", "🏋️ Train a network")
    failed = page.get_by_test_id("stAlert").filter(has_text="Training failed")
    expect(failed).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    expect(failed).to_contain_text(
        re.compile(r"the loss exploded to [\d,]+ \(random guessing scores 2\.3\) at epoch 1, "
                   r"batch [\d,]+: lower the learning rate \(now 10\)")
    )  # fmt: skip
    expect(page.get_by_text(re.compile("the loss exploded"))).to_have_count(1)  # said once
    expect(page.get_by_text("Epoch 0 of 5 done")).to_be_visible()
    # The form shows the job's settings, its learning rate too, though not one of the slider's.
    expect(page.get_by_test_id("stSlider").filter(has_text="Learning rate")).to_contain_text("10")
    assert store.get(job_id).state is JobState.FAILED
    assert_no_exception(page)
    screenshot(page, "train-diverged")


def test_kill_9_of_the_server_keeps_queued_jobs_and_resumes_the_running_one(
    page: Page, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    copy_shipped_runs(models)
    log_name = "streamlit-server-killed"
    (OUTPUT_DIR / f"{log_name}.log").unlink(missing_ok=True)
    first = start_server(models, log_name)
    open_page(page, first.url, "/Train", "🏋️ Train a network")
    job_url = start_training(page, "mlp", "30,000", 6)
    store = JobStore(models / ".jobs" / "jobs.sqlite3")
    job_id = job_url.split("job=")[1].split("&")[0]
    waiting = store.create(TrainConfig(network="mlp", epochs=1, limit=2000), "another-user")

    deadline = time.time() + 120
    while store.get(job_id, with_events=False).checkpoint_epoch < 1:
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.1)
    worker = store.worker_of(job_id)
    first.process.kill()  # kill -9: no clean-up of any kind
    first.process.wait(timeout=10)
    deadline = time.time() + 15
    while process_alive(worker.pid):  # the worker ends with its server
        assert time.time() < deadline, "the worker outlived its server"
        time.sleep(0.1)
    assert store.get(waiting).state is JobState.QUEUED

    second = start_server(models, log_name)
    try:
        page.goto(second.url + "/Train?" + job_url.split("?", 1)[1])
        expect(page.get_by_text("interrupted at epoch")).to_be_visible(timeout=90_000)
        assert_no_exception(page)
        screenshot(page, "train-interrupted")
        # The queued job started by itself on the new server.
        deadline = time.time() + 120
        while store.get(waiting).state is not JobState.DONE:
            assert time.time() < deadline, store.get(waiting)
            time.sleep(0.2)
        kept = store.get(job_id).checkpoint_epoch
        page.get_by_role("button", name="Resume").click()
        expect(page.get_by_text("Saved as run")).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
        job = store.get(job_id)
        assert job.state is JobState.DONE and [m.epoch for m in job.history] == list(range(1, 7))
        assert (models / job.run_id / "run.json").is_file()
        assert kept >= 1
        # A stale link says so, and drops the job from the URL.
        page.goto(second.url + "/Train?job=0123456789ab")
        expect(page.get_by_text("no longer exists")).to_be_visible(timeout=60_000)
        expect(page).not_to_have_url(re.compile("job="))
        assert_no_exception(page)
    finally:
        stop_server(second, log_name)
    # Nothing half-written: every run folder is complete.
    for folder in models.iterdir():
        if not folder.name.startswith("."):
            assert (folder / "run.json").is_file() and (folder / "model.keras").is_file()


def demo_run(models: Path, suffix: str, minute: int, owner_token: str) -> str:
    """A copy of the shipped run under another name, as if ``owner_token``'s session trained it."""
    shipped = next(f for f in models.iterdir() if f.is_dir() and not f.name.startswith("."))
    run_id = f"20261208-10{minute:02d}00-fast-wide-demo-{suffix}"
    shutil.copytree(shipped, models / run_id)
    record = json.loads((models / run_id / "run.json").read_text())
    record.update(
        name=f"demo {suffix}",
        finished_at=f"2026-12-08T10:{minute:02d}:00",  # newer than the shipped run
        owner=hash_token(owner_token),
    )
    record.pop("shipped", None)
    (models / run_id / "run.json").write_text(json.dumps(record))
    return run_id


def tick_row(page: Page, row: int) -> None:
    """Tick a row of the runs table (a canvas grid: rows are 35 px under a 35 px header)."""
    grid = runs_table(page)
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 18, box["y"] + 35 * row + 17)
    wait_until_idle(page)


def test_delete_acts_on_ticked_runs_of_their_owner_only_and_keeps_the_shipped_one(
    page: Page, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    copy_shipped_runs(models)
    mine = "my-session-secret"
    older = demo_run(models, "a", 1, mine)
    newer = demo_run(models, "b", 2, mine)
    theirs = demo_run(models, "c", 3, "someone-else")
    # This browser session is the one holding ``mine``: it comes back to its (cancelled) job.
    store = JobStore(models / ".jobs" / "jobs.sqlite3")
    job_id = store.create(TrainConfig(network="mlp", epochs=1, limit=1000), mine)
    store.request_stop(job_id)
    log_name = "streamlit-server-delete"
    (OUTPUT_DIR / f"{log_name}.log").unlink(missing_ok=True)
    server = start_server(models, log_name)
    try:
        page.goto(f"{server.url}/Train?job={job_id}&key={mine}")
        expect(page.get_by_role("heading", name="🏋️ Train a network")).to_be_visible()
        wait_until_idle(page)
        # Newest first: demo c (someone else's), demo b, demo a, then the shipped run.
        tick_row(page, 2)
        page.get_by_role("button", name="🗑️ Delete").click()
        expect(page.get_by_text("Delete 1 run: demo b (fast-wide)?")).to_be_visible()
        page.get_by_role("button", name="Yes, delete").click()
        wait_until_idle(page)
        expect(page.get_by_text("Deleted 1 run: demo b (fast-wide).")).to_be_visible()
        assert not (models / newer).exists() and (models / older).exists()
        # The tick did not move to the row that took its place.
        expect(page.get_by_text("Tick runs to compare")).to_be_visible()
        expect(page.get_by_role("button", name="🗑️ Delete")).to_have_count(0)

        # Someone else's run cannot be deleted from this session...
        tick_row(page, 1)
        expect(page.get_by_role("button", name="🗑️ Delete")).to_be_disabled()
        # ...and when it is ticked with one of ours, only ours goes.
        tick_row(page, 2)
        page.get_by_role("button", name="🗑️ Delete").click()
        expect(page.get_by_text("The others are kept")).to_be_visible()
        page.get_by_role("button", name="Yes, delete").click()
        wait_until_idle(page)
        expect(page.get_by_text("Deleted 1 run: demo a (fast-wide).")).to_be_visible()
        assert not (models / older).exists() and (models / theirs).exists()

        # The last row is the shipped run: read-only.
        tick_row(page, 2)
        expect(page.get_by_role("button", name="🗑️ Delete")).to_be_disabled()
        assert_no_exception(page)
        screenshot(page, "train-after-delete")
    finally:
        stop_server(server, log_name)
    shipped = {
        f.name
        for f in (PROJECT_ROOT / "models").iterdir()
        if f.is_dir() and not f.name.startswith(".")  # not a local job store
    }
    assert {f.name for f in models.iterdir() if not f.name.startswith(".")} == shipped | {theirs}
