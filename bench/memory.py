"""The web server's resident memory after a walk through every page, now and before.

The walk, in one Chromium session on a fresh server: Home; Explore (its five charts, every
tab); Train, with an ``mlp`` on 2,000 images for 1 epoch to "Saved as run"; Predict, with
one uploaded photo to its prediction. Then VmRSS of the streamlit process is read from
/proc. "Before" is the same walk against commit 0550cff (TensorFlow in the server),
checked out in a temporary git worktree and served by the same virtual environment.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.product import (
    ROOT,
    Server,
    as_photo,
    close_page,
    exceptions_on,
    has_tensorflow,
    new_page,
    open_page,
    open_predict,
    private_mb,
    say,
    start_training,
    test_images,
    upload_files,
    wait_prediction,
    wait_saved,
    wait_until_idle,
)

BEFORE_COMMIT = "0550cff"


def walk(server: Server, browser) -> dict:
    from playwright.sync_api import expect

    x, y = test_images()
    coat = int(np.flatnonzero(y == 4)[0])
    photo = ("coat.jpg", as_photo(x[coat], np.random.default_rng(1)))
    seconds = {}
    page = new_page(browser)
    try:
        seconds["home"] = open_page(page, server.url, "/")
        started = time.perf_counter()
        open_page(page, server.url, "/Explore")
        tabs = page.get_by_role("tab")
        if tabs.count():  # today's Explore: every tab in turn
            for number in range(1, tabs.count()):
                tabs.nth(number).click()
                # Each tab's chart: Plotly's, or the histograms' SVG panels.
                expect(page.locator(".js-plotly-plot, .fmnist-hist").first).to_be_visible()
                wait_until_idle(page)
        else:  # the page before, all on one page
            expect(page.locator(".js-plotly-plot")).to_have_count(6)
        seconds["explore"] = time.perf_counter() - started
        started = time.perf_counter()
        open_page(page, server.url, "/Train")
        start_training(page, "mlp", "2,000", 1)
        wait_saved(page)
        seconds["train_mlp_2000x1"] = time.perf_counter() - started
        started = time.perf_counter()
        open_predict(page, server.url)
        upload_files(page, [photo])
        wait_prediction(page, photo[0])
        seconds["predict_first_upload"] = time.perf_counter() - started
        errors = exceptions_on(page)
    finally:
        close_page(page)
    time.sleep(1.0)
    helpers = server.helpers_rss_mb()
    helpers_private = server.helpers_rss_mb(private_mb)
    return {
        "server_rss_mb": round(server.rss_mb()),
        "server_private_mb": round(private_mb(server.pid)),
        "server_has_tensorflow": has_tensorflow(server.pid),
        "helper_processes_rss_mb": {k: round(v) for k, v in helpers.items()},
        # The server and every process it started: VmRSS counts the shared libraries
        # (TensorFlow's, mostly) once per process; private memory counts them nowhere.
        "all_processes_rss_mb": round(server.rss_mb() + sum(helpers.values())),
        "all_processes_private_mb": round(private_mb(server.pid) + sum(helpers_private.values())),
        "walk_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "page_exceptions": errors,
        "server_log_tracebacks": server.tracebacks(),
    }


def now(browser) -> dict:
    say("fresh server (this tree): Home, Explore, Train an mlp, Predict an upload")
    with Server("memory-now") as server:
        result = walk(server, browser)
    say(f"  server VmRSS {result['server_rss_mb']} MB; helpers {result['helper_processes_rss_mb']}")
    return result


def before(browser) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="fmnist-bench-before-"))
    tree = folder / "before"
    say(f"git worktree add {tree} {BEFORE_COMMIT}")
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(tree), BEFORE_COMMIT],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    try:
        say(f"fresh server ({BEFORE_COMMIT}, TensorFlow in the server): the same walk")
        with Server("memory-before", app_dir=tree) as server:
            result = walk(server, browser)
        say(
            f"  server VmRSS {result['server_rss_mb']} MB; helpers "
            f"{result['helper_processes_rss_mb']}"
        )
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=False)
        folder.rmdir() if folder.exists() and not any(folder.iterdir()) else None
    result["commit"] = BEFORE_COMMIT
    return result
