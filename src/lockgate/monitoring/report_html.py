"""A drift report as one self-contained HTML file: a summary, a table of every column's tests
and verdicts, and per column an inline SVG plot of the reference and current distributions
(histograms over shared bins for numbers, category shares for categories).

Nothing is loaded from anywhere: no script at all, CSS inline, plots drawn here in Python, and
a Content-Security-Policy that forbids any other source, so the file opens offline, in a mail
attachment or an artifact viewer, the same way.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from lockgate import __version__
from lockgate.monitoring.columns import category_counts, numeric_values
from lockgate.monitoring.profile import CategoricalProfile, NumericalProfile, Profile
from lockgate.monitoring.report import ColumnDrift, DriftReport

#: bins of the numerical histograms
BINS = 30
#: categories drawn per column (the most frequent in either side; the rest as "other")
TOP_CATEGORIES = 12
_W, _H = 560, 190
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 44, 10, 10, 34
_REF, _CUR = "#4c78a8", "#f58518"

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;
color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
h3{font-size:15px;margin:0 0 6px}.muted{color:#5d6677}
.badge{display:inline-block;padding:2px 9px;border-radius:10px;font-weight:600;font-size:12px}
.drift{background:#fde2e1;color:#a61b1b}.warning{background:#fff1d6;color:#8a5a00}
.no_drift{background:#ddf3e4;color:#17643a}.insufficient_data{background:#e8eaef;color:#4a5160}
table{border-collapse:collapse;margin-top:6px}.scroll{overflow-x:auto}
th,td{padding:4px 10px;border-bottom:1px solid #e3e6ec;text-align:left;white-space:nowrap}
th{font-weight:600;background:#f5f6f9}td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:18px}
.card{border:1px solid #e3e6ec;border-radius:8px;padding:12px 14px;width:580px}
.summary td{border:none;padding:2px 14px 2px 0}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;border-radius:2px}
svg text{font:11px system-ui,sans-serif;fill:#5d6677}
"""


def render_html(
    report: DriftReport,
    reference: Profile | pd.DataFrame,
    current: pd.DataFrame,
    *,
    title: str = "Drift report",
    reference_label: str = "reference",
    current_label: str = "current",
    generated_at: datetime | None = None,
) -> str:
    """The report as an HTML document (a string). ``reference`` and ``current`` are the data
    the report compared; only their distributions are drawn, never rows."""
    at = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    cards = [
        _card(c, reference, current)
        for c in report.columns
        if _has(reference, c.column) and c.column in current.columns
    ]
    doc = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<div class="muted">generated {_e(at)} by lockgate {_e(__version__)}</div>',
        _summary(report, reference_label, current_label),
        "<h2>Columns</h2>",
        _table(report),
        "<h2>Distributions</h2>",
        '<div class="legend muted">'
        f'<span style="background:{_REF}"></span>{_e(reference_label)}'
        f'<span style="background:{_CUR}"></span>{_e(current_label)}</div>',
        f'<div class="cards">{"".join(cards)}</div>',
        "</body></html>",
    ]
    return "\n".join(doc)


def _summary(r: DriftReport, reference_label: str, current_label: str) -> str:
    rows = [
        ("verdict", _badge(r.verdict)),
        ("reference", f"{_e(reference_label)} ({r.n_reference:,} rows)"),
        ("current", f"{_e(current_label)} ({r.n_current:,} rows)"),
        ("columns tested", str(r.n_tested)),
        ("share drifted", f"{r.share_drifted:.1%} (data set drifts at {r.config.drift_share:.0%})"),
        ("share material", f"{r.share_material:.1%}"),
        ("drifted columns", _e(", ".join(r.drifted_columns) or "none")),
        (
            "rules",
            _e(
                f"significant: {r.config.correction} adjusted p < {r.config.alpha:g}; material: "
                f"PSI >= {_t(r.config.psi_threshold)}, Wasserstein/std >= "
                f"{_t(r.config.wasserstein_threshold)}, Jensen-Shannon >= "
                f"{_t(r.config.js_threshold)}, missing-rate change >= "
                f"{_t(r.config.missing_rate_threshold)}"
            ),
        ),
    ]
    body = "".join(f"<tr><td class='muted'>{k}</td><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="summary">{body}</table>'


def _table(r: DriftReport) -> str:
    head = (
        "<tr><th>column</th><th>kind</th><th>role</th><th>test</th><th>statistic</th>"
        "<th>p-value</th><th>adj. p</th><th>significant</th><th>material</th><th>PSI</th>"
        "<th>W/std</th><th>JS</th><th>missing ref → cur</th><th>verdict</th></tr>"
    )
    rows = []
    for c in r.columns:
        e = c.effect
        rows.append(
            "<tr>"
            f"<td>{_e(c.column)}</td><td>{c.kind}</td><td>{c.role}</td>"
            f"<td>{c.test or '&ndash;'}</td>"
            f"<td class='num'>{_n(c.statistic)}</td><td class='num'>{_p(c.p_value)}</td>"
            f"<td class='num'>{_p(c.p_value_adjusted)}</td>"
            f"<td>{'yes' if c.significant else 'no'}</td>"
            f"<td>{'yes' if c.material else 'no'}</td>"
            f"<td class='num'>{_n(e.get('psi'))}</td>"
            f"<td class='num'>{_n(e.get('wasserstein_norm'))}</td>"
            f"<td class='num'>{_n(e.get('js_distance'))}</td>"
            f"<td class='num'>{c.missing_rate_reference:.1%} → {c.missing_rate_current:.1%}</td>"
            f"<td>{_badge(c.verdict)}</td></tr>"
        )
    return f"<div class='scroll'><table>{head}{''.join(rows)}</table></div>"


def _card(c: ColumnDrift, reference: Profile | pd.DataFrame, current: pd.DataFrame) -> str:
    ref = reference.columns[c.column] if isinstance(reference, Profile) else None
    series = current[c.column]
    if c.kind == "numerical":
        ref_values = (
            ref.values
            if isinstance(ref, NumericalProfile)
            else numeric_values(reference[c.column], c.column)[0]  # type: ignore[index]
        )
        try:
            cur_values = numeric_values(series, c.column)[0]
        except ValueError:
            cur_values = np.empty(0)
        svg = _histogram(np.asarray(ref_values), cur_values, c.column)
    else:
        if isinstance(ref, CategoricalProfile):
            ref_counts: Mapping[str, int] = dict(
                zip(ref.categories, ref.counts.tolist(), strict=True)
            )
        else:
            labels, counts, _ = category_counts(reference[c.column])  # type: ignore[index]
            ref_counts = dict(zip(labels, counts.tolist(), strict=True))
        labels, counts, _ = category_counts(series)
        svg = _bars(ref_counts, dict(zip(labels, counts.tolist(), strict=True)), c.column)
    reasons = ", ".join(c.reasons) or "none"
    return (
        f'<div class="card"><h3>{_e(c.column)} {_badge(c.verdict)}</h3>{svg}'
        f'<div class="muted">{c.test or "no test"} statistic {_n(c.statistic)}, '
        f"p {_p(c.p_value)} (adj. {_p(c.p_value_adjusted)}); material: {_e(reasons)}; "
        f"values {c.n_reference:,} vs {c.n_current:,}</div></div>"
    )


def _histogram(ref: np.ndarray, cur: np.ndarray, name: str) -> str:
    both = np.concatenate([ref, cur])
    if both.size == 0:
        return _empty(name)
    q_lo, q_hi = np.quantile(both, [0.001, 0.999])  # a far outlier does not squash the rest
    lo, hi = float(q_lo), float(q_hi)
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        lo, hi = float(both.min()) - 0.5, float(both.max()) + 0.5
    edges = np.linspace(lo, hi, BINS + 1)
    shares = []
    for v in (ref, cur):
        counts = np.histogram(np.clip(v, lo, hi), bins=edges)[0]
        shares.append(counts / max(v.size, 1))
    top = max(float(s.max()) for s in shares) or 1.0
    pw, ph = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B
    bw = pw / BINS
    parts = [_axes(top, name)]
    for color, share, offset in ((_REF, shares[0], 0.0), (_CUR, shares[1], bw / 2)):
        for i, s in enumerate(share):
            if s <= 0:
                continue
            h = ph * s / top
            x = _PAD_L + i * bw + offset
            parts.append(
                f'<rect x="{x:.1f}" y="{_PAD_T + ph - h:.1f}" width="{bw / 2 - 0.5:.1f}" '
                f'height="{h:.1f}" fill="{color}" fill-opacity="0.85"/>'
            )
    for frac in (0.0, 0.5, 1.0):
        x = _PAD_L + frac * pw
        value = lo + frac * (hi - lo)
        anchor = "start" if frac == 0 else ("end" if frac == 1 else "middle")
        parts.append(
            f'<text x="{x:.1f}" y="{_H - _PAD_B + 14}" text-anchor="{anchor}">{_g(value)}</text>'
        )
    return _svg(parts, name)


def _bars(ref: Mapping[str, int], cur: Mapping[str, int], name: str) -> str:
    n_ref, n_cur = max(sum(ref.values()), 1), max(sum(cur.values()), 1)
    keys = sorted(
        set(ref) | set(cur), key=lambda k: -(ref.get(k, 0) / n_ref + cur.get(k, 0) / n_cur)
    )
    shown = keys[:TOP_CATEGORIES]
    rest = keys[TOP_CATEGORIES:]
    rows = [(k, ref.get(k, 0) / n_ref, cur.get(k, 0) / n_cur) for k in shown]
    if rest:
        rows.append(
            (
                f"other ({len(rest)})",
                sum(ref.get(k, 0) for k in rest) / n_ref,
                sum(cur.get(k, 0) for k in rest) / n_cur,
            )
        )
    if not rows:
        return _empty(name)
    top = max(max(r, c) for _, r, c in rows) or 1.0
    pw, ph = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B
    slot = pw / len(rows)
    parts = [_axes(top, name)]
    for i, (label, r, c) in enumerate(rows):
        x0 = _PAD_L + i * slot + slot * 0.1
        w = slot * 0.4
        for j, (share, color) in enumerate(((r, _REF), (c, _CUR))):
            h = ph * share / top
            parts.append(
                f'<rect x="{x0 + j * w:.1f}" y="{_PAD_T + ph - h:.1f}" width="{w - 0.5:.1f}" '
                f'height="{h:.1f}" fill="{color}" fill-opacity="0.85">'
                f"<title>{_e(label)}: {share:.1%}</title></rect>"
            )
        text = label if len(label) <= 12 else label[:11] + "…"
        parts.append(
            f'<text x="{x0 + w:.1f}" y="{_H - _PAD_B + 14}" text-anchor="middle">{_e(text)}</text>'
        )
    return _svg(parts, name)


def _axes(top: float, name: str) -> str:
    ph = _H - _PAD_T - _PAD_B
    y0 = _PAD_T + ph
    return (
        f'<line x1="{_PAD_L}" y1="{y0}" x2="{_W - _PAD_R}" y2="{y0}" stroke="#9aa3b2"/>'
        f'<line x1="{_PAD_L}" y1="{_PAD_T}" x2="{_PAD_L}" y2="{y0}" stroke="#9aa3b2"/>'
        f'<text x="{_PAD_L - 4}" y="{_PAD_T + 8}" text-anchor="end">{top:.0%}</text>'
        f'<text x="{_PAD_L - 4}" y="{y0}" text-anchor="end">0%</text>'
    )


def _svg(parts: list[str], name: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" aria-label="distribution of {_e(name)}">'
        + "".join(parts)
        + "</svg>"
    )


def _empty(name: str) -> str:
    return _svg(
        [f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">no values to draw</text>'], name
    )


def _has(reference: Profile | pd.DataFrame, column: str) -> bool:
    return column in reference.columns


def _badge(verdict: str) -> str:
    return f'<span class="badge {verdict}">{verdict.replace("_", " ")}</span>'


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _n(v: float | None) -> str:
    if v is None:
        return "&ndash;"
    if not math.isfinite(v):
        return "∞" if v > 0 else "&ndash;"
    return f"{v:.4g}"


def _p(v: float | None) -> str:
    if v is None:
        return "&ndash;"
    return f"{v:.2e}" if v < 1e-3 else f"{v:.4f}"


def _g(v: float) -> str:
    return f"{v:.4g}"


def _t(v: float | None) -> str:
    return "off" if v is None else f"{v:g}"
