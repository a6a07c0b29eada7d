"""Explore: class balance and samples, one image's pixels beside a PCA map, class statistics.

This page never imports TensorFlow, so that it opens fast. Its parts are lazy tabs: only
the open one runs and is drawn. It loads no charting library (Plotly's 4.7 MB of JavaScript
cost a first-time visitor's browser over a second, Vega-Lite's 1.2 MB most of one): pictures
are HTML, and the map and the inspected image are canvases of our own (fmnist.ui.point_map,
fmnist.ui.pixel_picture). Each part with widgets
is a fragment, so that a click reruns that part only, except the map, whose click changes
the inspector beside it; what the parts show is computed once per server
(fmnist.ui.explore_stats).
"""

import numpy as np
import streamlit as st

from fmnist import charts, dataset_stats, imaging, ui
from fmnist.data import CLASS_NAMES, class_counts
from fmnist.ui.pixel_picture import load_pixel_picture_code, pixel_picture
from fmnist.ui.point_map import load_point_map_code, picked_index, point_map

ui.setup_page("Explore", "🔍")
KEY = "explore_"
INDEX = KEY + "index"  # the inspected image: the number box, the picture and the map agree
NOTE = KEY + "index_note"
TABS = [
    "👕 Classes and samples", "🔬 One image and the map",
    "🧥 Average garments", "📊 Pixel intensities",
]  # fmt: skip

# Settings that outlive a closed tab or a visit to another page.
ui.keep_widget_state(
    KEY + name
    for name in ("index", "values", "pca_n", "classes", "count", "skip_background", "log")
)


def draw_distribution(ds) -> None:
    st.subheader("Class balance")
    train, test = class_counts(ds.y_train), class_counts(ds.y_test)
    rows = [
        f"| {label} | {name} | {train[label]:,} | {test[label]:,} |"
        for label, name in enumerate(CLASS_NAMES)
    ]
    table = "| label | class | training images | test images |\n|---:|---|---:|---:|\n"
    st.markdown(table + "\n".join(rows))
    st.caption(
        f"Every class has exactly {train[0]:,} training and {test[0]:,} test images: "
        "accuracy is a fair score here."
        if len(set(train.tolist())) == 1 and len(set(test.tolist())) == 1
        else "The classes do not have the same number of images: read accuracy with care."
    )


@st.fragment
def draw_sample_grid(ds) -> None:
    st.subheader("Samples")
    st.session_state.setdefault(KEY + "seed", 0)
    # Pills, not a drop-down list: a class is one click, and the page has nothing to
    # animate open and closed (the list's closing animation outlasted the rerun).
    # A row of their own: the ten pills need the page's width (in a narrower column the
    # last ones are cut off).
    chosen = st.pills(
        "Classes (none picked: all of them)",
        CLASS_NAMES,
        selection_mode="multi",
        key=KEY + "classes",
    )
    left, middle, right = st.columns([4, 1, 1], vertical_alignment="center")
    count = middle.selectbox(
        "Images",
        [9, 16, 32],
        index=1,
        key=KEY + "count",
        format_func=lambda n: f"{n} images",
        label_visibility="collapsed",
    )
    if right.button("🔀 Reshuffle", key=KEY + "reshuffle", width="stretch"):
        st.session_state[KEY + "seed"] += 1
    classes = [CLASS_NAMES.index(name) for name in chosen]
    pool = int(np.isin(ds.y_train, classes).sum()) if classes else len(ds.y_train)
    left.caption(f"Drawn at random from {pool:,} training images.")
    indices = dataset_stats.sample_indices(
        ds.y_train, classes, count, st.session_state[KEY + "seed"]
    )
    st.html(
        charts.image_grid_html(
            ds.x_train[indices],
            [CLASS_NAMES[label] for label in ds.y_train[indices]],
            [f"#{index}" for index in indices],
            dataset_stats.images_per_row(len(indices)),
        )
    )


def _checked_index() -> None:
    """The number box's callback: an index out of range is brought back, with one line."""
    index, note = dataset_stats.clamp_index(st.session_state[INDEX], len(ui.dataset().y_train))
    st.session_state[INDEX] = index
    st.session_state[NOTE] = note


def _inspect_map_point() -> None:
    """The map's callback: the clicked image becomes the inspected one, box included."""
    picked = picked_index(KEY + "pca")
    if picked is not None:
        st.session_state[INDEX] = picked
        st.session_state[NOTE] = None


def draw_map_and_inspector(ds) -> None:
    st.subheader("One image, pixel by pixel")
    map_column, inspector = st.columns(2, gap="large")
    # The map is drawn by the page, the inspector by its own fragment: typing an index or
    # pressing + reruns the inspector alone, without sending the map's 3,000 points again;
    # a click on the map reruns the page, and with it the inspector.
    with map_column:
        stats = ui.explore_stats()
        # Buttons, not a slider: the first tab's pills already loaded their code, where a
        # slider's (with the number and date formatting libraries it brings) is 120 KB more
        # for the browser to fetch and compile when this tab opens.
        size = st.segmented_control(
            "Images on the map",
            dataset_stats.PCA_SIZES,
            default=3000,
            required=True,
            format_func=lambda n: f"{n:,}",
            key=KEY + "pca_n",
        )
        indices, coordinates = stats.pca_sample(size)
        points = charts.pca_map(
            coordinates,
            ds.y_train[indices],
            indices,
            stats.pca_explained,
            picked=st.session_state.setdefault(INDEX, 0),  # the inspected image, ringed
        )
        point_map(points, KEY + "pca", _inspect_map_point)
        st.caption(
            "A 2-D map of the data (PCA): each point is one training image, placed along the "
            "two directions in which the images differ most. **Click a point** to look at its "
            'pixels on the right; click a class in the legend to see it alone ("✕ all '
            'classes", or a double-click on the map, shows them all again).'
        )
    # The 784 numbers need the page's width to be read: below both columns. A placeholder
    # holds one element, which each rerun of the inspector replaces (not adds to).
    values_slot = st.empty()
    with inspector:
        draw_inspector(ds, values_slot)


@st.fragment
def draw_inspector(ds, values_slot) -> None:
    last = len(ds.y_train) - 1  # INDEX has its default already: the map sets it
    box, values = st.columns([3, 2], vertical_alignment="bottom")
    index = box.number_input(
        f"Image index (0–{last:,})",
        step=1,
        key=INDEX,
        on_change=_checked_index,
        help=f"The {last + 1:,} training images are numbered from 0 to {last:,}. Type a "
        "number and press Enter, use − and +, or click a point on the map.",
    )
    show_values = values.toggle("Show values", key=KEY + "values")
    if st.session_state.get(NOTE):
        st.warning(st.session_state[NOTE], icon="↩️")
    label = int(ds.y_train[index])
    image = ds.x_train[index]
    title = f"#{index}: {CLASS_NAMES[label]}"
    pixel_picture(image, title, KEY + "picture")
    st.html(charts.heat_legend_html(GREY_STOPS, "pixel value", "0", "255"))
    st.markdown(
        f"**Label:** {label} — {CLASS_NAMES[label]} · **Index:** {index}  \n"
        + dataset_stats.describe_image(image)
    )
    # Written to on every run, shown or not: Streamlit refuses a fragment's rerun that
    # writes to an outside container its last full run left alone.
    if show_values:
        values_slot.html(charts.pixel_values_html(image, f"{title}: its 784 values"))
    else:
        values_slot.empty()


GREY_STOPS = np.array([(0.0, 0, 0, 0), (1.0, 255, 255, 255)])


def draw_class_images(stats) -> None:
    # Pictures, not Plotly heatmaps: each is one 28x28 image the browser enlarges.
    st.subheader("What an average garment looks like")
    means = np.clip(stats.means, 0, 255).round().astype(np.uint8)
    st.markdown("**The mean image of each class** (6,000 training images each)")
    st.html(class_grid(means))
    st.html(charts.heat_legend_html(GREY_STOPS, "mean pixel value", "0", "255"))
    spread = float(stats.stds.max())
    st.markdown("**The standard deviation of each class**: where its images differ")
    st.html(class_grid(imaging.heat_colours(stats.stds / spread)))
    st.html(charts.heat_legend_html(imaging.HEAT_STOPS, "standard deviation", "0", f"{spread:.0f}"))


def class_grid(images: np.ndarray) -> str:
    return charts.image_grid_html(images, CLASS_NAMES, [""] * len(CLASS_NAMES), 5)


@st.fragment
def draw_histograms(stats) -> None:
    st.subheader("Pixel intensities per class")
    left, right, _ = st.columns([2, 2, 3])
    skip = left.toggle("Leave out background pixels (0)", value=True, key=KEY + "skip_background")
    log_scale = right.toggle("Logarithmic scale", value=False, key=KEY + "log")
    st.html(charts.intensity_histograms_html(stats.histograms(skip), log_scale))
    st.caption(
        "Each panel: the share of one class's pixels in each band of 8 values (0–7, 8–15, …, "
        "248–255), in colour, over all classes together, dotted. Sandals and sneakers have "
        "the most dark pixels (straps, soles); coats, trousers and ankle boots the most bright "
        "ones. About two-thirds of a trouser, sandal or sneaker picture is background (0)."
    )


def classes_tab(ds) -> None:
    draw_sample_grid(ds)
    draw_distribution(ds)
    # While the user looks at this tab, the browser gets the code of the map tab's parts:
    # it then opens sooner (the map's code: about 70 ms; the index box's and toggle's: 45).
    load_point_map_code()
    load_pixel_picture_code()
    load_inspector_code()


def load_inspector_code() -> None:
    """An index box and a toggle that nobody sees, for the browser to load their code with
    this tab rather than when the map tab opens: it opened in 280 ms instead of 324, and
    this tab in 1,662 ms instead of 1,612 (a scratch A/B, 8 rounds each)."""
    # First the rule that hides them (by the container's CSS class, st-key-<key>), so that
    # they never show; Streamlit puts a style-only block out of the page's flow.
    st.html(f"<style>.st-key-{KEY}preload {{ display: none; }}</style>")
    with st.container(key=KEY + "preload"):
        # With a help text, as the real box has: its tooltip's code comes too.
        st.number_input("Index", key=KEY + "preload_index", label_visibility="collapsed", help=".")
        st.toggle("Values", key=KEY + "preload_values", label_visibility="collapsed")


def draw_explore() -> None:
    st.title("🔍 Explore Fashion-MNIST")
    ds = ui.dataset()
    ui.dataset_status()
    # Lazy tabs: only the open one runs; switching tabs reruns the page.
    tabs = st.tabs(TABS, key=KEY + "tab", on_change="rerun")
    parts = (
        classes_tab,
        draw_map_and_inspector,
        lambda ds: draw_class_images(ui.explore_stats()),
        lambda ds: draw_histograms(ui.explore_stats()),
    )
    for tab, draw in zip(tabs, parts, strict=True):
        if tab.open:
            with tab:
                draw(ds)


draw_explore()
