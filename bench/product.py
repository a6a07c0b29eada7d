"""The product as a user meets it: `streamlit run` on a free port, Chromium, the pages.

Shared by every product-level benchmark. The approach is the browser tests'
(tests/test_browser.py), kept separate so that the benchmark never depends on
the test suite. Nothing here imports TensorFlow: the benchmark process stays
as light as a browser's, and whatever TensorFlow costs is paid by the
product's own processes (or by the subprocesses a benchmark starts on purpose).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "bench" / "output"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 1000}
# The first visit of a page may wait for the dataset, TensorFlow in a worker or
# the inference service, on a busy 2-core machine.
PAGE_TIMEOUT_MS = 120_000
TRAINING_TIMEOUT_MS = 600_000

TITLES = {
    "/": "👕 Fashion-MNIST Studio",
    "/Explore": "🔍 Explore Fashion-MNIST",
    "/Train": "🏋️ Train a network",
    "/Predict": "🔮 Predict",
}


class QuietSink:
    """A ProgressSink for ``engine.train`` in a benchmark's subprocess: it keeps the epochs'
    metrics and nothing else, never checkpoints and never stops."""

    def __init__(self) -> None:
        self.epochs: list = []

    def phase(self, text: str) -> None:
        pass

    def started(self, device: str, batches: int) -> None:
        pass

    def batch(self, done: int, rate: float, eta: object, point: object) -> None:
        pass

    def epoch_end(self, metrics: object) -> None:
        self.epochs.append(metrics)

    def checkpoint(self, model: object, epoch: int) -> None:
        pass

    def evaluating(self) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def say(text: str) -> None:
    """A progress line, so whoever runs the benchmark sees what happens."""
    print(f"   {time.strftime('%H:%M:%S')} {text}", flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def environment(models: Path | None = None, pythonpath: Path = ROOT) -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(pythonpath)}
    if models is not None:
        env["FMNIST_MODELS_DIR"] = str(models)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_shipped_runs(source: Path, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    for folder in source.iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            shutil.copytree(folder, destination / folder.name)


# -- processes: memory, TensorFlow, descendants ---------------------------------


def rss_mb(pid: int) -> float:
    """Resident memory (VmRSS) of one process, in MB (10^6 bytes)."""
    status = Path(f"/proc/{pid}/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return kb * 1024 / 1e6


def private_mb(pid: int) -> float:
    """Memory only this process holds (USS: private clean + private dirty pages), in MB.

    Unlike VmRSS, it does not count shared libraries once per process, so the USS
    of several processes adds up; unlike PSS, it does not depend on what else runs
    on the machine.
    """
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    kb = sum(
        int(line.split()[1])
        for line in rollup.splitlines()
        if line.startswith(("Private_Clean:", "Private_Dirty:"))
    )
    return kb * 1024 / 1e6


def has_tensorflow(pid: int) -> bool:
    """TensorFlow's native libraries are mapped into the process."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "_pywrap_tensorflow" in maps or "libtensorflow" in maps


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (workers, the inference service)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    return ""


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (0 once it is gone)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    return 0.0


def machine_busy_seconds() -> float:
    """CPU time every core of the machine spent on anything but idling, so far."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICKS


class CpuMeter:
    """Who used the CPU between start and ``read()``, in CPU-seconds: ``server`` (the
    streamlit process), ``worker`` (its training workers), ``helpers`` (the other processes
    it started: the inference service), ``browsers`` (this benchmark's Chromium) and
    ``rest`` (everything else on the machine: other people's work).

    Processes that start in between (a new browser tab) count from zero.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.start = self._sample()

    def _groups(self) -> dict[str, list[int]]:
        helpers = descendants(self.server.pid)
        workers = [p for p in helpers if "fmnist.jobs.worker" in command_line(p)]
        mine = set(descendants(os.getpid())) - {self.server.pid, *helpers}
        return {
            "server": [self.server.pid],
            "worker": workers,
            "helpers": [p for p in helpers if p not in workers],
            "browsers": [p for p in mine if "chrom" in command_line(p)],
        }

    def _sample(self) -> tuple[float, dict[str, dict[int, float]]]:
        return machine_busy_seconds(), {
            group: {pid: cpu_seconds(pid) for pid in pids} for group, pids in self._groups().items()
        }

    def read(self) -> dict[str, float]:
        machine, groups = self._sample()
        used = {
            group: sum(now - self.start[1][group].get(pid, 0.0) for pid, now in pids.items())
            for group, pids in groups.items()
        }
        used["rest"] = machine - self.start[0] - sum(used.values())
        return {group: round(seconds, 1) for group, seconds in used.items()}


class Server:
    """The app in ``app_dir`` on a free port, started as `make run` starts it (`streamlit run
    app.py` through fmnist.ui.server; plain `streamlit run` for an older checkout without
    it), with its own models folder.

    The models folder is a fresh temporary copy of ``app_dir/models`` (the
    shipped run), so a benchmark never touches the user's runs.
    """

    def __init__(self, name: str, app_dir: Path = ROOT, plain: bool = False) -> None:
        self.name = name
        self.app_dir = app_dir
        self.plain = plain  # plain `streamlit run` even where fmnist.ui.server exists
        self.folder = Path(tempfile.mkdtemp(prefix=f"fmnist-bench-{name}-"))
        self.models = self.folder / "models"
        copy_shipped_runs(app_dir / "models", self.models)
        self.log_path = OUTPUT / f"{name}-server.log"
        self.process: subprocess.Popen | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def store_path(self) -> Path:
        return self.models / ".jobs" / "jobs.sqlite3"

    def start(self) -> Server:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        port = free_port()
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", *self.launcher(),
                    "--server.port", str(port), "--server.address", "127.0.0.1",
                    "--server.headless", "true", "--server.fileWatcherType", "none",
                    "--browser.gatherUsageStats", "false",
                ],
                cwd=self.app_dir,
                env=environment(self.models, self.app_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as answer,
            ):
                if answer.read() == b"ok":
                    break
            if self.process.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError(
                    f"streamlit did not start; see {self.log_path}:\n"
                    + self.log_path.read_text()[-2000:]
                )
            time.sleep(0.3)
        say(f"{self.name} server up at {self.url} (pid {self.pid}, models in {self.models})")
        return self

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def helpers_rss_mb(self, measure=None) -> dict[str, float]:
        """Resident memory (or ``measure(pid)``) of each process the server started, by kind."""
        measure = measure or rss_mb
        result: dict[str, float] = {}
        for pid in descendants(self.pid):
            cmd = command_line(pid)
            kind = (
                "training worker"
                if "fmnist.jobs.worker" in cmd
                else "inference service"
                if "inference_service" in cmd
                else "other"
            )
            with contextlib.suppress(OSError, StopIteration):
                result[kind] = result.get(kind, 0.0) + measure(pid)
        return result

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            helpers = descendants(self.pid)
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            # Workers and the inference service end with their server; make sure.
            deadline = time.time() + 15
            for pid in helpers:
                while Path(f"/proc/{pid}").exists() and time.time() < deadline:
                    time.sleep(0.1)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)

    def launcher(self) -> list[str]:
        """`make run`'s module: streamlit run, with the first page's imports done before it
        listens; an older checkout (the memory benchmark's "before") has only Streamlit's."""
        if not self.plain and (self.app_dir / "fmnist" / "ui" / "server.py").is_file():
            return ["fmnist.ui.server"]
        return ["streamlit", "run", "app.py"]

    def tracebacks(self) -> int:
        return self.log_path.read_text(errors="replace").count("Traceback")

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the browser ----------------------------------------------------------------


@contextlib.contextmanager
def chromium() -> Iterator:
    """Debian's Chromium through Playwright (Playwright's own browser is not used)."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as error:
        raise RuntimeError(
            "the benchmark drives Chromium with Playwright: "
            ".venv/bin/pip install -r requirements-test.txt (or run `make test` once)"
        ) from error

    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"Chromium not found at {CHROMIUM}: run `make test`, or set CHROMIUM_PATH"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser):
    """A page in a context of its own: a separate browser session, as another person has."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    return page


def close_page(page) -> None:
    page.context.close()


def wait_until_idle(page) -> None:
    from playwright.sync_api import expect

    # Streamlit shows its status widget ("Running...") while a script runs.
    page.wait_for_timeout(300)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=PAGE_TIMEOUT_MS)


def open_page(page, url: str, path: str) -> float:
    """Go to a page and wait for its title and the end of its script; returns seconds."""
    from playwright.sync_api import expect

    started = time.perf_counter()
    page.goto(url + path)
    expect(page.get_by_role("heading", name=TITLES[path.split("?")[0]])).to_be_visible(
        timeout=PAGE_TIMEOUT_MS
    )
    wait_until_idle(page)
    return time.perf_counter() - started


def open_predict(page, url: str) -> float:
    """The Predict page, once its uploader is there (the model is loaded in the service)."""
    from playwright.sync_api import expect

    started = time.perf_counter()
    open_page(page, url, "/Predict")
    expect(page.locator("input[type=file]").first).to_be_attached(timeout=PAGE_TIMEOUT_MS)
    wait_until_idle(page)
    return time.perf_counter() - started


def exceptions_on(page) -> int:
    return page.get_by_test_id("stException").count()


def select_option(page, label: str, option: str | re.Pattern) -> None:
    page.get_by_test_id("stSelectbox").filter(has_text=label).first.click()
    if isinstance(option, str):
        page.get_by_role("option", name=option, exact=True).click()
    else:
        page.get_by_role("option", name=option).click()


def start_training(page, network: str, images: str, epochs: int) -> tuple[str, str, str]:
    """Fill the Train form and press Start: (job URL with its key, job id, token)."""
    # Options read "mlp — the TensorFlow beginners' tutorial network": match the name only.
    select_option(page, "Network", re.compile(rf"^{re.escape(network)} —"))
    select_option(page, "Training images", images)
    field = page.get_by_label("Epochs")
    field.fill(str(epochs))
    field.press("Tab")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r"[?&]job="), timeout=60_000)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)
    return page.url, query["job"][0], query.get("key", [""])[0]


def wait_saved(page, timeout_ms: int = TRAINING_TIMEOUT_MS) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_text("Saved as run")).to_be_visible(timeout=timeout_ms)


def find_run(models: Path, job_id: str) -> dict | None:
    """The run.json a job saved, found by its job id."""
    import json

    for path in models.glob("*/run.json"):
        with contextlib.suppress(OSError, ValueError):
            record = json.loads(path.read_text())
            if record.get("job_id") == job_id:
                return record
    return None


def wait_worker_ready(server: Server, timeout_s: float = 300) -> None:
    """Until the server's training worker has TensorFlow up and has named its devices."""
    from fmnist.jobs.store import JobStore

    store = JobStore(server.store_path)
    deadline = time.time() + timeout_s
    while store.get_meta("devices") is None:
        if time.time() > deadline:
            raise RuntimeError(
                f"the server's training worker did not start within {timeout_s:.0f} s"
            )
        time.sleep(0.1)


def train_unwatched(server: Server, config, timeout_s: float) -> tuple[dict, float, dict]:
    """``config`` (a TrainConfig) submitted to the server's job store with no page open:
    (its run.json, the seconds from submitting to the saved run, the CPU-seconds meanwhile)."""
    import secrets

    from fmnist.client import TrainingClient
    from fmnist.jobs.store import JobStore

    store = JobStore(server.store_path)
    meter = CpuMeter(server)
    started = time.perf_counter()
    job_id = TrainingClient(store).submit(config, secrets.token_urlsafe(16))
    deadline = time.time() + timeout_s
    while not (job := store.get(job_id, with_events=False)).state.final:
        if time.time() > deadline:
            raise RuntimeError(f"job {job_id} did not finish")
        time.sleep(0.1)
    seconds, cpu = time.perf_counter() - started, meter.read()
    record = find_run(server.models, job_id)
    if record is None:
        raise RuntimeError(f"job {job_id} ended {job.state.value} without a run: {job.message}")
    return record, seconds, cpu


def upload_files(page, files: list[tuple[str, bytes]]) -> None:
    page.locator("input[type=file]").first.set_input_files(
        [{"name": name, "mimeType": mime_type(name), "buffer": data} for name, data in files]
    )


def mime_type(name: str) -> str:
    return "image/png" if name.endswith(".png") else "image/jpeg"


def prediction_card(page, file_name: str):
    """The row the Predict page draws for one uploaded picture: original, 28×28, verdict."""
    caption = page.get_by_test_id("stImageCaption").get_by_text(file_name, exact=True)
    return page.get_by_test_id("stHorizontalBlock").filter(has=caption)


def wait_prediction(page, file_name: str, timeout_ms: int = PAGE_TIMEOUT_MS) -> None:
    """The picture's card shows what the network sees, the verdict and the softmax bars."""
    from playwright.sync_api import expect

    card = prediction_card(page, file_name)
    expect(card.get_by_text("what the network sees (28×28)")).to_be_visible(timeout=timeout_ms)
    # The verdict reads "**Class** — 97.1%", then the top 3, then the softmax bars.
    expect(card.get_by_text(re.compile(r"— \d+(\.\d)?%"))).to_be_visible(timeout=timeout_ms)
    expect(card.locator("table.fmnist-softmax tr.top")).to_be_visible(timeout=timeout_ms)


def remove_uploads(page) -> None:
    """Take every uploaded picture out of the uploader (each removal reruns the page), then
    out of the pictures the page keeps for the session ("Remove all")."""
    from playwright.sync_api import expect

    buttons = page.get_by_test_id("stFileUploader").get_by_role(
        "button", name=re.compile(r"^Remove ")
    )
    while buttons.count():
        before = buttons.count()
        buttons.first.click()
        expect(buttons).to_have_count(before - 1, timeout=PAGE_TIMEOUT_MS)
    wait_until_idle(page)
    remove_all = page.get_by_role("button", name="🗑️ Remove all")
    if remove_all.count():
        remove_all.click()
        expect(remove_all).to_have_count(0, timeout=PAGE_TIMEOUT_MS)
        wait_until_idle(page)


# -- pictures -------------------------------------------------------------------


def test_images() -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's test images and labels (uint8 numpy: no TensorFlow)."""
    from fmnist.data import load_dataset

    dataset = load_dataset(allow_download=False)
    return dataset.x_test, dataset.y_test


def as_photo(pixels: np.ndarray, rng: np.random.Generator, size: tuple[int, int] | None = None):
    """A test image drawn as a product photo: a coloured garment on a light, noisy background.

    ``size`` (width, height) gives the picture's size; by default a few hundred pixels.
    Returns JPEG bytes.
    """
    from PIL import Image

    if size is None:
        side = int(rng.integers(220, 360))
        width, height = side + int(rng.integers(60, 260)), side + int(rng.integers(20, 120))
    else:
        width, height = size
        side = int(min(width, height) * 0.8)
    background = rng.integers(225, 256, size=3).astype(np.float32)
    ink = rng.integers(0, 110, size=3).astype(np.float32)
    amount = (
        np.asarray(
            Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32
        )[..., None]
        / 255.0
    )
    canvas = np.empty((height, width, 3), dtype=np.float32)
    canvas[:] = background
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    canvas[top : top + side, left : left + side] -= amount * (background - ink)
    canvas += rng.normal(0, 3.0, (height, width, 1)).astype(np.float32)  # sensor noise
    buffer = io.BytesIO()
    Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=88)
    return buffer.getvalue()
