"""Dashboard charts drawn on the server as SVG by pygal: no CDN, no JavaScript needed.

Each chart is its own image (``<img src=…svg>``), served with a Content-Security-Policy
that lets the SVG's own styles apply and nothing else; the page beside it has the same
figures as a table, for screen readers and for anyone who wants the numbers.
"""

from __future__ import annotations

from flask import Response

PALETTE = ("#b4441f", "#1f6f8b", "#5b7f2a", "#7a4e9c", "#a07a00", "#2f4858", "#c0567d")


def _style():
    from pygal.style import Style

    return Style(background="#ffffff", plot_background="#ffffff", foreground="#1f2933",
                 foreground_strong="#1f2933", foreground_subtle="#52606d", colors=PALETTE,
                 font_family="system-ui, sans-serif", label_font_size=12,
                 major_label_font_size=12, legend_font_size=13, title_font_size=15)


def _chart(kind: str, title: str, labels: list[str], series: dict[str, list[int]]) -> str:
    import pygal

    chart = getattr(pygal, kind)(
        js=[], disable_xml_declaration=True, style=_style(), width=820, height=320,
        show_minor_x_labels=False, x_label_rotation=0, legend_at_bottom=True,
        legend_at_bottom_columns=4, dots_size=2, title=title, print_values=False,
        truncate_legend=40)
    chart.x_labels = labels
    chart.x_labels_major = labels[::7] + labels[-1:]
    for name, values in series.items():
        chart.add(name, values)
    return chart.render(is_unicode=True)


def svg_response(svg: str) -> Response:
    response = Response(svg, mimetype="image/svg+xml")
    # The SVG is an image: its own inline styles only; its script never runs in an <img>.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response.headers["Cache-Control"] = "private, max-age=60"
    return response


def line(title: str, labels: list[str], series: dict[str, list[int]]) -> str:
    return _chart("Line", title, labels, series)


def bars(title: str, labels: list[str], series: dict[str, list[int]]) -> str:
    return _chart("Bar", title, labels, series)
