"""Safe to run for a class, in Chromium: the access code, literal run names, malformed runs.

One server for the module, started with FMNIST_ACCESS_CODE and FMNIST_ADMIN_TOKEN
set, over a models folder that holds the shipped run, a run named like a tracking
picture, a plainer run, and a few malformed run.json files.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, expect

from fmnist.jobs.store import JobStore, hash_token
from fmnist.schema import TrainConfig

from .browser_support import (
    Server,
    assert_no_exception,
    runs_table,
    screenshot,
    start_server,
    stop_server,
    wait_until_idle,
)
from .conftest import OUTPUT_DIR, copy_shipped_runs
from .test_malformed_runs import MALFORMED

pytestmark = pytest.mark.browser

LOG_NAME = "streamlit-server-safety"
ACCESS_CODE = "correct horse 7"
SESSION_KEY = "the-students-own-secret"
TRACKER_HOST = "10.255.255.1"
TRACKER_NAME = f"![t](http://{TRACKER_HOST}/track.png)"
TRACKER_RUN = "20261208-110000-fast-wide-tracker-beef"
PLAIN_RUN = "20261208-100000-fast-wide-plain-cafe"
BAD_RUNS = ("accuracy-as-text", "config-lr-as-text", "not-json")
# Each page and a heading that only the page itself draws, never the access form.
PAGES = {
    "/": "Status",
    "/Explore": "🔍 Explore Fashion-MNIST",
    "/Train": "🏋️ Train a network",
    "/Predict": "🔮 Predict",
}


class Models:
    job_id = ""


def copy_run(models: Path, run_id: str, **changes: object) -> None:
    """A copy of the shipped run (its real model) under another id, with ``changes``."""
    shipped = next(f for f in models.iterdir() if f.is_dir() and not f.name.startswith("."))
    shutil.copytree(shipped, models / run_id)
    record = json.loads((models / run_id / "run.json").read_text())
    record.pop("shipped", None)
    record.update(changes)
    (models / run_id / "run.json").write_text(json.dumps(record))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    models = tmp_path_factory.mktemp("models")
    copy_shipped_runs(models)
    copy_run(
        models,
        TRACKER_RUN,
        name=TRACKER_NAME,
        test_accuracy=0.5,
        finished_at="2026-12-08T11:00:00",  # newer than the shipped run
        owner=hash_token(SESSION_KEY),
    )
    copy_run(models, PLAIN_RUN, name="plain", test_accuracy=0.4, finished_at="2026-12-08T10:00")
    for name in BAD_RUNS:
        (models / name).mkdir()
        (models / name / "model.keras").write_bytes(b"PK\x03\x04 a model")
        (models / name / "run.json").write_bytes(MALFORMED[name])
    # The session holding SESSION_KEY started this job (cancelled while queued).
    store = JobStore(models / ".jobs" / "jobs.sqlite3")
    Models.job_id = store.create(TrainConfig(network="mlp", epochs=1, limit=1000), SESSION_KEY)
    store.request_stop(Models.job_id)
    (OUTPUT_DIR / f"{LOG_NAME}.log").unlink(missing_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        # start_server hands its own environment on to `streamlit run`.
        patch.setenv("FMNIST_ACCESS_CODE", ACCESS_CODE)
        patch.setenv("FMNIST_ADMIN_TOKEN", "operator-secret")
        running = start_server(models, LOG_NAME)
    yield running
    stop_server(running, LOG_NAME)


def enter_code(page: Page, code: str) -> None:
    field = page.get_by_label("Access code")
    field.fill(code)
    field.press("Enter")
    wait_until_idle(page)


def expect_access_form_only(page: Page, heading: str) -> None:
    expect(page.get_by_label("Access code")).to_be_visible(timeout=90_000)
    expect(page.get_by_role("heading", name=heading)).to_have_count(0)
    expect(page.get_by_test_id("stPageLink")).to_have_count(0)  # not even the sidebar


def open_behind_the_code(page: Page, url: str, heading: str) -> None:
    """Open a page by its link: the code form alone first, then the page once it is given."""
    page.goto(url)
    wait_until_idle(page)
    expect_access_form_only(page, heading)
    enter_code(page, ACCESS_CODE)
    expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=90_000)
    wait_until_idle(page)


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_asks_for_the_code_refuses_a_wrong_one_and_opens_with_the_right_one(
    page: Page, server: Server, path: str
) -> None:
    heading = PAGES[path]
    page.goto(server.url + path)
    wait_until_idle(page)
    expect_access_form_only(page, heading)
    enter_code(page, "correct horse 8")
    expect(page.get_by_text("Wrong access code.")).to_have_count(1)
    expect_access_form_only(page, heading)
    enter_code(page, ACCESS_CODE)
    expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=90_000)
    expect(page.get_by_label("Access code")).to_have_count(0)
    expect(page.get_by_test_id("stSidebar").get_by_text("Home")).to_be_visible()
    # Once per session: the other pages open straight away.
    page.get_by_test_id("stSidebar").get_by_text("Train").click()
    expect(page.get_by_role("heading", name=PAGES["/Train"])).to_be_visible(timeout=90_000)
    expect(page.get_by_label("Access code")).to_have_count(0)
    wait_until_idle(page)
    assert_no_exception(page)


def test_train_keeps_its_query_parameters_skips_bad_runs_and_shows_names_literally(
    page: Page, server: Server
) -> None:
    requested: list[str] = []

    def remember(request: Request) -> None:
        requested.append(request.url)

    page.on("request", remember)
    open_behind_the_code(
        page, f"{server.url}/Train?job={Models.job_id}&key={SESSION_KEY}", PAGES["/Train"]
    )
    # ?job= reached the page: it shows this session's own (cancelled) job.
    expect(page.get_by_role("heading", name="Training mlp")).to_be_visible()
    # The malformed runs are skipped, each with one line; the good ones are listed.
    expect(page.get_by_text("skipped accuracy-as-text: run 'accuracy-as-text'")).to_be_visible()
    grid = runs_table(page)  # a canvas
    grid.scroll_into_view_if_needed()
    # Newest first: the tracker-named run, then the plain one, then the shipped one.
    box = grid.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 18, box["y"] + 35 * 1 + 17)
    wait_until_idle(page)
    label = f"{TRACKER_NAME} (fast-wide)"
    expect(page.get_by_test_id("stDownloadButton")).to_contain_text(label)
    # ?key= reached the page too: this session trained that run, so it may delete it.
    page.get_by_role("button", name="🗑️ Delete").click()
    expect(page.get_by_text(f"Delete 1 run: {label}?")).to_be_visible()
    page.get_by_role("button", name="Yes, delete").click()
    wait_until_idle(page)
    expect(page.get_by_text(f"Deleted 1 run: {label}.")).to_be_visible()
    assert not (server.models / TRACKER_RUN).exists()
    assert_no_exception(page)
    screenshot(page, "train-literal-run-name")
    expect(page.locator(f"img[src*='{TRACKER_HOST}']")).to_have_count(0)
    assert not [url for url in requested if TRACKER_HOST in url], requested


def test_predict_renders_beside_bad_runs_and_keeps_its_run_parameter(
    page: Page, server: Server
) -> None:
    open_behind_the_code(page, f"{server.url}/Predict?run={PLAIN_RUN}", PAGES["/Predict"])
    expect(page.get_by_text("skipped not-json: run 'not-json'")).to_be_visible()
    # Not the best run (the shipped one): the one the link named.
    chosen = page.get_by_role("combobox", name="Run (best test accuracy first)")
    expect(chosen).to_have_value(re.compile(f"^{PLAIN_RUN} "))
    assert_no_exception(page)
