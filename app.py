"""Home page: what Fashion-MNIST Studio is, the dataset and device status, the pages."""

import streamlit as st

from fmnist import messages, runs, ui
from fmnist.data import CLASS_NAMES

ui.setup_page("Home", "👕")


def draw_home() -> None:
    st.title("👕 Fashion-MNIST Studio")
    st.markdown(
        "Explore the **Fashion-MNIST** dataset (70,000 grey 28×28 pictures of clothes in "
        "10 classes), **train** a neural network on it and watch it learn, live, from your "
        "browser (the training runs on this server, on its GPU when it has one), then "
        "**upload your own pictures** and see what the network thinks they are."
    )
    st.markdown(
        "1. **Explore** the images, their classes and statistics.\n"
        "2. **Train** a network — the tutorials' MLPs and CNNs, our fast CNNs, or your own "
        "layers — with live curves, and compare your runs.\n"
        "3. **Predict** your own photos, or study where a model goes wrong with its "
        "confusion matrix. A trained model ships with the app, so this works right away."
    )
    ui.page_links()
    st.divider()
    st.subheader("Status")
    ui.dataset_status()
    # Named by the inference service, which starts now if it has not yet (it
    # imports TensorFlow, which this process never does): "detecting…" until then.
    ui.device_status()
    records = ui.list_runs()
    ranked = runs.by_accuracy(records)
    best = ranked[0] if ranked else None
    if best:
        st.info(
            f"**{messages.count(len(records), 'saved run')}.** Best: `{best['run_id']}` "
            f"({ui.plain(best['network'])}), "
            f"test accuracy {best['test_accuracy']:.2%}.",
            icon="💾",
        )
    else:
        st.warning("No saved runs yet: train one on the Train page.", icon="💾")
    st.caption("Classes: " + " · ".join(f"{i} {name}" for i, name in enumerate(CLASS_NAMES)))


draw_home()
