"""The quality report: one self-contained HTML page (inline SVG, no external assets), rendered
from the data of ``public.quality_report`` (pure).

Every list names its guests (name, Mews id, e-mail); duplicate pairs come with their evidence;
the push conflicts of the last week and the enterprise's sync health (``public.sync_status``,
with what needs attention) are shown. The font stack covers Chinese, Japanese and Korean names.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import Any

# Latin first, then fonts that cover Chinese, Japanese and Korean names (the browser takes each
# glyph from the first font that has it).
FONT_STACK = (
    'system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK JP","Noto Sans JP",'
    '"Hiragino Sans","Yu Gothic","Microsoft YaHei",sans-serif'
)

_CSS = (
    """
body{font-family:FONTS;margin:0;background:#f5f6f8;color:#1d2330}
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
.who b{font-weight:600}.who small{display:block;color:#6b7487;font-size:11px}
.alert{color:#b42323;font-weight:600;margin:0 0 4px}.ok{color:#2e9e5b;font-weight:600;margin:0 0 10px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;font-size:13px;margin:0 0 14px}
dl.facts dt{color:#6b7487}dl.facts dd{margin:0}.split{display:grid;grid-template-columns:1fr 1.5fr;gap:24px}
.succeeded{color:#2e9e5b}.failed,.abandoned{color:#d64545;font-weight:600}.partial,.rate_limited{color:#b7791f}
svg text{font-size:11px;fill:#4a5468}
"""
).replace("FONTS", FONT_STACK)


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


def _guest(item: dict[str, Any]) -> str:
    """Who a row is about: the name, then the Mews id and the e-mail."""
    name = escape(str(item.get("name") or "").strip() or "(no name)")
    details = " · ".join(escape(str(v)) for v in (item.get("guest"), item.get("email")) if v)
    return f'<span class="who"><b>{name}</b><small>{details}</small></span>'


def _when(value: Any) -> str:
    return escape(str(value or "")[:16].replace("T", " "))


def _table(headers: list[str], rows: list[str], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def age(seconds: float | None) -> str:
    """A duration for people: 45 s, 12 min, 3.5 h, 2 d."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


MATCHES = {
    "email": "same e-mail",
    "phone": "same phone",
    "name_and_birth_date": "same name and birth date",
}


def _evidence(evidence: list[dict[str, Any]]) -> str:
    """Exact-key evidence ({match, value}) or weighed ({field, level, weight, detail})."""
    return "".join(
        _weighed(e)
        if "field" in e
        else f'<span class="gap">{escape(MATCHES.get(str(e.get("match")), str(e.get("match"))))}:'
        f" {escape(str(e.get('value', '')))}</span>"
        for e in evidence
    )


FIELDS = {
    "first_name": "first name",
    "last_name": "last name",
    "birth_date": "birth date",
    "email": "e-mail",
    "phone": "phone",
    "names": "names",
}


def _weighed(e: dict[str, Any]) -> str:
    """``first name: nickname bill/william +3.2``"""
    field = FIELDS.get(str(e.get("field")), str(e.get("field")))
    level = str(e.get("level", "")).replace("_", " ")
    detail = f" {e['detail']}" if e.get("detail") else ""
    weight = float(e.get("weight") or 0)
    return f'<span class="gap">{escape(field)}: {escape(level + detail)} {weight:+.1f}</span>'


def _probability(pair: dict[str, Any]) -> str:
    chance = pair.get("probability")
    return "" if chance is None else f"{float(chance):.1%}"


def _json_value(value: Any) -> str:
    if value is None or value == "":
        return '<span class="empty">(empty)</span>'
    return escape(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


RESOLUTIONS = {
    "mews_won": "Mews won",
    "local_won": "staff won",
    "refused_by_mews": "refused by Mews",
}


def _arrivals(arrivals: list[dict[str, Any]]) -> str:
    rows = [
        f"<tr><td>{_when(a['arrival'])}</td><td>{_guest(a)}</td><td>{escape(a['state'])}</td>"
        f"<td>{_score(float(a['score']))}</td><td>{_gaps(a['reasons'])}</td></tr>"
        for a in arrivals
    ]
    return _table(
        ["Arrival", "Guest", "State", "Score", "What is missing"],
        rows,
        "No arriving guest is under the threshold.",
    )


def _worst(worst: list[dict[str, Any]]) -> str:
    rows = [
        f"<tr><td>{_guest(w)}</td><td>{_score(float(w['score']))}</td><td>{_gaps(w['reasons'])}</td></tr>"
        for w in worst
    ]
    return _table(["Guest", "Score", "Biggest gaps"], rows, "Nothing scored yet.")


UNINFORMATIVE_NAMES = {
    "email": ("e-mail address", "e-mail addresses"),
    "local": ("e-mail name", "e-mail names"),
    "phone": ("phone number", "phone numbers"),
    "birth_name": (
        "birth date with a name's first letters",
        "birth dates with a name's first letters",
    ),
    "name": ("name", "names"),
}


def _uninformative(skipped: dict[str, int]) -> str:
    """What the last pass did not pair on: values shared by more profiles than their cap."""
    from shared.quality.matching import CAPS

    parts = []
    for kind, count in sorted(skipped.items()):
        if not count:
            continue
        one, many = UNINFORMATIVE_NAMES.get(kind, (kind, kind))
        letter = {"email": "e", "local": "l", "phone": "p", "birth_name": "b", "name": "n"}.get(
            kind
        )
        cap = CAPS.get(letter or "", 0)
        parts.append(f"{count:,} {one if count == 1 else many} shared by more than {cap} profiles")
    if not parts:
        return ""
    return (
        '<p class="empty">Treated as uninformative (too common to say two profiles are one'
        f" person, so no pair is suggested on them alone): {escape('; '.join(parts))}.</p>"
    )


def _duplicates(
    pairs: list[dict[str, Any]], total: int, skipped: dict[str, int] | None = None
) -> str:
    rows = [
        f"<tr><td>{_guest(p['a'])}</td><td>{_guest(p['b'])}</td><td>{_probability(p)}</td>"
        f"<td>{_evidence(p['evidence'])}</td></tr>"
        for p in pairs
    ]
    more = (
        f'<p class="empty">…and {total - len(pairs):,} more pair(s).</p>'
        if total > len(pairs)
        else ""
    )
    table = _table(
        ["Guest", "Possible duplicate", "Probability", "Evidence"],
        rows,
        "No possible duplicates (nothing is ever merged automatically; merges belong in Mews).",
    )
    return table + more + _uninformative(skipped or {})


def _conflicts(conflicts: list[dict[str, Any]]) -> str:
    rows = [
        f"<tr><td>{_when(c['at'])}</td><td>{_guest(c)}</td><td>{escape(c.get('field') or '(whole edit)')}</td>"
        f"<td>{_json_value(c.get('local_value'))}</td><td>{_json_value(c.get('mews_value'))}</td>"
        f"<td>{escape(RESOLUTIONS.get(c['resolution'], c['resolution']))}</td></tr>"
        for c in conflicts
    ]
    return _table(
        ["When (UTC)", "Guest", "Field", "Staff value", "Mews value", "Resolution"],
        rows,
        "No push conflicts in the last 7 days.",
    )


def _token_state(tokens: list[dict[str, Any]]) -> str:
    if not tokens:
        return "no requests in the last day"
    if any(t.get("unauthorized_since") and not t.get("superseded") for t in tokens):
        return "refused (401): its jobs are paused"
    return "accepted"


def _sync_facts(sync: dict[str, Any]) -> str:
    inbox = sync.get("inbox") or {}
    poll = sync.get("poll") or {}
    tokens = sync.get("tokens") or []
    facts = {
        "Inbox": f"{inbox.get('waiting', 0)} waiting (oldest {age(inbox.get('oldest_waiting_seconds'))}),"
        f" {inbox.get('dead', 0)} dead letter(s)",
        "Quarantined records": f"{sync.get('quarantine_open', 0)} open",
        "Conflicts (7 days)": str(sync.get("conflicts_7d", 0)),
        "Behind Mews": age(poll.get("lag_seconds")) if poll.get("entities") else "never polled",
        "Mews token": _token_state(tokens),
        "Requests (last 30 s)": str(sum(int(t.get("used_last_30s") or 0) for t in tokens)),
    }
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts.items())
    return f'<dl class="facts">{items}</dl>'


def _sync(sync: dict[str, Any] | None) -> str:
    if not sync:
        return '<p class="empty">No sync status for this enterprise.</p>'
    attention = sync.get("attention") or []
    verdict = (
        "".join(f'<p class="alert">⚠ {escape(a["message"])}</p>' for a in attention)
        if attention
        else '<p class="ok">Nothing needs attention.</p>'
    )
    rows = [
        f'<tr><td>{escape(r["job"])}</td><td class="{escape(r["status"])}">{escape(r["status"])}</td>'
        f"<td>{_when(r.get('started_at'))}</td><td>{_when(r.get('finished_at'))}</td>"
        f"<td>{escape((r.get('error') or '')[:80])}</td></tr>"
        for r in sync.get("runs") or []
    ]
    runs = _table(
        ["Job", "Last run", "Started (UTC)", "Finished (UTC)", "Error"], rows, "No runs yet."
    )
    return f'<div class="split"><div>{verdict}{_sync_facts(sync)}</div><div>{runs}</div></div>'


def _kpis(data: dict[str, Any], average: float, below: int) -> str:
    kpis = [
        (f'<b style="color:{_color(average)}">{average:.1f}</b>', "average completeness (0–100)"),
        (f"<b>{below:,}</b>", "profiles under 50"),
        (
            f"<b>{len(data.get('arrivals', [])):,}</b>",
            "arrivals at risk (next 14 days, score under 60)",
        ),
        (f"<b>{int(data.get('duplicates') or 0):,}</b>", "possible duplicate pairs"),
        (
            f"<b>{len((data.get('sync') or {}).get('attention') or []):,}</b>",
            "sync issues needing attention",
        ),
    ]
    cells = "".join(f'<div class="kpi">{value}<span>{label}</span></div>' for value, label in kpis)
    return f'<div class="kpis">{cells}</div>'


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
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Guest data quality — {name}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body><header><h1>Guest data quality — {name}</h1>
<p>{guests:,} active guest profiles scored · generated {generated:%Y-%m-%d %H:%M} UTC</p></header>
<main>
{_kpis(data, average, below)}
<section><h2>Score distribution</h2>{_bars(buckets)}</section>
<section><h2>Gaps by field (share of guests)</h2>{_hbars(fields)}</section>
<section class="wide"><h2>Sync health</h2>{_sync(data.get("sync"))}</section>
<section class="wide"><h2>Arrivals at risk</h2>{_arrivals(data.get("arrivals", []))}</section>
<section class="wide"><h2>Worst profiles</h2>{_worst(data.get("worst", []))}</section>
<section class="wide"><h2>Possible duplicates</h2>{_duplicates(data.get("duplicate_pairs", []), int(data.get("duplicates") or 0), data.get("duplicate_values_uninformative"))}</section>
<section class="wide"><h2>Push conflicts (last 7 days)</h2>{_conflicts(data.get("conflicts", []))}</section>
<section class="wide"><h2>Average score over time</h2>{_line(trend)}</section>
</main></body></html>
"""
