"""Predict: upload pictures, see the softmax, and study the confusion matrix of a model.

Models live in the inference service: this page holds references to them
(``ModelRef``) and asks the client for probabilities.
"""

from collections.abc import Callable

import numpy as np
import streamlit as st

from fmnist import charts, evaluation, imaging, inference_client, predictor, runs, ui
from fmnist.data import CLASS_NAMES
from fmnist.inference_client import InferenceError, ModelError, ModelInfo, ModelRef

ui.setup_page("Predict", "🔮")
KEY = "predict_"
GREEN, RED = (44, 160, 44), (214, 39, 40)


def choose_model() -> ModelInfo | None:
    """The chosen run or imported file, loaded in the service, or None with a message shown."""
    records = runs.by_accuracy(ui.list_runs())
    # "Try it on your own pictures" after a training links here with ?run=<the new run>.
    wanted = st.query_params.pop("run", None)
    chosen = next((r for r in records if r["run_id"] == wanted), None)
    if chosen is not None:
        st.session_state[KEY + "source"] = "A saved run"
        st.session_state[KEY + "run"] = chosen
    source = st.radio(
        "Model", ["A saved run", "Import a .keras file"], horizontal=True, key=KEY + "source"
    )
    if source == "A saved run":
        if not records:
            st.warning("No saved run yet: train one on the Train page, or import a .keras file.")
            return None
        record = st.selectbox(
            "Run (best test accuracy first)",
            records,
            format_func=lambda r: f"{r['run_id']} — {r['network']}, {r['test_accuracy']:.2%}",
            key=KEY + "run",
        )
        try:
            return ui.run_model(record)
        except InferenceError as error:  # a damaged model file must not crash the page
            st.error(f"This run's model cannot be loaded: {error}", icon="🚫")
            return None
    upload = st.file_uploader(
        "A Keras 3 model file taking 28×28 pictures and giving 10 class scores",
        type=["keras"],
        key=KEY + "model_file",
    )
    if upload is None:
        st.info("Choose a .keras file (for example one downloaded from the Train page).")
        return None
    try:
        model = ui.imported_model(upload.getvalue())
    except ModelError as error:
        st.error(f"{upload.name}: {error}", icon="🚫")
        return None
    except InferenceError as error:
        st.error(f"{upload.name} could not be checked: {error}", icon="🚫")
        return None
    st.success(f"Imported {upload.name}: {model.parameters:,} parameters.", icon="📦")
    return model


def draw_prediction(result: dict, true_label: int | None, key: str) -> None:
    confidence = result["confidence"]
    verdict = f"**{result['class_name']}** — {confidence:.1%}"
    if true_label is not None:
        verdict += (
            " ✅" if true_label == result["label"] else f" ❌ (true: {CLASS_NAMES[true_label]})"
        )
    st.markdown(verdict)
    st.caption(" · ".join(f"{name} {p:.1%}" for name, p in result["top3"]))
    if confidence < predictor.LOW_CONFIDENCE:
        st.warning(
            "Low confidence: the network is unsure. Pictures unlike Fashion-MNIST "
            "(several objects, busy backgrounds) often get this.",
            icon="⚠️",
        )
    st.plotly_chart(charts.softmax_bars(result["probabilities"], true_label, height=260), key=key)


def draw_uploads(model: ModelRef) -> None:
    uploads = st.file_uploader(
        "Pictures of clothes, shoes or bags: PNG, JPEG, WebP, BMP, GIF or TIFF",
        type=imaging.ACCEPTED_EXTENSIONS,
        accept_multiple_files=True,
        key=KEY + "uploads",
    )
    if not uploads:
        st.info(
            "Upload one or more pictures. Each is turned into what the network expects: grey, "
            "light on black, cropped to the object, 28×28 — you see both side by side."
        )
        return
    prepared = [ui.prepare_upload(f.name, f.getvalue()) for f in uploads]
    # All usable pictures go through the network in one call.
    results = predictor.predict_prepared(
        prepared, lambda pixels: inference_client.predict(model, pixels)
    )
    truths, guesses = [], []
    for index, (item, result) in enumerate(zip(prepared, results, strict=True)):
        if "error" in result:
            st.error(f"**{item.file}**: {result['error']}", icon="🚫")
            continue
        with st.container(border=True):
            original, seen, verdict = st.columns([1, 1, 2])
            original.image(item.original, caption=f"{item.file}", width="stretch")
            seen.image(
                imaging.enlarge(item.pixels, 8),
                caption="what the network sees (28×28)" + (", inverted" if item.inverted else ""),
                width="stretch",
            )
            with verdict:
                options = [None, *range(len(CLASS_NAMES))]
                true_label = st.selectbox(
                    "True class (optional)",
                    options,
                    index=options.index(item.true_label),
                    format_func=lambda c: "—" if c is None else CLASS_NAMES[c],
                    key=f"{KEY}truth_{index}_{item.file}",
                )
                draw_prediction(result, true_label, key=f"{KEY}softmax_{index}_{item.file}")
        if true_label is not None:
            truths.append(true_label)
            guesses.append(result["label"])
    if truths:
        st.subheader("Your own set")
        own = predictor.score_own_set(truths, guesses)
        st.metric(
            "Accuracy on your pictures",
            f"{own.accuracy:.0%}",
            help=f"{own.right} of {own.total} right",
        )
        st.plotly_chart(
            charts.confusion_heatmap(own.matrix, names=own.names), key=KEY + "own_matrix"
        )


def draw_test_image(model: ModelRef) -> None:
    ds = ui.dataset()
    st.session_state.setdefault(KEY + "test_index", 0)
    left, right = st.columns([1, 2])
    with left:
        if st.button("🎲 Random test image", key=KEY + "random"):
            st.session_state[KEY + "test_index"] = int(np.random.default_rng().integers(10_000))
        index = st.number_input("Test image index", 0, 9_999, key=KEY + "test_index")
        st.image(imaging.enlarge(ds.x_test[index], 8), caption=f"test image #{index}")
    true_label = int(ds.y_test[index])
    result = predictor.describe(inference_client.predict(model, ds.x_test[index])[0])
    with right:
        draw_prediction(result, true_label, key=KEY + "test_softmax")


def draw_confusion(model: ModelRef) -> None:
    ds = ui.dataset()
    probabilities = ui.test_probabilities(model)
    scores = evaluation.score(probabilities, ds.y_test)
    matrix = scores.confusion_matrix
    st.metric("Test accuracy", f"{scores.accuracy:.2%}", help="on the 10,000 test images")
    normalised = st.toggle("Normalise by row (share of each true class)", key=KEY + "normalise")
    event = st.plotly_chart(
        charts.confusion_heatmap(matrix, normalised),
        key=KEY + "matrix",
        on_select="rerun",
        selection_mode="points",
    )
    points = event.selection.points if event else []
    left, right = st.columns(2)
    with left:
        st.markdown("**Per-class precision, recall and F1**")
        st.dataframe(
            evaluation.per_class_metrics(matrix),
            hide_index=True,
            column_config={
                name: st.column_config.NumberColumn(format="%.3f")
                for name in ("precision", "recall", "f1")
            },
        )
    with right:
        st.markdown("**Most confused pairs**")
        for true, predicted, count in evaluation.most_confused_pairs(matrix):
            st.markdown(
                f"- {count} × **{CLASS_NAMES[true]}** taken for **{CLASS_NAMES[predicted]}**"
            )
    if points:
        true, predicted = predictor.confusion_cell(points[0])
        indices = predictor.cell_images(ds.y_test, scores.predictions, true, predicted)
        st.subheader(
            f"True {CLASS_NAMES[true]}, predicted {CLASS_NAMES[predicted]}: {len(indices)}"
        )
        shown = indices[:12]
        columns = st.columns(4)
        for slot, i in enumerate(shown):
            with columns[slot % 4]:
                st.image(imaging.enlarge(ds.x_test[i], 4), caption=f"#{i}")
                st.plotly_chart(
                    charts.softmax_bars(probabilities[i], true, height=220),
                    key=f"{KEY}cell_{i}",
                )
    else:
        st.caption("Click a cell of the matrix to see the test images behind it.")


def draw_gallery(model: ModelRef) -> None:
    ds = ui.dataset()
    probabilities = ui.test_probabilities(model)
    st.session_state.setdefault(KEY + "gallery_seed", 0)
    left, right = st.columns([3, 1])
    only_wrong = left.toggle("Only mistakes", key=KEY + "only_wrong")
    if right.button("🔀 Reshuffle", key=KEY + "gallery_shuffle"):
        st.session_state[KEY + "gallery_seed"] += 1
    predictions = probabilities.argmax(axis=1)
    chosen = predictor.gallery_sample(
        ds.y_test, predictions, only_wrong, st.session_state[KEY + "gallery_seed"]
    )
    st.image(
        [
            imaging.framed(ds.x_test[i], GREEN if predictions[i] == ds.y_test[i] else RED)
            for i in chosen
        ],
        caption=[
            f"{CLASS_NAMES[predictions[i]]} {probabilities[i, predictions[i]]:.0%} "
            f"({CLASS_NAMES[ds.y_test[i]]})"
            for i in chosen
        ],
        width=110,
    )
    st.caption(
        "Green frame: right. Red frame: wrong. Caption: prediction, confidence (true class)."
    )


def guarded(draw: Callable[[ModelRef], None], model: ModelRef) -> None:
    """Draw one tab; a failure of the inference service is one line in that tab."""
    try:
        draw(model)
    except ModelError as error:
        st.error(f"This model cannot be used: {error}", icon="🚫")
    except InferenceError as error:
        st.error(f"No prediction: {error}", icon="🚫")


def draw_predict() -> None:
    st.title("🔮 Predict")
    # The service imports TensorFlow (seconds): start it while the dataset loads.
    inference_client.warm_up()
    ui.dataset()
    chosen = choose_model()
    if chosen is None:
        return
    uploads, test_image, confusion, gallery = st.tabs(
        ["📤 Your pictures", "🎲 A test image", "🧮 Confusion matrix", "🖼️ Gallery"]
    )
    for tab, draw in (
        (uploads, draw_uploads),
        (test_image, draw_test_image),
        (confusion, draw_confusion),
        (gallery, draw_gallery),
    ):
        with tab:
            guarded(draw, chosen.ref)


draw_predict()
