"""Train: pick a network, train it in the background, watch it learn, keep and compare runs."""

import streamlit as st

from fmnist import charts, runs, ui
from fmnist.networks import NETWORKS
from fmnist.training import (
    FINAL_STATES,
    LR_SCHEDULES,
    OPTIMIZERS,
    QUEUED,
    TrainConfig,
    TrainingJob,
)

ui.setup_page("Train", "🏋️")
KEY = "train_"
LIMITS = {"all 60,000": 0, "30,000": 30_000, "10,000": 10_000, "5,000": 5_000, "2,000": 2_000}


@st.cache_data(show_spinner="Building the network...")
def network_summary(name: str) -> tuple[str, int]:
    from fmnist.networks import build_model, model_summary

    model = build_model(name)
    return model_summary(model), int(model.count_params())


def own_job() -> TrainingJob | None:
    """This session's job, found again after a page switch (session) or a reload (URL)."""
    manager = ui.training_manager()
    job_id = st.session_state.get(KEY + "job_id") or st.query_params.get("job")
    job = manager.get(job_id) if job_id else None
    if job is not None:
        st.session_state[KEY + "job_id"] = job.id
    return job


def draw_settings(job_active: bool, has_gpu: bool) -> None:
    st.subheader("1. Choose a network")
    name = st.selectbox(
        "Network",
        list(NETWORKS),
        format_func=lambda n: f"{n} — {NETWORKS[n].origin}",
        key=KEY + "network",
    )
    network = NETWORKS[name]
    summary, parameters = network_summary(name)
    st.markdown(f"{network.description}  \n**{parameters:,} parameters**")
    with st.expander("Keras summary: layers, output shapes, parameters"):
        st.code(summary, language=None)

    st.subheader("2. Hyper-parameters")
    with st.form(KEY + "form", border=True):
        left, right = st.columns(2)
        epochs = left.number_input("Epochs", 1, 200, value=5, key=KEY + "epochs")
        batch_size = right.selectbox(
            "Batch size", [16, 32, 64, 128, 256, 512], index=1, key=KEY + "batch"
        )
        learning_rate = left.select_slider(
            "Learning rate",
            [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1],
            value=0.001,
            key=KEY + "lr",
        )
        optimizer = right.selectbox("Optimizer", OPTIMIZERS, key=KEY + "optimizer")
        lr_schedule = left.selectbox(
            "Learning-rate schedule",
            LR_SCHEDULES,
            key=KEY + "lr_schedule",
            help="cosine: the rate falls smoothly to 1% by the last batch; "
            "the final epochs settle instead of jumping around.",
        )
        validation_split = left.slider(
            "Validation split", 0.0, 0.3, 0.1, 0.05, key=KEY + "val_split"
        )
        limit = right.selectbox(
            "Training images",
            list(LIMITS),
            key=KEY + "limit",
            help="Fewer images train faster: good for a quick demo.",
        )
        seed = left.number_input("Random seed", 0, 2**31 - 1, value=42, key=KEY + "seed")
        patience = right.number_input(
            "Early stopping patience (0 = off)",
            0,
            50,
            value=0,
            key=KEY + "patience",
            help="Stop when val_loss has not improved for this many epochs, "
            "and keep the best weights.",
        )
        run_name = left.text_input("Run name (optional)", max_chars=40, key=KEY + "name")
        mixed = right.checkbox(
            "Mixed precision",
            disabled=not has_gpu,
            key=KEY + "mixed",
            help="float16 arithmetic: faster on recent GPUs; not available on CPU.",
        )
        started = st.form_submit_button(
            "▶️ Start training", type="primary", disabled=job_active, width="stretch"
        )
    if job_active:
        st.caption("Your training is running: stop it or wait for it to finish to start another.")
    if started:
        cfg = TrainConfig(
            network=name,
            epochs=int(epochs),
            batch_size=int(batch_size),
            learning_rate=float(learning_rate),
            optimizer=optimizer,
            lr_schedule=lr_schedule,
            validation_split=float(validation_split),
            seed=int(seed),
            early_stopping_patience=int(patience),
            limit=LIMITS[limit],
            mixed_precision=bool(mixed),
            name=run_name,
        )
        try:
            job = ui.training_manager().submit(cfg)
        except ValueError as error:
            st.error(f"Cannot start: {error}", icon="🚫")
            return
        st.session_state[KEY + "job_id"] = job.id
        st.query_params["job"] = job.id
        st.rerun()


def draw_progress(job_id: str) -> None:
    job = ui.training_manager().get(job_id)
    if job is None:
        return
    progress = job.snapshot()
    cfg = job.config
    st.subheader(f"Training `{cfg.network}`")
    state_icons = {"queued": "⏳", "running": "🏃", "stopping": "✋", "evaluating": "🧪"}
    state_icons |= {"done": "✅", "stopped": "⏹️", "failed": "❌"}
    line = f"{state_icons.get(progress.state, '')} **{progress.state}**"
    if progress.state == QUEUED:
        line += f" — position {progress.queue_position} in the queue; it starts by itself."
    elif progress.message:
        line += f" — {progress.message}"
    st.markdown(line)
    if progress.state == "failed":
        st.error(f"Training failed: {progress.message}", icon="❌")

    epochs_done = min(progress.epoch, cfg.epochs)
    st.progress(epochs_done / cfg.epochs, text=f"Epoch {epochs_done} of {cfg.epochs} done")
    batches = max(progress.batches, 1)
    st.progress(
        min(progress.batch / batches, 1.0),
        text=f"Batch {progress.batch:,} of {progress.batches:,} in this epoch",
    )
    speed, elapsed, eta = st.columns(3)
    speed.metric("Images/s", f"{progress.images_per_second:,.0f}")
    elapsed.metric("Elapsed", ui.format_seconds(progress.elapsed))
    eta.metric("ETA", ui.format_seconds(progress.eta) if progress.state == "running" else "–")
    last = progress.history[-1] if progress.history else {}
    val_loss, val_accuracy, test_accuracy = st.columns(3)
    val_loss.metric("Val. loss", f"{last['val_loss']:.4f}" if "val_loss" in last else "–")
    val_accuracy.metric(
        "Val. accuracy", f"{last['val_accuracy']:.2%}" if "val_accuracy" in last else "–"
    )
    test_accuracy.metric(
        "Test accuracy",
        f"{progress.test_accuracy:.2%}" if progress.test_accuracy is not None else "–",
    )
    st.caption(f"Device: {progress.device or 'not started yet'}")
    if progress.history or progress.live:
        st.plotly_chart(
            charts.training_curves(progress.history, progress.live), key=KEY + "live_chart"
        )
        st.caption(
            "Running: the average over the epoch so far, as Keras reports it; it restarts "
            "at each epoch, hence the step. Dots: whole epochs. Validation: held-out images."
        )
    if progress.state not in FINAL_STATES:
        if st.button(
            "⏹️ Stop", key=KEY + "stop", help="Ends after the current batch; keeps the run."
        ):
            ui.training_manager().cancel(job)
            st.rerun(scope="fragment")
    elif st.session_state.get(KEY + "finished_seen") != job.id:
        # The job just ended: rerun the whole page so the runs table shows the new run.
        st.session_state[KEY + "finished_seen"] = job.id
        st.rerun()
    elif progress.run_id:
        st.success(f"Saved as run `{progress.run_id}`.", icon="💾")
        st.page_link("pages/3_Predict.py", label="Try it on your own pictures", icon="🔮")


def draw_other_jobs(own_id: str | None) -> None:
    others = [j for j in ui.training_manager().active_jobs() if j.id != own_id]
    if others:
        lines = []
        for job in others:
            p = job.snapshot()
            where = f"queue #{p.queue_position}" if p.state == QUEUED else f"epoch {p.epoch + 1}"
            lines.append(f"`{job.config.network}` ({p.state}, {where})")
        st.info("Also on this server: " + ", ".join(lines), icon="👥")


def draw_runs() -> None:
    st.subheader("Saved runs")
    records = ui.list_runs()
    if not records:
        st.info("No saved runs yet: your first training will appear here.")
        return
    rows = [
        {
            "run": r["run_id"],
            "network": r["network"],
            "status": r.get("status", ""),
            "epochs": r.get("epochs_completed"),
            "test accuracy": r.get("test_accuracy"),
            "parameters": r.get("parameters"),
            "train time (s)": r.get("train_seconds"),
            "images/s": round(r.get("images_per_second") or 0),
            "device": r.get("device", ""),
            "finished": r.get("finished_at", ""),
        }
        for r in records
    ]
    event = st.dataframe(
        rows,
        key=KEY + "runs_table",
        on_select="rerun",
        selection_mode="multi-row",
        hide_index=True,
        column_config={
            "test accuracy": st.column_config.ProgressColumn(
                "test accuracy", format="percent", min_value=0.0, max_value=1.0
            ),
            "parameters": st.column_config.NumberColumn(format="localized"),
        },
    )
    selected = [records[i] for i in event.selection.rows] if event else []
    if not selected:
        st.caption("Select rows to overlay their curves, download or delete them.")
        return
    left, right = st.columns(2)
    left.plotly_chart(charts.runs_overlay(selected, "val_accuracy"), key=KEY + "overlay_acc")
    right.plotly_chart(charts.runs_overlay(selected, "val_loss"), key=KEY + "overlay_loss")
    columns = st.columns(len(selected) + 1)
    for column, record in zip(columns, selected, strict=False):
        path = runs.run_path(record["run_id"]) / runs.MODEL_FILE
        column.download_button(
            f"⬇️ {record['run_id'][:24]}….keras",
            data=path.read_bytes(),
            file_name=f"{record['run_id']}.keras",
            mime="application/octet-stream",
            key=KEY + "download_" + record["run_id"],
        )
    with columns[-1].popover("🗑️ Delete selected"):
        st.write(f"Delete {len(selected)} run(s)? This cannot be undone.")
        if st.button("Yes, delete", type="primary", key=KEY + "confirm_delete"):
            for record in selected:
                try:
                    runs.delete_run(record["run_id"])
                except runs.RunError as error:
                    st.error(str(error))
            st.rerun()


def draw_train() -> None:
    st.title("🏋️ Train a network")
    ui.dataset()
    devices = ui.devices()
    has_gpu = any(d.startswith("GPU") for d in devices)
    st.caption(f"Compute: {', '.join(devices)}")
    job = own_job()
    job_active = job is not None and job.snapshot().state not in FINAL_STATES
    settings, live = st.columns([2, 3], gap="large")
    with settings:
        draw_settings(job_active, has_gpu)
    with live:
        draw_other_jobs(job.id if job else None)
        if job is None:
            st.info("Choose a network and press **Start training**: the curves appear here.")
        else:
            # Poll the job object once a second while it runs; a fragment reruns
            # alone, so the form and the runs table are left as they are.
            st.fragment(run_every=1.0 if job_active else None)(draw_progress)(job.id)
    st.divider()
    draw_runs()


draw_train()
