"""The Predict page in a real Chromium, as a first-time user meets it.

Clicking the confusion matrix, pictures kept for the session, guessed classes,
transparent pictures, plain messages, HEIC photos, the camera, the warning for
pictures unlike Fashion-MNIST, and how long interactions take. Screenshots and
timings go to test-output/.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import BrowserContext, Locator, Page, Playwright, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from fmnist import config
from fmnist.data import CLASS_NAMES, DataError, Dataset, load_from_folder

from .browser_support import (
    Server,
    assert_no_exception,
    open_page,
    point_on_the_map,
    screenshot,
    serve_shipped_runs,
    start_server,
    stop_server,
)
from .conftest import CHROMIUM, CHROMIUM_ARGS, OUTPUT_DIR, copy_shipped_runs
from .test_imaging import boot_picture, encode
from .test_novelty import OUTLINES, drawing
from .test_roundtrip import as_photo

pytestmark = pytest.mark.browser

LOG = "streamlit-server-predict"
UNUSUAL = "This picture looks unlike the clothes the network learned from"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app under `streamlit run`, with its own models folder holding the shipped run."""
    yield from serve_shipped_runs(tmp_path_factory, LOG)


TIMING = """
(() => {
  window.__frames = []; window.__input = null;
  const Native = window.WebSocket;
  window.WebSocket = function (...args) {
    const socket = new Native(...args);
    socket.addEventListener('message', () => window.__frames.push(performance.now()));
    return socket;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  for (const type of ['pointerdown', 'keydown', 'change'])
    document.addEventListener(type, () => { window.__input = performance.now(); }, true);
})();
"""


def settle(page: Page, quiet_ms: int = 600, first_frame_s: float = 5.0) -> float | None:
    """Seconds from the user's last input to the server's last message of the rerun it caused.

    Waits until the server has been quiet for ``quiet_ms`` and Streamlit's status
    widget is gone (its own wait skips runs too short to show the widget). None
    when no message came within ``first_frame_s`` (the input caused no rerun).
    """
    began = time.time()
    while time.time() < began + 90:
        page.wait_for_timeout(50)
        now, start, frames = page.evaluate(
            "() => [performance.now(), window.__input || 0, window.__frames]"
        )
        after = [f for f in frames if f >= start]
        if not after and time.time() > began + first_frame_s:
            return None
        if after and now - after[-1] > quiet_ms:
            expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
            return (after[-1] - start) / 1000
    pytest.fail("the page never settled")


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """Every page of this module records its websocket messages and the user's inputs."""
    context.add_init_script(TIMING)
    return context.new_page()


# -- helpers -------------------------------------------------------------------------------


def picture(name: str, payload: bytes, mime: str = "image/jpeg") -> dict:
    return {"name": name, "mimeType": mime, "buffer": payload}


def upload(page: Page, *files: dict) -> None:
    page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(list(files))
    settle(page)


def card(page: Page, payload: bytes) -> Locator:
    """The bordered card of one kept picture (its key holds the start of its SHA-256)."""
    return page.locator(f".st-key-predict_card_{hashlib.sha256(payload).hexdigest()[:16]}")


def choose(page: Page, box: Locator, option: str) -> None:
    wanted = page.get_by_role("option", name=option, exact=True)
    for _ in range(5):
        # Right after another box's list closed, a click may only focus this one.
        box.get_by_role("button", name="Open").click()
        try:
            wanted.wait_for(timeout=2_000)
            break
        except PlaywrightTimeoutError:
            page.keyboard.press("Escape")
    wanted.click()
    settle(page)


def true_class(box: Locator) -> str:
    return box.get_by_role("combobox").input_value()


def own_accuracy(page: Page) -> Locator:
    return (
        page.get_by_test_id("stMetric")
        .filter(has_text="Accuracy on your pictures")
        .get_by_test_id("stMetricValue")
    )


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    settle(page)


def photo_of(dataset: Dataset, label: int, seed: int) -> bytes:
    index = [i for i, y in enumerate(dataset.y_test) if y == label][seed]
    return as_photo(dataset.x_test[index], np.random.default_rng(seed))


# -- 1. the confusion matrix answers a click ---------------------------------------------------


def click_cell(page: Page, true: int, predicted: int) -> None:
    """Click the centre of a cell: Plotly's drag layer covers the plot area exactly."""
    panel = page.get_by_role("tabpanel", name="🧮 Confusion matrix")
    area = panel.locator(".js-plotly-plot .nsewdrag").first
    area.scroll_into_view_if_needed()
    box = area.bounding_box()
    assert box is not None
    x = box["x"] + (predicted + 0.5) * box["width"] / len(CLASS_NAMES)
    y = box["y"] + (true + 0.5) * box["height"] / len(CLASS_NAMES)
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    settle(page)


def test_clicking_a_cell_of_the_confusion_matrix_shows_its_images(
    page: Page, server: Server
) -> None:
    open_page(page, server.url, "/Predict", "🔮 Predict")
    open_tab(page, "🧮 Confusion matrix")
    expect(page.get_by_text("Click a cell of the matrix")).to_be_visible()
    panel = page.get_by_role("tabpanel", name="🧮 Confusion matrix")
    expect(panel.get_by_test_id("stImage")).to_have_count(0)

    click_cell(page, true=6, predicted=0)  # shirts taken for T-shirts: the classic mistake
    heading = page.get_by_role("heading", name="True Shirt, predicted T-shirt/top:")
    expect(heading).to_be_visible()
    count = int(heading.inner_text().rsplit(":", 1)[1])
    assert count > 10
    expect(panel.get_by_test_id("stImage")).to_have_count(18)
    expect(panel.get_by_test_id("stImage").first).to_contain_text("T-shirt/top")
    expect(page.get_by_text("Click a cell of the matrix")).to_have_count(0)
    assert_no_exception(page)
    screenshot(page, "predict-matrix-cell")

    click_cell(page, true=9, predicted=7)  # ankle boots taken for sneakers
    expect(page.get_by_role("heading", name="True Ankle boot, predicted Sneaker:")).to_be_visible()
    expect(heading).to_have_count(0)
    # A diagonal cell: the images the network got right.
    click_cell(page, true=1, predicted=1)
    expect(page.get_by_role("heading", name="True Trouser, predicted Trouser:")).to_be_visible()
    assert_no_exception(page)


# -- 2 and 3. kept pictures, their own labels, guesses -------------------------------------------


def test_pictures_and_their_classes_are_kept_for_the_session(
    page: Page, server: Server, dataset: Dataset
) -> None:
    open_page(page, server.url, "/Predict", "🔮 Predict")
    coat, dress, bag = (photo_of(dataset, label, 0) for label in (4, 3, 8))
    upload(page, picture("IMG_1.jpg", coat), picture("IMG_2.jpg", dress))
    upload(page, picture("IMG_3.jpg", bag))  # the uploader adds to what is kept
    expect(page.get_by_text("3 pictures", exact=True)).to_be_visible()
    for payload, label in ((coat, "Coat"), (dress, "Dress"), (bag, "Bag")):
        choose(page, card(page, payload), label)
    expect(own_accuracy(page)).to_be_visible()

    # Removing one keeps the others' classes.
    card(page, dress).get_by_role("button", name="Remove").click()
    settle(page)
    expect(card(page, dress)).to_have_count(0)
    assert [true_class(card(page, p)) for p in (coat, bag)] == ["Coat", "Bag"]

    # Another model and back: still there.
    page.get_by_text("Import a .keras file").click()
    settle(page)
    page.get_by_text("A saved run").click()
    settle(page)
    expect(page.get_by_text("2 pictures", exact=True)).to_be_visible()

    # Another page and back, through the app's own links: still there.
    page.get_by_test_id("stSidebar").get_by_text("Explore").click()
    expect(page.get_by_role("heading", name="🔍 Explore Fashion-MNIST")).to_be_visible()
    settle(page)
    page.get_by_test_id("stSidebar").get_by_text("Predict").click()
    expect(page.get_by_role("heading", name="🔮 Predict")).to_be_visible()
    settle(page)
    expect(page.get_by_text("2 pictures", exact=True)).to_be_visible()
    assert [true_class(card(page, p)) for p in (coat, bag)] == ["Coat", "Bag"]
    expect(page.get_by_text("what the network sees (28×28)")).to_have_count(2)
    assert_no_exception(page)


def test_a_class_guessed_from_the_file_name_counts_only_once_confirmed(
    page: Page, server: Server, dataset: Dataset
) -> None:
    open_page(page, server.url, "/Predict", "🔮 Predict")
    boot, sneaker = photo_of(dataset, 9, 1), photo_of(dataset, 7, 1)
    upload(page, picture("boot_on_blue.jpg", boot), picture("sneaker.jpg", sneaker))
    boot_card, sneaker_card = card(page, boot), card(page, sneaker)
    assert true_class(boot_card) == "Ankle boot"
    expect(boot_card.get_by_text("was guessed from the file name — confirm?")).to_be_visible()
    # Guesses are not scored: no accuracy yet, and a line saying why.
    expect(own_accuracy(page)).to_have_count(0)
    expect(page.get_by_text("2 pictures have a class guessed from the file name")).to_be_visible()
    screenshot(page, "predict-guessed")

    boot_card.get_by_role("button", name="Confirm").click()
    settle(page)
    expect(boot_card.get_by_text("was guessed from the file name")).to_have_count(0)
    expect(own_accuracy(page)).to_be_visible()
    expect(
        page.get_by_test_id("stMetric").filter(has_text="Accuracy on your pictures")
    ).to_have_count(1)
    sneaker_card.get_by_role("button", name="Clear").click()
    settle(page)
    assert true_class(sneaker_card) == "—"
    expect(page.get_by_text("have a class guessed from the file name")).to_have_count(0)
    assert true_class(boot_card) == "Ankle boot"
    # Counted: the confirmed boot alone, 1 picture.
    metric = page.get_by_test_id("stMetric").filter(has_text="Accuracy on your pictures")
    metric.get_by_test_id("stTooltipIcon").hover()
    expect(
        page.get_by_text(re.compile(r"^\d of 1 right, counting the classes you chose"))
    ).to_be_visible()
    assert_no_exception(page)


# -- 4 and 5. transparent pictures, plain messages, the size limit -----------------------------


def shown_original(page: Page, box: Locator) -> Image.Image:
    source = box.get_by_test_id("stImage").first.locator("img").get_attribute("src")
    assert source is not None
    answer = page.request.get(source if source.startswith("http") else page.url + source)
    return Image.open(io.BytesIO(answer.body())).convert("RGB")


def test_transparent_pictures_and_bad_files_in_plain_words(page: Page, server: Server) -> None:
    open_page(page, server.url, "/Predict", "🔮 Predict")
    uploader = page.get_by_test_id("stFileUploader")
    expect(uploader).to_contain_text("up to 20 MB each")
    expect(uploader).to_contain_text("20MB per file")
    expect(uploader).not_to_contain_text("100MB")

    white = boot_picture(ink=(255, 255, 255, 255), paper=(0, 0, 0, 0), mode="RGBA")
    white_png = encode(white, "PNG")
    too_big = encode(Image.new("RGB", (64, 64), "white"), "PNG")
    too_big += b"\0" * (config.MAX_UPLOAD_BYTES + 1024 - len(too_big))
    upload(
        page,
        picture("white-tshirt.png", white_png, "image/png"),
        picture("notes.png", b"name,size\nshirt,M\n", "image/png"),
        picture("huge.png", too_big, "image/png"),
    )
    box = card(page, white_png)
    expect(box).to_be_visible()
    original = np.asarray(shown_original(page, box))
    corner = original[:16, :16, 0]
    assert 100 < corner.mean() < 200, "the transparent background must not be shown white"
    height, width = original.shape[:2]
    assert original[int(height * 200 / 300), int(width * 100 / 400)].tolist() == [255] * 3

    refused = page.get_by_test_id("stAlertContainer").filter(has_text="notes.png")
    expect(refused).to_contain_text("not a picture the app can open")
    expect(refused).not_to_contain_text("Pillow")
    # The browser refuses the 21 MB file itself, in one line, and it is not kept.
    expect(uploader).to_contain_text("huge.png")
    expect(uploader).to_contain_text("20.0MB or smaller")
    expect(page.get_by_text("1 picture", exact=True)).to_be_visible()
    assert_no_exception(page)
    screenshot(page, "predict-transparent-and-refused")


# -- 6. iPhone photos ----------------------------------------------------------------------------


def test_an_iphone_heic_photo(page: Page, server: Server, dataset: Dataset, tmp_path) -> None:
    import pillow_heif

    photo = Image.open(io.BytesIO(photo_of(dataset, 9, 2)))
    path = tmp_path / "IMG_4032.HEIC"
    pillow_heif.from_pillow(photo).save(path, quality=85)
    payload = path.read_bytes()
    assert payload[4:12] == b"ftypheic"
    open_page(page, server.url, "/Predict", "🔮 Predict")
    upload(page, picture("IMG_4032.HEIC", payload, "image/heic"))
    box = card(page, payload)
    expect(box.get_by_text("what the network sees (28×28)")).to_be_visible()
    expect(box.get_by_text("Ankle boot —")).to_be_visible()
    expect(page.get_by_test_id("stAlertContainer").filter(has_text="IMG_4032")).to_have_count(0)
    assert_no_exception(page)


# -- 7. the camera -------------------------------------------------------------------------------


def test_a_photo_from_the_camera_is_predicted_and_kept(
    playwright: Playwright, server: Server, dataset: Dataset
) -> None:
    # Chromium's fake camera: a test pattern, with the permission granted.
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
        ],
    )
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.grant_permissions(["camera"], origin=server.url)
        context.add_init_script(TIMING)
        page = context.new_page()
        open_page(page, server.url, "/Predict", "🔮 Predict")
        coat = photo_of(dataset, 4, 3)
        upload(page, picture("IMG_7.jpg", coat))
        page.get_by_text("Use the camera").click()
        settle(page)
        camera = page.get_by_test_id("stCameraInput")
        expect(camera).to_contain_text("Take a photo")
        take = camera.get_by_role("button", name="Take Photo")
        expect(take).to_be_enabled(timeout=30_000)
        page.wait_for_timeout(1000)  # the fake stream's first frames
        take.click()
        settle(page)
        # The photo joins the kept pictures, beside the upload, and gets a verdict. (The
        # fake camera films a green test pattern with a turning disc: most frames get the
        # "unlike the clothes" warning, depending on the disc's angle.)
        expect(page.get_by_test_id("stImage").filter(has_text="camera photo 1.jpg")).to_be_visible()
        expect(page.get_by_text("2 pictures", exact=True)).to_be_visible()
        expect(page.get_by_text("what the network sees (28×28)")).to_have_count(2)
        expect(page.get_by_text(re.compile(r"^\w[\w/ -]* — \d+\.\d%"))).to_have_count(2)
        expect(card(page, coat)).to_be_visible()
        refusals = page.get_by_test_id("stAlertContainer").filter(has_text="camera photo")
        expect(refusals).to_have_count(0)
        # The camera is ready for another photo.
        expect(camera.get_by_role("button", name="Take Photo")).to_be_visible()
        assert_no_exception(page)
        screenshot(page, "predict-camera")
        context.close()
    finally:
        browser.close()


# -- 9. pictures unlike Fashion-MNIST ----------------------------------------------------------


def test_a_line_drawing_gets_the_unlike_fashion_mnist_warning(
    page: Page, server: Server, dataset: Dataset
) -> None:
    open_page(page, server.url, "/Predict", "🔮 Predict")
    sketch = drawing(OUTLINES["shoe"], 4)
    real = photo_of(dataset, 7, 4)
    upload(page, picture("my-drawing.png", sketch, "image/png"), picture("IMG_9.jpg", real))
    expect(card(page, sketch).get_by_text(UNUSUAL)).to_be_visible()
    expect(card(page, real).get_by_text("what the network sees (28×28)")).to_be_visible()
    expect(card(page, real).get_by_text(UNUSUAL)).to_have_count(0)
    assert_no_exception(page)
    screenshot(page, "predict-unusual")


# -- 10. file names that are Markdown, a broken dataset ---------------------------------------

TRACKER = "![t](http://10.255.255.1/track.png)"


def test_file_names_are_shown_literally_and_fetch_nothing(
    page: Page, server: Server, dataset: Dataset
) -> None:
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    open_page(page, server.url, "/Predict", "🔮 Predict")
    photo = photo_of(dataset, 0, 6)
    upload(
        page,
        picture(f"{TRACKER}.jpg", photo),
        picture(f"**{TRACKER}**.png", b"not a picture", "image/png"),
    )
    expect(card(page, photo).get_by_test_id("stImage").first).to_contain_text(f"{TRACKER}.jpg")
    refused = page.get_by_test_id("stAlertContainer").filter(has_text="not a picture the app")
    expect(refused).to_contain_text(f"**{TRACKER}**.png")
    page.get_by_text("Import a .keras file").click()
    settle(page)
    page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(
        [{"name": f"{TRACKER}.keras", "mimeType": "application/octet-stream", "buffer": b"no"}]
    )
    settle(page)
    expect(
        page.get_by_test_id("stAlertContainer").filter(has_text="not a .keras file")
    ).to_contain_text(f"{TRACKER}.keras")
    expect(page.locator("img[src*='10.255.255.1']")).to_have_count(0)
    assert [url for url in fetched if "10.255.255.1" in url] == []
    assert_no_exception(page)


def broken_copy(dataset: Dataset, folder: Path) -> Path:
    """The dataset's folder with its training images cut short, as an interrupted copy leaves it."""
    folder.mkdir()
    for source in dataset.path.iterdir():
        if source.name.startswith(("train-", "t10k-")):
            (folder / source.name).write_bytes(source.read_bytes())
    images = next(folder.glob("train-images*"))
    images.write_bytes(images.read_bytes()[:100_000])
    return folder


def test_uploads_and_imported_models_work_with_a_broken_dataset(
    page: Page, dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = broken_copy(dataset, tmp_path / "fashion-mnist")
    with pytest.raises(DataError):
        load_from_folder(broken)
    models = tmp_path / "models"
    models.mkdir()
    copy_shipped_runs(models)
    monkeypatch.setenv("FMNIST_DATA_DIR", str(broken))
    log = "streamlit-server-predict-broken-dataset"
    (OUTPUT_DIR / f"{log}.log").unlink(missing_ok=True)
    running = start_server(models, log)
    try:
        open_page(page, running.url, "/Predict", "🔮 Predict")
        coat = photo_of(dataset, 4, 7)
        upload(page, picture("IMG_coat.jpg", coat))
        expect(card(page, coat).get_by_text("what the network sees (28×28)")).to_be_visible()
        expect(card(page, coat).get_by_text(re.compile(r"^\w[\w/ -]* — \d+\.\d%"))).to_be_visible()
        open_tab(page, "🎲 A test image")
        expect(page.get_by_text("This tab needs the Fashion-MNIST test images")).to_be_visible()
        open_tab(page, "🧮 Confusion matrix")
        expect(page.get_by_text("This tab needs the Fashion-MNIST test images")).to_be_visible()
        open_tab(page, "📤 Your pictures")
        # An imported model works too.
        page.get_by_text("Import a .keras file").click()
        settle(page)
        shipped = next(models.glob("*/model.keras")).read_bytes()
        page.get_by_test_id("stFileUploader").first.locator("input[type=file]").set_input_files(
            [{"name": "mine.keras", "mimeType": "application/octet-stream", "buffer": shipped}]
        )
        settle(page)
        expect(page.get_by_text("Imported mine.keras")).to_be_visible()
        expect(page.get_by_text("1 picture", exact=True)).to_be_visible()
        expect(card(page, coat).get_by_text("what the network sees (28×28)")).to_be_visible()
        # No server path, and no other trace of the dataset's failure, on this page.
        expect(page.get_by_text(str(tmp_path))).to_have_count(0)
        expect(page.get_by_text("could not be loaded.")).to_have_count(0)
        assert_no_exception(page)
        screenshot(page, "predict-broken-dataset")
    finally:
        stop_server(running, log)


# -- 8. speed ----------------------------------------------------------------------------------


def test_interaction_times_in_chromium(page: Page, server: Server, dataset: Dataset) -> None:
    open_page(page, server.url, "/Predict", "🔮 Predict")
    for tab in ("🎲 A test image", "🧮 Confusion matrix", "🖼️ Gallery", "📤 Your pictures"):
        open_tab(page, tab)  # warm: the test set's probabilities are computed once per server
    kept = photo_of(dataset, 4, 5)
    upload(page, picture("IMG_5.jpg", kept))
    timings: dict[str, list[float]] = {}

    def timed(name: str, action: Callable[[], None]) -> None:
        # Once each: the medians of repeated rounds belong to `make bench` (bench/pages.py);
        # here every interaction must rerun the page without an exception.
        for _ in range(1):
            page.wait_for_timeout(300)
            action()
            took = settle(page, quiet_ms=1000)
            assert took is not None, f"{name}: no rerun"
            timings.setdefault(name, []).append(took)

    def switch_tab(name: str, back: str) -> Callable[[], None]:
        def switch() -> None:
            if page.get_by_role("tab", name=name, selected=True).count():
                open_tab(page, back)  # not timed: from another tab to this one is
                page.evaluate("() => { window.__input = null; }")
            page.get_by_role("tab", name=name).click()

        return switch

    options = iter(["Coat", "Shirt", "Coat"])
    timed("True class", lambda: choose(page, card(page, kept), next(options)))
    timed("tab: A test image", switch_tab("🎲 A test image", "📤 Your pictures"))
    timed("Random test image", lambda: page.get_by_role("button", name="Random test image").click())
    timed("tab: Confusion matrix", switch_tab("🧮 Confusion matrix", "🎲 A test image"))
    timed("Normalise", lambda: page.get_by_text("Normalise by row").click())
    timed("tab: Gallery", switch_tab("🖼️ Gallery", "🧮 Confusion matrix"))
    timed("Only mistakes", lambda: page.get_by_text("Only mistakes").click())
    timed("Reshuffle", lambda: page.get_by_role("button", name="Reshuffle").click())
    timed("first load", lambda: page.goto(server.url + "/Predict"))  # from navigation start
    medians = {name: round(statistics.median(values), 3) for name, values in timings.items()}
    (OUTPUT_DIR / "predict-timings.json").write_text(
        json.dumps({"medians_s": medians, "all_s": timings}, indent=1)
    )
    # Targets: 0.3 s an interaction, 2 s the first load. As elsewhere in the tests, the
    # times are measured and written down, not asserted: a shared machine's load decides
    # them as much as the page does.
    assert set(medians) == set(timings) and all(v > 0 for v in medians.values())
    assert_no_exception(page)


# -- why did it say that ------------------------------------------------------------------------


def shown_image(page: Page, image: Locator) -> np.ndarray:
    source = image.locator("img").get_attribute("src")
    assert source is not None
    answer = page.request.get(source if source.startswith("http") else page.url + source)
    return np.asarray(Image.open(io.BytesIO(answer.body())).convert("RGB"))


def test_why_this_answer_maps_the_push_towards_any_class(
    page: Page, server: Server, dataset: Dataset
) -> None:
    open_page(page, server.url, "/Predict", "🔮 Predict")
    boot = photo_of(dataset, 9, 0)
    upload(page, picture("boot.jpg", boot))
    box = card(page, boot)
    expect(box).to_contain_text("Ankle boot")
    why = box.get_by_test_id("stExpander").filter(has_text="Why this answer?")
    why.get_by_text("🔎 Why this answer?").click()
    settle(page)
    maps = why.get_by_test_id("stImage")
    expect(maps).to_have_count(2)
    expect(maps.nth(0)).to_contain_text("over what the network sees")
    expect(maps.nth(1)).to_contain_text("over your picture")
    expect(why).to_contain_text("Integrated gradients: the pixels that raised the score of")
    expect(why).to_contain_text("raised the score of Ankle boot")
    towards_boot = shown_image(page, maps.nth(0))
    # The grey picture now carries colour where the network looked.
    assert np.abs(towards_boot[..., 0].astype(int) - towards_boot[..., 2]).max() > 60
    screenshot(page, "predict-why")

    # Another class: "why not Sneaker?"
    choose(page, why.get_by_test_id("stSelectbox"), "Sneaker")
    expect(why).to_contain_text("raised the score of Sneaker")
    assert not np.array_equal(shown_image(page, why.get_by_test_id("stImage").nth(0)), towards_boot)
    why.get_by_text("Grad-CAM: which regions").click()
    settle(page)
    expect(why).to_contain_text("Grad-CAM on the last convolution: the regions whose features")
    expect(why).to_contain_text("raised the score of Sneaker")

    # A test image has the same question, on its own tab.
    open_tab(page, "🎲 A test image")
    panel = page.get_by_role("tabpanel", name="🎲 A test image")
    panel.get_by_text("🔎 Why this answer?").click()
    settle(page)
    expect(panel.get_by_test_id("stExpander").get_by_test_id("stImage")).to_have_count(1)
    expect(panel).to_contain_text("raised the score of Ankle boot")  # test image #0
    assert_no_exception(page)


# -- draw a garment -----------------------------------------------------------------------------


def stroke(page: Page, canvas: Locator, points: list[tuple[float, float]]) -> None:
    """One pen stroke through ``points`` (fractions of the canvas), as a mouse draws it."""
    box = canvas.bounding_box()
    assert box is not None
    at = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for start, end in itertools.pairwise(at):
        for step in range(1, 6):
            t = step / 5
            page.mouse.move(start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1]))
    page.mouse.up()


def test_a_drawing_is_predicted_as_it_is_drawn(page: Page, server: Server) -> None:
    open_page(page, server.url, "/Predict", "🔮 Predict")
    open_tab(page, "✏️ Draw")
    panel = page.get_by_role("tabpanel", name="✏️ Draw")
    expect(panel).to_contain_text("The network's answer appears here as you draw.")
    canvas = panel.locator("canvas").last  # Fabric.js draws on its upper canvas
    expect(canvas).to_be_visible(timeout=30_000)
    # Trousers: a waistband and two long legs, in black on white.
    stroke(page, canvas, [(0.3, 0.1), (0.7, 0.1)])
    settle(page)
    seen = panel.get_by_test_id("stImage").filter(has_text="what the network sees")
    expect(seen).to_be_visible()
    stroke(page, canvas, [(0.32, 0.12), (0.3, 0.9)])
    stroke(page, canvas, [(0.68, 0.12), (0.7, 0.9)])
    stroke(page, canvas, [(0.5, 0.15), (0.42, 0.9)])
    stroke(page, canvas, [(0.5, 0.15), (0.58, 0.9)])
    settle(page)
    pixels = shown_image(page, seen)
    # The strokes came out light on black, as Fashion-MNIST's pictures are.
    assert pixels.mean() < 128 and pixels.max() > 200
    verdict = panel.get_by_test_id("stMarkdown").filter(has_text="%").first
    expect(verdict).to_contain_text(re.compile(r"(" + "|".join(CLASS_NAMES) + r") — \d"))
    expect(panel.get_by_text("🔎 Why this answer?")).to_be_visible()
    screenshot(page, "predict-draw")
    assert_no_exception(page)


def test_inside_the_network_shows_each_layer_the_filters_and_the_separation(
    page: Page, server: Server
) -> None:
    open_page(page, server.url, "/Predict", "🔮 Predict")
    open_tab(page, "🎲 A test image")
    panel = page.get_by_role("tabpanel", name="🎲 A test image")
    panel.get_by_text("🧠 Inside the network").click()
    settle(page)
    inside = panel.get_by_test_id("stExpander").filter(has_text="Inside the network")
    expect(inside).to_contain_text("What each layer makes of this picture")
    # The shipped fast-wide: three blocks, each pooled and after its ReLU, then its filters.
    expect(inside.get_by_test_id("stImage")).to_have_count(4, timeout=30_000)
    expect(inside).to_contain_text("Activation, 3×3, 192 maps, the first 32 shown")
    expect(inside).to_contain_text("its 48 filters of 3×3 pixels")
    chart = inside.locator(".js-plotly-plot")
    expect(chart).to_be_visible()
    expect(chart).to_contain_text("pixels")
    screenshot(page, "predict-inside")
    assert_no_exception(page)


# Pixels of a canvas darker than any class colour or axis text: the stars' #111.
BLACK_PIXELS = """canvas => {
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let count = 0;
  for (let i = 0; i < data.length; i += 4)
    if (data[i + 3] > 200 && Math.max(data[i], data[i + 1], data[i + 2]) < 30) count += 1;
  return count;
}"""


def test_the_learned_space_pulls_the_classes_apart_and_a_click_shows_neighbours(
    page: Page, server: Server, dataset: Dataset
) -> None:
    open_page(page, server.url, "/Predict", "🔮 Predict")
    boot = photo_of(dataset, 9, 3)
    upload(page, picture("my boot.jpg", boot))
    open_tab(page, "🗺️ Learned space")
    panel = page.get_by_role("tabpanel", name="🗺️ Learned space")
    maps = panel.locator(".fmnist-map canvas")
    expect(maps).to_have_count(2, timeout=60_000)
    scores = [
        int(re.search(r"for (\d+)% of them", text).group(1))
        for text in panel.get_by_test_id("stMarkdown").filter(has_text="nearest class centre")
        .all_inner_texts()
    ]  # fmt: skip
    assert len(scores) == 2 and scores[1] > scores[0] + 20, scores  # pixels, then learned
    # The user's picture is a black star on both maps: nothing else there is near black.
    for chart in maps.all():  # 0 without a picture, 53 with one
        page.wait_for_function(f"c => ({BLACK_PIXELS})(c) >= 30", arg=chart.element_handle())
    # A click on the learned map: the image, its prediction, its nearest neighbours.
    learned = panel.locator(".st-key-predict_learned_space canvas")
    x, y, _ = point_on_the_map(page, learned)
    page.mouse.click(x, y)
    settle(page)
    expect(panel.get_by_text("Its 8 nearest neighbours for the network")).to_be_visible()
    expect(panel.locator(".fmnist-grid img")).to_have_count(8)
    screenshot(page, "predict-learned-space")
    assert_no_exception(page)
