"""Explore in a real Chromium: what a first-time user found wrong, checked where they saw it.

Each test failed on the page as it was at commit 0e43797: the map's "Inspect its
pixels" sent the image to an inspector 2,500 px up whose index box kept the old
number; 96 px samples packed in a third of the width with captions broken inside
names; values only on hover; no range for the index; ten overlapping histogram
lines; every widget reran the whole page. Screenshots go to
test-output/screenshots/explore-*.png. Timings are not asserted here: see
bench/pages.py (`python -m bench --only pages`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from fmnist import dataset_stats
from fmnist.data import CLASS_NAMES, Dataset

from .browser_support import (
    Server,
    assert_no_exception,
    open_page,
    point_on_the_map,
    screenshot,
    serve_shipped_runs,
    wait_until_idle,
)
from .conftest import OUTPUT_DIR

pytestmark = pytest.mark.browser

LOG_NAME = "streamlit-server-explore"
TITLE = "🔍 Explore Fashion-MNIST"

# Lines that each class name of the sample captions takes on screen.
CAPTION_NAME_LINES = """names => [
  ...document.querySelectorAll('.fmnist-grid figcaption')].map(f => {
  const walker = document.createTreeWalker(f, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const name = names.find(n => node.textContent.includes(n));
    if (!name) continue;
    const range = document.createRange();
    const start = node.textContent.indexOf(name);
    range.setStart(node, start);
    range.setEnd(node, start + name.length);
    const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
    return [name, tops.size];
  }
  return [null, 0];
})"""

# Everything the server sends, as text, from before the page's own scripts run.
RECORD_MESSAGES = """(() => {
  window.__received = [];
  const decode = data => new TextDecoder('latin1').decode(data);
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', event => {
        if (event.data instanceof ArrayBuffer) window.__received.push(decode(event.data));
        else if (event.data instanceof Blob)
          event.data.arrayBuffer().then(data => window.__received.push(decode(data)));
        else window.__received.push(String(event.data));
      });
    }
  };
})();"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app under `streamlit run`, with its own models folder holding the shipped run."""
    yield from serve_shipped_runs(tmp_path_factory, LOG_NAME)


def open_explore(page: Page, server: Server, tab: str | None = None) -> None:
    """Explore's first tab (samples and class balance, no Plotly), or another one."""
    open_page(page, server.url, "/Explore", TITLE)
    expect(page.locator(".fmnist-grid img")).to_have_count(16, timeout=60_000)
    expect(page.get_by_role("table")).to_contain_text("Ankle boot")
    # The first tab needs no charting code: the browser draws it without loading Plotly.
    expect(page.locator(".js-plotly-plot")).to_have_count(0)
    wait_until_idle(page)
    if tab is not None:
        open_tab(page, tab)


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    wait_until_idle(page)
    # Its chart: the map, the histograms' SVG panels, or a grid of pictures.
    charts = page.locator(".st-key-explore_pca canvas, .fmnist-hist, .fmnist-grid")
    expect(charts.first).to_be_visible(timeout=60_000)
    wait_until_idle(page)


MAP_TAB, AVERAGES_TAB, INTENSITIES_TAB = "One image and the map", "Average garments", "Pixel"


def pca_map(page: Page) -> Locator:
    return page.locator(".st-key-explore_pca canvas")


def inspected(page: Page, text: str) -> Locator:
    """The inspector's picture (a canvas of pixels) whose caption has ``text``."""
    return page.locator(".fmnist-picture").filter(has=page.locator("figcaption", has_text=text))


def cell_centre(canvas: Locator, row: int, column: int) -> tuple[float, float]:
    """Where a cell of the inspected picture is, in CSS pixels from the canvas's corner
    (its data-edge: the room for the row and column numbers; data-cell: a cell's side)."""
    edge, cell = (float(canvas.get_attribute(f"data-{name}") or 0) for name in ("edge", "cell"))
    assert cell > 0
    return edge + (column + 0.5) * cell, edge + (row + 0.5) * cell


def on_page(canvas: Locator, point: tuple[float, float]) -> tuple[float, float]:
    box = canvas.bounding_box()
    assert box
    return box["x"] + point[0], box["y"] + point[1]


def index_box(page: Page) -> Locator:
    return page.get_by_test_id("stNumberInputField")


def test_a_point_on_the_map_is_inspected_beside_it_and_plus_goes_on_from_it(
    page: Page, server: Server
) -> None:
    open_explore(page, server, MAP_TAB)
    chart = pca_map(page)
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    x, y, index = point_on_the_map(page, chart)
    page.mouse.click(x, y)
    wait_until_idle(page)

    # The index box and the picture show the clicked image, beside the map,
    # with no scrolling: where the user is looking.
    expect(index_box(page)).to_have_value(str(index))
    picture = inspected(page, f"#{index}:")
    expect(picture).to_be_in_viewport(ratio=0.9)
    expect(index_box(page)).to_be_in_viewport()
    map_box, picture_box = chart.bounding_box(), picture.bounding_box()
    assert map_box and picture_box
    assert picture_box["x"] >= map_box["x"] + map_box["width"] - 5, (map_box, picture_box)
    assert picture_box["y"] < map_box["y"] + map_box["height"] / 2, (map_box, picture_box)
    screenshot_viewport(page, "explore-map-click")

    # + goes on from the inspected image, not from the box's old value.
    page.get_by_test_id("stNumberInputStepUp").click()
    wait_until_idle(page)
    expect(index_box(page)).to_have_value(str(index + 1))
    expect(inspected(page, f"#{index + 1}:")).to_be_visible()
    # The point picked before is picked again by a click, though the map did not change.
    page.mouse.click(x, y)
    wait_until_idle(page)
    expect(index_box(page)).to_have_value(str(index))
    expect(inspected(page, f"#{index}:")).to_be_visible()
    # The whole tab without Plotly: its 4.7 MB of JavaScript was never fetched.
    resources = page.evaluate("() => performance.getEntriesByType('resource').map(e => e.name)")
    assert not [name for name in resources if "Plotly" in name]
    assert_no_exception(page)


def test_the_legend_shows_one_class_alone_and_all_of_them_again(
    page: Page, server: Server, dataset: Dataset
) -> None:
    open_explore(page, server, MAP_TAB)
    chart = pca_map(page)
    expect(chart).to_have_attribute("aria-label", re.compile(r"^A map of 3000 images, 3000 shown"))
    legend = page.locator(".fmnist-map-legend")
    legend.get_by_role("button", name="Sneaker").click()
    # The sneakers among the map's 3,000 images, drawn by the browser alone (no rerun).
    stats = dataset_stats.explore_stats(dataset.x_train, dataset.y_train)
    indices, _ = stats.pca_sample(3000)
    sneakers = int((dataset.y_train[indices] == CLASS_NAMES.index("Sneaker")).sum())
    expect(chart).to_have_attribute("aria-label", re.compile(rf" {sneakers} shown"))
    legend.get_by_role("button", name="Bag").click(modifiers=["Shift"])
    bags = int((dataset.y_train[indices] == CLASS_NAMES.index("Bag")).sum())
    expect(chart).to_have_attribute("aria-label", re.compile(rf" {sneakers + bags} shown"))
    legend.get_by_role("button", name="all classes").click()
    expect(chart).to_have_attribute("aria-label", re.compile(" 3000 shown"))
    expect(legend.get_by_role("button", name="all classes")).to_have_count(0)
    # A double-click on the map, away from any point, shows every class too; it picks nothing.
    legend.get_by_role("button", name="Coat").click()
    expect(chart).to_have_attribute("aria-label", re.compile(r" [1-9]\d* shown"))
    before = index_box(page).input_value()
    chart.dblclick(position={"x": 4, "y": 4})  # the margin, outside the plotted frame
    expect(chart).to_have_attribute("aria-label", re.compile(" 3000 shown"))
    wait_until_idle(page)
    expect(index_box(page)).to_have_value(before)
    assert_no_exception(page)


def screenshot_viewport(page: Page, name: str) -> None:
    """What the user sees, without growing the window to the whole page."""
    folder = OUTPUT_DIR / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(folder) / f"{name}.png"))


def image_rows(page: Page) -> list[list[dict]]:
    boxes = [image.bounding_box() for image in page.locator(".fmnist-grid img").all()]
    rows: list[list[dict]] = []
    for box in sorted(boxes, key=lambda b: (round(b["y"]), b["x"])):
        if rows and abs(rows[-1][0]["y"] - box["y"]) < 3:
            rows[-1].append(box)
        else:
            rows.append([box])
    return rows


def assert_row_fills_the_width(page: Page, row: list[dict]) -> None:
    # The controls above the grid span the content's width.
    left = page.get_by_test_id("stButtonGroup").bounding_box()["x"]
    button = page.get_by_role("button", name="Reshuffle").bounding_box()
    width = button["x"] + button["width"] - left
    span = row[-1]["x"] + row[-1]["width"] - row[0]["x"]
    assert span >= 0.9 * width, f"the row spans {span:.0f} of {width:.0f} px"
    gaps = [b["x"] - (a["x"] + a["width"]) for a, b in itertools.pairwise(row)]
    assert min(gaps) >= 8, f"gaps between pictures: {gaps}"


@pytest.mark.parametrize("size", [(1400, 1000), (1280, 800)], ids=["1400x1000", "1280x800"])
def test_the_sample_grid_uses_the_width_and_captions_keep_names_whole(
    page: Page, server: Server, size: tuple[int, int]
) -> None:
    page.set_viewport_size({"width": size[0], "height": size[1]})
    open_explore(page, server)
    lines = page.evaluate(CAPTION_NAME_LINES, list(CLASS_NAMES))
    assert len(lines) == 16 and all(name for name, _ in lines), lines
    broken = [name for name, count in lines if count != 1]
    assert not broken, f"class names broken over lines: {broken}"
    rows = image_rows(page)
    assert [len(row) for row in rows] == [8, 8]
    for row in rows:
        assert_row_fills_the_width(page, row)
        assert min(box["width"] for box in row) >= 80
    screenshot(page, f"explore-{size[0]}")
    page.get_by_role("heading", name="Samples").evaluate("e => e.scrollIntoView()")
    screenshot_viewport(page, f"explore-samples-{size[0]}")

    # Nine pictures: one row across the width, not a block in the left third.
    page.get_by_test_id("stSelectbox").filter(has_text="Images").click()
    page.get_by_role("option", name="9 images", exact=True).click()
    wait_until_idle(page)
    expect(page.locator(".fmnist-grid img")).to_have_count(9)
    rows = image_rows(page)
    assert [len(row) for row in rows] == [9]
    assert_row_fills_the_width(page, rows[0])
    assert_no_exception(page)


def test_show_values_writes_every_pixel_value_in_its_cell(
    page: Page, server: Server, dataset: Dataset
) -> None:
    open_explore(page, server, MAP_TAB)
    page.get_by_text("Show values", exact=True).click()
    wait_until_idle(page)
    cells = page.locator("table.fmnist-pixels.values td")
    expect(cells).to_have_count(28 * 28)
    expected = [str(v) for v in dataset.x_train[0].ravel().tolist()]
    assert cells.all_inner_texts() == expected
    # Readable: every number fits its cell, at a size one can read.
    fits = cells.evaluate_all(
        "cells => cells.every(c => c.scrollWidth <= c.clientWidth && c.clientWidth >= 20)"
    )
    assert fits
    font = cells.first.evaluate("c => parseFloat(getComputedStyle(c).fontSize)")
    assert font >= 10
    page.locator("table.fmnist-pixels.values").scroll_into_view_if_needed()
    screenshot_viewport(page, "explore-values")
    # The numbers follow the inspected image, and stay one table.
    page.get_by_test_id("stNumberInputStepUp").click()
    wait_until_idle(page)
    expect(page.locator("table.fmnist-pixels.values caption")).to_have_text(
        f"#1: {CLASS_NAMES[dataset.y_train[1]]}: its 784 values"
    )
    assert cells.all_inner_texts() == [str(v) for v in dataset.x_train[1].ravel().tolist()]
    page.get_by_test_id("stNumberInputStepDown").click()
    wait_until_idle(page)
    page.get_by_text("Show values", exact=True).click()
    wait_until_idle(page)
    expect(cells).to_have_count(0)
    # The picture stays: each cell shaded by its value, which shows on hover.
    expect(page.locator("table.fmnist-pixels")).to_have_count(0)
    first = dataset.x_train[0]
    canvas = inspected(page, "#0:").locator("canvas")
    for row, column in ((5, 14), (9, 14), (0, 0), (27, 27)):
        shade = canvas.evaluate(
            "(c, [x, y]) => Array.from(c.getContext('2d').getImageData("
            "x * devicePixelRatio, y * devicePixelRatio, 1, 1).data)",
            list(cell_centre(canvas, row, column)),
        )
        value = int(first[row, column])
        assert shade == [value, value, value, 255], (row, column, shade)
    tip = page.locator(".fmnist-picture-tip.visible")
    page.mouse.move(*on_page(canvas, cell_centre(canvas, 5, 14)))
    expect(tip).to_have_text(f"row 5, column 14: {first[5, 14]}")
    expect(page.locator(".fmnist-picture-cell.visible")).to_be_visible()
    page.mouse.move(*on_page(canvas, cell_centre(canvas, 27, 0)))
    expect(tip).to_have_text(f"row 27, column 0: {first[27, 0]}")
    page.mouse.move(*on_page(canvas, cell_centre(canvas, -1, 5)))  # the numbers: no cell
    expect(tip).to_have_count(0)
    assert_no_exception(page)


def test_in_a_narrow_column_the_picture_shrinks_and_still_names_each_cell(
    page: Page, server: Server, dataset: Dataset
) -> None:
    page.set_viewport_size({"width": 900, "height": 1000})  # a column of about 190 px
    open_explore(page, server, MAP_TAB)
    canvas = inspected(page, "#0:").locator("canvas")
    canvas.scroll_into_view_if_needed()
    column = canvas.evaluate("c => c.closest('[data-testid=stColumn]').clientWidth")
    shown = canvas.bounding_box()
    assert shown and shown["width"] <= column, (shown, column)
    edge, cell = (float(canvas.get_attribute(f"data-{name}") or 0) for name in ("edge", "cell"))
    scale = shown["width"] / (edge + 28 * cell)
    assert 0.3 < scale < 0.9, scale  # smaller than its own size, not collapsed
    assert abs(shown["height"] - shown["width"]) < 2  # square, as the picture is
    tip = page.locator(".fmnist-picture-tip.visible")
    first = dataset.x_train[0]
    for row, column_number in ((5, 14), (27, 27), (20, 3)):
        x, y = cell_centre(canvas, row, column_number)
        page.mouse.move(shown["x"] + x * scale, shown["y"] + y * scale)
        expect(tip).to_have_text(f"row {row}, column {column_number}: {first[row, column_number]}")
    assert_no_exception(page)


def test_an_index_past_the_end_is_refused_with_the_range(page: Page, server: Server) -> None:
    open_explore(page, server, MAP_TAB)
    number_input = page.get_by_test_id("stNumberInput")
    expect(number_input).to_contain_text("0–59,999")
    box = index_box(page)
    box.fill("99999")
    box.press("Enter")
    wait_until_idle(page)
    message = page.get_by_test_id("stAlert").filter(has_text="#99,999")
    expect(message).to_be_visible()
    expect(message).to_contain_text("0–59,999")
    expect(box).to_have_value("59999")
    expect(inspected(page, "#59999:")).to_be_visible()
    expect(page.get_by_text("Press Enter to apply")).to_have_count(0)
    # A valid index clears the message.
    box.fill("42")
    box.press("Enter")
    wait_until_idle(page)
    expect(inspected(page, "#42:")).to_be_visible()
    expect(message).to_have_count(0)
    assert_no_exception(page)


def test_intensity_histograms_are_one_panel_per_class(page: Page, server: Server) -> None:
    open_explore(page, server, INTENSITIES_TAB)
    panels = page.locator(".fmnist-hist figure")
    expect(panels).to_have_count(10)
    assert panels.locator("figcaption").all_inner_texts() == list(CLASS_NAMES)
    # Five panels a row, each wide enough to read.
    boxes = [box for box in (panel.bounding_box() for panel in panels.all()) if box]
    assert len({round(b["y"]) for b in boxes}) == 2 and min(b["width"] for b in boxes) > 120
    panels.first.scroll_into_view_if_needed()
    screenshot_viewport(page, "explore-histograms")
    page.get_by_text("Logarithmic scale", exact=True).click()
    wait_until_idle(page)
    expect(page.locator('.fmnist-hist[data-scale="log"]')).to_have_count(1)
    # Every panel is drawn: its picture has loaded, at the panel's width.
    sizes = panels.locator("img").evaluate_all(
        "imgs => imgs.map(i => i.complete && i.naturalWidth > 0 ? i.clientWidth : 0)"
    )
    assert len(sizes) == 10 and min(sizes) > 120, sizes
    assert_no_exception(page)


def test_a_widget_reruns_only_its_own_part_of_the_page(page: Page, server: Server) -> None:
    # A full rerun sends every element again; a fragment's rerun sends its own.
    page.add_init_script(RECORD_MESSAGES)
    open_explore(page, server)
    first_load = "".join(page.evaluate("() => window.__received"))
    balance = "training images | test images"  # the class table, outside every fragment
    assert balance in first_load

    def click(text: str) -> Callable[[], None]:
        return lambda: page.get_by_text(text, exact=True).click()

    def in_tab(tab: str, action: Callable[[], None]) -> Callable[[], None]:
        def act() -> None:
            if not page.get_by_role("tab", name=tab, selected=True).count():
                open_tab(page, tab)
                page.evaluate("() => { window.__received = []; }")
            action()

        return act

    # Each widget, and what lies outside its part: the page's title and, in the first
    # tab, the class table.
    title = "Explore Fashion-MNIST"
    actions: dict[str, tuple[Callable[[], None], list[str]]] = {
        "Reshuffle": (
            lambda: page.get_by_role("button", name="Reshuffle").click(),
            [title, balance],
        ),
        "Class: Bag": (
            lambda: (
                page.get_by_test_id("stButtonGroup")
                .get_by_role("button", name="Bag", exact=True)
                .click()
            ),
            [title, balance],
        ),
        "Index +": (
            in_tab(MAP_TAB, lambda: page.get_by_test_id("stNumberInputStepUp").click()),
            [title, "A 2-D map of the data (PCA)"],  # the map's 3,000 points stay put
        ),
        "Leave out background": (
            in_tab(INTENSITIES_TAB, click("Leave out background pixels (0)")),
            [title],
        ),
        "Logarithmic scale": (click("Logarithmic scale"), [title]),
    }
    for name, (action, elsewhere) in actions.items():
        page.evaluate("() => { window.__received = []; }")
        action()
        wait_until_idle(page)
        page.wait_for_timeout(300)
        received = "".join(page.evaluate("() => window.__received"))
        assert received, f"{name}: nothing came back"
        resent = [text for text in elsewhere if text in received]
        assert not resent, f"{name} reran the whole page: {resent} sent again"
    # The class picked with one click filters the samples, and stays picked.
    open_tab(page, "Classes and samples")
    captions = page.locator(".fmnist-grid figcaption b")
    expect(captions).to_have_count(16)
    assert set(captions.all_inner_texts()) == {"Bag"}
    assert_no_exception(page)


def test_a_tab_keeps_its_settings_while_another_is_open(page: Page, server: Server) -> None:
    open_explore(page, server, MAP_TAB)
    box = index_box(page)
    box.fill("1234")
    box.press("Enter")
    wait_until_idle(page)
    expect(inspected(page, "#1234:")).to_be_visible()
    page.get_by_role("tab", name="Classes and samples").click()
    wait_until_idle(page)
    expect(page.locator(".fmnist-grid img")).to_have_count(16)
    open_tab(page, MAP_TAB)
    expect(index_box(page)).to_have_value("1234")
    expect(inspected(page, "#1234:")).to_be_visible()
    page.get_by_role("tab", name=AVERAGES_TAB).click()
    wait_until_idle(page)
    # Two grids of ten pictures, the means and the standard deviations, each named.
    expect(page.locator(".fmnist-grid img")).to_have_count(20)
    expect(page.locator(".fmnist-grid figcaption b").first).to_have_text("T-shirt/top")
    screenshot(page, "explore-averages")
    assert_no_exception(page)


def server_has_tensorflow(pid: int) -> bool:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "_pywrap_tensorflow" in maps or "libtensorflow" in maps


def test_home_and_explore_leave_tensorflow_out_of_the_server(page: Page, server: Server) -> None:
    open_page(page, server.url, "/", "👕 Fashion-MNIST Studio")
    open_explore(page, server)
    assert not server_has_tensorflow(server.process.pid)
