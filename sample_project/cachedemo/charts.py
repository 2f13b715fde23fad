"""Inline SVG charts for the dashboard (no JavaScript, no CDN)."""

from __future__ import annotations

from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH = 600


def ratio_bar(a: int, b: int, a_label: str, b_label: str) -> SafeString:
    """A horizontal bar split between ``a`` (green) and ``b`` (red)."""
    total = a + b
    wa = WIDTH * a / total if total else 0.0
    return format_html(
        '<svg id="hit-chart" role="img" aria-label="{a_label} {a} / {b_label} {b}" width="{w}"'
        ' height="40" viewBox="0 0 {w} 40" xmlns="http://www.w3.org/2000/svg">'
        '<rect x="0" y="0" width="{w}" height="24" fill="#ddd"/>'
        '<rect class="seg-a" x="0" y="0" width="{wa}" height="24" fill="#2e7d32"/>'
        '<rect class="seg-b" x="{wa}" y="0" width="{wb}" height="24" fill="#c62828"/>'
        '<text x="4" y="38" font-size="12">{a_label}: {a}</text>'
        '<text x="{w}" y="38" font-size="12" text-anchor="end">{b_label}: {b}</text></svg>',
        w=WIDTH, wa=f"{wa:.1f}", wb=f"{WIDTH - wa if total else 0.0:.1f}", a=a, b=b,
        a_label=a_label,
        b_label=b_label,
    )


def log_regions_chart(stats: dict[str, Any]) -> SafeString:
    """The hybrid log's address space: on disk | read-only in memory | mutable in memory."""
    try:
        begin = int(stats["log_begin_address"])
        head = int(stats["log_head_address"])
        read_only = int(stats["log_read_only_address"])
        tail = int(stats["log_tail_address"])
    except (KeyError, TypeError, ValueError):
        return mark_safe('<p id="log-chart-missing">No log regions (RESP mode).</p>')
    span = max(tail - begin, 1)
    parts = [
        ("disk", head - begin, "#90a4ae"),
        ("read-only", read_only - head, "#ffb300"),
        ("mutable", tail - read_only, "#1e88e5"),
    ]
    x = 0.0
    rects = []
    for name, size, color in parts:
        w = WIDTH * max(size, 0) / span
        rects.append(
            format_html(
                '<rect class="region region-{}" x="{}" y="0" width="{}" height="24"'
                ' fill="{}"><title>{}: {} bytes</title></rect>',
                name, f"{x:.1f}", f"{w:.1f}", color, name, size,
            )
        )
        x += w
    legend = format_html(
        '<text x="0" y="40" font-size="12">begin {} · head {} · read-only {} · tail {}</text>',
        begin, head, read_only, tail,
    )
    return format_html(
        '<svg id="log-chart" role="img" aria-label="log regions" width="{}" height="48"'
        ' viewBox="0 0 {} 48" xmlns="http://www.w3.org/2000/svg">{}{}</svg>',
        WIDTH, WIDTH, mark_safe("".join(rects)), legend,
    )
