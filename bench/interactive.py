"""What a user waits for: a prediction after an upload (idle, and while a CNN trains), and
a Stop.

Upload to prediction: on the Predict page in Chromium, by the page's own clock, from the
moment the browser has the file (the uploader's ``change`` event, as after a user picks a
file) to the moment the picture's row shows what the network sees (28×28), the verdict
("Class — 97.1%") and the softmax bars, checked on every animation frame. The clock does
not start at ``set_input_files``: Playwright first copies the file into the browser through
its DevTools pipe, 0.3 s for a 1.5 MB photo, a cost no user's file picker has.
Each page's first upload is reported apart (a session's first: what every visitor meets);
then every timed upload is a new picture, warm (the service, the caches and the session
have done one prediction; new bytes: nothing comes from a cache), and is removed again
before the next one, from the uploader and from the pictures the page keeps, so that
every figure is for one picture.

Stop: from the click on the Train page's "⏹️ Stop" (the click event in the page) to the
run saved, both as run.json on disk and as "Saved as run" on the page, the test-set
evaluation included; with the steps in between (the stop request in the job store, the
end of the fit).
"""

from __future__ import annotations

import secrets
import time

import numpy as np

from bench.product import (
    Server,
    close_page,
    exceptions_on,
    find_run,
    median,
    new_page,
    open_page,
    open_predict,
    remove_uploads,
    say,
    start_training,
    test_images,
    upload_files,
    wait_prediction,
)
from fmnist.client import TrainingClient
from fmnist.jobs.store import JobStore
from fmnist.schema import JobState, TrainConfig

# The row of one uploaded picture is complete: its caption, the 28×28 view, the
# verdict and the softmax bars. Checked in the page on every frame, so
# the time measured is not rounded up to a polling interval.
PREDICTION_SHOWN = """
(name) => {
  for (const row of document.querySelectorAll('[data-testid=stHorizontalBlock]')) {
    const captions = [...row.querySelectorAll('[data-testid=stImageCaption]')]
      .map((c) => c.textContent.trim());
    if (!captions.includes(name)) continue;
    if (!captions.some((c) => c.startsWith('what the network sees (28×28)'))) continue;
    if (!/— \\d+(\\.\\d)?%/.test(row.textContent)) continue;
    if (!row.querySelector('table.fmnist-softmax tr.top')) continue;
    window.__shownAt = performance.now();
    return true;
  }
  return false;
}
"""
# When the browser holds the chosen file: the file input's change event.
FILE_CLOCK = """
() => {
  if (window.__fileClock) return;
  window.__fileClock = true;
  document.addEventListener('change', (event) => {
    if (event.target.type === 'file') window.__chosenAt = performance.now();
  }, {capture: true});
}
"""
BIG_SIZE = (4000, 3000)  # 12 megapixels
CLICK_CLOCK = """
() => {
  window.__clickedAt = null;
  document.addEventListener('click', () => {
    if (window.__clickedAt === null) window.__clickedAt = Date.now();
  }, {capture: true});
}
"""


class Pictures:
    """Photo-like JPEGs of test-set items, every one with different bytes."""

    def __init__(self) -> None:
        self.x, self.y = test_images()
        self.rng = np.random.default_rng(2026)
        self.count = 0

    def next(self, size: tuple[int, int] | None = None) -> tuple[str, bytes]:
        from bench.product import as_photo

        self.count += 1
        index = int(self.rng.integers(len(self.y)))
        prefix = "big" if size else "photo"
        return f"{prefix}-{self.count}-{index}.jpg", as_photo(self.x[index], self.rng, size)


def time_upload(page, picture: tuple[str, bytes]) -> float:
    """Seconds from the file in the browser to its prediction shown; then remove it."""
    name = picture[0]
    page.evaluate(FILE_CLOCK)
    upload_files(page, [picture])
    page.wait_for_function(PREDICTION_SHOWN, arg=name, polling="raf", timeout=120_000)
    seconds = page.evaluate("() => (window.__shownAt - window.__chosenAt) / 1000")
    wait_prediction(page, name)  # the same condition through Playwright's locators
    remove_uploads(page)
    return seconds


def upload_series(server: Server, browser, pictures: Pictures, small: int, big: int) -> dict:
    """On a fresh Predict page: one warm-up upload, ``small`` timed photos, ``big`` 12 MP ones."""
    page = new_page(browser)
    try:
        open_predict(page, server.url)
        first_s = time_upload(page, pictures.next())  # the session's first: reported apart
        small_s = [time_upload(page, pictures.next()) for _ in range(small)]
        big_s = []
        for _ in range(big):
            big_picture = pictures.next(BIG_SIZE)
            time_upload(page, pictures.next())  # warm: after another picture
            big_s.append(time_upload(page, big_picture))
        errors = exceptions_on(page)
    finally:
        close_page(page)
    return {
        "first_photo_ms": round(first_s * 1000),
        "photo_ms": [round(s * 1000) for s in small_s],
        "photo_ms_median": round(median(small_s) * 1000),
        "big_ms": [round(s * 1000) for s in big_s],
        "big_ms_median": round(median(big_s) * 1000) if big_s else None,
        "page_exceptions": errors,
    }


def wait_for(condition, timeout: float, what: str, step: float = 0.05):
    deadline = time.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.time() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(step)


def responsiveness(server: Server, browser, small: int, big: int, idle_after: bool) -> dict:
    pictures = Pictures()
    big_example = len(pictures.next(BIG_SIZE)[1])
    say(f"Predict page, idle server: {small} photos and {big} 12-megapixel JPEGs, each warm")
    idle = [upload_series(server, browser, pictures, small, big)]
    say(f"  idle: photo {idle[0]['photo_ms']} ms, 12 MP {idle[0]['big_ms']} ms")

    # The server starts its training workers when a page first asks for them.
    page = new_page(browser)
    open_page(page, server.url, "/Train")
    close_page(page)
    store = JobStore(server.store_path)
    client = TrainingClient(store)
    token = secrets.token_urlsafe(16)
    job_id = client.submit(TrainConfig(network="cnn", epochs=3), token)
    say(f"cnn on all 60,000 images submitted to the bench server's store (job {job_id})")
    wait_for(
        lambda: (
            (job := store.get(job_id, with_events=False)).batch > 0
            and job.state is JobState.RUNNING
        ),
        300,
        "the cnn's first batches",
    )
    before = store.get(job_id, with_events=False)
    say(f"  training ({before.device}); same uploads while it runs")
    loaded = upload_series(server, browser, pictures, small, big)
    after = store.get(job_id, with_events=False)
    still_training = after.state is JobState.RUNNING
    progress = {
        "batches_during_uploads": (after.epoch - before.epoch) * after.batches
        + after.batch
        - before.batch,
        "images_per_s_shown": round(after.images_per_second),
        "still_training_at_end": still_training,
    }
    say(f"  under load: photo {loaded['photo_ms']} ms, 12 MP {loaded['big_ms']} ms; {progress}")
    client.stop(job_id, token)
    wait_for(lambda: store.get(job_id, with_events=False).state.final, 300, "the cnn to stop")
    if idle_after:
        say("Predict page, idle again")
        idle.append(upload_series(server, browser, pictures, small, big))
        say(f"  idle: photo {idle[-1]['photo_ms']} ms, 12 MP {idle[-1]['big_ms']} ms")

    first_photo = median([series["first_photo_ms"] for series in idle])
    idle_photo = median([ms for series in idle for ms in series["photo_ms"]])
    idle_big = median([ms for series in idle for ms in series["big_ms"]])
    return {
        "first_photo_ms_idle_median": round(first_photo),
        "photo_ms_idle_median": round(idle_photo),
        "photo_ms_training_median": loaded["photo_ms_median"],
        "ratio_training_over_idle": round(loaded["photo_ms_median"] / idle_photo, 2),
        "target_ratio": 1.5,
        "big_jpeg_bytes": big_example,
        "big_ms_idle_median": round(idle_big),
        "big_ms_training_median": loaded["big_ms_median"],
        "target_big_ms": 300,
        "training_during_uploads": progress,
        "idle": idle,
        "training": loaded,
    }


def wait_until_training(store: JobStore, job_id: str, after_seconds: float) -> None:
    """Until ``after_seconds`` into the first epoch, with batches visibly done.

    The worker reports the batch count just before ``fit`` (the epoch begins); the
    first batches follow once TensorFlow has traced the step, which on a busy
    machine can take longer than ``after_seconds``: a Stop then would time the
    tracing, not the Stop.
    """
    deadline = time.time() + 300
    began = None
    while True:
        job = store.get(job_id, with_events=False)
        if began is None and job.batches > 0:
            began = time.perf_counter()
        if began is not None and job.batch > 0 and time.perf_counter() - began >= after_seconds:
            return
        if time.time() > deadline or job.state.final:
            raise RuntimeError(f"job {job_id} did not start training ({job.state.value})")
        time.sleep(0.05)


def stop(server: Server, browser, rounds: int, after_seconds: float = 2.0) -> dict:
    """mlp on all 60,000 images; Stop ~2 s into the first epoch (once batches are done);
    time from the click to the saved run."""
    store = JobStore(server.store_path)
    samples = []
    for number in range(rounds):
        page = new_page(browser)
        try:
            open_page(page, server.url, "/Train")
            _, job_id, _ = start_training(page, "mlp", "all 60,000", 5)
            wait_until_training(store, job_id, after_seconds)
            button = page.get_by_role("button", name="⏹️ Stop", exact=True)
            button.wait_for()
            # The moment the click reaches the page, by the page's clock (the same
            # machine's): Playwright first waits for the button to be stable, and the
            # progress fragment redraws it every second.
            page.evaluate(CLICK_CLOCK)
            at_click = store.get(job_id, with_events=False)
            clicked, clicked_wall = time.perf_counter(), time.time()
            button.click()
            on_disk = shown = evaluating = recorded = None
            saved = page.get_by_text("Saved as run")
            while on_disk is None or shown is None:
                now = time.perf_counter() - clicked
                if recorded is None and store.stop_requested(job_id):
                    recorded = now
                if evaluating is None and store.get(job_id, with_events=False).state in (
                    JobState.EVALUATING,
                    JobState.STOPPED,
                ):
                    evaluating = now
                if on_disk is None and find_run(server.models, job_id) is not None:
                    on_disk = now
                if shown is None and saved.is_visible():
                    shown = now
                if now > 120:
                    raise RuntimeError("no saved run 120 s after Stop")
                page.wait_for_timeout(20)
            record = find_run(server.models, job_id)
            finished = store.get(job_id, with_events=False).finished_at
            # From the Python call to the click event: taken off every figure below.
            lag = max(0.0, page.evaluate("() => window.__clickedAt") / 1000 - clicked_wall)
            errors = exceptions_on(page)
        finally:
            close_page(page)

        def since_click(seconds: float | None, lag: float = lag) -> float | None:
            return None if seconds is None else round(seconds - lag, 2)

        sample = {
            "click_wait_s": round(lag, 2),
            # The page has written the stop request into the job store.
            "to_stop_recorded_s": since_click(recorded),
            # The fit has wound down (the rest of the step, validation) and the worker
            # scores the test set.
            "to_fit_ended_s": since_click(evaluating),
            "to_run_json_s": since_click(on_disk),
            "to_saved_on_page_s": since_click(shown),
            # The worker's own end of the job (saved and marked stopped), by its clock.
            "to_job_finished_s": since_click(finished - clicked_wall) if finished else None,
            "status": record["status"],
            "epoch_at_click": at_click.epoch + 1,
            "batch_at_click": at_click.batch,
            "batches_per_epoch": at_click.batches,
            "evaluate_seconds": record["evaluate_seconds"],
            "page_exceptions": errors,
        }
        samples.append(sample)
        say(
            f"  round {number + 1}: Stop in epoch {sample['epoch_at_click']} at batch "
            f"{sample['batch_at_click']:,}/{sample['batches_per_epoch']:,}: stop in the store "
            f"after {sample['to_stop_recorded_s']} s, fit ended after "
            f"{sample['to_fit_ended_s']} s, run.json after "
            f"{sample['to_run_json_s']:.2f} s, 'Saved as run' after "
            f"{sample['to_saved_on_page_s']:.2f} s; job finished after "
            f"{sample['to_job_finished_s']} s (evaluation {sample['evaluate_seconds']} s); "
            f"Playwright waited {sample['click_wait_s']} s before clicking"
        )
    return {
        "to_run_json_s_median": round(median([s["to_run_json_s"] for s in samples]), 2),
        "to_saved_on_page_s_median": round(median([s["to_saved_on_page_s"] for s in samples]), 2),
        "to_saved_on_page_s_worst": max(s["to_saved_on_page_s"] for s in samples),
        "target_s": 3.0,
        "samples": samples,
    }
