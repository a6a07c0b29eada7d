"""How fast the pages are: every page's first load and each Explore interaction, in Chromium.

Issue targets, on this machine with nothing else running: a page's first load ≤ 2 s, any
widget interaction ≤ 300 ms.

- first load: a fresh browser session (empty cache, as a first-time visitor) opens the
  page. Reported, in ms from navigation, on the page's own clock: first contentful paint;
  the title drawn; "server done", the server's last message; "done", the last change to
  the page before a quiet second (every element drawn, charts included). Explore's first
  visit on a freshly started server comes first and is shown apart ("cold server");
  Explore and its interactions are measured before Home, Train and Predict, whose first
  visits may start processes that import TensorFlow: that visit is kept apart, without a
  target ("server_first_visit_ms"), and the others come once those processes are quiet.
- each Explore interaction: from the click or key press to "server done" and "done" as
  above. Opening a tab counts as an interaction. Explore loads no charting library: the
  map is a canvas of its own, which marks the end of each drawing on the canvas element
  (an attribute change, which the probe sees).
"""

from __future__ import annotations

import http.client
import math
import re
import statistics
import time
import urllib.parse
import urllib.request
from collections.abc import Callable

from bench.product import VIEWPORT, Server, cpu_seconds, descendants, say

QUIET_MS = 1000
TIMEOUT_S = 120
PAGES = {"Home": "/", "Train": "/Train", "Predict": "/Predict"}  # after Explore's
FIRST_LOAD_TARGET_MS = 2000
INTERACTION_TARGET_MS = 300
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
  const watch = () => new MutationObserver(all => {
    // Not react-aria's screen-reader announcements ("10 options available"): an
    // invisible live region it updates about a second after a list was used.
    const changes = all.filter(c => {
      const node = c.target.nodeType === 1 ? c.target : c.target.parentElement;
      return !(node && node.closest('[role=log][aria-live]'));
    });
    if (!changes.length) return;
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


def settle(page) -> dict:
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
    context = browser.new_context(viewport=VIEWPORT)
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


def timed(page, prepare: Callable[[], None], act: Callable[[], None]) -> dict[str, float]:
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


def map_point(page, canvas, skip: set[int]) -> tuple[float, float]:
    """Where the mouse, moved out along a spiral from the middle of a map, finds a point
    not in ``skip`` (the map's tooltip names it), as a user aims at one; the point joins
    ``skip``: each timed click picks a new image, as a user exploring the map does."""
    box = canvas.bounding_box()
    tip = page.locator(".fmnist-map-tip.visible")
    for step in range(400):
        angle = (4 * step) ** 0.5  # evenly spaced turns, about 6 px apart
        x = box["x"] + box["width"] * 0.5 + 3 * angle * math.cos(angle)
        y = box["y"] + box["height"] * 0.45 + 3 * angle * math.sin(angle)
        page.mouse.move(x, y)
        page.wait_for_timeout(50)
        found = re.search(r"index\s*(\d+)", tip.inner_text()) if tip.count() else None
        if found and int(found.group(1)) not in skip:
            skip.add(int(found.group(1)))
            return x, y
    raise RuntimeError("no point of the map answered the mouse")


def interactions(page) -> list[tuple[str, Callable[[], None], Callable[[], None]]]:
    """(name, an untimed preparation, the timed action) for every widget of Explore."""

    def choose(widget: str, label: str, option: str) -> tuple[Callable, Callable]:
        box = page.get_by_test_id(widget).filter(has_text=label)
        return (lambda: box.click()), (lambda: page.get_by_role("option", name=option).click())

    def click_text(text: str) -> Callable[[], None]:
        return lambda: page.get_by_text(text, exact=True).click(timeout=5000)

    def tab(name: str) -> Callable[[], None]:
        return lambda: page.get_by_role("tab", name=name).click()

    index = page.get_by_test_id("stNumberInputField")
    aim: list[tuple[float, float]] = []  # the point the next map click goes to
    picked: set[int] = set()

    def find_point() -> None:
        aim[:] = [map_point(page, page.locator(".st-key-explore_pca canvas"), picked)]

    return [
        ("Reshuffle", nothing, lambda: page.get_by_role("button", name="Reshuffle").click()),
        ("Classes: + Bag", nothing, lambda: page.get_by_test_id("stButtonGroup")
         .get_by_role("button", name="Bag", exact=True).click()),
        ("Images: 32", *choose("stSelectbox", "images", "32 images")),
        ("Tab: One image and the map", nothing, tab("One image and the map")),
        ("Index: type 123, Enter", lambda: index.fill("123"), lambda: index.press("Enter")),
        ("Index: +", nothing, lambda: page.get_by_test_id("stNumberInputStepUp").click()),
        ("Show values (on)", nothing, click_text("Show values")),
        ("Show values (off)", nothing, click_text("Show values")),
        ("PCA: images on the map", nothing, lambda: page.locator(".st-key-explore_pca_n")
         .get_by_role("radio", name="2,000").click()),
        ("PCA: click a point", find_point, lambda: page.mouse.click(*aim[0])),
        ("Tab: Average garments", nothing, tab("Average garments")),
        ("Tab: Pixel intensities", nothing, tab("Pixel intensities")),
        ("Leave out background", nothing, click_text("Leave out background pixels (0)")),
        ("Logarithmic scale", nothing, click_text("Logarithmic scale")),
        ("Tab: Classes and samples", nothing, tab("Classes and samples")),
    ]  # fmt: skip


def cold_first_loads(server: Server, browser, repeat: int) -> list[dict[str, float]]:
    """Explore's first load on just-started servers: ``server``, before any other visit, and
    ``repeat`` - 1 more started for it (one such load varied by 0.3 s from run to run)."""
    loads = [first_load(browser, server.url, "/Explore")]
    for number in range(1, repeat):
        with Server(f"{server.name}-cold-{number}", server.app_dir) as fresh:
            loads.append(first_load(browser, fresh.url, "/Explore"))
            if fresh.tracebacks():
                raise RuntimeError(f"{fresh.name}: a traceback in {fresh.log_path}")
    return loads


def fetch_all(url: str, paths: list[str]) -> float:
    """Seconds to fetch ``paths`` one after the other over one kept-alive connection."""
    address = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=TIMEOUT_S)
    start = time.perf_counter()
    try:
        for path in paths:
            connection.request("GET", path)
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"{path}: HTTP {answer.status}")
            if answer.will_close:  # http.client would quietly open another connection
                raise RuntimeError(f"{path}: the server closed the connection")
    finally:
        connection.close()
    return time.perf_counter() - start


def streamlit_code(server: Server, repeat: int) -> dict:
    """Streamlit's own code as a first visit fetches it (the files its index.html names),
    over one kept-alive connection: from ``server`` and from a plain `streamlit run` of the
    same app started beside it, alternating; median ms of ``repeat`` fetches each. The
    plain server's responses after the first on a connection wait ~40 ms each for the
    client's delayed ACK (Nagle's algorithm, which fmnist.ui.server turns off)."""
    with urllib.request.urlopen(server.url + "/", timeout=TIMEOUT_S) as answer:
        index = answer.read().decode()
    paths = ["/" + path for path in re.findall(r'"\./(static/[^"]+)"', index)]
    if not paths:
        raise RuntimeError("Streamlit's index.html names no files of its own")
    times: dict[str, list[float]] = {"this server": [], "streamlit run": []}
    with Server(f"{server.name}-plain", server.app_dir, plain=True) as plain:
        for _ in range(repeat):
            times["this server"].append(fetch_all(server.url, paths))
            times["streamlit run"].append(fetch_all(plain.url, paths))
    medians = {name: round(1000 * statistics.median(runs)) for name, runs in times.items()}
    return {"files": len(paths), "ms": medians,
            "ratio": medians["streamlit run"] / max(medians["this server"], 1)}  # fmt: skip


def helpers_quiet(server: Server, timeout_s: float = 120) -> None:
    """Until the server's helper processes use under 5% of a core (their start-up done)."""
    deadline = time.time() + timeout_s

    def used() -> float:
        return sum(cpu_seconds(pid) for pid in descendants(server.pid))

    before = used()
    while time.time() < deadline:
        time.sleep(1)
        now = used()
        if now - before < 0.05:
            return
        before = now
    raise TimeoutError(f"the helper processes of {server.name} never went quiet")


def run(server: Server, browser, repeat: int) -> dict:
    """Explore first, on a quiet server: the first visits of Home, Train and Predict start
    the inference service and the training workers, which import TensorFlow (seconds of
    CPU in other processes), so those pages come last."""
    url = server.url
    results: dict[str, list[dict[str, float]]] = {}
    say(f"page speed: first loads and Explore's interactions, {repeat} round(s)")
    results["Explore first load (cold server)"] = cold_first_loads(server, browser, repeat)
    code = streamlit_code(server, repeat)
    say(f"  Streamlit's code, {code['files']} files over one connection: {code['ms']}")
    for _ in range(repeat):
        results.setdefault("Explore first load", []).append(first_load(browser, url, "/Explore"))
    for _ in range(repeat):
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(PROBE)
        page = context.new_page()
        page.goto(url + "/Explore")
        page.wait_for_selector("h1", timeout=TIMEOUT_S * 1000)
        settle(page)
        for name, prepare, act in interactions(page):
            results.setdefault(name, []).append(timed(page, prepare, act))
            results[name][-1]["last change in"] = LAST_CHANGES[-1]
        context.close()
    first_visits: dict[str, int] = {}
    for name, path in PAGES.items():
        # The server's first visit of a page may start its helper processes (the training
        # worker, the inference service), which import TensorFlow: seconds of CPU beside
        # the page, and Home's Compute line changes once they name the devices. Kept
        # apart, without a target; the visitors' first loads come once they are up.
        first_visits[name] = round(first_load(browser, url, path)["done"])
        helpers_quiet(server)
        for _ in range(repeat):
            results.setdefault(f"{name} first load", []).append(first_load(browser, url, path))
    medians = {
        name: round(statistics.median(run["done"] for run in runs))
        for name, runs in results.items()
    }
    for name, value in medians.items():
        say(f"  {name}: {value} ms")
    say(f"  the server's first visits, helpers starting: {first_visits} (ms)")
    return {"done_ms_median": medians, "runs": results, "streamlit_code": code,
            "server_first_visit_ms": first_visits,
            "target_first_load_ms": FIRST_LOAD_TARGET_MS,
            "target_interaction_ms": INTERACTION_TARGET_MS}  # fmt: skip
