"""A class on one server: concurrent sessions, and the server's memory after many visitors.

- concurrent sessions: four browser sessions at once on one server, two training (``mlp``
  on 10,000 images for 3 epochs each, started from the Train page one after the other:
  with one worker the second waits in the queue) and two uploading photos on Predict
  while they train. Reported: exceptions on any page (none expected), whether both runs
  were saved, and the slowest upload-to-prediction time (the page's own clock, as in
  bench/interactive.py).
- memory after many visitors: the server's resident memory after Home, Explore, Train and
  Predict were opened once, then after 20 more sessions each opened every page and were
  closed. Streamlit keeps a session's state until its connection closes.
"""

from __future__ import annotations

import time

from bench.interactive import FILE_CLOCK, PREDICTION_SHOWN, Pictures
from bench.product import (
    Server,
    close_page,
    exceptions_on,
    find_run,
    new_page,
    open_page,
    open_predict,
    remove_uploads,
    say,
    start_training,
    upload_files,
    wait_saved,
)
from fmnist.jobs.store import JobStore

UPLOADS_PER_SESSION = 4
VISITORS = 20


def upload_and_time(page, picture: tuple[str, bytes]) -> float:
    """Seconds from the file in the browser to its prediction shown (then removed)."""
    page.evaluate(FILE_CLOCK)
    upload_files(page, [picture])
    page.wait_for_function(PREDICTION_SHOWN, arg=picture[0], polling="raf", timeout=120_000)
    seconds = page.evaluate("() => (window.__shownAt - window.__chosenAt) / 1000")
    remove_uploads(page)
    return seconds


def concurrent_sessions(server: Server, browser) -> dict:
    say("4 sessions at once: 2 train an mlp (10,000 images x 3 epochs), 2 upload photos")
    pictures = Pictures()
    trainers = [new_page(browser) for _ in range(2)]
    predictors = [new_page(browser) for _ in range(2)]
    pages = trainers + predictors
    try:
        for page in predictors:
            open_predict(page, server.url)
        jobs = []
        for page in trainers:
            open_page(page, server.url, "/Train")
            jobs.append(start_training(page, "mlp", "10,000", 3)[1])
        store = JobStore(server.store_path)
        upload_ms: list[float] = []
        # Uploads in turn from the two Predict sessions while the jobs run or wait.
        for round_number in range(UPLOADS_PER_SESSION):
            for page in predictors:
                upload_ms.append(round(upload_and_time(page, pictures.next()) * 1000))
            states = [store.get(job, with_events=False).state.value for job in jobs]
            say(f"  round {round_number + 1}: uploads {upload_ms[-2:]} ms; jobs {states}")
        for page in trainers:
            wait_saved(page)
        saved = [find_run(server.models, job) is not None for job in jobs]
        errors = sum(exceptions_on(page) for page in pages)
    finally:
        for page in pages:
            close_page(page)
    result = {
        "runs_saved": sum(saved),
        "jobs": len(jobs),
        "page_exceptions": errors,
        "upload_ms": upload_ms,
        "slowest_upload_ms": max(upload_ms),
        "server_log_tracebacks": server.tracebacks(),
    }
    say(
        f"  {result['runs_saved']} of 2 runs saved, {errors} exceptions on the pages, "
        f"slowest upload {result['slowest_upload_ms']} ms"
    )
    return result


def visit_every_page(server: Server, browser) -> None:
    page = new_page(browser)
    try:
        for path in ("/", "/Explore", "/Train"):
            open_page(page, server.url, path)
        open_predict(page, server.url)
    finally:
        close_page(page)


def memory_after_visitors(server: Server, browser) -> dict:
    say(f"server memory: after one visitor, then after {VISITORS} more (each closed)")
    visit_every_page(server, browser)
    time.sleep(2.0)
    after_one = server.rss_mb()
    for _ in range(VISITORS):
        visit_every_page(server, browser)
    # Streamlit drops a session a little after its connection closes.
    time.sleep(5.0)
    after_many = server.rss_mb()
    result = {
        "server_rss_mb_after_1": round(after_one),
        "visitors": VISITORS + 1,
        "server_rss_mb_after_all": round(after_many),
        "growth_mb_per_visitor": round((after_many - after_one) / VISITORS, 1),
    }
    say(f"  {result}")
    return result


def run(browser) -> dict:
    with Server("safety") as server:
        result = {"concurrent": concurrent_sessions(server, browser)}
        result["memory"] = memory_after_visitors(server, browser)
    return result
