"""Explore: class balance, samples, one image's pixels, class statistics, a PCA map.

This page never imports TensorFlow, so that it opens fast.
"""

import streamlit as st

from fmnist import charts, dataset_stats, imaging, ui
from fmnist.data import CLASS_NAMES, class_counts

ui.setup_page("Explore", "🔍")
KEY = "explore_"


def draw_distribution(ds) -> None:
    st.subheader("Class distribution")
    st.plotly_chart(
        charts.class_distribution(class_counts(ds.y_train), class_counts(ds.y_test)),
        key=KEY + "distribution",
    )
    st.caption(
        "Every class has exactly 6,000 training and 1,000 test images: "
        "accuracy is a fair score here."
    )


def draw_sample_grid(ds) -> None:
    st.subheader("Samples")
    st.session_state.setdefault(KEY + "seed", 0)
    left, middle, right = st.columns([4, 1, 1], vertical_alignment="bottom")
    chosen = left.multiselect(
        "Classes", CLASS_NAMES, placeholder="All classes", key=KEY + "classes"
    )
    count = middle.selectbox("Images", [9, 16, 32], index=1, key=KEY + "count")
    if right.button("🔀 Reshuffle", key=KEY + "reshuffle", width="stretch"):
        st.session_state[KEY + "seed"] += 1
    classes = [CLASS_NAMES.index(name) for name in chosen]
    indices = dataset_stats.sample_indices(
        ds.y_train, classes, count, st.session_state[KEY + "seed"]
    )
    per_row = 8 if count > 16 else (3 if count == 9 else 8)
    for start in range(0, len(indices), per_row):
        row = indices[start : start + per_row]
        st.image(
            [imaging.enlarge(ds.x_train[i]) for i in row],
            caption=[f"#{i} {CLASS_NAMES[ds.y_train[i]]}" for i in row],
            width=96,
        )


def draw_inspector(ds) -> None:
    st.subheader("Pixel inspector")
    selected = st.session_state.get(KEY + "selected_index")
    left, right = st.columns([1, 2])
    with left:
        index = st.number_input(
            "Training image index",
            0,
            len(ds.y_train) - 1,
            value=int(selected) if selected is not None else 0,
            key=KEY + "index",
        )
        label = int(ds.y_train[index])
        st.markdown(f"**Label:** {label} — {CLASS_NAMES[label]}  \n**Index:** {index}")
        image = ds.x_train[index]
        st.markdown(
            f"Values from **{image.min()}** to **{image.max()}**, mean {image.mean():.1f}; "
            f"{(image == 0).mean():.0%} of the pixels are background (0). Networks see them "
            "divided by 255."
        )
    with right:
        st.plotly_chart(
            charts.pixel_heatmap(image, f"#{index}: {CLASS_NAMES[label]}"), key=KEY + "heatmap"
        )


def draw_class_statistics(ds) -> None:
    st.subheader("What an average garment looks like")
    means, stds = ui.class_mean_std()
    st.plotly_chart(charts.class_images(means, "Mean image per class"), key=KEY + "means")
    st.plotly_chart(
        charts.class_images(stds, "Standard deviation per class (where images differ)", "viridis"),
        key=KEY + "stds",
    )
    st.subheader("Pixel intensities per class")
    left, right = st.columns(2)
    skip = left.toggle("Leave out background pixels (0)", value=True, key=KEY + "skip_background")
    log_scale = right.toggle("Logarithmic scale", value=False, key=KEY + "log")
    st.plotly_chart(
        charts.intensity_histograms(ui.intensity_histograms(skip), log_scale),
        key=KEY + "histograms",
    )


def draw_pca(ds) -> None:
    st.subheader("A 2-D map of the data (PCA)")
    left, right = st.columns([1, 3])
    with left:
        sample_size = st.select_slider(
            "Images on the map", [1000, 2000, 3000, 5000], value=3000, key=KEY + "pca_n"
        )
        st.caption(
            "Each point is one training image projected on the two directions of greatest "
            "variance. Click a point to inspect that image."
        )
    indices, coordinates, explained = ui.pca_map(sample_size, 0)
    with right:
        event = st.plotly_chart(
            charts.pca_scatter(coordinates, ds.y_train[indices], indices, explained),
            key=KEY + "pca",
            on_select="rerun",
            selection_mode="points",
        )
    points = event.selection.points if event else []
    with left:
        if points:
            index = int(points[0]["customdata"])
            st.image(
                imaging.enlarge(ds.x_train[index], 6),
                caption=f"#{index} {CLASS_NAMES[ds.y_train[index]]}",
            )
            if st.button("Inspect its pixels", key=KEY + "inspect"):
                st.session_state[KEY + "selected_index"] = index
                st.session_state.pop(KEY + "index", None)
                st.rerun()


def draw_explore() -> None:
    st.title("🔍 Explore Fashion-MNIST")
    ds = ui.dataset()
    ui.dataset_status()
    draw_distribution(ds)
    draw_sample_grid(ds)
    draw_inspector(ds)
    draw_class_statistics(ds)
    draw_pca(ds)


draw_explore()
