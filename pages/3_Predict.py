"""Predict: upload pictures, see the softmax, and study the confusion matrix of a model.

Models live in the inference service: this page holds references to them
(``ModelRef``) and asks the client for probabilities. The user's pictures are
kept for the session by ``fmnist.ui`` and ``fmnist.uploads``. Only the open tab
runs (lazy tabs), and each tab is a fragment: a click inside a tab reruns that
tab alone.
"""

import functools
from collections.abc import Callable

import numpy as np
import streamlit as st
from PIL import Image
from streamlit_drawable_canvas import st_canvas

from fmnist import (
    charts,
    config,
    dataset_stats,
    evaluation,
    imaging,
    inference_client,
    messages,
    predictor,
    runs,
    ui,
)
from fmnist import uploads as kept
from fmnist.data import CLASS_NAMES
from fmnist.inference_client import InferenceError, ModelError, ModelInfo, ModelRef
from fmnist.inference_protocol import AUTO, GRAD_CAM, INTEGRATED_GRADIENTS
from fmnist.ui.point_map import picked_index, point_map

ui.setup_page("Predict", "🔮")
KEY = "predict_"
GREEN, RED = (44, 160, 44), (214, 39, 40)
TABS = [
    "📤 Your pictures", "✏️ Draw", "🎲 A test image", "🧮 Confusion matrix", "🖼️ Gallery",
    "🗺️ Learned space",
]  # fmt: skip
SPACE_PICK = KEY + "space_pick"  # the test image clicked on either map
NEIGHBOURS = 8
CANVAS_SIZE = 280  # ten screen pixels per input pixel
NO_CLASS = -1  # the "—" of the True class boxes (None would mean "nothing chosen" there)
TRUE_CLASS_OPTIONS = [NO_CLASS, *range(len(CLASS_NAMES))]

# Settings that outlive a closed tab or a visit to another page.
ui.keep_widget_state(
    KEY + name
    for name in ("normalise", "only_wrong", "test_index", "camera_on", "gallery_seed", "mirrored")
)


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
            st.error(f"This run's model cannot be loaded: {ui.plain(error)}", icon="🚫")
            return None
    upload = st.file_uploader(
        "A Keras 3 model file taking 28×28 pictures and giving 10 class scores",
        type=["keras"],
        key=KEY + "model_file",
    )
    if upload is None:
        st.info("Choose a .keras file (for example one downloaded from the Train page).")
        return None
    # File names and the messages about them are the user's text: shown literally.
    name = ui.plain(upload.name)
    try:
        model = ui.imported_model(upload.getvalue())
    except ModelError as error:
        st.error(f"{name}: {ui.plain(error)}", icon="🚫")
        return None
    except InferenceError as error:
        st.error(f"{name} could not be checked: {ui.plain(error)}", icon="🚫")
        return None
    st.success(f"Imported {name}: {model.parameters:,} parameters.", icon="📦")
    return model


def draw_prediction(result: dict, true_label: int | None) -> None:
    confidence = result["confidence"]
    verdict = f"**{result['class_name']}** — {confidence:.1%}"
    if true_label is not None:
        verdict += (
            " ✅" if true_label == result["label"] else f" ❌ (true: {CLASS_NAMES[true_label]})"
        )
    st.markdown(verdict)
    st.caption(" · ".join(f"{name} {p:.1%}" for name, p in result["top3"]))
    if result.get("unusual"):
        st.warning(
            "**This picture looks unlike the clothes the network learned from** (grey photos "
            "of one garment, filled in, light on black). The network still has to pick one of "
            "its ten classes, so its answer, however confident, means little here. Drawings, "
            "outlines, text and scenes often look like this.",
            icon="🧐",
        )
    elif confidence < predictor.LOW_CONFIDENCE:
        st.warning(
            "Low confidence: the network is unsure. Pictures unlike Fashion-MNIST "
            "(several objects, busy backgrounds) often get this.",
            icon="⚠️",
        )
    st.html(charts.softmax_html(result["probabilities"], true_label))


# -- Your pictures ----------------------------------------------------------------------


def camera_key() -> str:
    """The camera gets a new key after each photo: an empty camera, ready for the next."""
    return f"{KEY}camera_{st.session_state.get(KEY + 'camera_round', 0)}"


def take_uploads() -> None:
    # The uploader keeps listing what it received (with the browser's own line
    # for a file over the limit); only files it has not handed over yet are added.
    ui.add_uploaded_files(st.session_state.get(KEY + "uploads") or [])


def take_photo(key: str) -> None:
    photo = st.session_state.get(key)
    if photo is not None:
        ui.add_pictures([(kept.camera_name(ui.kept_pictures()), photo.getvalue())])
    st.session_state[KEY + "camera_round"] = st.session_state.get(KEY + "camera_round", 0) + 1


def choose_true_class(digest: str, key: str) -> None:
    chosen = st.session_state[key]
    kept.set_label(ui.kept_pictures(), digest, None if chosen == NO_CLASS else chosen)


def remove_all() -> None:
    ui.kept_pictures().clear()


def draw_adders() -> None:
    st.file_uploader(
        f"Pictures of clothes, shoes or bags: {imaging.ACCEPTED_NAMES}, "
        f"up to {config.MAX_UPLOAD_MB} MB each",
        type=imaging.ACCEPTED_EXTENSIONS,
        accept_multiple_files=True,
        max_upload_size=config.MAX_UPLOAD_MB,
        key=KEY + "uploads",
        on_change=take_uploads,
        help="Each picture is kept for this browser session, with the class you give it, "
        "until you remove it with its own 🗑️ Remove button: you can switch models or pages "
        "and come back. Removing a file from this list removes nothing.",
    )
    if st.toggle("📷 Use the camera", key=KEY + "camera_on"):
        key = camera_key()
        st.camera_input(
            "Take a photo: one garment, shoe or bag, on a plain background, filling the frame",
            key=key,
            on_change=take_photo,
            args=(key,),
        )
    for name, reason in ui.refused_pictures():
        st.error(f"**{ui.plain(name)}**: {ui.plain(reason)}", icon="🚫")


# Integrated gradients first: measured in `make bench`, blanking the pixels it marks
# lowers the answer's probability 2.7 times as much as blanking random ones on
# cnn-bn (the shipped model until 2026-12-07); Grad-CAM's 14x14 regions, 1.1 times.
WHY_METHODS = {
    INTEGRATED_GRADIENTS: "Integrated gradients: which pixels",
    AUTO: "Grad-CAM: which regions",
}
WHY_CAPTIONS = {
    GRAD_CAM: "Grad-CAM on the last convolution: the regions whose features raised the "
    "score of **{name}**.",
    INTEGRATED_GRADIENTS: "Integrated gradients: the pixels that raised the score of "
    "**{name}**, summed along the way from a black picture to this one.",
}


def draw_why(
    model: ModelRef,
    pixels: np.ndarray,
    predicted: int,
    key: str,
    picture_id: str = "",
    original: Image.Image | None = None,
    square: tuple[float, float, float] | None = None,
) -> None:
    """A heatmap of what pushed the network towards a class, computed once the user opens it."""
    box = st.expander("🔎 Why this answer?", key=key + "_open", on_change="rerun")
    if not box.open:
        return
    with box:
        left, right = st.columns([2, 3])
        # Keyed by the picture and the answer: a new answer starts from its own class.
        chosen = left.selectbox(
            "Towards the class",
            range(len(CLASS_NAMES)),
            index=predicted,
            format_func=lambda c: CLASS_NAMES[c] + (" (the answer)" if c == predicted else ""),
            key=f"{key}_class_{picture_id}_{predicted}",
        )
        method = right.radio(
            "Map", list(WHY_METHODS), format_func=WHY_METHODS.get, horizontal=True, key=key + "_how"
        )
        try:
            why = inference_client.explain(model, pixels, chosen, method)
        except (InferenceError, ValueError) as error:
            st.error(f"No map for this picture: {ui.plain(error)}", icon="🚫")
            return
        shown = [imaging.enlarge(imaging.heat_overlay(pixels, why.heatmap), 8)]
        captions = ["over what the network sees"]
        if original is not None and square is not None:
            shown.append(imaging.heat_on_original(original, why.heatmap, square))
            captions.append("over your picture")
        columns = st.columns(3)
        for column, image, caption in zip(columns, shown, captions, strict=False):
            column.image(image, caption=caption, width="stretch")
        columns[-1].html(charts.heat_legend_html(imaging.HEAT_STOPS))
        note = f" ({ui.plain(why.fallback)})" if why.fallback else ""
        st.caption(
            WHY_CAPTIONS[why.method].format(name=CLASS_NAMES[chosen])
            + note
            + " Colour shows the push; where there is none, the picture shows through."
        )


def draw_picture(model: ModelRef, digest: str, picture: kept.Picture, result: dict) -> None:
    store = ui.kept_pictures()
    item = picture.prepared
    short = digest[:16]
    with st.container(border=True, key=f"{KEY}card_{short}"):
        original, seen, verdict = st.columns([1, 1, 2])
        with original:
            # Captions are Markdown: a file name could fetch an image from anywhere.
            st.image(item.original, caption=ui.plain(picture.name), width="stretch")
            st.button(
                "🗑️ Remove", key=f"{KEY}remove_{short}", on_click=kept.remove, args=(store, digest)
            )
        seen.image(
            imaging.enlarge(item.pixels, 8),
            caption="what the network sees (28×28)" + (", inverted" if item.inverted else ""),
            width="stretch",
        )
        with verdict:
            truth_key = f"{KEY}truth_{short}"
            st.session_state[truth_key] = NO_CLASS if picture.label is None else picture.label
            st.selectbox(
                "True class (optional)",
                TRUE_CLASS_OPTIONS,
                format_func=lambda c: "—" if c == NO_CLASS else CLASS_NAMES[c],
                key=truth_key,
                on_change=choose_true_class,
                args=(digest, truth_key),
            )
            if picture.guessed:
                st.markdown(
                    f"🤔 **{CLASS_NAMES[picture.label]}** was guessed from the file name — "
                    "confirm? A guess is not counted in your accuracy."
                )
                yes, clear = st.columns(2)
                yes.button(
                    "✔️ Confirm",
                    key=f"{KEY}confirm_{short}",
                    on_click=kept.confirm,
                    args=(store, digest),
                )
                clear.button(
                    "✖️ Clear",
                    key=f"{KEY}clear_{short}",
                    on_click=kept.set_label,
                    args=(store, digest, None),
                )
            draw_prediction(result, picture.label if picture.counted else None)
        draw_why(
            model, item.pixels, result["label"], f"{KEY}why_{short}", "", item.original, item.square
        )


def draw_mirror_toggle() -> None:
    st.toggle(
        "Mirror too (test-time augmentation)",
        key=KEY + "mirrored",
        help="Score each picture and its mirror image (left and right swapped) and average "
        "the two: often a little more accurate with networks trained on mirrored pictures "
        "(fast-wide's recipe), at twice the work.",
    )


def scorer(model: ModelRef) -> Callable[[np.ndarray], np.ndarray]:
    """The model's softmax of pictures, averaged with their mirror images' when asked."""
    if st.session_state.get(KEY + "mirrored"):
        return lambda pixels: inference_client.predict_mirrored(model, pixels)
    return lambda pixels: inference_client.predict(model, pixels)


def draw_uploads(model: ModelRef) -> None:
    draw_adders()
    store = ui.kept_pictures()
    if not store:
        st.info(
            "Upload pictures or take a photo. Each is turned into what the network expects: grey, "
            "light on black, cropped to the object, 28×28 — you see both side by side."
        )
        return
    pictures = list(store.items())
    heading, mirror, clear = st.columns([3, 2, 1], vertical_alignment="center")
    heading.markdown(f"**{messages.count(len(pictures), 'picture')}**, kept for this session")
    with mirror:
        draw_mirror_toggle()
    clear.button("🗑️ Remove all", key=KEY + "remove_all", on_click=remove_all)
    # All pictures go through the network in one call.
    results = predictor.predict_prepared(
        [p.prepared for _, p in pictures],
        scorer(model),
        ui.unlikeness_if_known(),  # None without the dataset: no "unlike" warning then
    )
    truths, guesses = [], []
    for (digest, picture), result in zip(pictures, results, strict=True):
        draw_picture(model, digest, picture, result)
        if picture.counted:
            truths.append(picture.label)
            guesses.append(result["label"])
    guessed = sum(p.guessed for _, p in pictures)
    if truths:
        st.subheader("Your own set")
        own = predictor.score_own_set(truths, guesses)
        st.metric(
            "Accuracy on your pictures",
            f"{own.accuracy:.0%}",
            help=f"{own.right} of {own.total} right, counting the classes you chose or confirmed",
        )
        if len(own.names) > 1:  # a matrix of one class is one block of colour
            st.plotly_chart(
                charts.confusion_heatmap(own.matrix, names=own.names), key=KEY + "own_matrix"
            )
    if guessed:
        st.caption(
            f"{messages.count(guessed, 'picture')} {'has' if guessed == 1 else 'have'} a class "
            "guessed from the file name: confirm it, or choose "
            "the class, to count them in the accuracy on your pictures."
        )


# -- Draw a garment -----------------------------------------------------------------------


def draw_canvas(model: ModelRef) -> None:
    left, right = st.columns([1, 1], gap="large")
    with left:
        st.markdown("**Draw a garment, a shoe or a bag** in black, as on paper.")
        strokes = st_canvas(
            stroke_width=st.slider("Pen width", 6, 40, 18, key=KEY + "pen"),
            stroke_color="#000000",
            background_color="#ffffff",
            height=CANVAS_SIZE,
            width=CANVAS_SIZE,
            drawing_mode="freedraw",
            return_image_data=True,
            key=KEY + "canvas",
        )
        st.caption(
            "Fill the shape in: the network learned from photos of whole garments, not "
            "outlines. The bin above the canvas clears it; the arrows undo and redo a stroke."
        )
    drawing = strokes.image_bytes if strokes is not None else None
    with right:
        draw_mirror_toggle()
        if not drawing:
            st.info("The network's answer appears here as you draw.", icon="✏️")
            return
        # The same preprocessing as a photo: white paper is inverted to black, the
        # strokes become the light object, cropped and scaled to 28x28.
        prepared = imaging.prepare_upload("drawing.png", drawing)
        if prepared.error:
            st.info("Draw something: the canvas is still empty.", icon="✏️")
            return
        (result,) = predictor.predict_prepared([prepared], scorer(model), ui.unlikeness_if_known())
        seen, verdict = st.columns([1, 2])
        seen.image(
            imaging.enlarge(prepared.pixels, 6),
            caption="what the network sees (28×28)",
            width="stretch",
        )
        with verdict:
            draw_prediction(result, None)
    draw_why(model, prepared.pixels, result["label"], KEY + "why_drawing", "drawing")


# -- A test image, the confusion matrix, the gallery -------------------------------------


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
        draw_prediction(result, true_label)
    draw_why(model, ds.x_test[index], result["label"], f"{KEY}why_test", str(index))
    draw_inside(model, ds.x_test[index], f"{KEY}inside_test")


def draw_inside(model: ModelRef, pixels: np.ndarray, key: str) -> None:
    """Each layer's maps for the picture, what the first layer learned, and how the classes
    separate from layer to layer; computed once the user opens it."""
    box = st.expander("🧠 Inside the network", key=key + "_open", on_change="rerun")
    if not box.open:
        return
    with box:
        try:
            layers = inference_client.feature_maps(model, pixels)
        except (InferenceError, ModelError, ValueError) as error:
            st.caption(f"🚫 No layer maps for this network: {ui.plain(error)}")
            layers = []
        if layers:
            st.markdown("**What each layer makes of this picture** (bright: strongly active)")
        for layer in layers:
            shown = layer.maps.shape[-1]
            more = f", the first {shown} shown" if shown < layer.total else ""
            picture, words = st.columns([3, 1])
            scale = max(1, 56 // layer.maps.shape[0])  # small maps drawn bigger
            picture.image(imaging.mosaic(layer.maps, 16, scale), width="stretch")
            words.caption(f"**{ui.plain(layer.name)}**: {layer.kind}{more}")
        for part in (draw_first_layer, draw_separation):  # one failing hides not the other
            try:
                part(model)
            except (InferenceError, ModelError, ValueError) as error:
                st.caption(f"🚫 Not shown for this network: {ui.plain(error)}")


def draw_first_layer(model: ModelRef) -> None:
    first = inference_client.first_layer(model)
    if first is None:
        return
    count = first.weights.shape[-1]
    if first.kind == "filters":
        size = first.weights.shape[0]
        st.markdown(
            f"**What the first layer learned**: its {count} filters of {size}×{size} pixels, "
            "each slid over the picture (red: adds brightness there, blue: subtracts)"
        )
        st.image(
            imaging.mosaic(first.weights, 16, max(1, 40 // size), signed=True), width="stretch"
        )
        return
    shown = min(count, 32)
    st.markdown(
        f"**What the first layer learned**: the 784 weights of each of its {count} units as a "
        f"28×28 picture (the first {shown}; red: bright pixels there raise the unit, blue: "
        "lower it)"
    )
    st.image(imaging.mosaic(first.weights[:, :, :shown], 16, 2, signed=True), width="stretch")
    if first.class_templates is not None:
        st.markdown(
            "**Each class's template**: the weight matrices multiplied together, as if the "
            "network had no activation functions: the classic picture of what it learned"
        )
        st.html(
            charts.image_grid_html(
                [imaging.mosaic(first.class_templates[:, :, [c]], 1, 1, signed=True)
                 for c in range(len(CLASS_NAMES))],
                CLASS_NAMES,
                [""] * len(CLASS_NAMES),
                len(CLASS_NAMES),
            )
        )  # fmt: skip


def draw_separation(model: ModelRef) -> None:
    stages = inference_client.separation(model)
    st.markdown(
        "**Layer by layer, how the classes stand apart**: on 2,000 test images, how often the "
        "nearest class average at that layer is the right class"
    )
    st.plotly_chart(charts.layer_separation(stages), key=KEY + "separation")


def draw_confusion(model: ModelRef) -> None:
    ds = ui.dataset()
    probabilities = ui.test_probabilities(model)
    scores = evaluation.score(probabilities, ds.y_test)
    matrix = scores.confusion_matrix
    st.metric("Test accuracy", f"{scores.accuracy:.2%}", help="on the 10,000 test images")
    normalised = st.toggle("Normalise by row (share of each true class)", key=KEY + "normalise")
    event = st.plotly_chart(
        charts.confusion_heatmap(matrix, normalised, clickable=True),
        key=KEY + "matrix",
        on_select="rerun",
        selection_mode="points",
    )
    points = event.selection.points if event else []
    if points:
        true, predicted = predictor.confusion_cell(points[0])
        indices = predictor.cell_images(ds.y_test, scores.predictions, true, predicted)
        st.subheader(
            f"True {CLASS_NAMES[true]}, predicted {CLASS_NAMES[predicted]}: {len(indices)}"
        )
        if len(indices) == 0:
            st.caption("No test image in this cell.")
        shown = indices[:18]
        columns = st.columns(6)
        for slot, i in enumerate(shown):
            columns[slot % 6].image(
                imaging.enlarge(ds.x_test[i], 4),
                caption=f"#{i}: {predictor.short_softmax(probabilities[i])}",
            )
        if len(indices) > len(shown):
            st.caption(f"The first {len(shown)} of {len(indices)}.")
    else:
        st.caption("Click a cell of the matrix to see the test images behind it.")
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
        # The prediction on one line, the true class below; a non-breaking hyphen keeps
        # "T-shirt/top" whole in a 110 px caption.
        caption=[
            f"**{unbroken(CLASS_NAMES[predictions[i]])}** {probabilities[i, predictions[i]]:.0%}"
            f"  \n({unbroken(CLASS_NAMES[ds.y_test[i]])})"
            for i in chosen
        ],
        width=110,
    )
    st.caption(
        "Green frame: right. Red frame: wrong. Caption: prediction, confidence (true class)."
    )


def pick_from_map(chart_key: str) -> None:
    """A map's callback: the clicked test image (a click on a star, the user's own, sends none)."""
    picked = picked_index(chart_key)
    if picked is not None:
        st.session_state[SPACE_PICK] = picked


def draw_space(model: ModelRef) -> None:
    ds = ui.dataset()
    indices, pixel_map = ui.space_sample()
    features, learned_map = ui.learned_space(model)
    # Scored now, with the maps, rather than on the first click of a point.
    probabilities = ui.test_probabilities(model)
    labels = ds.y_test[indices]
    pictures = [
        (p.name, p.prepared.pixels)
        for p in ui.kept_pictures().values()
        if p.prepared.pixels is not None
    ]
    pixel_stars, learned_stars = [], []
    if pictures:
        names, stack = [name for name, _ in pictures], np.stack([px for _, px in pictures])
        on_pixels = pixel_map.place(stack.reshape(len(stack), -1) / 255.0)
        on_learned = learned_map.place(inference_client.features(model, stack))
        pixel_stars = [(n, x, y) for n, (x, y) in zip(names, on_pixels, strict=True)]
        learned_stars = [(n, x, y) for n, (x, y) in zip(names, on_learned, strict=True)]
    left, right = st.columns(2)
    for column, (title, projection, stars, key) in zip(
        (left, right),
        (
            ("By raw pixels (as on Explore)", pixel_map, pixel_stars, KEY + "pixel_space"),
            ("By the last hidden layer", learned_map, learned_stars, KEY + "learned_space"),
        ),
        strict=True,
    ):
        with column:
            score = dataset_stats.nearest_centre_accuracy(projection.coordinates, labels)
            st.markdown(f"**{title}**: a point's nearest class centre is its own class for "
                        f"**{score:.0%}** of them")  # fmt: skip
            points = charts.pca_map(
                projection.coordinates,
                labels,
                indices,
                projection.explained,
                stars,
                picked=st.session_state.get(SPACE_PICK),
            )
            point_map(points, key, functools.partial(pick_from_map, key))
    st.caption(
        f"Each point is one of {len(indices):,} test images, coloured by its true class; "
        "★ your own pictures (Your pictures, Draw). Left, placed by its 784 pixels; right, by "
        f"the {features.shape[1]:,} values of the network's last hidden layer (both PCA). "
        "Training has pulled the classes apart. **Click a point** to see its image and its "
        "nearest neighbours in the network's eyes."
    )
    picked = st.session_state.get(SPACE_PICK)
    if picked is None or picked not in set(indices.tolist()):
        return
    position = int(np.flatnonzero(indices == picked)[0])
    result = predictor.describe(probabilities[picked])
    image, verdict = st.columns([1, 3])
    image.image(imaging.enlarge(ds.x_test[picked], 6), caption=f"test image #{picked}")
    with verdict:
        draw_prediction(result, int(ds.y_test[picked]))
    close = indices[dataset_stats.nearest(features, position, NEIGHBOURS)]
    st.markdown(f"**Its {NEIGHBOURS} nearest neighbours for the network** (prediction; true class)")
    predicted = probabilities[close].argmax(axis=1)
    st.html(
        charts.image_grid_html(
            ds.x_test[close],
            [CLASS_NAMES[c] for c in predicted],
            [f"#{i}, {CLASS_NAMES[ds.y_test[i]]}" for i in close],
            NEIGHBOURS,
        )
    )


def unbroken(name: str) -> str:
    return name.replace("-", "\u2011")


def guarded(draw: Callable[[ModelRef], None], model: ModelRef, needs_dataset: bool = False) -> None:
    """Draw one tab; a failure of the inference service is one line in that tab."""
    if needs_dataset and ui.dataset_or_none() is None:
        st.warning(
            "This tab needs the Fashion-MNIST test images, which could not be loaded "
            "(the Home page says why). Your own pictures still work.",
            icon="📭",
        )
        return
    try:
        draw(model)
    except ModelError as error:
        st.error(f"This model cannot be used: {ui.plain(error)}", icon="🚫")
    except InferenceError as error:
        st.error(f"No prediction: {ui.plain(error)}", icon="🚫")


# Each tab is a fragment: its widgets rerun the tab alone, not the page.
@st.fragment
def uploads_tab(model: ModelRef) -> None:
    guarded(draw_uploads, model)


@st.fragment
def canvas_tab(model: ModelRef) -> None:
    guarded(draw_canvas, model)


@st.fragment
def test_image_tab(model: ModelRef) -> None:
    guarded(draw_test_image, model, needs_dataset=True)


@st.fragment
def confusion_tab(model: ModelRef) -> None:
    guarded(draw_confusion, model, needs_dataset=True)


@st.fragment
def gallery_tab(model: ModelRef) -> None:
    guarded(draw_gallery, model, needs_dataset=True)


@st.fragment
def space_tab(model: ModelRef) -> None:
    guarded(draw_space, model, needs_dataset=True)


def draw_predict() -> None:
    st.title("🔮 Predict")
    # The service imports TensorFlow (seconds): start it while the dataset loads.
    inference_client.warm_up()
    # Uploads and imported models work without Fashion-MNIST; only the test-set tabs need it.
    ui.dataset_or_none()
    ui.warm_up_shape_space()
    chosen = choose_model()
    if chosen is None:
        return
    # Lazy tabs: only the open one runs; switching tabs reruns the page.
    tabs = st.tabs(TABS, key=KEY + "tab", on_change="rerun")
    for tab, draw in zip(
        tabs,
        (uploads_tab, canvas_tab, test_image_tab, confusion_tab, gallery_tab, space_tab),
        strict=True,
    ):
        if tab.open:
            with tab:
                draw(chosen.ref)


draw_predict()
