"""Train: pick a network, train it in a worker process, watch it learn, keep and compare runs."""

import functools
import time

import numpy as np
import streamlit as st

from fmnist import (
    charts,
    evaluation,
    export,
    hardware,
    imaging,
    inference_client,
    messages,
    runs,
    settings_link,
    ui,
)
from fmnist.client import JobNotFoundError, NotOwnerError, new_token
from fmnist.data import CLASS_NAMES
from fmnist.networks import CUSTOM, NETWORKS, spec_of_record
from fmnist.schema import (
    AUGMENT_STRENGTHS,
    AUGMENTATIONS,
    LR_SCHEDULES,
    OPTIMIZERS,
    JobState,
    JobView,
    TrainConfig,
    augment_entry,
    augment_strengths,
    describe_augment,
    split_augment,
)
from fmnist.ui import builder

ui.setup_page("Train", "🏋️")
KEY = "train_"
RUNS_OPEN = KEY + "runs_open"  # the runs table's expander
MORE_OPEN = KEY + "more_open"  # the form's "More settings"
MORE_DRAWN = KEY + "more_drawn"  # its widgets, drawn since its first opening
# The settings under "More settings" (augmentations apart), and their widgets' keys.
MORE_SETTINGS = {
    "validation_split": "val_split", "seed": "seed", "early_stopping_patience": "patience",
    "name": "name", "label_smoothing": "smoothing", "mixed_precision": "mixed",
}  # fmt: skip
# How often a watching page reads the job: the numbers, and the chart. A browser on
# the training machine redrawing every second took up to half of a small training's
# CPU (measured: 0.56 of the command line's speed, 0.86 with these intervals).
PROGRESS_SECONDS = 2.0
CHART_SECONDS = 5.0
# Once Stop is pressed (and while the test set is scored) the user waits for the saved
# run, and the training no longer needs the CPU: read the job four times a second.
WAITING_SECONDS = 0.25
LEARNING_RATES = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)
AUGMENTATION_NAMES = {
    "flip": "mirror left-right",
    "shift": "shift",
    "erase": "grey box (random erasing)",
    "rotate": "rotate",
    "zoom": "zoom in or out",
}
STRENGTH_LABELS = {
    "shift": "Shift: up to (pixels)",
    "erase": "Grey box: on (% of pictures)",
    "rotate": "Rotate: up to (degrees)",
    "zoom": "Zoom: up to (%)",
}
PREVIEW_SAMPLES = 11  # with the original: a row of twelve
DELETE_REPORT_SECONDS = 60.0
MAX_EPOCHS = 500  # TrainConfig's own limit: a job from the command line may have that many
LIMITS = {"all 60,000": 0, "30,000": 30_000, "10,000": 10_000, "5,000": 5_000, "2,000": 2_000}
ui.keep_widget_state([RUNS_OPEN])  # open or closed, as the user left it
STATE_ICONS = {
    JobState.QUEUED: "⏳", JobState.RUNNING: "🏃", JobState.STOPPING: "✋",
    JobState.EVALUATING: "🧪", JobState.DONE: "✅", JobState.STOPPED: "⏹️",
    JobState.FAILED: "❌", JobState.INTERRUPTED: "⚡",
}  # fmt: skip


def own_job() -> JobView | None:
    """This session's job, found again after a page switch (session) or a reload (URL)."""
    job_id = st.session_state.get(KEY + "job_id") or st.query_params.get("job")
    if not job_id:
        return None
    job = ui.training_client().job(job_id)
    if job is None:
        st.warning(
            f"Training job {ui.plain(job_id)} no longer exists: its link is out of date.", icon="🔗"
        )
        st.session_state.pop(KEY + "job_id", None)
        st.query_params.pop("job", None)
        st.query_params.pop("key", None)
        return None
    st.session_state[KEY + "job_id"] = job.id
    if "key" in st.query_params:
        st.session_state.setdefault(KEY + "token", st.query_params["key"])
    # The form shows the settings of the job on screen, not the defaults.
    if st.session_state.get(KEY + "form_from_job") != job.id:
        st.session_state[KEY + "form_from_job"] = job.id
        fill_form(job.config)
    return job


def fill_form(config: TrainConfig) -> None:
    limit = limit_label(config.limit)
    if limit not in LIMITS:  # a job or link with another count: offered as it is
        st.session_state[KEY + "other_limit"] = config.limit
    values = {
        "network": config.network, "epochs": config.epochs, "batch": config.batch_size,
        "lr": config.learning_rate, "optimizer": config.optimizer,
        "lr_schedule": config.lr_schedule, "limit": limit,
        "augment": [split_augment(entry)[0] for entry in config.augment],
        **{key: getattr(config, field) for field, key in MORE_SETTINGS.items()},
    }  # fmt: skip
    strengths = augment_strengths(config.augment)
    for name, known in AUGMENT_STRENGTHS.items():
        values[f"strength_{name}"] = strengths.get(name) or known.default
    for key, value in values.items():
        if value is not None:
            st.session_state[KEY + key] = value
    if config.network == CUSTOM:
        builder.set_layers([dict(layer) for layer in config.layers])


def apply_link() -> None:
    """A link made by "🔗 Copy link" fills the form, once per link."""
    if not settings_link.has_settings(st.query_params):
        return
    query = str(sorted((k, v) for k, v in st.query_params.items() if k in settings_link.PARAMETERS))
    if st.session_state.get(KEY + "link_applied") == query:
        return
    st.session_state[KEY + "link_applied"] = query
    try:
        config = settings_link.from_parameters(st.query_params)
    except ValueError as error:
        st.warning(f"This link's settings cannot be used: {ui.plain(str(error))}", icon="🔗")
        return
    fill_form(config)
    st.toast("The form holds the settings of the link.", icon="🔗")


def limit_label(count: int) -> str:
    return next((label for label, n in LIMITS.items() if n == count), f"{count:,}")


def limit_count(label: str) -> int:
    return LIMITS[label] if label in LIMITS else int(label.replace(",", ""))


def limit_options() -> list[str]:
    other = st.session_state.get(KEY + "other_limit")
    return [*LIMITS, *([limit_label(other)] if other and limit_label(other) not in LIMITS else [])]


def fill_defaults() -> None:
    """The form's starting values, set once per session (never with value= as well).

    Its widgets keep their values through a visit to another page (persist_state=
    "session"): Streamlit dropped them with the other page's run, and the form came back
    with 1 epoch and seed 0."""
    if not st.session_state.get(KEY + "defaults_set"):
        st.session_state[KEY + "defaults_set"] = True
        fill_form(TrainConfig())


def token() -> str:
    return st.session_state.setdefault(KEY + "token", new_token())


def admin_token() -> str | None:
    """An operator opens the page once with ?admin=FMNIST_ADMIN_TOKEN; the session keeps it."""
    if "admin" in st.query_params:
        st.session_state[KEY + "admin"] = st.query_params.pop("admin")
    given = st.session_state.get(KEY + "admin")
    return given if given and ui.training_client().is_admin(given) else None


def may_control(job: JobView) -> bool:
    client = ui.training_client()
    return client.can_control(job.id, st.session_state.get(KEY + "token")) or bool(admin_token())


def control_token(job: JobView) -> str | None:
    """The token that lets this session act on ``job``: its own, or the operator's."""
    own = st.session_state.get(KEY + "token")
    return own if ui.training_client().can_control(job.id, own) else admin_token()


def draw_network_picker() -> str:
    # The recipe button sits beside the picker, so that Start stays in view at 1280x800.
    picker, button = st.columns([2, 1], vertical_alignment="bottom")
    name = picker.selectbox(
        "Network",
        [*NETWORKS, CUSTOM],
        format_func=lambda n: (
            f"{n} — " + (NETWORKS[n].origin if n in NETWORKS else "your own layers (builder)")
        ),
        key=KEY + "network",
        persist_state="session",
    )
    # One container whatever it holds (the builder, or a line about the network): the
    # form below keeps its place in the page, so a rerun redraws it instead of showing a
    # second, stale form while the builder's rows and messages come and go.
    below = st.container()
    if name == CUSTOM:
        with below:
            builder.draw()
        return name
    network = NETWORKS[name]
    if network.recipe:
        recipe = TrainConfig(network=name, **network.recipe)
        button.button(
            "📋 Recipe",
            on_click=use_recipe,
            help=f"Use its recipe: {recipe_words(recipe)}. "
            + (network.recipe_words or "The settings of the README's accuracy table."),
            key=KEY + "recipe",
            width="stretch",
        )
    below.caption(f"{network.description} **{network.parameters:,} parameters.**")
    return name


def use_recipe() -> None:
    """The recipe button's callback: the recipe of the network picked when it was pressed
    (read now, not bound when the button was drawn: a click right after switching
    networks must not bring the previous network's recipe, and that network, back)."""
    name = st.session_state[KEY + "network"]
    fill_form(TrainConfig(network=name, **NETWORKS[name].recipe))


def recipe_words(config: TrainConfig) -> str:
    words = [messages.count(config.epochs, "epoch"), f"batch {config.batch_size}"]
    if config.learning_rate != TrainConfig.learning_rate or config.lr_schedule != "constant":
        words.append(f"rate {config.learning_rate:g} {config.lr_schedule}")
    if config.mixed_precision:
        words.append("mixed precision where the machine has it")
    return ", ".join(words + regularisation(config.to_dict()))


def draw_layers(name: str) -> None:
    if name == CUSTOM:
        return  # the builder shows its layers
    # A static table: an st.dataframe here cost the page's first load ~0.3 s of Chromium.
    layers = NETWORKS[name].layers
    rows = [
        f"| {row['layer']} | {row['type']} | {row['output shape']} | {row['parameters']:,} |"
        for row in layers
    ]
    total = sum(row["parameters"] for row in layers)
    with st.expander(f"Layers of {name}"):
        st.markdown(
            "| layer | type | output shape | parameters |\n|---|---|---|---:|\n"
            + "\n".join(rows)
            + f"\n| **total** | | | **{total:,}** |"
        )


def draw_settings(name: str, job_active: bool, sixteen_bit: bool | None) -> None:
    with st.form(KEY + "form", border=True):
        # The settings people change most come first, so that Start stays in view
        # on a laptop screen; the rest wait in "More settings".
        left, right = st.columns(2)
        settings = {
            "network": name,
            "layers": tuple(builder.current_layers()) if name == CUSTOM else (),
            "epochs": left.number_input(
                "Epochs", 1, MAX_EPOCHS, key=KEY + "epochs", persist_state="session"
            ),
            "limit": limit_count(
                right.selectbox(
                    "Training images",
                    limit_options(),
                    key=KEY + "limit",
                    persist_state="session",
                    help="Fewer images train faster: good for a quick demo.",
                )
            ),
            "learning_rate": left.select_slider(
                "Learning rate",
                # With the rate of the job on screen, which may come from the command line.
                sorted({*LEARNING_RATES, st.session_state.get(KEY + "lr", 0.001)}),
                key=KEY + "lr",
                persist_state="session",
            ),
            "batch_size": right.selectbox(
                "Batch size",
                # With the batch of the job or link on screen, which may be another size.
                sorted({16, 32, 64, 128, 256, 512, st.session_state.get(KEY + "batch", 32)}),
                key=KEY + "batch",
                persist_state="session",
            ),
            "optimizer": left.selectbox(
                "Optimizer", OPTIMIZERS, key=KEY + "optimizer", persist_state="session"
            ),
            "lr_schedule": right.selectbox(
                "Schedule",
                LR_SCHEDULES,
                key=KEY + "lr_schedule",
                persist_state="session",
                help="How the learning rate changes. cosine: it falls smoothly to 1% by the "
                "last batch, so the final epochs settle instead of jumping around. one-cycle: "
                "it climbs from 1/25 of the rate over the first quarter, then falls to nearly "
                "0: the fastest way to a good network in a few epochs.",
            ),
        }
        settings |= draw_more_settings(sixteen_bit)
        start, share = st.columns([3, 2])
        started = start.form_submit_button(
            "▶️ Start training", type="primary", disabled=job_active, width="stretch"
        )
        shared = share.form_submit_button(
            "🔗 Copy link",
            width="stretch",
            help="A link that opens this page with these settings (the layers and the "
            "random seed too), to copy and hand out so that everyone starts the same "
            "experiment.",
        )
    if job_active:
        st.caption("Your training is running: stop it or wait for it to finish to start another.")
    if shared:
        try:
            address = settings_link.link(st.context.url or "", TrainConfig.from_settings(settings))
        except ValueError as error:
            st.error(f"No link: {ui.plain(str(error))}", icon="🚫")
        else:
            st.code(address, language=None, wrap_lines=True)
            st.caption("Copy it with the button at its right: opening it fills this form.")
    if started:
        try:
            start_job(TrainConfig.from_settings(settings))
        except ValueError as error:
            st.error(f"Cannot start: {ui.plain(str(error))}", icon="🚫")
            return
        st.rerun()


def draw_more_settings(sixteen_bit: bool | None) -> dict:
    """The form's "More settings": an expander whose twelve widgets are drawn from its first
    opening on, and then stay drawn, open or closed (a value typed there and not yet sent
    survives closing it). Until then the settings are the session's (fill_form's).

    Those widgets cost a first visit's browser about 0.2 s: Train's first load took 1,694
    ms without them against 1,907 (a scratch A/B, 7 loads each).
    """
    more = st.expander("More settings", key=MORE_OPEN, on_change="rerun")
    if more.open:
        st.session_state[MORE_DRAWN] = True
    if not st.session_state.get(MORE_DRAWN):
        state = st.session_state
        names = state[KEY + "augment"]
        strengths = {n: state.get(KEY + f"strength_{n}") for n in names}
        return {field: state[KEY + key] for field, key in MORE_SETTINGS.items()} | {
            "augment": augment_entries(names, strengths)
        }
    with more:
        left, right = st.columns(2)
        return {
            "validation_split": left.slider(
                "Validation split",
                0.0,
                0.45,
                step=0.05,
                key=KEY + "val_split",
                persist_state="session",
            ),
            "seed": right.number_input(
                "Random seed", 0, 2**31 - 1, key=KEY + "seed", persist_state="session"
            ),
            "early_stopping_patience": left.number_input(
                "Early stopping patience",
                0,
                50,
                key=KEY + "patience",
                persist_state="session",
                help="0 = off. Stop when val_loss has not improved for this many "
                "epochs, and keep the best weights.",
            ),
            "name": right.text_input(
                "Run name", max_chars=40, key=KEY + "name", persist_state="session"
            ),
            "label_smoothing": left.select_slider(
                "Label smoothing",
                sorted({0.0, 0.05, 0.1, 0.2, st.session_state.get(KEY + "smoothing", 0.0)}),
                key=KEY + "smoothing",
                persist_state="session",
                help="0.1: the target is 91% on the true class and 1% on each other one, "
                "so the network learns to be less sure of itself and generalises better. "
                "The training loss then cannot fall below about 0.5.",
            ),
            "augment": augment_choice(),
            "mixed_precision": st.checkbox(
                "Mixed precision",
                disabled=sixteen_bit is False,
                key=KEY + "mixed",
                persist_state="session",
                help="16-bit arithmetic where the device has it, for faster convolutions: "
                "bfloat16 on CPUs with AVX-512 BF16 or AMX and on Ampere and later GPUs, "
                "float16 on older GPUs. The weights stay 32-bit. "
                + ("This machine computes in 32 bits only." if sixteen_bit is False else ""),
            ),
        }


def start_job(config: TrainConfig) -> None:
    """Queue ``config`` as this session's job, and follow it (also after a reload: the URL)."""
    job_id = ui.training_client().submit(config, token())
    st.session_state[KEY + "job_id"] = job_id
    st.session_state[KEY + "form_from_job"] = job_id
    st.query_params["job"] = job_id
    st.query_params["key"] = token()


def status_line(job: JobView) -> str:
    line = f"{STATE_ICONS[job.state]} **{job.state.value}**"
    if job.state is JobState.QUEUED:
        running, _ = ui.training_client().server_load(job.id)
        line += (
            f" — number {job.queue_position} in the queue behind "
            f"{messages.count(running, 'running training')}; it starts by itself."
        )
    elif job.phase:
        line += f" — {job.phase}…"
    elif job.message and job.state not in (JobState.INTERRUPTED, JobState.FAILED):
        # (an interrupted or failed job's message is said in its own box below)
        line += f" — {ui.plain(job.message)}"
    return line


def describe_config(config: TrainConfig) -> str:
    images = f"{config.limit:,}" if config.limit else "all 60,000"
    return (
        f"{messages.count(config.epochs, 'epoch')} · batch {config.batch_size} · learning rate "
        f"{config.learning_rate:g} ({config.optimizer}, {config.lr_schedule}) · "
        f"{images} images, {config.validation_split:.0%} for validation · seed {config.seed}"
        + "".join(f" · {extra}" for extra in regularisation(config.to_dict()))
        + (" · mixed precision" if config.mixed_precision else "")
    )


def augment_choice() -> list[str]:
    """The form's augmentations and their strengths, as TrainConfig entries ("shift:3")."""
    names = st.multiselect(
        "Augment the training images",
        AUGMENTATIONS,
        format_func=AUGMENTATION_NAMES.get,
        key=KEY + "augment",
        persist_state="session",
        help="Each batch, new random changes of the training images only: more "
        "varied pictures, so the network learns the garment, not the exact pixels. "
        "Worth it for long runs; short ones learn a little slower.",
    )
    columns = st.columns(2) * 2
    strengths = {
        name: column.slider(
            STRENGTH_LABELS[name],
            known.low,
            known.high,
            key=KEY + f"strength_{name}",
            persist_state="session",
            help=f"Used when {AUGMENTATION_NAMES[name]} is chosen above.",
        )
        for column, (name, known) in zip(columns, AUGMENT_STRENGTHS.items(), strict=True)
    }
    entries = augment_entries(names, strengths)
    if st.form_submit_button(
        "👁️ Show what the network will see",
        help="Random draws of these augmentations of one training picture, as the "
        "worker makes them; press again for another picture.",
    ):
        # Drawn beside the form (show_augmented), where there is room for a row of twelve.
        st.session_state[KEY + "preview"] = (
            tuple(entries),
            st.session_state.get(KEY + "preview", ((), 0))[1] + 1,
        )
    return entries


def augment_entries(names: list[str], strengths: dict[str, int | None]) -> list[str]:
    """The chosen augmentations with their strengths, as TrainConfig entries ("shift:3")."""
    return [augment_entry(name, strengths.get(name)) for name in names]


def show_augmented() -> None:
    """One training picture and PREVIEW_SAMPLES draws of its augmentation, in a row, once
    the form's "Show what the network will see" was pressed."""
    if KEY + "preview" not in st.session_state:
        return
    entries, draw = st.session_state[KEY + "preview"]
    st.markdown("**What the network will see**")
    if not entries:
        st.caption("Choose augmentations under More settings to see them here.")
        return
    images = ui.dataset().x_train
    index = int(np.random.default_rng(draw).integers(len(images)))
    # Kept for the session: other reruns of the page (the runs table, a job's end) show
    # the same draws without asking the inference service again.
    kept = st.session_state.get(KEY + "preview_samples")
    if kept is None or kept[0] != (entries, draw):
        try:
            samples = inference_client.augmented(entries, images[index], PREVIEW_SAMPLES, draw)
        except (inference_client.InferenceError, ValueError) as error:
            st.error(f"No samples: {ui.plain(str(error))}", icon="🚫")
            return
        kept = st.session_state[KEY + "preview_samples"] = ((entries, draw), samples)
    samples = kept[1]
    pictures = [images[index], *samples]
    row = (len(pictures) + 1) // 2
    for start in range(0, len(pictures), row):
        columns = st.columns(row, gap="small")
        for column, picture in zip(columns, pictures[start : start + row], strict=False):
            column.image(imaging.enlarge(picture, 3), width="stretch")
    st.caption(
        f"First, training image #{index:,}; then {len(samples)} draws of "
        + ", ".join(describe_augment(entry) for entry in entries)
        + ": each batch, every picture gets a new draw. Validation and test images never do."
    )


def regularisation(config: dict) -> list[str]:
    """The label smoothing and augmentations of a run's settings, in words; [] for none."""
    found = []
    if config.get("label_smoothing"):
        found.append(f"label smoothing {config['label_smoothing']:g}")
    if config.get("augment"):
        found.append("augmented: " + ", ".join(describe_augment(a) for a in config["augment"]))
    return found


def progress_seconds(job: JobView) -> float | None:
    """How often the progress fragment reads the job: not at all once it has ended."""
    if not job.state.active:
        return None
    waiting = job.state in (JobState.STOPPING, JobState.EVALUATING)
    return WAITING_SECONDS if waiting else PROGRESS_SECONDS


def draw_progress(job_id: str) -> None:
    client = ui.training_client()
    job = client.job(job_id)
    if job is None:
        st.warning("This training job no longer exists.", icon="🔗")
        return
    if job.state.active and progress_seconds(job) != st.session_state.get(KEY + "poll"):
        st.rerun()  # a fragment's interval is set by the whole page's run
    config = job.config
    named = f" “{ui.plain(config.name)}”" if config.name else ""
    st.subheader(f"Training `{config.network}`{named}")
    origin = " · started from the command line" if job.source == "cli" else ""
    st.caption(describe_config(config) + origin)
    st.markdown(status_line(job))
    if job.state is JobState.FAILED:
        st.error(f"Training failed: {ui.plain(job.message)}", icon="❌")

    epochs_done = min(job.epoch, config.epochs)
    st.progress(epochs_done / config.epochs, text=f"Epoch {epochs_done} of {config.epochs} done")
    st.progress(
        min(job.batch / max(job.batches, 1), 1.0),
        text=f"Batch {job.batch:,} of {job.batches:,} in this epoch"
        if job.batches
        else "Batches: not started yet",
    )
    working = job.state in (JobState.RUNNING, JobState.STOPPING)
    speed, elapsed, eta = st.columns(3)
    speed.metric("Images/s", f"{job.images_per_second:,.0f}" if job.images_per_second else "–")
    elapsed.metric("Elapsed", ui.format_seconds(job.elapsed))
    eta.metric("ETA", ui.format_seconds(job.eta) if working and job.eta else "–")
    last = job.history[-1] if job.history else None
    val_loss, val_accuracy, test_accuracy = st.columns(3)
    val_loss.metric("Val. loss", f"{last.val_loss:.4f}" if last and last.val_loss else "–")
    val_accuracy.metric(
        "Val. accuracy", f"{last.val_accuracy:.2%}" if last and last.val_accuracy else "–"
    )
    test_accuracy.metric(
        "Test accuracy", f"{job.test_accuracy:.2%}" if job.test_accuracy is not None else "–"
    )
    st.caption(f"Device: {job.device or 'not started yet'}")
    draw_controls(job)


def draw_curves(job_id: str) -> None:
    job = ui.training_client().job(job_id)
    if job is None:
        return
    # Drawn at once, empty while the network compiles (one core busy): a browser's first
    # Plotly chart costs it about a core-second, which then does not fall on an epoch.
    st.plotly_chart(
        charts.training_curves(
            [m.as_dict() for m in job.history], [p.__dict__ for p in job.live], job.config.epochs
        ),
        key=KEY + "live_chart",
    )
    st.caption(
        "Running: the average over the epoch so far, as Keras reports it; it restarts "
        "at each epoch, hence the step. Dots: whole epochs. Validation: held-out images."
    )
    draw_epoch_confusion(job)
    draw_layer_health(job)


def draw_layer_health(job: JobView) -> None:
    """Each kernel layer's weights and gradients, epoch by epoch; drawn once opened."""
    epochs = [m for m in job.history if m.layer_health]
    if not epochs:
        return
    box = st.expander("🩺 Weight health, layer by layer", key=KEY + "health", on_change="rerun")
    if not box.open:
        return
    with box:
        st.plotly_chart(
            charts.layer_health_curves([m.epoch for m in epochs], [m.layer_health for m in epochs]),
            key=KEY + "health_curves",
        )
        st.html(charts.layer_health_html(epochs[-1].layer_health))
        st.caption(
            f"After epoch {epochs[-1].epoch}. Gradients: of the loss on 256 fixed training "
            "images. Weights whose spread keeps shrinking, gradients that fall by orders of "
            "magnitude (vanishing) or leap up (exploding), and a growing share of exactly zero "
            "gradients (ReLU units that died) are what to look for."
        )


def draw_epoch_confusion(job: JobView) -> None:
    """The validation images' confusion matrix after the latest epoch; once the training
    has ended, a slider replays the epochs: which confusions resolve, which stay."""
    matrices = {m.epoch: np.array(m.val_confusion) for m in job.history if m.val_confusion}
    if not matrices:
        return
    epochs = list(matrices)
    epoch = epochs[-1]
    if not job.state.active and len(epochs) > 1:
        epoch = st.select_slider(
            "Replay the epochs", epochs, value=epoch, key=f"{KEY}matrix_epoch_{job.id}"
        )
    st.markdown(f"**Validation images after epoch {epoch}**: the share of each true class")
    matrix = matrices[epoch]
    st.plotly_chart(charts.confusion_heatmap(matrix, normalised=True), key=KEY + "epoch_matrix")
    first = matrices[epochs[0]]
    shares, first_shares = evaluation.normalise_rows(matrix), evaluation.normalise_rows(first)
    pairs = evaluation.most_confused_pairs(matrix)
    lines = []
    for true, predicted, _ in sorted(pairs, key=lambda pair: -shares[pair[0], pair[1]])[:3]:
        then = first_shares[true, predicted]
        since = f" (after epoch {epochs[0]}: {then:.0%})" if epoch != epochs[0] else ""
        lines.append(
            f"- **{CLASS_NAMES[true]}** taken for **{CLASS_NAMES[predicted]}**: "
            f"{shares[true, predicted]:.0%}{since}"
        )
    if lines:
        st.markdown("Most confused now:\n" + "\n".join(lines))


def draw_controls(job: JobView) -> None:
    client = ui.training_client()
    mine = may_control(job)
    if job.state in (JobState.QUEUED, JobState.RUNNING) and mine:
        label = "⏹️ Cancel" if job.state is JobState.QUEUED else "⏹️ Stop"
        if st.button(label, key=KEY + "stop", help="Ends after the current step; keeps the run."):
            try:
                client.stop(job.id, control_token(job))
            except (NotOwnerError, JobNotFoundError) as error:
                st.error(ui.plain(error), icon="🚫")
            else:
                st.rerun()  # the page then reads the stopping job more often
    elif job.state is JobState.INTERRUPTED:
        st.warning(f"This training was {ui.plain(job.message)}.", icon="⚡")
        if job.resumable and mine and st.button("▶️ Resume", key=KEY + "resume", type="primary"):
            try:
                client.resume(job.id, control_token(job))
            except (NotOwnerError, JobNotFoundError) as error:
                st.error(ui.plain(error), icon="🚫")
            else:
                st.rerun()
    elif job.state.final and st.session_state.get(KEY + "finished_seen") != job.id:
        # The job just ended: rerun the whole page so the runs table shows the new run.
        st.session_state[KEY + "finished_seen"] = job.id
        if job.run_id:
            st.session_state[RUNS_OPEN] = True
        st.rerun()
    elif job.run_id:
        st.success(f"Saved as run `{job.run_id}`.", icon="💾")
        st.page_link(
            "pages/3_Predict.py",
            label="Try it on your own pictures",
            icon="🔮",
            query_params={"run": job.run_id},
        )
    if job.state.active and not mine:
        st.caption("Only the browser session that started this training can stop it.")


def draw_server_load(own_id: str | None) -> None:
    client = ui.training_client()
    running, queued = client.server_load(own_id)
    if running or queued:
        parts = [f"{messages.count(running, 'training')} running"] if running else []
        if queued:
            parts.append(f"{queued} waiting")
        st.info("Also on this server: " + ", ".join(parts) + ".", icon="👥")
    operator = admin_token()
    if operator and (running or queued):
        with st.expander("Operator: every active training", expanded=True):
            for other in client.active_jobs():
                if other.id == own_id:
                    continue
                left, right = st.columns([4, 1])
                where = (
                    f"queue #{other.queue_position}"
                    if other.state is JobState.QUEUED
                    else f"epoch {other.epoch + 1} of {other.config.epochs}"
                )
                left.markdown(
                    f"`{other.id}` {other.config.network}, {other.state.value}, {where} "
                    f"({other.source})"
                )
                if right.button("⏹️ Stop", key=f"{KEY}admin_stop_{other.id}"):
                    try:
                        client.stop(other.id, operator)
                    except (NotOwnerError, JobNotFoundError) as error:  # ended meanwhile
                        st.error(ui.plain(error), icon="🚫")
                    else:
                        st.rerun()


def run_rows(records: list[dict]) -> list[dict]:
    rows = []
    for r in records:
        config = r.get("config", {})
        rows.append(
            {
                "run": runs.short_label(r),
                "network": r["network"],
                "status": r.get("status", ""),
                "epochs": r.get("epochs_completed"),
                "test accuracy": r.get("test_accuracy"),
                "learning rate": config.get("learning_rate"),
                "batch": config.get("batch_size"),
                "optimizer": ", ".join(
                    filter(None, (config.get("optimizer"), config.get("lr_schedule")))
                ),
                "images": r.get("train_images"),
                "images/s": round(r.get("images_per_second") or 0),
                "seed": config.get("seed"),
                "extras": " · ".join(
                    filter(
                        None,
                        (
                            config.get("label_smoothing")
                            and f"smooth {config['label_smoothing']:g}",
                            ", ".join(map(describe_augment, config.get("augment") or ())),
                            # What it computed in, not what was asked for.
                            r.get("mixed_precision") and "16-bit",
                        ),
                    )
                ),
            }
        )
    return rows


def own_active_job() -> bool:
    job_id = st.session_state.get(KEY + "job_id")
    job = ui.training_client().job(job_id) if job_id else None
    return job is not None and job.state.active


def continue_run(record: dict) -> None:
    """The runs table's button: N more epochs of a saved run, as a new, linked run."""
    more = int(st.session_state[KEY + "more_epochs"])
    name = record.get("name") or ""
    try:
        config = TrainConfig.from_dict(record.get("config", {})).to_dict()
        config.update(
            network=record["network"],
            epochs=int(record.get("epochs_completed") or 0) + more,
            parent_run=record["run_id"],
            name=(f"{name} " if name else "") + f"+{more}",
        )
        start_job(TrainConfig.from_settings(config))
    except (ValueError, TypeError) as error:
        st.session_state[KEY + "continue_error"] = str(error)


def make_tflite(record: dict) -> None:
    """The runs table's button: the run's model as TensorFlow Lite, kept for one download."""
    st.session_state.pop(KEY + "tflite", None)  # one model of megabytes per session at most
    try:
        converted = inference_client.tflite(inference_client.RunModel.of(record))
    except inference_client.InferenceError as error:
        st.session_state[KEY + "tflite_error"] = str(error)
        return
    st.session_state[KEY + "tflite"] = (record["run_id"], converted)


def edit_layers_of(record: dict) -> None:
    """The runs table's button: the run's network, layer by layer, into the builder."""
    try:
        layers = spec_of_record(record)
    except ValueError as error:  # a run.json edited by hand, or from a newer version
        st.session_state[KEY + "continue_error"] = f"its layers cannot be read: {error}"
        return
    st.session_state[KEY + "network"] = CUSTOM
    builder.set_layers(layers)


def delete_runs(chosen: tuple[tuple[str, str], ...]) -> None:
    """The Delete button's callback: exactly the runs (id, label) ticked when it was pressed."""
    deleted, errors = [], []
    for run_id, label in chosen:
        try:
            runs.delete_run(run_id)
            deleted.append(label)
        except runs.RunError as error:
            errors.append(str(error))
    # A new table widget: the old ticks must not land on the rows that move up.
    st.session_state[KEY + "table_version"] = st.session_state.get(KEY + "table_version", 0) + 1
    st.session_state[KEY + "delete_report"] = (deleted, errors, time.monotonic())


def draw_delete_report() -> None:
    # Kept a while rather than shown once: the page also reruns by itself (a job's end,
    # the worker naming its devices), which would take the report away before it is read.
    deleted, errors, when = st.session_state.get(KEY + "delete_report", ([], [], 0.0))
    if time.monotonic() - when > DELETE_REPORT_SECONDS:
        st.session_state.pop(KEY + "delete_report", None)
        return
    if deleted:
        names = ", ".join(map(ui.plain, deleted))
        st.success(f"Deleted {messages.count(len(deleted), 'run')}: {names}.", icon="🗑️")
    for error in errors:
        st.error(f"Not deleted: {ui.plain(error)}.", icon="🚫")


def draw_runs() -> None:
    records = ui.list_runs()
    st.subheader(f"Saved runs ({len(records)})")
    draw_delete_report()
    if not records:
        st.info("No saved runs yet: your first training will appear here.")
        return
    # A lazy expander: the table's grid is the heaviest thing a browser loads on this page
    # (about 0.9 s of Chromium on a first visit), so it is drawn once the user asks for it.
    # The label stays the same: it is part of the expander's identity.
    table = st.expander(
        "📋 The runs table: compare curves, download or delete runs",
        key=RUNS_OPEN,
        on_change="rerun",
    )
    if table.open:
        with table:
            draw_runs_table(records)


def draw_runs_table(records: list[dict]) -> None:
    event = st.dataframe(
        run_rows(records),
        key=f"{KEY}runs_table_{st.session_state.get(KEY + 'table_version', 0)}",
        on_select="rerun",
        selection_mode="multi-row",
        hide_index=True,
        width="stretch",
        column_config={
            "run": st.column_config.TextColumn("run", pinned=True),
            "test accuracy": st.column_config.ProgressColumn(
                "test acc.", format="percent", min_value=0.0, max_value=1.0, width="small"
            ),
            "learning rate": st.column_config.NumberColumn("lr", format="%g", width="small"),
            "images": st.column_config.NumberColumn(format="localized", width="small"),
            "images/s": st.column_config.NumberColumn(format="localized", width="small"),
            "epochs": st.column_config.NumberColumn(width="small"),
            "batch": st.column_config.NumberColumn(width="small"),
            "seed": st.column_config.NumberColumn(width="small"),
            # A fixed width: the shipped run's "smooth 0.1 · flip, shift, erase" would
            # otherwise push the last columns out of a 1400 px window.
            "extras": st.column_config.TextColumn(
                help="label smoothing, augmentations of the training images, and 16-bit "
                "arithmetic (mixed precision)",
                width="small",
            ),
        },
    )
    selected = [records[i] for i in event.selection.rows if i < len(records)] if event else []
    if len(records) >= 2 and st.toggle(
        "🧭 Every run's settings against its test accuracy", key=KEY + "parallel"
    ):
        st.plotly_chart(charts.runs_parallel(records), key=KEY + "parallel_chart")
        st.caption("Each line is a run; drag along an axis to keep only the runs in that range.")
    if not selected:
        st.caption("Tick runs to compare their curves, download or delete them.")
        return
    labels = [runs.short_label(r) for r in selected]
    by, log_loss = st.columns([2, 1], vertical_alignment="bottom")
    axis = by.segmented_control(
        "Curves by", ["epoch", "time"], default="epoch", key=KEY + "compare_by",
        format_func={"epoch": "epoch", "time": "seconds of training"}.get,
    )  # fmt: skip
    logarithmic = log_loss.toggle("Log-scale loss", key=KEY + "compare_log")
    st.plotly_chart(
        charts.runs_comparison(selected, labels, by=axis or "epoch", log_loss=logarithmic),
        key=KEY + "comparison",
    )
    matrices = [r.get("confusion_matrix") for r in selected]
    if len(selected) == 2 and all(matrices):
        st.markdown(
            "**Their test confusion matrices, and what changed from the first to the second**"
        )
        st.plotly_chart(
            charts.confusion_difference(
                np.array(matrices[0]), np.array(matrices[1]), (labels[0], labels[1])
            ),
            key=KEY + "confusion_difference",
        )
    elif len(selected) > 2:
        st.caption("Tick exactly two runs to see their confusion matrices side by side.")
    columns = st.columns(min(len(selected), 3) + 1)
    for index, (record, label) in enumerate(zip(selected, labels, strict=True)):
        column = columns[index % (len(columns) - 1)]
        if not (runs.run_path(record["run_id"]) / runs.MODEL_FILE).is_file():
            # Deleted by its owner since this page listed it.
            column.caption(f"{ui.plain(label)}: no longer on the server")
            continue
        column.download_button(
            f"⬇️ {ui.plain(label)}",
            # Built when pressed, not on every rerun of the page (a model is megabytes).
            data=functools.partial(export.bundle, record["run_id"]),
            file_name=f"{record['run_id']}.zip",
            mime="application/zip",
            help=f"{record['run_id']}.zip: model.keras, run.json, history.csv, "
            "confusion_matrix.csv, curves.png, a plain Keras script that trains the "
            "same network with the same settings, and its TensorBoard event files",
            key=KEY + "download_" + record["run_id"],
            # No rerun: a download has nothing to redraw, and a rerun racing the bundle's
            # request is one way the button once stayed spinning, disabled, for over a
            # minute in a browser test (not seen again since this change).
            on_click="ignore",
        )
        lite = st.session_state.get(KEY + "tflite")
        if lite and lite[0] == record["run_id"]:
            column.download_button(
                f"📱 {ui.plain(label)}.tflite",
                data=lite[1].content,
                file_name=f"{record['run_id']}.tflite",
                mime="application/octet-stream",
                key=KEY + "tflite_download_" + record["run_id"],
                on_click="ignore",
            )
            column.caption(
                f"{len(lite[1].content) / 1e6:.1f} MB. Checked: the same class as Keras for "
                f"{lite[1].same_class} of {lite[1].images} test images, probabilities within "
                f"{lite[1].max_difference:.0e}."
            )
        else:
            column.button(
                "📱 TensorFlow Lite",
                on_click=make_tflite,
                args=(record,),
                key=KEY + "tflite_" + record["run_id"],
                help="Convert the model for phones and microcontrollers (tf.lite), and check "
                "it against Keras on 100 test images: a few seconds",
            )
    if error := st.session_state.pop(KEY + "tflite_error", None):
        st.error(f"No TensorFlow Lite model: {ui.plain(error)}", icon="🚫")
    if len(selected) == 1:
        more, go_on, edit = st.columns([1, 2, 2], vertical_alignment="bottom")
        more.number_input("More epochs", 1, 100, value=5, key=KEY + "more_epochs")
        go_on.button(
            "➕ Train them on this run",
            on_click=continue_run,
            args=(selected[0],),
            key=KEY + "continue",
            disabled=bool(own_active_job()),
            help="A new run that starts from this one's weights and optimizer state, "
            "with the same settings, and carries its curves on.",
            width="stretch",
        )
        edit.button(
            "🧱 Edit its layers in the builder",
            on_click=edit_layers_of,
            args=(selected[0],),
            key=KEY + "edit_layers",
            help="Load this run's network into the builder above, to change it and train again.",
            width="stretch",
        )
    if error := st.session_state.pop(KEY + "continue_error", None):
        st.error(f"Cannot continue: {ui.plain(error)}", icon="🚫")
    client = ui.training_client()
    token = admin_token() or st.session_state.get(KEY + "token")
    deletable = [r for r in selected if client.may_delete(r, token)]
    with columns[-1].popover(
        "🗑️ Delete",
        disabled=not deletable,
        help=None if deletable else "Only the browser session that trained a run may delete it.",
    ):
        names = ", ".join(ui.plain(runs.short_label(r)) for r in deletable)
        st.write(f"Delete {messages.count(len(deletable), 'run')}: {names}? This cannot be undone.")
        if len(deletable) < len(selected):
            st.caption(
                "The others are kept: the run that ships with the app, and runs trained "
                "by other people, cannot be deleted from here."
            )
        st.button(
            "Yes, delete",
            type="primary",
            key=KEY + "confirm_delete",
            on_click=delete_runs,
            args=(tuple((r["run_id"], runs.short_label(r)) for r in deletable),),
        )


@st.fragment(run_every=1.0)
def devices_pending() -> None:
    """Until a worker or the inference service has named the devices (a fresh server)."""
    if ui.training_client().devices() or ui.devices(timeout=0):
        st.rerun()  # the whole page: the 16-bit setting depends on the answer
    st.caption("Compute: detecting… (TensorFlow is starting in a worker)")


def draw_train() -> None:
    st.session_state[KEY + "page_runs"] = st.session_state.get(KEY + "page_runs", 0) + 1
    st.title("🏋️ Train a network")
    ui.dataset()
    client = ui.training_client()
    devices = client.devices() or ui.devices(timeout=0.5)
    sixteen_bit = hardware.computes_16_bit(devices or [])
    if devices:
        st.caption(f"Compute: {', '.join(devices)}")
    else:
        devices_pending()
    fill_defaults()
    apply_link()
    job = own_job()
    if sixteen_bit is False:
        # A recipe's, a link's or a job's 16 bits would be emulated here: the box stays
        # unticked (after own_job, which may fill the form with its job's settings).
        st.session_state[KEY + "mixed"] = False
    job_active = job is not None and job.state.active
    # The builder's table and settings need more room than a named network's form.
    building = st.session_state.get(KEY + "network") == CUSTOM
    settings, live = st.columns([1, 1] if building else [2, 3], gap="large")
    with settings:
        name = draw_network_picker()
        draw_settings(name, job_active, sixteen_bit)
        draw_layers(name)
    with live:
        draw_server_load(job.id if job else None)
        if job is None:
            st.info("Choose a network and press **Start training**: the curves appear here.")
            # The empty frame, once the page has loaded and the user sets up a training:
            # the browser then loads Plotly's code (4.7 MB, about a core-second) before
            # Start, not during the first epochs, and not during the page's first load.
            if st.session_state[KEY + "page_runs"] > 1:
                st.plotly_chart(
                    charts.training_curves([], [], st.session_state.get(KEY + "epochs")),
                    key=KEY + "empty_chart",
                )
        else:
            # Read the job from the store while it runs; a fragment reruns alone, so
            # the form and the runs table are left as they are. The chart costs a
            # browser far more to redraw than the numbers, so it redraws less often.
            st.session_state[KEY + "poll"] = progress_seconds(job)
            st.fragment(run_every=progress_seconds(job))(draw_progress)(job.id)
            st.fragment(run_every=CHART_SECONDS if job_active else None)(draw_curves)(job.id)
        show_augmented()
    st.divider()
    draw_runs()


draw_train()
