"""Validation reports as Markdown (for a pull request comment or a CI job summary) and as one
self-contained HTML page (inline CSS, no scripts, no external assets)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from lockgate.errors import InvalidInputError
from lockgate.gates.base import GateResult, fmt
from lockgate.gates.report import ValidationReport

_ICON = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}
_COLOR = {"pass": "#1a7f37", "fail": "#cf222e", "inconclusive": "#9a6700"}


def _baseline(report: ValidationReport) -> str:
    if report.baseline_version is not None:
        return f"{report.model}/{report.baseline_version} (@{report.baseline_alias})"
    note = report.inputs.get("baseline_note")
    return f"none ({note})" if note else "none"


def _threshold(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{'≥' if k == 'min' else '≤'} {fmt(v)}" for k, v in value.items())
    return fmt(value)


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(report: ValidationReport) -> str:
    """The report as GitHub-flavoured Markdown."""
    lines = [
        f"# Validation of {report.ref}: {_ICON[report.status]} {report.status.upper()}",
        "",
        f"- baseline: {_baseline(report)}",
        f"- policy: {report.policy_source} (sha256 {report.policy_sha256[:12]})",
        f"- report: #{report.id}, {report.created_at:%Y-%m-%d %H:%M:%S} UTC by {report.created_by}"
        f", {report.duration_s:.1f} s",
    ]
    ev = report.inputs.get("eval")
    if ev:
        lines.append(
            f"- evaluation data: {ev['source']} ({ev['rows']} rows), target "
            f"`{report.inputs.get('target')}`"
        )
    lines += ["", "| gate | status | reason |", "| --- | --- | --- |"]
    for g in report.gates:
        lines.append(
            f"| {_md_cell(g.name)} | {_ICON[g.status]} {g.status} | {_md_cell(g.reason)} |"
        )
    for g in report.gates:
        lines += ["", f"## {g.name} ({g.type}): {g.status}", "", _md_cell(g.reason)]
        if g.checks:
            lines += ["", "| check | status | observed | threshold | baseline | detail |"]
            lines.append("| --- | --- | --- | --- | --- | --- |")
            for c in g.checks:
                thr = _threshold({c.bound: c.threshold}) if c.bound else ""
                lines.append(
                    f"| `{_md_cell(c.key)}` | {_ICON[c.status]} {c.status} | {fmt(c.observed)} "
                    f"| {thr} | {fmt(c.baseline) if c.baseline is not None else ''} "
                    f"| {_md_cell(c.message)} |"
                )
        lines += _md_groups(g)
    return "\n".join(lines) + "\n"


def _md_groups(g: GateResult) -> list[str]:
    out: list[str] = []
    for column, info in (g.details.get("columns") or {}).items():
        groups = (info.get("groups") or {}).get("groups") or []
        if not groups:
            continue
        out += ["", f"Groups by `{column}`:", ""]
        out.append("| group | rows | selection rate | accuracy | TPR | FPR |")
        out.append("| --- | --- | --- | --- | --- | --- |")
        for row in groups:
            name = ", ".join(f"{k}={v}" for k, v in row["group"].items())
            out.append(
                f"| {_md_cell(name)} | {row.get('count')} | {fmt(row.get('selection_rate'))} "
                f"| {fmt(row.get('accuracy'))} | {fmt(row.get('true_positive_rate'))} "
                f"| {fmt(row.get('false_positive_rate'))} |"
            )
    return out


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;
color:#1f2328;max-width:72rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;width:100%}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}code{font-size:.9em}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:1rem;color:#fff;font-weight:600}
.meta{color:#59636e}
"""


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{_COLOR[status]}">{status}</span>'


def to_html(report: ValidationReport) -> str:
    """The report as one self-contained HTML page."""
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Validation of {e(report.ref)}: {report.status}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Validation of {e(report.ref)} {_badge(report.status)}</h1>",
        '<p class="meta">',
        f"baseline: {e(_baseline(report))}<br>",
        f"policy: {e(report.policy_source)} (sha256 {e(report.policy_sha256[:12])})<br>",
        f"report #{report.id}, {report.created_at:%Y-%m-%d %H:%M:%S} UTC by "
        f"{e(report.created_by)}, {report.duration_s:.1f} s</p>",
        "<table><tr><th>gate</th><th>status</th><th>reason</th></tr>",
    ]
    for g in report.gates:
        parts.append(
            f"<tr><td>{e(g.name)}</td><td>{_badge(g.status)}</td><td>{e(g.reason)}</td></tr>"
        )
    parts.append("</table>")
    for g in report.gates:
        parts.append(f"<h2>{e(g.name)} <small>({e(g.type)})</small> {_badge(g.status)}</h2>")
        parts.append(f"<p>{e(g.reason)}</p>")
        if g.checks:
            parts.append(
                "<table><tr><th>check</th><th>status</th><th>observed</th><th>threshold</th>"
                "<th>baseline</th><th>detail</th></tr>"
            )
            for c in g.checks:
                thr = _threshold({c.bound: c.threshold}) if c.bound else ""
                base = fmt(c.baseline) if c.baseline is not None else ""
                parts.append(
                    f"<tr><td><code>{e(c.key)}</code></td><td>{_badge(c.status)}</td>"
                    f"<td>{e(fmt(c.observed))}</td><td>{e(thr)}</td><td>{e(base)}</td>"
                    f"<td>{e(c.message)}</td></tr>"
                )
            parts.append("</table>")
        if g.details.get("columns"):
            parts.append(_groups_html(g))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _groups_html(g: GateResult) -> str:
    e = html.escape
    out = []
    for column, info in (g.details.get("columns") or {}).items():
        groups = (info.get("groups") or {}).get("groups") or []
        out.append(f"<p>Groups by <code>{e(column)}</code>:</p><table><tr><th>group</th>")
        out.append("<th>rows</th><th>selection rate</th><th>accuracy</th><th>TPR</th>")
        out.append("<th>FPR</th></tr>")
        for row in groups:
            name = ", ".join(f"{k}={v}" for k, v in row["group"].items())
            cells = [
                row.get("count"),
                fmt(row.get("selection_rate")),
                fmt(row.get("accuracy")),
                fmt(row.get("true_positive_rate")),
                fmt(row.get("false_positive_rate")),
            ]
            out.append(f"<tr><td>{e(name)}</td>" + "".join(f"<td>{e(str(c))}</td>" for c in cells))
        out.append("</table>")
    return "".join(out)


def write_report(report: ValidationReport, path: str | Path) -> Path:
    """Write ``report`` as Markdown (``.md``) or HTML (``.html`` / ``.htm``)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".md":
        text = to_markdown(report)
    elif suffix in (".html", ".htm"):
        text = to_html(report)
    else:
        raise InvalidInputError.for_field("report", "a .md or .html file name", p.name)
    p.write_text(text, encoding="utf-8")
    return p


def check_report_path(path: str | Path) -> Path:
    """Fail early (before validating) on a report path that cannot be written."""
    p = Path(path)
    if p.suffix.lower() not in (".md", ".html", ".htm"):
        raise InvalidInputError.for_field("report", "a .md or .html file name", p.name)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidInputError.for_field("report", "a path in an existing folder", str(p))
    return p
