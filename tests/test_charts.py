"""Figures built from user-given text show it as text."""

from __future__ import annotations

from fmnist import charts


def test_run_names_in_the_comparison_legend_are_text_not_markup() -> None:
    record = {"history": [{"epoch": 1, "accuracy": 0.8, "val_accuracy": 0.79, "loss": 0.5}]}
    name = '<a href="http://10.255.255.1/">click</a> <b>me</b>'
    figure = charts.runs_comparison([record], [name])
    names = [trace.name for trace in figure.data]
    assert names and all("<a" not in n and "<b>" not in n for n in names), names
    assert all(n.startswith("&lt;a href=&quot;http://10.255.255.1/&quot;&gt;click") for n in names)
