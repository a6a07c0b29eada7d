"""The library's Streamlit helpers (this package alone imports Streamlit): cached loaders and
shared widgets; the Train page's network builder is in ``fmnist.ui.builder``.

``st.cache_resource`` holds what every session shares (the dataset, the
training manager, test-set probabilities): these objects are never mutated by
a page. Models live in the inference service (``fmnist.inference_client``):
the web server never imports TensorFlow or Keras.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import streamlit as st

from fmnist import data, dataset_stats, imaging, inference_client, novelty, runs, uploads
from fmnist.inference_client import InferenceError, ModelInfo, ModelRef, RunModel

if TYPE_CHECKING:
    from fmnist.client import TrainingClient

log = logging.getLogger(__name__)
T = TypeVar("T")

PAGES = {
    "Explore": (
        "pages/1_Explore.py",
        "🔍",
        "browse the 70,000 images, their classes and statistics",
    ),
    "Train": ("pages/2_Train.py", "🏋️", "train a network and watch it learn, live"),
    "Predict": (
        "pages/3_Predict.py",
        "🔮",
        "upload your own pictures and see what the network thinks",
    ),
}


def setup_page(title: str, icon: str) -> None:
    _Pages.last_start = time.monotonic()
    st.set_page_config(page_title=f"{title} · Fashion-MNIST Studio", page_icon=icon, layout="wide")
    # Before anything else of the page, the sidebar included: every page calls this.
    require_access_code()
    # Streamlit's own navigation is turned off in config.toml because it would
    # label the home page "app"; these links are the same pages, better named.
    with st.sidebar:
        st.page_link("app.py", label="Home", icon="👕")
        for label, (path, page_icon, _) in PAGES.items():
            st.page_link(path, label=label, icon=page_icon)


def keep_widget_state(keys: Iterable[str]) -> None:
    """Settings that outlive a closed lazy tab or a visit to another page.

    Streamlit forgets a widget's value when a run does not draw the widget, unless
    the page sets the value itself: this sets each one that exists to itself.
    """
    for key in keys:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


ACCESS_CODE_VARIABLE = "FMNIST_ACCESS_CODE"
ACCESS_KEY = "access_granted"


def require_access_code() -> None:
    """When FMNIST_ACCESS_CODE is set, ask for it once per browser session; stop until given.

    A Streamlit session lives as long as the browser tab's connection: switching
    pages keeps it, a reload or a link opened in a new tab asks again. The page's
    query parameters (``?job=…&key=…``) stay in the URL and reach the page after.
    """
    code = os.environ.get(ACCESS_CODE_VARIABLE, "")
    if not code or st.session_state.get(ACCESS_KEY):
        return
    st.title("🔒 Fashion-MNIST Studio")
    with st.form("access_code_form"):
        given = st.text_input("Access code", type="password", key="access_code_given")
        entered = st.form_submit_button("Enter", type="primary")
    if entered:
        # Bytes: compare_digest refuses str with characters outside ASCII.
        if hmac.compare_digest(given.encode(), code.encode()):
            st.session_state[ACCESS_KEY] = True
            st.session_state.pop("access_code_given", None)
            st.rerun()
        st.error("Wrong access code.", icon="🚫")
    st.caption("Ask the person who runs this server for the access code.")
    st.stop()


_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")


def plain(text: object) -> str:
    """``text`` escaped so that Markdown (and the labels of widgets) show it literally.

    Every ASCII punctuation character gets a backslash, which CommonMark allows
    for all of them: no link, image, HTML tag, emphasis, LaTeX (``$``) or colour
    directive (``:red[…]``) can come out of a user's run name, file name or message.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


@st.cache_resource(show_spinner="Loading Fashion-MNIST...")
def _dataset() -> data.Dataset:
    return data.load_dataset()


def dataset() -> data.Dataset:
    """The shared dataset, or a one-line error on the page and the end of this run."""
    try:
        return _load_dataset()
    except data.DataError as error:
        st.error(f"Fashion-MNIST could not be loaded. {error}", icon="🚫")
        st.stop()
        raise  # st.stop() raises; this line is for type checkers


def dataset_or_none() -> data.Dataset | None:
    """The shared dataset, or None when it cannot be loaded (nothing is shown, the run goes on).

    For what works without Fashion-MNIST: Predict's uploads and imported models.
    """
    failed_at = _DataFailure.at
    if failed_at is not None and time.monotonic() - failed_at < _DataFailure.RETRY_S:
        return None  # a broken copy is read again at most this often, not on every rerun
    try:
        return _load_dataset()
    except data.DataError as error:
        log.info("Fashion-MNIST could not be loaded: %s", error)
        return None


def _load_dataset() -> data.Dataset:
    """What dataset() and dataset_or_none() share: any success clears the failure's time."""
    try:
        loaded = _dataset()
    except data.DataError:
        _DataFailure.at = time.monotonic()
        raise
    _DataFailure.at = None
    _warm_up_explore(loaded)
    return loaded


def preload_dataset() -> None:
    """Load the shared dataset from this machine's files before any page asks for it (the
    web server's start-up). A missing or broken copy is left for the pages to report, and
    Keras's downloader to the first page that needs it (the server would not listen while
    it downloads).

    Explore's statistics still start with the first page's run: computed from start-up,
    they took the CPU from the first visitor's page.
    """
    if data.has_local_copy():
        with contextlib.suppress(data.DataError):
            _dataset()


class _DataFailure:
    """When loading the dataset last failed (every session shares it)."""

    RETRY_S = 30.0
    at: float | None = None


def devices(timeout: float | None = None) -> list[str] | None:
    """The compute devices, as the inference service sees them.

    Blocks while the service starts (seconds: it imports TensorFlow) unless a
    ``timeout`` is given, after which None means "still starting". A service
    that cannot start gives one line in place of the names.
    """
    try:
        found = inference_client.devices(timeout=0)
        if found is None and timeout != 0:
            with st.spinner("Looking for GPUs..."):
                found = inference_client.devices(timeout)
    except InferenceError as error:
        return [f"unknown ({error})"]
    return found


def device_status() -> None:
    """The Compute line of the home page, without holding the page while the service starts."""
    # A short wait: a service that is nearly up is shown at once, one that is
    # importing TensorFlow (seconds) is rechecked every second by the fragment.
    found = devices(timeout=0.3)
    if found is None:
        _device_status_pending()
    else:
        _draw_devices(found)


@st.fragment(run_every=1.0)
def _device_status_pending() -> None:
    found = devices(timeout=0)
    if found is None:
        st.info("**Compute:** detecting… (the inference service is starting)", icon="⏳")
    else:
        # A full run draws the answer without this fragment and its timer.
        st.rerun()


def _draw_devices(found: list[str]) -> None:
    gpu = any(d.startswith("GPU") for d in found)
    st.info(f"**Compute:** {', '.join(found)}", icon="⚡" if gpu else "🖥️")


def training_client() -> TrainingClient:
    """The job store of the current models folder, with its workers started once."""
    from fmnist.jobs.store import default_path

    return _training_client(str(default_path()))


@st.cache_resource
def _training_client(store_path: str) -> TrainingClient:
    # Keyed by the store's path, so a server (or a test) pointed at another
    # models folder gets that folder's jobs and its own workers.
    from fmnist.client import TrainingClient, start_backend
    from fmnist.jobs.store import JobStore

    client = TrainingClient(JobStore(store_path))
    # Kept alive by the cache for the life of the server; the workers end with it.
    client.backend = start_backend(client.store)
    return client


def run_model(record: dict[str, Any]) -> ModelInfo:
    """Load a saved run's model in the inference service; a ModelError says why it cannot."""
    with st.spinner("Loading the model..."):
        return inference_client.check_model(RunModel.of(record))


def imported_model(payload: bytes) -> ModelInfo:
    """Load a user's .keras file in the inference service; a ModelError says what is wrong."""
    with st.spinner("Loading the imported model..."):
        return inference_client.check_imported(payload)


@st.cache_resource(max_entries=6, show_spinner="Scoring the 10,000 test images...")
def test_probabilities(ref: ModelRef) -> np.ndarray:
    # Kept here as well as in the service: reruns then cost no transfer at all.
    # A run's reference holds its finished_at, so a run trained again under the
    # same id never gets the old scores.
    return inference_client.test_probabilities(ref)


SPACE_IMAGES = 3000  # test images on the feature-space maps


@st.cache_resource(show_spinner=False)
def space_sample() -> tuple[np.ndarray, dataset_stats.Projection]:
    """3,000 test images (a fixed random sample) and their map by raw pixels (PCA)."""
    ds = dataset()
    indices = np.random.default_rng(0).permutation(len(ds.y_test))[:SPACE_IMAGES]
    return indices, dataset_stats.project_2d(ds.x_test[indices] / 255.0)


@st.cache_resource(max_entries=6, show_spinner="Reading the network's last hidden layer...")
def learned_space(ref: ModelRef) -> tuple[np.ndarray, dataset_stats.Projection]:
    """The sample's learned features (last hidden layer, from the service) and their map."""
    indices, _ = space_sample()
    features = inference_client.features(ref, dataset().x_test[indices])
    return features, dataset_stats.project_2d(features)


class _DatasetMemo(Generic[T]):
    """A value derived from the loaded dataset once per server process, shared by every
    session, which a background thread may compute before any page asks for it.

    A plain lock rather than st.cache_resource, so that the thread needs no Streamlit
    script context. ``derive(dataset, pause)`` computes the value; ``pause`` is called
    between its steps (the background thread steps aside while pages are drawn).
    """

    def __init__(self, name: str, derive: Callable[[data.Dataset, dataset_stats.Pause], T]):
        self.name = name
        self._derive = derive
        self._lock = threading.Lock()  # held while computing
        self._start_lock = threading.Lock()  # never held long: every page takes it
        self._started = False
        self._dataset: data.Dataset | None = None
        self._value: T | None = None

    def ready(self, ds: data.Dataset) -> T | None:
        """The value if it is computed for this dataset, without waiting."""
        value = self._value
        return value if value is not None and self._dataset is ds else None

    def get(self, ds: data.Dataset, pause: dataset_stats.Pause = dataset_stats.no_pause) -> T:
        """The value, computed now or waited for if the background thread is at it."""
        with self._lock:
            if self._dataset is not ds or self._value is None:
                self._value = self._derive(ds, pause)
                self._dataset = ds
            return self._value

    def start(self, ds: data.Dataset, pause: dataset_stats.Pause = dataset_stats.no_pause) -> None:
        """Compute the value in a background thread, once per process."""
        with self._start_lock:
            if self._started:
                return
            self._started = True

        def compute() -> None:
            try:
                self.get(ds, pause)
            except Exception:  # the page computes again, and reports
                log.exception("%s could not be computed in the background", self.name)

        threading.Thread(target=compute, name=f"{self.name}-warm-up", daemon=True).start()


class _Pages:
    """When a page last started, and whether one waits for Explore's statistics."""

    last_start = 0.0  # time.monotonic() of the last page run's start
    explore_waits = False


_EXPLORE_STATS = _DatasetMemo(
    "explore-statistics",
    lambda ds, pause: dataset_stats.explore_stats(ds.x_train, ds.y_train, pause=pause),
)


def explore_stats() -> dataset_stats.ExploreStats:
    """Everything Explore derives from the training set, once per server process (~1 s)."""
    ds = dataset()
    ready = _EXPLORE_STATS.ready(ds)
    if ready is not None:
        return ready
    _Pages.explore_waits = True
    with st.spinner("Computing the class statistics and the PCA map..."):
        return _EXPLORE_STATS.get(ds)


def _while_pages_run() -> None:
    """The warm-up's pause: wait while a page started in the last 1.5 s, unless one waits."""
    while not _Pages.explore_waits and time.monotonic() - _Pages.last_start < 1.5:
        time.sleep(0.05)


def _warm_up_explore(ds: data.Dataset) -> None:
    """Compute Explore's statistics in the background as soon as the dataset is loaded.

    The first visitor usually lands on Home: by the time they open Explore, its
    statistics are ready. The computation steps aside while any page is drawn,
    so that Home stays as fast as without it; a page that asks for the
    statistics sooner waits for this same computation, which then goes straight on.
    """
    _EXPLORE_STATS.start(ds, _while_pages_run)


def list_runs() -> list[dict[str, Any]]:
    """Saved runs, newest first; a damaged folder is skipped and told once per session."""
    records, warnings = runs.list_runs()
    shown = st.session_state.setdefault("runs_warnings_shown", set())
    for warning in warnings:
        if warning not in shown:
            shown.add(warning)
            # Folder names on disk are anybody's text: shown literally, never as Markdown.
            st.toast(plain(warning), icon="⚠️")
    return records


def dataset_status() -> None:
    ds = dataset()
    st.success(
        f"**Fashion-MNIST loaded** from {ds.source} (`{ds.path}`): "
        f"{len(ds.y_train):,} training and {len(ds.y_test):,} test images, "
        f"{ds.nbytes / 1e6:.0f} MB in memory.",
        icon="✅",
    )


def page_links() -> None:
    columns = st.columns(len(PAGES))
    for column, (label, (path, icon, help_text)) in zip(columns, PAGES.items(), strict=True):
        with column:
            st.page_link(path, label=f"**{label}**", icon=icon)
            st.caption(help_text)


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0, round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


# -- Predict: the session's own pictures and how unusual they look ----------------

PICTURES_KEY = "predict_pictures"
REFUSED_KEY = "predict_refused"
HANDED_KEY = "predict_handed_over"


def kept_pictures() -> uploads.Store:
    """This browser session's pictures (digest -> Picture), kept across reruns and pages."""
    return st.session_state.setdefault(PICTURES_KEY, {})


def add_pictures(files: list[tuple[str, bytes]]) -> None:
    """Keep every usable picture; the others get one line each, shown until the next addition."""
    store = kept_pictures()
    refused = []
    for name, payload in files:
        digest = uploads.digest_of(payload)
        prepared = (
            store[digest].prepared if digest in store else imaging.prepare_upload(name, payload)
        )
        if prepared.error is not None:
            refused.append((name, prepared.error))
        elif not uploads.add(store, name, digest, prepared):
            refused.append(
                (name, f"you already keep {uploads.MAX_PICTURES} pictures: remove some first")
            )
    st.session_state[REFUSED_KEY] = refused


def add_uploaded_files(files: list[Any]) -> None:
    """Keep the uploader's files that it has not handed over before (it keeps listing them)."""
    handed = st.session_state.setdefault(HANDED_KEY, set())
    new = [f for f in files if f.file_id not in handed]
    handed.update(f.file_id for f in new)
    if new:
        add_pictures([(f.name, f.getvalue()) for f in new])


def refused_pictures() -> list[tuple[str, str]]:
    """(file name, reason) of the files refused by the last addition."""
    return st.session_state.get(REFUSED_KEY, [])


_SHAPE_SPACE = _DatasetMemo("shape-space", lambda ds, pause: novelty.fit(ds.x_train))


def shape_space() -> novelty.ShapeSpace:
    """What Fashion-MNIST's pictures look like (``fmnist.novelty``), once per process (~1 s)."""
    ds = dataset()
    ready = _SHAPE_SPACE.ready(ds)
    if ready is not None:
        return ready
    with st.spinner("Learning what Fashion-MNIST's pictures look like..."):
        return _SHAPE_SPACE.get(ds)


def warm_up_shape_space() -> None:
    """Start computing the shape space in the background, so the first upload does not wait."""
    ds = dataset_or_none()
    if ds is not None:
        _SHAPE_SPACE.start(ds)


def unlikeness(pixels: np.ndarray) -> np.ndarray:
    """(N,) how unlike Fashion-MNIST each (28, 28) picture is; see ``fmnist.novelty``."""
    return novelty.unlikeness(shape_space(), pixels)


def unlikeness_if_known() -> Callable[[np.ndarray], np.ndarray] | None:
    """``unlikeness``, or None without a dataset to learn Fashion-MNIST's look from."""
    return unlikeness if dataset_or_none() is not None else None
