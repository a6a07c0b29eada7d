"""Charts as pure functions from arrays and records: Plotly figures, the map's points, HTML."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fmnist import imaging
from fmnist.data import CLASS_NAMES
from fmnist.evaluation import normalise_rows

# Plotly is imported by the functions that draw with it, on their first call: Explore,
# which has no Plotly chart, imports this module and opens sooner on a fresh server.
if TYPE_CHECKING:
    import plotly.graph_objects as go

# One colour per class, the same on every chart.
# Plotly's T10 (Tableau's ten), written out: Explore imports this module without Plotly.
CLASS_COLOURS = (
    "#4C78A8", "#F58518", "#E45756", "#72B7B2", "#54A24B",
    "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC",
)  # fmt: skip
# Plotly's own default sequence, for runs (any number of them, in turn).
RUN_COLOURS = (
    "#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A",
    "#19D3F3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52",
)  # fmt: skip
TRAIN_COLOUR, VALIDATION_COLOUR = "#1f77b4", "#ff7f0e"


PIXEL_VALUES_STYLE = """<style>
.fmnist-pixels { border-collapse: collapse; line-height: 1; margin: 0 auto;
  font-variant-numeric: tabular-nums; }
.fmnist-pixels caption { caption-side: top; text-align: left; font-weight: 600;
  font-size: 15px; padding-bottom: 8px; }
.fmnist-pixels td { width: 22px; height: 21px; padding: 0; font-size: 10px;
  text-align: center; }
.fmnist-pixels th { font-weight: 400; font-size: 9px; color: #808495; padding: 0 2px; }
</style>"""


def pixel_values_html(image: np.ndarray, title: str) -> str:
    """The picture's values as a table, each written in its cell and shaded by it (as seed
    004 prints them), its row and column on hover, the row and column numbers at the edges.

    A table, where the picture alone is a canvas (``pixel_picture``): its numbers can be
    selected and copied, and the browser draws it in milliseconds without Plotly (whose
    heatmap measured each of the 784 labels, about a second).
    """
    header = "".join(f"<th>{column}</th>" for column in range(image.shape[1]))
    rows = []
    for number, row in enumerate(image.tolist()):
        cells = "".join(
            f'<td title="row {number}, column {column}: {v}" style="background:'
            f'#{v:02x}{v:02x}{v:02x};color:{"#000" if v > 127 else "#fff"}">{v}</td>'
            for column, v in enumerate(row)
        )
        rows.append(f"<tr><th>{number}</th>{cells}</tr>")
    return (
        f'{PIXEL_VALUES_STYLE}<div style="overflow-x:auto"><table class="fmnist-pixels values">'
        f"<caption>{html.escape(title)}</caption><tr><th></th>{header}</tr>{''.join(rows)}"
        "</table></div>"
    )


def pixel_picture(image: np.ndarray, title: str) -> dict[str, Any]:
    """What the inspected image (``fmnist.ui.pixel_picture``) draws, as plain JSON: the
    values of ``image`` (2-D, 0-255; others clipped, NaN as 0) row by row, its size and its
    ``title``."""
    values = np.asarray(image, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"a picture is 2-D; got the shape {values.shape}")
    pixels = np.clip(np.nan_to_num(values, nan=0.0), 0, 255).round().astype(np.uint8)
    rows, columns = pixels.shape
    return {"pixels": pixels.ravel().tolist(), "rows": rows, "columns": columns, "title": title}


def pca_map(
    coordinates: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    explained: np.ndarray,
    stars: Sequence[tuple[str, float, float]] = (),
    picked: int | None = None,
    height: int = 430,
) -> dict[str, Any]:
    """What the map of images (``fmnist.ui.point_map``) draws, as plain JSON: one point per
    image at ``coordinates``, coloured by class and known by its dataset ``indices``; the
    axes named after the share of variance they ``explained``; ``stars``: (name, x, y) of
    the user's own pictures; ``picked``: the index shown ringed. Points and stars with a
    coordinate that is not a finite number are left out.

    Each axis is rounded to about a thousandth of its own range: 3,000 points weigh about
    65 KB, and no dot moves by a visible fraction of a pixel.
    """
    coordinates = np.asarray(coordinates, dtype=float).reshape(-1, 2)
    finite = np.isfinite(coordinates).all(axis=1)
    coordinates = coordinates[finite]
    axes = []
    for values in coordinates.T:
        span = float(np.ptp(values)) if len(values) else 0.0
        digits = int(np.clip(np.ceil(3 - np.log10(span)), 0, 12)) if span > 0 else 3
        axes.append(np.round(values, digits).tolist())
    return {
        "x": axes[0],
        "y": axes[1],
        "label": np.asarray(labels, dtype=int)[finite].tolist(),
        "index": np.asarray(indices, dtype=int)[finite].tolist(),
        "classes": list(CLASS_NAMES),
        "colours": list(CLASS_COLOURS),
        "xTitle": f"PC 1 ({explained[0]:.0%} of variance)",
        "yTitle": f"PC 2 ({explained[1]:.0%} of variance)",
        "stars": [
            {"name": str(n), "x": float(x), "y": float(y)}
            for n, x, y in stars
            if np.isfinite(x) and np.isfinite(y)
        ],
        "picked": None if picked is None else int(picked),
        "height": height,
    }


def _epoch_panels(titles: tuple[str, str], height: int, legend_y: float) -> dict[str, Any]:
    """Two side-by-side panels over epochs, as plain layout (cheaper than make_subplots)."""
    epoch_axis = dict(title=dict(text="epoch"), rangemode="tozero")
    return dict(
        xaxis1=dict(domain=[0, 0.45], anchor="y1", **epoch_axis),
        xaxis2=dict(domain=[0.55, 1], anchor="y2", **epoch_axis),
        yaxis1=dict(anchor="x1"),
        yaxis2=dict(anchor="x2"),
        annotations=[
            dict(text=title, x=x, y=1.0, xref="paper", yref="paper", xanchor="center",
                 yanchor="bottom", showarrow=False, font=dict(size=16))
            for title, x in zip(titles, (0.225, 0.775), strict=True)
        ],
        height=height,
        margin=dict(t=40, b=10),
        legend=dict(orientation="h", y=legend_y),
    )  # fmt: skip


def training_curves(
    history: Sequence[dict[str, float]],
    live: Sequence[dict[str, float]] = (),
    epochs: int | None = None,
) -> go.Figure:
    """Loss and accuracy: training points within epochs, and per-epoch values with validation.

    Built from plain dicts on two side-by-side axes rather than with
    make_subplots: the Train page redraws this every few seconds for every viewer,
    and make_subplots alone costs ~20 ms where this whole figure costs ~4 ms.
    ``epochs`` fixes the epoch axis at 0..epochs, so the curves grow across a frame
    that stays put; with no points at all the empty frame is drawn.
    """
    import plotly.graph_objects as go

    traces: list[dict[str, Any]] = []
    for column, metric in enumerate(("loss", "accuracy"), start=1):
        axes = {"xaxis": f"x{column}", "yaxis": f"y{column}"}
        legend = {"showlegend": column == 1}
        if live:
            traces.append(
                dict(
                    type="scatter", mode="lines", name="training (running)",
                    x=[p["epoch"] for p in live], y=[p[metric] for p in live],
                    line=dict(color=TRAIN_COLOUR, width=1.5), legendgroup="train",
                    **axes, **legend,
                )
            )  # fmt: skip
        for key, colour, name in (
            (metric, TRAIN_COLOUR, "training (epoch)"),
            (f"val_{metric}", VALIDATION_COLOUR, "validation"),
        ):
            points = [(h["epoch"], h[key]) for h in history if key in h]
            if points:
                traces.append(
                    dict(
                        type="scatter", mode="lines+markers", name=name,
                        x=[p[0] for p in points], y=[p[1] for p in points],
                        line=dict(color=colour, dash="dot" if key == metric else "solid"),
                        legendgroup=name, **axes, **legend,
                    )
                )  # fmt: skip
    layout = _epoch_panels(("loss", "accuracy"), 360, -0.25)
    if epochs:
        for axis in ("xaxis1", "xaxis2"):
            layout[axis]["range"] = [0, epochs * 1.02]
    if not traces:
        # Plotly draws an axis only for a trace on it: one empty trace per panel.
        traces = [
            dict(type="scatter", x=[], y=[], xaxis=f"x{c}", yaxis=f"y{c}", showlegend=False)
            for c in (1, 2)
        ]
        layout["yaxis1"]["range"] = [0, 2.5]
        layout["yaxis2"]["range"] = [0, 1]
    return go.Figure(data=traces, layout=layout)


def runs_comparison(
    records: Sequence[dict[str, Any]],
    labels: Sequence[str],
    by: str = "epoch",
    log_loss: bool = False,
) -> go.Figure:
    """Accuracy, loss and learning rate of several runs: validation solid, training dotted.

    ``by`` is "epoch" or "time" (seconds of training, the epochs' own times added up, so
    that a fast network's curves end sooner); ``log_loss`` puts the loss on a log scale,
    where late epochs' small differences show.
    """
    import plotly.graph_objects as go

    traces: list[dict[str, Any]] = []
    for index, (record, given) in enumerate(zip(records, labels, strict=True)):
        # Plotly draws tags in legend text (<a href>, <b>): a run's name is shown as text.
        label = html.escape(given)
        colour = RUN_COLOURS[index % len(RUN_COLOURS)]
        history = record.get("history", [])
        xs = _run_axis(history, by)
        panels = (("accuracy", 1), ("loss", 2), ("learning_rate", 3))
        for metric, column in panels:
            keys = (
                ((f"val_{metric}", "solid", "validation"), (metric, "dot", "training"))
                if metric != "learning_rate"
                else ((metric, "solid", "learning rate"),)
            )
            for key, dash, part in keys:
                points = [
                    (x, h[key]) for x, h in zip(xs, history, strict=True) if h.get(key) is not None
                ]
                if points:
                    traces.append(
                        dict(
                            type="scatter", mode="lines+markers",
                            name=f"{label} ({part})",
                            x=[p[0] for p in points], y=[p[1] for p in points],
                            line=dict(color=colour, dash=dash), legendgroup=label,
                            showlegend=column == 1, xaxis=f"x{column}", yaxis=f"y{column}",
                        )
                    )  # fmt: skip
    title = "epoch" if by == "epoch" else "seconds of training"
    axis = dict(title=dict(text=title), rangemode="tozero")
    layout = dict(
        xaxis1=dict(domain=[0, 0.3], anchor="y1", **axis),
        xaxis2=dict(domain=[0.35, 0.65], anchor="y2", **axis),
        xaxis3=dict(domain=[0.7, 1], anchor="y3", **axis),
        yaxis1=dict(anchor="x1"),
        yaxis2=dict(anchor="x2", type="log" if log_loss else "linear"),
        yaxis3=dict(anchor="x3", type="log", exponentformat="power"),  # rates span decades
        annotations=[
            dict(text=text, x=x, y=1.0, xref="paper", yref="paper", xanchor="center",
                 yanchor="bottom", showarrow=False, font=dict(size=16))
            for text, x in (("accuracy", 0.15), ("loss", 0.5), ("learning rate", 0.85))
        ],
        height=420,
        margin=dict(t=40, b=10),
        legend=dict(orientation="h", y=-0.25),
    )  # fmt: skip
    return go.Figure(data=traces, layout=layout)


def _run_axis(history: Sequence[dict[str, Any]], by: str) -> list[float]:
    if by == "epoch":
        return [h["epoch"] for h in history]
    return [float(t) for t in np.cumsum([h.get("seconds") or 0.0 for h in history])]


# The hyper-parameters of the parallel-coordinates chart: (run.json's config key, label).
RUN_DIMENSIONS = (
    ("learning_rate", "learning rate (log10)"),
    ("batch_size", "batch"),
    ("epochs", "epochs"),
    ("label_smoothing", "label smoothing"),
    ("validation_split", "validation share"),
    ("seed", "seed"),
)


def runs_parallel(records: Sequence[dict[str, Any]]) -> go.Figure:
    """Parallel coordinates: each run a line through its hyper-parameters and its network's
    size, ending at its test accuracy (the colour too), to see which settings go together
    with good runs."""
    import plotly.graph_objects as go

    kept = [r for r in records if r.get("test_accuracy") is not None]
    dimensions = []
    for key, label in RUN_DIMENSIONS:
        values = [float(r.get("config", {}).get(key) or 0) for r in kept]
        if key == "learning_rate":
            values = [float(np.log10(v)) if v > 0 else 0.0 for v in values]
        dimensions.append(dict(label=label, values=values))
    dimensions.append(dict(
        label="parameters (log10)",
        values=[float(np.log10(max(r.get("parameters") or 1, 1))) for r in kept],
    ))  # fmt: skip
    accuracy = [float(r["test_accuracy"]) for r in kept]
    dimensions.append(dict(label="test accuracy", values=accuracy))
    return go.Figure(
        go.Parcoords(
            line=dict(color=accuracy, colorscale="Viridis", showscale=True,
                      colorbar=dict(title=dict(text="test acc."))),
            dimensions=dimensions,
        ),
        layout=dict(height=380, margin=dict(t=60, l=60, r=40, b=20)),
    )  # fmt: skip


def confusion_difference(
    first: np.ndarray, second: np.ndarray, labels: tuple[str, str]
) -> go.Figure:
    """Two runs' test confusion matrices side by side and their difference (second minus
    first): blue where the second run puts more pictures, red where it puts fewer. On the
    diagonal, blue is better; off it, red is."""
    import plotly.graph_objects as go

    difference = np.asarray(second) - np.asarray(first)
    limit = max(1, int(np.abs(difference).max()))
    short = [name.split("/")[0][:8] for name in CLASS_NAMES]
    panels = [
        (np.asarray(first), html.escape(labels[0]), "Blues", None),
        (np.asarray(second), html.escape(labels[1]), "Blues", None),
        (difference, "difference (second − first)", "RdBu", limit),
    ]
    traces = []
    layout: dict[str, Any] = dict(height=380, margin=dict(t=40, b=10, l=10, r=10))
    annotations = []
    for index, (values, title, scale, bound) in enumerate(panels, start=1):
        scaled = dict(zmin=-bound, zmax=bound, zmid=0) if bound else {}
        traces.append(
            go.Heatmap(
                z=values,
                x=short,
                y=short,
                colorscale=scale,
                showscale=False,
                text=[[f"{int(v):+d}" if bound else str(int(v)) for v in row] for row in values],
                texttemplate="%{text}",
                textfont=dict(size=9),
                hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>",
                xaxis=f"x{index}",
                yaxis=f"y{index}",
                **scaled,
            )
        )
        left = (index - 1) / 3
        layout[f"xaxis{index}"] = dict(
            domain=[left + 0.02, left + 0.31], anchor=f"y{index}", tickangle=-45,
            tickfont=dict(size=9),
        )  # fmt: skip
        layout[f"yaxis{index}"] = dict(
            anchor=f"x{index}", autorange="reversed", tickfont=dict(size=9),
            showticklabels=index == 1,
        )  # fmt: skip
        annotations.append(
            dict(text=title, x=left + 0.165, y=1.0, xref="paper", yref="paper",
                 xanchor="center", yanchor="bottom", showarrow=False)
        )  # fmt: skip
    layout["annotations"] = annotations
    return go.Figure(data=traces, layout=layout)


def confusion_heatmap(
    matrix: np.ndarray,
    normalised: bool = False,
    names: Sequence[str] = CLASS_NAMES,
    clickable: bool = False,
) -> go.Figure:
    """Rows: true class; columns: predicted class.

    ``clickable`` lays a square, transparent marker over every cell: Plotly's
    heatmaps report no points when clicked, scatter markers do (each carries
    its true and predicted class as x and y, and its count). Hover picks the
    marker nearest the mouse at any distance, so a click anywhere in a cell
    selects that cell; the selected one is tinted orange.
    """
    import plotly.graph_objects as go

    values = normalise_rows(matrix) if normalised else matrix
    text = [[f"{v:.0%}" if normalised else f"{int(v)}" for v in row] for row in values]
    hover = "true %{y}<br>predicted %{x}<br>%{customdata} images<extra></extra>"
    heatmap = go.Heatmap(
        z=values,
        x=list(names),
        y=list(names),
        text=text,
        texttemplate="%{text}",
        colorscale="Blues",
        colorbar=dict(title="share" if normalised else "images"),
        customdata=matrix,
        hovertemplate=hover,
        hoverinfo="skip" if clickable else None,
    )
    figure = go.Figure(heatmap)
    height = min(520, 160 + 36 * len(names))
    if clickable:
        size = len(names)
        rows, cols = np.divmod(np.arange(size * size), size)
        figure.add_trace(
            go.Scatter(
                x=[names[c] for c in cols],
                y=[names[r] for r in rows],
                customdata=np.asarray(matrix).ravel(),
                mode="markers",
                marker=dict(symbol="square", size=34, color="rgba(0,0,0,0)"),
                selected=dict(marker=dict(color="rgba(255,127,14,0.45)")),
                unselected=dict(marker=dict(opacity=1)),
                hovertemplate=hover,
                showlegend=False,
            )
        )
        figure.update_layout(hovermode="closest", hoverdistance=-1, clickmode="event+select")
    figure.update_yaxes(autorange="reversed", title="true class")
    figure.update_xaxes(title="predicted class", side="bottom")
    figure.update_layout(height=height, margin=dict(t=20, b=10))
    return figure


SOFTMAX_STYLE = """<style>
.fmnist-softmax { border-collapse: collapse; width: 100%; font-size: 13px; line-height: 1.25;
  font-variant-numeric: tabular-nums; border: none; }
.fmnist-softmax td { border: none; padding: 1px 4px; white-space: nowrap; }
.fmnist-softmax td.track { width: 100%; }
.fmnist-softmax .bar { height: 12px; border-radius: 2px; min-width: 1px; }
.fmnist-softmax td.value { text-align: right; color: #555; }
.fmnist-softmax tr.top td.name, .fmnist-softmax tr.top td.value { font-weight: 600; color: #000; }
.fmnist-softmax tr.truth td.name { color: #2ca02c; font-weight: 600; }
</style>"""


def softmax_html(probabilities: Sequence[float], true_label: int | None = None) -> str:
    """The full softmax as bars in an HTML table: the top class in blue and bold, the true
    class in green when it differs.

    Not a Plotly chart: a page's first Plotly chart makes the browser load and compile
    4.7 MB of JavaScript, over a second on a small machine, which every session's first
    upload paid; these ten rows take the browser a millisecond.
    """
    probabilities = np.asarray(probabilities, dtype=float)
    top = int(np.argmax(probabilities))
    rows = []
    for label, (name, share) in enumerate(zip(CLASS_NAMES, probabilities, strict=True)):
        truth = true_label is not None and label == true_label and label != top
        kind = "top" if label == top else "truth" if truth else ""
        colour = "#1f77b4" if label == top else "#2ca02c" if truth else "#b0bec5"
        note = " (true class)" if truth else ""
        rows.append(
            f'<tr class="{kind}" title="{html.escape(name)}: {share:.2%}{note}">'
            f'<td class="name">{html.escape(name)}</td><td class="track"><div class="bar" '
            f'style="width:{share * 100:.1f}%;background:{colour}"></div></td>'
            f'<td class="value">{share:.1%}</td></tr>'
        )
    return f'{SOFTMAX_STYLE}<table class="fmnist-softmax">{"".join(rows)}</table>'


IMAGE_GRID_STYLE = """<style>
.fmnist-grid { display: grid; gap: 14px 12px; margin: 0; }
.fmnist-grid figure { margin: 0; min-width: 0; }
.fmnist-grid img { display: block; width: 100%; height: auto; image-rendering: pixelated;
  border-radius: 4px; }
.fmnist-grid figcaption { font-size: 0.875rem; line-height: 1.35; text-align: center;
  padding-top: 4px; }
.fmnist-grid figcaption b { white-space: nowrap; font-weight: 600; }
.fmnist-grid figcaption span { opacity: 0.6; }
</style>"""


def image_grid_html(
    images: Sequence[np.ndarray], names: Sequence[str], notes: Sequence[str], per_row: int
) -> str:
    """28x28 pictures in a grid across the width, each over its class name (never broken
    inside) and a note.

    The browser enlarges the 28x28 PNGs with sharp pixels: one message of a few
    kilobytes, where st.image sent each enlarged picture as a file of its own for
    the browser to fetch, 16 requests per click of the sample grid.
    """
    figures = "".join(
        f'<figure><img src="{imaging.png_data_uri(image)}" alt="{html.escape(name)}">'
        f"<figcaption><b>{html.escape(name)}</b><br><span>{html.escape(note)}</span>"
        "</figcaption></figure>"
        for image, name, note in zip(images, names, notes, strict=True)
    )
    columns = f"grid-template-columns: repeat({per_row}, minmax(0, 1fr))"
    return f'{IMAGE_GRID_STYLE}<div class="fmnist-grid" style="{columns}">{figures}</div>'


def heat_legend_html(
    stops: np.ndarray,
    title: str = "push towards the class",
    low: str = "none",
    high: str = "strongest",
) -> str:
    """A colour scale as a labelled bar (``stops``: rows of position, R, G, B)."""
    gradient = ", ".join(f"rgb({r:.0f},{g:.0f},{b:.0f}) {p:.0%}" for p, r, g, b in stops)
    return (
        f'<div style="font-size:0.8rem;opacity:0.8">{html.escape(title)}</div>'
        f'<div style="height:14px;border-radius:3px;background:linear-gradient(90deg, '
        f'{gradient})"></div><div style="display:flex;justify-content:space-between;'
        f'font-size:0.8rem;opacity:0.8"><span>{html.escape(low)}</span>'
        f"<span>{html.escape(high)}</span></div>"
    )


def layer_separation(stages: Sequence[Any]) -> go.Figure:
    """Nearest-class-mean accuracy at each stage (``.name``, ``.kind``, ``.accuracy``)."""
    import plotly.graph_objects as go

    names = [html.escape(stage.name) for stage in stages]  # an imported model names them
    figure = go.Figure(
        go.Scatter(
            x=names,
            y=[stage.accuracy for stage in stages],
            mode="lines+markers+text",
            text=[f"{stage.accuracy:.0%}" for stage in stages],
            textposition="top center",
            customdata=[html.escape(stage.kind) for stage in stages],
            hovertemplate="%{x}: %{customdata}<br>%{y:.1%}<extra></extra>",
            line=dict(color=TRAIN_COLOUR),
        )
    )
    figure.update_layout(
        height=300,
        margin=dict(t=20, b=10, l=10, r=10),
        yaxis=dict(range=[0, 1.08], tickformat=".0%", title="nearest class average right"),
        xaxis=dict(title="layer, from the input to the output"),
    )
    return figure


def layer_health_curves(epochs: Sequence[int], health: Sequence[Sequence[dict]]) -> go.Figure:
    """Per layer across epochs: the weights' standard deviation, and the gradients' (log)."""
    import plotly.graph_objects as go

    layers = [entry["layer"] for entry in health[0]]
    traces = []
    for index, layer in enumerate(layers):
        colour = CLASS_COLOURS[index % len(CLASS_COLOURS)]
        for part, axes in (("weights", {}), ("gradients", dict(xaxis="x2", yaxis="y2"))):
            traces.append(
                dict(
                    type="scatter", mode="lines+markers", x=list(epochs),
                    y=[epoch[index][part]["std"] for epoch in health],
                    name=html.escape(layer), legendgroup=layer, showlegend=part == "weights",
                    line=dict(color=colour), marker=dict(size=5),
                    hovertemplate=f"{html.escape(layer)}, epoch %{{x}}: {part} std %{{y:.3g}}"
                    "<extra></extra>", **axes,
                )
            )  # fmt: skip
    titles = ("weights: spread (std)", "gradients: spread (std, log)")
    layout = _epoch_panels(titles, 300, -0.35)
    layout["yaxis2"]["type"] = "log"
    for axis in ("xaxis1", "xaxis2"):
        layout[axis]["dtick"] = 1
    return go.Figure(data=traces, layout=layout)


HEALTH_STYLE = """<style>
.fmnist-health { border-collapse: collapse; font-size: 12px; font-variant-numeric: tabular-nums; }
.fmnist-health th, .fmnist-health td { padding: 2px 6px; text-align: right; white-space: nowrap; }
.fmnist-health th { font-weight: 600; }
.fmnist-health th[colspan] { text-align: center; border-bottom: 1px solid #ddd; }
.fmnist-health td.name { text-align: left; }
.fmnist-health .spark { display: inline-flex; align-items: flex-end; height: 22px; gap: 1px; }
.fmnist-health .spark div { width: 4px; background: #1f77b4; min-height: 1px; }
.fmnist-health .spark div.zero { background: #ff7f0e; }
</style>"""


def _sparkline(counts: Sequence[int]) -> str:
    top = max(max(counts), 1)
    middle = len(counts) // 2
    bars = "".join(
        f'<div class="{"zero" if i == middle else ""}" style="height:{100 * c / top:.0f}%"></div>'
        for i, c in enumerate(counts)
    )
    return f'<span class="spark">{bars}</span>'


def layer_health_html(health: Sequence[dict]) -> str:
    """One row per layer: its weights' and gradients' statistics and histograms (the middle
    bar, orange, holds the values around 0)."""
    rows = []
    for entry in health:
        weights, gradients = entry["weights"], entry["gradients"]
        rows.append(
            f'<tr><td class="name">{html.escape(entry["layer"])}</td>'
            f"<td>{weights['mean']:+.3f}</td><td>{weights['std']:.3f}</td>"
            f"<td>{weights['near_zero']:.1%}</td><td>{_sparkline(weights['histogram'])}</td>"
            f"<td>{gradients['std']:.2e}</td><td>{gradients['near_zero']:.1%}</td>"
            f"<td>{_sparkline(gradients['histogram'])}</td></tr>"
        )
    header = (
        "<tr><th></th><th colspan=4>weights</th><th colspan=3>gradients</th></tr>"
        "<tr><th>layer</th><th>mean</th><th>std</th><th>|w| &lt; 0.001</th><th>histogram</th>"
        "<th>std</th><th>zero</th><th>histogram</th></tr>"
    )
    return f'{HEALTH_STYLE}<table class="fmnist-health">{header}{"".join(rows)}</table>'


HISTOGRAM_STYLE = """<style>
.fmnist-hist { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 10px 14px; }
.fmnist-hist figure { margin: 0; min-width: 0; }
.fmnist-hist figcaption { font-weight: 600; font-size: 0.85rem; text-align: center; }
.fmnist-hist img { display: block; width: 100%; height: auto; }
</style>"""
SVG_STYLE = "<style>text { font: 9px sans-serif; fill: #808495; }</style>"
_PLOT = dict(left=34.0, right=188.0, top=6.0, bottom=92.0)  # the SVG's plot area


def intensity_histograms_html(histograms: np.ndarray, log_scale: bool = False) -> str:
    """Small multiples as SVG pictures, one panel per class (its colour, filled) over all
    classes together (grey, dotted), every panel on the same y scale.

    ``histograms`` is (10, bins) shares, bins of equal width over 0-255. SVG written here
    rather than ten Plotly subplots: a toggle then redraws ten small pictures, not ten
    pairs of axes (Plotly took the browser 100-300 ms for them).
    """
    overall = histograms.mean(axis=0)
    bins = histograms.shape[1]
    positive = histograms[histograms > 0]
    top = float(histograms.max()) or 1.0
    if log_scale:
        low = 10 ** np.floor(np.log10(positive.min() if positive.size else 1e-4))
        high = 10 ** np.ceil(np.log10(top))
        to_unit = lambda v: (np.log10(np.maximum(v, low)) - np.log10(low)) / np.log10(high / low)  # noqa: E731
        ticks = [10.0**k for k in range(int(np.log10(low)), int(np.log10(high)) + 1)]
    else:
        to_unit = lambda v: np.asarray(v) / top  # noqa: E731
        ticks = [0.0, top / 2, top]
    x_of = lambda i: _PLOT["left"] + (i + 0.5) / bins * (_PLOT["right"] - _PLOT["left"])  # noqa: E731
    y_of = lambda v: _PLOT["bottom"] - to_unit(v) * (_PLOT["bottom"] - _PLOT["top"])  # noqa: E731
    axes = "".join(
        f'<line x1="{_PLOT["left"]}" x2="{_PLOT["right"]}" y1="{y_of(t):.1f}" y2="{y_of(t):.1f}"'
        f' stroke="#eee"/><text x="{_PLOT["left"] - 3}" y="{y_of(t) + 3:.1f}" '
        f'text-anchor="end">{_percent(t)}</text>'
        for t in ticks
    ) + "".join(
        f'<text x="{_PLOT["left"] + v / 255 * (_PLOT["right"] - _PLOT["left"]):.1f}" y="104" '
        f'text-anchor="middle">{v}</text>'
        for v in (0, 128, 255)
    )
    xs = [x_of(i) for i in range(bins)]
    grey = " ".join(f"{x:.1f},{y_of(v):.1f}" for x, v in zip(xs, overall, strict=True))
    figures = []
    for label, share in enumerate(histograms):
        colour = CLASS_COLOURS[label]
        line = " ".join(f"{x:.1f},{y_of(v):.1f}" for x, v in zip(xs, share, strict=True))
        area = f"{xs[0]:.1f},{_PLOT['bottom']} {line} {xs[-1]:.1f},{_PLOT['bottom']}"
        svg = (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 108">{SVG_STYLE}{axes}'
            f'<polygon points="{area}" fill="{colour}" fill-opacity="0.3"/>'
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
            f'<polyline points="{grey}" fill="none" stroke="#9e9e9e" stroke-width="1.2" '
            f'stroke-dasharray="2 2"/></svg>'
        )
        # As an image: Streamlit's HTML sanitiser removes inline SVG, not a data URI.
        source = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")
        name = html.escape(CLASS_NAMES[label])
        figures.append(
            f'<figure><figcaption style="color:{colour}">{name}</figcaption>'
            f'<img src="{source}" alt="pixel intensities of {name}"></figure>'
        )
    scale = "log" if log_scale else "linear"
    return (
        f'{HISTOGRAM_STYLE}<div class="fmnist-hist" data-scale="{scale}">{"".join(figures)}</div>'
    )


def _percent(value: float) -> str:
    if value == 0:
        return "0%"
    return f"{value:.0%}" if value >= 0.01 else f"{value:.1%}" if value >= 0.001 else f"{value:.2%}"
