"""Inline SVG charts for HTML reports (client reports, the insight reports pack)."""

from __future__ import annotations

from decimal import Decimal
from html import escape


def bar_chart_svg(rows: list[tuple[str, Decimal]], title: str) -> str:
    """Horizontal bars, one per (label, value), positive right in green, negative left in red;
    empty string for no rows."""
    if not rows:
        return ""
    width, bar_h, gap, label_w = 640, 20, 6, 90
    height = 30 + len(rows) * (bar_h + gap)
    top = max(abs(v) for _, v in rows) or Decimal(1)
    half = (width - label_w - 20) / 2
    axis = label_w + half
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="4" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{axis}" y1="24" x2="{axis}" y2="{height}" stroke="#888"/>',
    ]
    for i, (label, value) in enumerate(rows):
        y = 28 + i * (bar_h + gap)
        length = float(abs(value) / top) * half
        x = axis if value >= 0 else axis - length
        colour = "#2e7d32" if value >= 0 else "#c62828"
        parts.append(f'<text x="4" y="{y + 14}" font-size="12">{escape(label)}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{max(length, 1):.1f}" '
                     f'height="{bar_h}" fill="{colour}"><title>{escape(label)}: {value}'
                     f'</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def column_chart_svg(monthly: dict[str, Decimal], title: str) -> str:
    """Columns for the last 24 keys in sorted order (months "YYYY-MM" or days "YYYY-MM-DD");
    empty string for no data."""
    if not monthly:
        return ""
    months = sorted(monthly)[-24:]
    width, height, base = 640, 220, 190
    top = max(monthly[m] for m in months) or Decimal(1)
    step = (width - 20) / len(months)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="4" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for i, month in enumerate(months):
        h = float(monthly[month] / top) * (base - 30)
        x = 10 + i * step
        parts.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{step * 0.8:.1f}" '
                     f'height="{h:.1f}" fill="#1565c0"><title>{month}: '
                     f'{monthly[month].quantize(Decimal("0.01"))}</title></rect>')
        if len(months) <= 12 or i % 3 == 0:
            parts.append(f'<text x="{x:.1f}" y="{base + 14}" font-size="10">{month}</text>')
    parts.append("</svg>")
    return "".join(parts)
