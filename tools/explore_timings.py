"""Every page's first load and each Explore interaction, timed in Chromium.

    .venv/bin/python tools/explore_timings.py [--repeat 3] [--url http://127.0.0.1:8501]

Starts `streamlit run app.py` on a free port with a private models folder (unless
--url points at a running app: to compare with an older checkout, start that one
and pass its address), then drives Debian's Chromium through Playwright:

- first load: a fresh browser session (empty cache) opens the page. Reported, in
  ms from navigation: first contentful paint; the page's title drawn; "server
  done", the server's last message; "done", the last change to the page before
  a quiet second (every chart drawn). The first visit of Explore on a freshly
  started server comes first and is shown apart ("cold server"); Explore and its
  interactions are measured before Home, Train and Predict, whose first visits
  start processes that import TensorFlow.
- each Explore interaction: from the click or key press (the page's own clock)
  to "server done" and "done" as above. Streamlit only shows its status widget
  for runs longer than 0.5 s and fades it out over 0.2 s, so its disappearance
  is reported too, when it appeared at all.

Prints a table (medians over --repeat, and every figure) and writes
test-output/explore-timings.json. Timings, not assertions: compare them only on
the same machine, with nothing else running (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from playwright.sync_api import Error as PlaywrightError  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402

from tests.browser_support import start_server, stop_server  # noqa: E402
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, OUTPUT_DIR, copy_shipped_runs  # noqa: E402

QUIET_MS = 1000
TIMEOUT_S = 120
PAGES = {"Home": "/", "Train": "/Train", "Predict": "/Predict"}  # after Explore's
MEASURES = ["first paint", "title", "server done", "done", "status widget gone"]
LAST_CHANGES: list[str] = []  # where the last change of each timed interaction was

# Timestamps on the page's own clock (performance.now(), 0 at navigation).
PROBE = """
(() => {
  const t = window.__timing = {lastMessage: 0, lastChange: 0, input: 0, armed: false,
                               title: 0, statusShown: 0, statusGone: 0};
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', () => { t.lastMessage = performance.now(); });
    }
  };
  const onInput = () => { if (t.armed) { t.input = performance.now(); t.armed = false; } };
  addEventListener('pointerdown', onInput, true);
  addEventListener('keydown', onInput, true);
  let status = false;
  const watch = () => new MutationObserver(changes => {
    const now = performance.now();
    t.lastChange = now;
    const target = changes[changes.length - 1].target;
    const element = target.nodeType === 1 ? target : target.parentElement;
    const owner = element && element.closest('[data-testid]');
    t.lastChangeIn = owner ? owner.getAttribute('data-testid') : '';
    if (!t.title && document.querySelector('h1')) t.title = now;
    const shown = !!document.querySelector('[data-testid=stStatusWidget]');
    if (shown && !status) t.statusShown = now;
    if (!shown && status) t.statusGone = now;
    status = shown;
  }).observe(document.documentElement, {subtree: true, childList: true, attributes: true,
                                         characterData: true});
  if (document.documentElement) watch(); else addEventListener('DOMContentLoaded', watch);
})();
"""


def settle(page: Page) -> dict:
    """Wait for a quiet second with no status widget; the probe's timestamps."""
    deadline = time.time() + TIMEOUT_S
    while time.time() < deadline:
        page.wait_for_timeout(100)
        state = page.evaluate(
            "() => ({...window.__timing, now: performance.now(),"
            " status: !!document.querySelector('[data-testid=stStatusWidget]')})"
        )
        last = max(state["lastMessage"], state["lastChange"])
        if not state["status"] and state["now"] - last > QUIET_MS:
            state["done"] = last
            return state
    raise TimeoutError("the page never settled")


def first_load(browser, url: str, path: str) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(PROBE)
    page = context.new_page()
    page.goto(url + path)
    page.wait_for_selector("h1", timeout=TIMEOUT_S * 1000)
    state = settle(page)
    paint = page.evaluate(
        "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || 0"
    )
    context.close()
    return {
        "first paint": paint,
        "title": state["title"],
        "server done": state["lastMessage"],
        "done": state["done"],
    }


def timed(page: Page, prepare: Callable[[], None], act: Callable[[], None]) -> dict[str, float]:
    prepare()
    settle(page)
    page.evaluate("() => { window.__timing.armed = true; window.__timing.input = 0; "
                  "window.__timing.statusGone = 0; }")  # fmt: skip
    act()
    state = settle(page)
    if not state["input"]:
        raise RuntimeError("the interaction's click or key press was not seen")
    result = {"done": state["done"] - state["input"]}
    if state["lastMessage"] > state["input"]:
        result["server done"] = state["lastMessage"] - state["input"]
    if state["statusGone"] > state["input"]:
        result["status widget gone"] = state["statusGone"] - state["input"]
    LAST_CHANGES.append(state.get("lastChangeIn", ""))
    return result


def nothing() -> None:
    pass


def pca_point(page: Page) -> None:
    """Click the rightmost point of the PCA map (alone, so it is the one picked)."""
    chart = page.locator(".js-plotly-plot").filter(has=page.locator("canvas")).last
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    x, y = chart.evaluate(
        """gd => {
          let best = null;
          gd._fullData.forEach(trace => Array.from(trace.x).forEach((x, i) => {
            if (!best || x > best.x) best = {x, y: trace.y[i]};
          }));
          const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
          const box = gd.getBoundingClientRect();
          return [box.left + xa._offset + xa.l2p(best.x), box.top + ya._offset + ya.l2p(best.y)];
        }"""
    )
    page.mouse.click(x, y)


def interactions(page: Page) -> list[tuple[str, Callable[[], None], Callable[[], None]]]:
    """(name, an untimed preparation, the timed action) for every widget of Explore."""

    def choose(widget: str, label: str, option: str) -> tuple[Callable, Callable]:
        box = page.get_by_test_id(widget).filter(has_text=label)
        return (lambda: box.click()), (lambda: page.get_by_role("option", name=option).click())

    def click_text(text: str) -> Callable[[], None]:
        return lambda: page.get_by_text(text, exact=True).click(timeout=5000)

    index = page.get_by_test_id("stNumberInputField")
    slider = page.get_by_test_id("stSlider").filter(has_text="Images on the map")
    return [
        ("Reshuffle", nothing, lambda: page.get_by_role("button", name="Reshuffle").click()),
        ("Classes: + Bag", *choose("stMultiSelect", "Classes", "Bag")),
        ("Images: 32", *choose("stSelectbox", "Images", "32")),
        ("Index: type 123, Enter", lambda: index.fill("123"), lambda: index.press("Enter")),
        ("Index: +", nothing, lambda: page.get_by_test_id("stNumberInputStepUp").click()),
        ("Show values (on)", nothing, click_text("Show values")),
        ("Show values (off)", nothing, click_text("Show values")),
        ("Leave out background", nothing, click_text("Leave out background pixels (0)")),
        ("Logarithmic scale", nothing, click_text("Logarithmic scale")),
        ("PCA: images on the map", lambda: slider.get_by_role("slider").focus(),
         lambda: slider.get_by_role("slider").press("ArrowLeft")),
        ("PCA: click a point", nothing, lambda: pca_point(page)),
        ("PCA: Inspect its pixels (old page)", nothing,
         lambda: page.get_by_role("button", name="Inspect its pixels").click(timeout=5000)),
    ]  # fmt: skip


def measure(url: str, repeat: int) -> dict:
    """Explore first, on a quiet server: the first visits of Home, Train and Predict start
    the inference service and the training workers, which import TensorFlow (seconds of
    CPU in other processes), so those pages come last."""
    results: dict[str, list[dict[str, float]]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        results["Explore first load (cold server)"] = [first_load(browser, url, "/Explore")]
        for _ in range(repeat):
            results.setdefault("Explore first load", []).append(
                first_load(browser, url, "/Explore")
            )
        for _ in range(repeat):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_init_script(PROBE)
            page = context.new_page()
            page.goto(url + "/Explore")
            page.wait_for_selector("h1", timeout=TIMEOUT_S * 1000)
            settle(page)
            for name, prepare, act in interactions(page):
                try:
                    results.setdefault(name, []).append(timed(page, prepare, act))
                    results[name][-1]["last change in"] = LAST_CHANGES[-1]
                except (PlaywrightError, RuntimeError) as error:
                    print(f"{name}: skipped ({str(error).splitlines()[0]})", file=sys.stderr)
            context.close()
        for name, path in PAGES.items():
            for _ in range(repeat):
                results.setdefault(f"{name} first load", []).append(first_load(browser, url, path))
        browser.close()
    return {name: runs for name, runs in results.items() if runs}


def report(results: dict) -> None:
    print(f"{'what':36} {'measure':20} {'median ms':>10}  all (ms)")
    for name, runs in results.items():
        keys = sorted({key for run in runs for key in run} & set(MEASURES), key=MEASURES.index)
        for key in keys:
            values = [run[key] for run in runs if key in run]
            print(
                f"{name:36} {key:20} {statistics.median(values):10.0f}  "
                + " ".join(f"{v:.0f}" for v in values)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", help="a running app; by default one is started")
    arguments = parser.parse_args()
    load = os.getloadavg()[0]
    if arguments.url:
        results = measure(arguments.url, arguments.repeat)
    else:
        with tempfile.TemporaryDirectory() as folder:
            models = Path(folder) / "models"
            models.mkdir()
            copy_shipped_runs(models)
            server = start_server(models, "explore-timings-server")
            try:
                results = measure(server.url, arguments.repeat)
            finally:
                stop_server(server, "explore-timings-server")
    print(f"load average before: {load:.1f} on {os.cpu_count()} CPUs")
    report(results)
    OUTPUT_DIR.mkdir(exist_ok=True)
    (OUTPUT_DIR / "explore-timings.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
