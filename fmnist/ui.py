"""The only module of the library that imports Streamlit: cached loaders and shared widgets.

``st.cache_resource`` holds what every session shares (the dataset, the
training manager, loaded models): these objects are never mutated by a page.
TensorFlow is imported only inside the functions that need it, so a page that
does not call them (Explore) opens without paying for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from fmnist import data, dataset_stats, evaluation, imaging, runs

if TYPE_CHECKING:
    import keras

    from fmnist.training import TrainingManager

log = logging.getLogger(__name__)

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
    st.set_page_config(page_title=f"{title} · Fashion-MNIST Studio", page_icon=icon, layout="wide")
    # Streamlit's own navigation is turned off in config.toml because it would
    # label the home page "app"; these links are the same pages, better named.
    with st.sidebar:
        st.page_link("app.py", label="Home", icon="👕")
        for label, (path, page_icon, _) in PAGES.items():
            st.page_link(path, label=label, icon=page_icon)


@st.cache_resource(show_spinner="Loading Fashion-MNIST...")
def _dataset() -> data.Dataset:
    return data.load_dataset()


def dataset() -> data.Dataset:
    """The shared dataset, or a one-line error on the page and the end of this run."""
    try:
        return _dataset()
    except data.DataError as error:
        st.error(f"Fashion-MNIST could not be loaded. {error}", icon="🚫")
        st.stop()
        raise  # st.stop() raises; this line is for type checkers


@st.cache_resource(show_spinner="Looking for GPUs...")
def devices() -> list[str]:
    from fmnist.training import describe_devices

    return describe_devices()


@st.cache_resource
def training_manager() -> TrainingManager:
    from fmnist.training import TrainingManager

    shared = dataset()
    # The worker threads get the dataset already loaded: they must not call
    # Streamlit's cache from outside a script run.
    return TrainingManager(dataset_loader=lambda: shared)


@st.cache_resource(max_entries=6, show_spinner="Loading the model...")
def run_model(run_id: str, finished_at: str) -> keras.Model:
    # finished_at is part of the cache key: a run deleted and trained again
    # under the same id never gets the old model.
    del finished_at
    return runs.load_model(run_id)


@st.cache_resource(max_entries=2, show_spinner="Loading the imported model...")
def imported_model(digest: str, _payload: bytes) -> keras.Model:
    # Keyed by the file's digest; the leading underscore keeps Streamlit from
    # hashing the (large) payload itself.
    from fmnist.predictor import load_imported

    return load_imported(_payload)


@st.cache_resource(max_entries=6, show_spinner="Scoring the 10,000 test images...")
def test_probabilities(model_key: str, _model: keras.Model) -> np.ndarray:
    return evaluation.predict_probabilities(_model, dataset().x_test)


@st.cache_data(max_entries=256, show_spinner=False)
def prepare_upload(file_name: str, payload: bytes) -> imaging.PreparedImage:
    return imaging.prepare_upload(file_name, payload)


@st.cache_data(show_spinner="Computing class statistics...")
def class_mean_std() -> tuple[np.ndarray, np.ndarray]:
    ds = dataset()
    return dataset_stats.class_mean_std(ds.x_train, ds.y_train)


@st.cache_data(show_spinner="Counting pixel values...")
def intensity_histograms(skip_background: bool) -> np.ndarray:
    ds = dataset()
    return dataset_stats.intensity_histograms(ds.x_train, ds.y_train, skip_background)


@st.cache_data(show_spinner="Computing the PCA map...")
def pca_map(sample_size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return dataset_stats.pca_2d(dataset().x_train, sample_size, seed)


def list_runs() -> list[dict[str, Any]]:
    """Saved runs, newest first; unreadable folders are reported once per run, not fatal."""
    records, warnings = runs.list_runs()
    for warning in warnings:
        st.toast(warning, icon="⚠️")
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
