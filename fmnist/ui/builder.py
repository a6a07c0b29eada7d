"""The Train page's network builder: the layers of a custom network, kept for the session,
with their output shapes and parameters worked out as the user edits (fmnist.network_spec,
no TensorFlow), one layer's settings, add, move, remove, and a preset to start again from.
"""

from __future__ import annotations

import streamlit as st

from fmnist import network_spec
from fmnist.network_spec import PRESETS

KEY = "train_"  # the Train page's session keys


def current_layers() -> list[dict]:
    """The builder's layers, kept for the session; it starts from the fast network's."""
    return st.session_state.setdefault(KEY + "layers", network_spec.clean(PRESETS["fast"]))


def set_layers(layers: list[dict], chosen: int = 0) -> None:
    st.session_state[KEY + "layers"] = layers
    # New widgets for the layer's settings: the old ones held the values of the layer
    # that was at their place before the change.
    st.session_state[KEY + "layers_version"] = st.session_state.get(KEY + "layers_version", 0) + 1
    st.session_state[KEY + "chosen_layer"] = max(0, min(chosen, len(layers) - 1))


def move_layer(index: int, step: int) -> None:
    layers = list(current_layers())
    layers.insert(index + step, layers.pop(index))
    set_layers(layers, index + step)


def remove_layer(index: int) -> None:
    layers = list(current_layers())
    layers.pop(index)
    set_layers(layers, index - 1 if index == len(layers) else index)


def add_layer(index: int) -> None:
    kind = st.session_state[KEY + "new_layer"]
    layers = list(current_layers())
    layers.insert(index, network_spec.clean([{"type": kind}])[0])
    set_layers(layers, index)


def load_layers() -> None:
    set_layers(network_spec.clean(PRESETS[st.session_state[KEY + "start_from"]]))


def change_setting(index: int, name: str, widget: str) -> None:
    layers = [dict(layer) for layer in current_layers()]
    layers[index][name] = st.session_state[widget]
    st.session_state[KEY + "layers"] = layers
    # The layer picker names each layer by its settings: a new picker shows the new name.
    st.session_state[KEY + "names_version"] = st.session_state.get(KEY + "names_version", 0) + 1


def choose_layer(widget: str) -> None:
    st.session_state[KEY + "chosen_layer"] = st.session_state[widget]


def draw() -> None:
    """The network builder: the layers with their output shapes and parameters, worked out
    as the user edits (without TensorFlow), one layer's settings, add, move, remove."""
    layers = current_layers()
    rows, problem = network_spec.describe(layers)
    lines = ["| # | layer | output shape | parameters |", "|---:|---|---|---:|"]
    for index, layer in enumerate([*layers, None]):
        row = rows[index] if index < len(rows) else None
        words = network_spec.layer_words(layer) if layer else "Dense 10, softmax (output)"
        # "26×26×64" rather than Keras's "(batch, 26, 26, 64)": the column is narrow.
        shown = ("—", "—")
        if row:
            shape = row["output shape"].removeprefix("(batch, ").rstrip(")").replace(", ", "×")
            shown = (shape, f"{row['parameters']:,}")
        lines.append(f"| {index + 1 if layer else ''} | {words} | {shown[0]} | {shown[1]} |")
    if problem is None:
        lines.append(f"| | **total** | | **{sum(r['parameters'] for r in rows):,}** |")
    st.markdown("\n".join(lines))
    if problem:
        st.error(f"This network cannot be trained: {problem}.", icon="🧱")

    version = st.session_state.get(KEY + "layers_version", 0)
    chosen_column, up, down, delete = st.columns([4, 1, 1, 1], vertical_alignment="bottom")
    chosen = min(st.session_state.get(KEY + "chosen_layer", 0), len(layers) - 1)
    picker = f"{KEY}layer_picker_{version}_{st.session_state.get(KEY + 'names_version', 0)}"
    chosen = chosen_column.selectbox(
        "Layer to edit",
        range(len(layers)),
        index=chosen,
        format_func=lambda i: f"{i + 1}. {network_spec.layer_words(layers[i])}",
        key=picker,
        on_change=choose_layer,
        args=(picker,),
    )
    up.button(
        "▲",
        on_click=move_layer,
        args=(chosen, -1),
        disabled=chosen == 0,
        help="Move it up",
        key=KEY + "layer_up",
    )
    down.button(
        "▼",
        on_click=move_layer,
        args=(chosen, 1),
        disabled=chosen == len(layers) - 1,
        help="Move it down",
        key=KEY + "layer_down",
    )
    delete.button(
        "✕",
        on_click=remove_layer,
        args=(chosen,),
        disabled=len(layers) == 1,
        help="Remove it",
        key=KEY + "layer_remove",
    )
    layer = layers[chosen]
    settings = network_spec.KINDS[layer["type"]].settings
    # Three to a row: a convolution's five settings fit the settings column at 1280 px.
    columns = [column for _ in range(0, len(settings), 3) for column in st.columns(3)]
    for column, setting in zip(columns, settings, strict=False):
        widget = f"{KEY}layer_{version}_{chosen}_{setting.name}"
        value = layer[setting.name]
        common = {
            "key": widget,
            "on_change": change_setting,
            "args": (chosen, setting.name, widget),
        }
        # The layer's value is each widget's default, which a number field emptied and
        # left goes back to (with none, Streamlit's field took its least: a Dense of 1 unit).
        if setting.choices:
            choices = list(setting.choices)
            column.selectbox(
                setting.name.capitalize(), choices, index=choices.index(value), **common
            )
        elif isinstance(setting.default, int):
            column.number_input(
                setting.name.capitalize(),
                int(setting.low),
                int(setting.high),
                value=int(value),
                step=1,
                **common,
            )
        else:
            column.number_input(
                setting.name.capitalize(),
                setting.low,
                setting.high,
                value=float(value),
                step=0.05,
                **common,
            )

    kind_column, add = st.columns([4, 3], vertical_alignment="bottom")
    kind_column.selectbox(
        "New layer",
        list(network_spec.KINDS),
        format_func=lambda k: f"{network_spec.KINDS[k].keras_type}: {network_spec.KINDS[k].words}",
        key=KEY + "new_layer",
    )
    add.button(
        "➕ Add after it",
        on_click=add_layer,
        args=(chosen + 1,),
        width="stretch",
        disabled=len(layers) >= network_spec.MAX_LAYERS,
        key=KEY + "layer_add",
    )
    preset_column, load = st.columns([4, 3], vertical_alignment="bottom")
    preset_column.selectbox("Start again from", list(PRESETS), key=KEY + "start_from")
    load.button("↩️ Load its layers", on_click=load_layers, width="stretch", key=KEY + "layers_load")
