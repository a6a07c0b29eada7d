"""Plotly figures: pure functions from arrays and records to figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly import colors
from plotly.subplots import make_subplots

from fmnist.data import CLASS_NAMES
from fmnist.evaluation import normalise_rows

# One colour per class, the same on every chart.
CLASS_COLOURS = colors.qualitative.T10
TRAIN_COLOUR, VALIDATION_COLOUR = "#1f77b4", "#ff7f0e"


def class_distribution(train_counts: np.ndarray, test_counts: np.ndarray) -> go.Figure:
    figure = go.Figure(
        [
            go.Bar(name="train", x=list(CLASS_NAMES), y=train_counts, marker_color=TRAIN_COLOUR),
            go.Bar(name="test", x=list(CLASS_NAMES), y=test_counts, marker_color=VALIDATION_COLOUR),
        ]
    )
    figure.update_layout(
        barmode="group",
        yaxis_title="images",
        height=340,
        margin=dict(t=30, b=10),
        legend=dict(orientation="h", y=1.12),
    )
    return figure


def pixel_heatmap(image: np.ndarray, title: str = "") -> go.Figure:
    """The 28x28 values 0-255 as a heatmap with a colour bar, values on hover."""
    figure = go.Figure(
        go.Heatmap(
            z=image,
            colorscale="gray",
            zmin=0,
            zmax=255,
            colorbar=dict(title="value"),
            hovertemplate="row %{y}, column %{x}: %{z}<extra></extra>",
        )
    )
    figure.update_layout(title=title, height=420, margin=dict(t=40, b=10, l=10, r=10))
    figure.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    figure.update_xaxes(constrain="domain")
    return figure


def class_images(images: np.ndarray, title: str, colour_scale: str = "gray") -> go.Figure:
    """Ten 28x28 images (one per class) in a 2x5 grid on one shared colour scale."""
    figure = make_subplots(
        rows=2,
        cols=5,
        subplot_titles=list(CLASS_NAMES),
        horizontal_spacing=0.015,
        vertical_spacing=0.08,
    )
    for label, image in enumerate(images):
        figure.add_trace(
            go.Heatmap(
                z=image,
                coloraxis="coloraxis",
                hovertemplate=f"{CLASS_NAMES[label]}<br>row %{{y}}, column %{{x}}: "
                "%{z:.1f}<extra></extra>",
            ),
            row=label // 5 + 1,
            col=label % 5 + 1,
        )
    figure.update_xaxes(showticklabels=False, ticks="", constrain="domain")
    figure.update_yaxes(showticklabels=False, ticks="", autorange="reversed", scaleanchor="x")
    for index in range(2, 11):
        # Each subplot keeps square pixels against its own x axis.
        figure.update_yaxes(
            scaleanchor=f"x{index}", row=(index - 1) // 5 + 1, col=(index - 1) % 5 + 1
        )
    figure.update_layout(
        title=title,
        height=380,
        margin=dict(t=60, b=10, l=10, r=10),
        coloraxis=dict(colorscale=colour_scale),
    )
    figure.update_annotations(font_size=12)
    return figure


def intensity_histograms(histograms: np.ndarray, log_scale: bool = False) -> go.Figure:
    figure = go.Figure()
    for label, share in enumerate(histograms):
        figure.add_trace(
            go.Scatter(
                x=np.arange(256),
                y=share,
                mode="lines",
                name=CLASS_NAMES[label],
                line=dict(color=CLASS_COLOURS[label], width=1.5),
            )
        )
    figure.update_layout(
        xaxis_title="pixel value",
        yaxis_title="share of pixels",
        height=380,
        margin=dict(t=20, b=10),
        yaxis_type="log" if log_scale else "linear",
    )
    return figure


def pca_scatter(
    coordinates: np.ndarray, labels: np.ndarray, indices: np.ndarray, explained: np.ndarray
) -> go.Figure:
    """One WebGL trace per class; each point carries its dataset index as customdata."""
    figure = go.Figure()
    for label in range(len(CLASS_NAMES)):
        mask = labels == label
        figure.add_trace(
            go.Scattergl(
                x=coordinates[mask, 0],
                y=coordinates[mask, 1],
                mode="markers",
                name=CLASS_NAMES[label],
                customdata=indices[mask],
                marker=dict(size=5, color=CLASS_COLOURS[label], opacity=0.75),
                hovertemplate=f"{CLASS_NAMES[label]}<br>image %{{customdata}}<extra></extra>",
            )
        )
    figure.update_layout(
        xaxis_title=f"PC 1 ({explained[0]:.0%} of variance)",
        yaxis_title=f"PC 2 ({explained[1]:.0%} of variance)",
        height=520,
        margin=dict(t=20, b=10),
        clickmode="event+select",
    )
    return figure


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
    history: Sequence[dict[str, float]], live: Sequence[dict[str, float]] = ()
) -> go.Figure:
    """Loss and accuracy: training points within epochs, and per-epoch values with validation.

    Built from plain dicts on two side-by-side axes rather than with
    make_subplots: the Train page redraws this every second for every viewer,
    and make_subplots alone costs ~20 ms where this whole figure costs ~4 ms.
    """
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
    return go.Figure(data=traces, layout=_epoch_panels(("loss", "accuracy"), 360, -0.25))


def runs_comparison(records: Sequence[dict[str, Any]], labels: Sequence[str]) -> go.Figure:
    """Accuracy and loss per epoch of several runs: validation solid, training dotted."""
    traces: list[dict[str, Any]] = []
    for index, (record, label) in enumerate(zip(records, labels, strict=True)):
        colour = colors.qualitative.Plotly[index % 10]
        history = record.get("history", [])
        for column, metric in enumerate(("accuracy", "loss"), start=1):
            for key, dash, part in ((f"val_{metric}", "solid", "validation"),
                                    (metric, "dot", "training")):  # fmt: skip
                points = [(h["epoch"], h[key]) for h in history if key in h]
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
    return go.Figure(data=traces, layout=_epoch_panels(("accuracy", "loss"), 400, -0.2))


def confusion_heatmap(
    matrix: np.ndarray, normalised: bool = False, names: Sequence[str] = CLASS_NAMES
) -> go.Figure:
    """Rows: true class; columns: predicted class. Click a cell to select it."""
    values = normalise_rows(matrix) if normalised else matrix
    text = [[f"{v:.0%}" if normalised else f"{int(v)}" for v in row] for row in values]
    figure = go.Figure(
        go.Heatmap(
            z=values,
            x=list(names),
            y=list(names),
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            colorbar=dict(title="share" if normalised else "images"),
            customdata=matrix,
            hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata} images<extra></extra>",
        )
    )
    figure.update_yaxes(autorange="reversed", title="true class")
    figure.update_xaxes(title="predicted class", side="bottom")
    figure.update_layout(height=min(520, 160 + 36 * len(names)), margin=dict(t=20, b=10))
    return figure


def softmax_bars(
    probabilities: Sequence[float], true_label: int | None = None, height: int = 300
) -> go.Figure:
    """The full softmax as horizontal bars; the top class in blue, the true class outlined."""
    probabilities = np.asarray(probabilities)
    top = int(np.argmax(probabilities))
    colours = ["#1f77b4" if i == top else "#b0bec5" for i in range(len(probabilities))]
    if true_label is not None and true_label != top:
        colours[true_label] = "#2ca02c"
    figure = go.Figure(
        go.Bar(
            x=probabilities,
            y=list(CLASS_NAMES),
            orientation="h",
            marker_color=colours,
            text=[f"{p:.1%}" for p in probabilities],
            textposition="outside",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    figure.update_xaxes(range=[0, 1.15], tickformat=".0%", title="probability")
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(height=height, margin=dict(t=10, b=10, l=10, r=10))
    return figure
