"""The quality report: one self-contained HTML page (inline SVG, no external assets), rendered
from the data of ``public.quality_report`` (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:24px 40px}header h1{margin:0;font-size:24px}
header p{margin:6px 0 0;color:#b8c0d0}main{padding:24px 40px;display:grid;grid-template-columns:1fr 1fr;gap:24px}
section{background:#fff;border-radius:10px;padding:20px 24px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
section.wide{grid-column:1/3}h2{font-size:16px;margin:0 0 14px;color:#3a4356}
.kpis{display:flex;gap:16px;grid-column:1/3}.kpi{flex:1;background:#fff;border-radius:10px;padding:16px 20px;
box-shadow:0 1px 3px rgba(0,0,0,.08)}.kpi b{display:block;font-size:30px}.kpi span{color:#6b7487;font-size:13px}
table{width:100%;border-collapse:collapse;font-size:13px}th{text-align:left;color:#6b7487;font-weight:600;
border-bottom:1px solid #e3e6ec;padding:6px 4px}td{border-bottom:1px solid #f0f2f5;padding:6px 4px;vertical-align:top}
.score{font-weight:700;padding:2px 8px;border-radius:10px;color:#fff}.gap{display:inline-block;background:#f1f3f7;
border-radius:6px;padding:1px 6px;margin:1px 2px;font-size:12px}.empty{color:#8a93a6;font-style:italic}
svg text{font-size:11px;fill:#4a5468}
"""


def _color(score: float) -> str:
    if score >= 80:
        return "#2e9e5b"
    if score >= 50:
        return "#e3a21a"
    return "#d64545"


def _bars(items: list[tuple[str, float, str]], *, width: int = 520, height: int = 220) -> str:
    """Vertical bars: (label, value, colour)."""
    if not items:
        return '<p class="empty">No data yet.</p>'
    top = max(v for _, v, _ in items) or 1
    step = width / len(items)
    pad = 16  # room for the tallest bar's label
    parts = [f'<svg viewBox="0 0 {width} {height + pad + 30}" width="100%" role="img">']
    for i, (label, value, color) in enumerate(items):
        h = value / top * height
        x = i * step + step * 0.15
        base = height + pad
        parts.append(
            f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" rx="3" fill="{color}"/>'
        )
        parts.append(
            f'<text x="{x + step * 0.35:.1f}" y="{base - h - 4:.1f}" text-anchor="middle">{value:,.0f}</text>'
        )
        parts.append(
            f'<text x="{x + step * 0.35:.1f}" y="{base + 16}" text-anchor="middle">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _hbars(items: list[tuple[str, float, float]], *, width: int = 520) -> str:
    """Horizontal stacked bars: (label, missing rate, invalid rate), rates 0..1."""
    if not items:
        return '<p class="empty">No gaps: every scored field is complete.</p>'
    row = 26
    parts = [f'<svg viewBox="0 0 {width} {row * len(items) + 24}" width="100%" role="img">']
    left, span = 130, width - 230
    for i, (label, missing, invalid) in enumerate(items):
        y = i * row
        parts.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{escape(label)}</text>')
        parts.append(
            f'<rect x="{left}" y="{y + 4}" width="{span}" height="16" rx="3" fill="#eef0f4"/>'
        )
        parts.append(
            f'<rect x="{left}" y="{y + 4}" width="{span * missing:.1f}" height="16" rx="3" fill="#d64545"/>'
        )
        parts.append(
            f'<rect x="{left + span * missing:.1f}" y="{y + 4}" width="{span * invalid:.1f}" height="16" fill="#e3a21a"/>'
        )
        parts.append(
            f'<text x="{left + span + 6}" y="{y + 16}">{missing:.0%} / {invalid:.0%}</text>'
        )
    y = row * len(items) + 16
    parts.append(
        f'<rect x="{left}" y="{y - 9}" width="10" height="10" fill="#d64545"/><text x="{left + 14}" y="{y}">missing</text>'
    )
    parts.append(
        f'<rect x="{left + 80}" y="{y - 9}" width="10" height="10" fill="#e3a21a"/><text x="{left + 94}" y="{y}">invalid or weak</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _line(points: list[tuple[str, float]], *, width: int = 1080, height: int = 180) -> str:
    if not points:
        return '<p class="empty">No history yet: each scoring run adds a day.</p>'
    left, bottom = 40, height + 12
    parts = [f'<svg viewBox="0 0 {width} {height + 42}" width="100%" role="img">']
    for tick in (0, 25, 50, 75, 100):
        y = bottom - tick / 100 * height
        parts.append(f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef0f4"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    step = (width - left - 20) / max(1, len(points) - 1)
    coords = [
        (left + 10 + i * step, bottom - value / 100 * height) for i, (_, value) in enumerate(points)
    ]
    parts.append(
        '<polyline fill="none" stroke="#3b6fd8" stroke-width="2.5" points="'
        + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        + '"/>'
    )
    for (x, y), (day, value) in zip(coords, points, strict=True):
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#3b6fd8"/>')
        parts.append(f'<text x="{x:.1f}" y="{y - 8:.1f}" text-anchor="middle">{value:.1f}</text>')
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{escape(day)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _gaps(reasons: list[dict[str, Any]]) -> str:
    return "".join(
        f'<span class="gap">{escape(str(r.get("message", "")))}</span>' for r in reasons[:5]
    )


def _score(value: float) -> str:
    return f'<span class="score" style="background:{_color(value)}">{value:.0f}</span>'


def render(data: dict[str, Any], *, generated: datetime | None = None) -> str:
    generated = generated or datetime.now(UTC)
    name = escape((data.get("enterprise") or {}).get("name", "Enterprise"))
    guests = int(data.get("guests") or 0)
    average = float(data.get("average") or 0)
    distribution = {int(d["bucket"]): int(d["guests"]) for d in data.get("distribution", [])}
    buckets = [
        (f"{b}–{b + 9 if b < 90 else 100}", float(distribution.get(b, 0)), _color(b + 5))
        for b in range(0, 100, 10)
    ]
    fields = [
        (
            str(f["field"]).replace("_", " "),
            float(f["missing"]) / guests if guests else 0.0,
            float(f["invalid"]) / guests if guests else 0.0,
        )
        for f in data.get("fields", [])
    ][:12]
    trend = [(str(t["day"])[5:], float(t["average"])) for t in data.get("trend", [])]
    below = sum(n for b, n in distribution.items() if b < 50)
    worst_rows = "".join(
        f"<tr><td>{escape(w['name'] or '—')}</td><td>{_score(float(w['score']))}</td><td>{_gaps(w['reasons'])}</td></tr>"
        for w in data.get("worst", [])
    )
    arrivals = data.get("arrivals", [])
    arrival_rows = "".join(
        f"<tr><td>{escape(str(a['arrival'])[:16].replace('T', ' '))}</td><td>{escape(a['name'] or '—')}</td>"
        f"<td>{escape(a['state'])}</td><td>{_score(float(a['score']))}</td><td>{_gaps(a['reasons'])}</td></tr>"
        for a in arrivals
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Guest data quality — {name}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body><header><h1>Guest data quality — {name}</h1>
<p>{guests:,} active guest profiles scored · generated {generated:%Y-%m-%d %H:%M} UTC</p></header>
<main>
<div class="kpis">
<div class="kpi"><b style="color:{_color(average)}">{average:.1f}</b><span>average completeness (0–100)</span></div>
<div class="kpi"><b>{below:,}</b><span>profiles under 50</span></div>
<div class="kpi"><b>{len(arrivals):,}</b><span>arrivals at risk (next 14 days, score under 60)</span></div>
<div class="kpi"><b>{int(data.get("duplicates") or 0):,}</b><span>possible duplicate pairs</span></div>
</div>
<section><h2>Score distribution</h2>{_bars(buckets)}</section>
<section><h2>Gaps by field (share of guests)</h2>{_hbars(fields)}</section>
<section class="wide"><h2>Average score over time</h2>{_line(trend)}</section>
<section class="wide"><h2>Arrivals at risk</h2>
{f"<table><tr><th>Arrival</th><th>Guest</th><th>State</th><th>Score</th><th>What is missing</th></tr>{arrival_rows}</table>" if arrivals else '<p class="empty">No arriving guest is under the threshold.</p>'}
</section>
<section class="wide"><h2>Worst profiles</h2>
{f"<table><tr><th>Guest</th><th>Score</th><th>Biggest gaps</th></tr>{worst_rows}</table>" if worst_rows else '<p class="empty">Nothing scored yet.</p>'}
</section>
</main></body></html>
"""
