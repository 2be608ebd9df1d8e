"""Model cards: one document per model version, filled from what Lockgate recorded about it:
identity and artifact, lineage, signature, metrics, validation (gate) reports with their
fairness results, the reference data profile, and its deployment and monitoring history from
the event log. :func:`build_card` gathers a JSON-ready dict; :func:`to_markdown` and
:func:`to_html` (self-contained, no external assets) render it. Nothing is invented: a section
with no records says so."""

from __future__ import annotations

import html
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lockgate import __version__
from lockgate.audit.events import Event, iter_events

if TYPE_CHECKING:
    from lockgate.workspace import Workspace

#: validation reports shown in full (older ones are listed by status only)
REPORTS_SHOWN = 3
#: event kinds that make up a version's monitoring history
MONITORING_KINDS = ("alert.*", "monitor.*", "drift.*", "rollout.analysis_failed")
_HISTORY_KINDS = ("version.registered", "alias.*", "endpoint.deployed", "rollout.*")
_GROUP_METRICS = (
    "count",
    "selection_rate",
    "accuracy",
    "true_positive_rate",
    "false_positive_rate",
)


def build_card(ws: Workspace, model: str, version: int) -> dict[str, Any]:
    """Everything recorded about ``model/version``, as a JSON-ready dict."""
    v = ws.registry.get_version(f"{model}/{version}")
    reports = ws.gates.reports(model, version)
    events = list(iter_events(ws.db, kinds=(*_HISTORY_KINDS, *MONITORING_KINDS)))
    endpoints = {e.name for e in ws.endpoints.list() if e.model == model} | {
        str(e.payload.get("endpoint"))
        for e in events
        if e.kind == "endpoint.deployed" and e.payload.get("model") == model
    }
    history = [e.to_dict() for e in events if _about(e, model, version, history=True)]
    monitoring = [
        e.to_dict()
        for e in events
        if any(_kind_matches(e.kind, k) for k in MONITORING_KINDS)
        and _about(e, model, version, endpoints=endpoints)
    ]
    fairness = []
    for r in reports:
        for g in r.gates:
            if g.type == "fairness":
                fairness.append(
                    {
                        "report_id": r.id,
                        "created_at": r.created_at.isoformat(),
                        "gate": g.name,
                        "status": g.status,
                        "reason": g.reason,
                        "checks": [c.to_dict() for c in g.checks],
                        "columns": g.details.get("columns") or {},
                    }
                )
    return {
        "card_format": 1,
        "generated_at": ws.clock.now().isoformat(),
        "generated_by": f"lockgate {__version__}",
        "model": model,
        "version": version,
        "ref": v.ref,
        "flavor": v.flavor,
        "description": v.description,
        "created_at": v.created_at.isoformat(),
        "created_by": v.created_by,
        "aliases": list(v.aliases),
        "artifact": {
            "sha256": v.artifact_sha256,
            "size": v.artifact_size,
            "kind": v.artifact_kind,
            "name": v.artifact_name,
            "trusted_pickle": v.trusted_pickle,
        },
        "lineage": v.lineage,
        "signature": v.signature.to_dict(),
        "metrics": v.metrics,
        "params": v.params,
        "tags": v.tags,
        "validation": [r.to_dict() for r in reports],
        "fairness": fairness,
        "reference_profile": (
            {"sha256": v.profile_sha256, "summary": v.profile_summary} if v.profile_sha256 else None
        ),
        "history": history,
        "monitoring": monitoring,
    }


def _kind_matches(kind: str, pattern: str) -> bool:
    return kind.startswith(pattern[:-1]) if pattern.endswith(".*") else kind == pattern


def _about(
    e: Event,
    model: str,
    version: int,
    *,
    history: bool = False,
    endpoints: frozenset[str] | set[str] = frozenset(),
) -> bool:
    """Whether an event concerns ``model/version``: its payload names the model (or, for
    monitoring, the event is about one of the model's ``endpoints`` and names no model) and
    the version in any role; for monitoring, an event naming no version counts too."""
    p = e.payload or {}
    named = p.get("model")
    if named != model and not (named is None and not history and e.subject in endpoints):
        return False
    keys = ("version", "to_version", "from_version", "candidate_version", "baseline_version")
    versions = {p.get(k) for k in keys}
    return version in versions or (not history and versions <= {None})


# -- rendering -------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        import orjson

        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return str(value)


def _time(value: str) -> str:
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError):
        return str(value)


def sections(card: dict[str, Any]) -> list[tuple[str, list[Block]]]:
    """The card as titled sections of blocks (paragraphs, key-value lists, tables), shared
    by the markdown and HTML renderers so both always say the same."""
    return [
        ("Model details", _details(card)),
        ("Lineage", _lineage(card)),
        ("Signature", _signature(card["signature"])),
        ("Metrics and parameters", _metrics(card)),
        ("Validation", _validation(card["validation"])),
        ("Fairness", _fairness(card["fairness"])),
        ("Reference data", _profile(card["reference_profile"])),
        ("Deployment history", _events(card["history"], "deployment or alias events")),
        ("Monitoring history", _events(card["monitoring"], "alerts or failed analyses")),
    ]


def _details(card: dict[str, Any]) -> list[Block]:
    art = card["artifact"]
    return [
        Para(card["description"] or "No description was given at registration."),
        KV(
            [
                ("Model", card["model"]),
                ("Version", card["version"]),
                ("Flavor", card["flavor"]),
                ("Registered", _time(card["created_at"])),
                ("Registered by", card["created_by"]),
                ("Aliases", ", ".join(card["aliases"]) or "none"),
                ("Artifact", f"{art['name']} ({art['kind']}, {art['size']} bytes)"),
                ("Artifact sha256", art["sha256"]),
                ("Pickle-based, trusted", art["trusted_pickle"]),
            ]
        ),
    ]


def _lineage(card: dict[str, Any]) -> list[Block]:
    lin = card["lineage"] or {}
    code = lin.get("code") or {}
    cutoff = lin.get("data_cutoff") or card["tags"].get("data_cutoff")
    return [
        KV(
            [
                ("Code commit", code.get("commit")),
                ("Branch", code.get("branch")),
                ("Uncommitted changes", code.get("dirty")),
                ("Committed", code.get("committed_at")),
                ("Training data sha256", lin.get("training_data_sha256")),
                ("Reference data sha256", lin.get("reference_data_sha256")),
                ("Training data cutoff", cutoff),
                ("Parent version", lin.get("parent_version")),
            ]
        ),
        KV(sorted((lin.get("libraries") or {}).items()), title="Libraries"),
    ]


def _signature(sig: dict[str, Any]) -> list[Block]:
    def rows(cols: list[dict[str, Any]]) -> list[list[Any]]:
        return [[c["name"], c["dtype"], c.get("shape") or ""] for c in cols]

    blocks: list[Block] = [Table(["input", "dtype", "shape"], rows(sig["inputs"]))]
    if sig["outputs"]:
        blocks.append(Table(["output", "dtype", "shape"], rows(sig["outputs"])))
    else:
        blocks.append(Para("Outputs were not recorded."))
    return blocks


def _metrics(card: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = []
    for key, title in (("metrics", "Metrics"), ("params", "Parameters"), ("tags", "Tags")):
        if card[key]:
            blocks.append(KV(sorted(card[key].items()), title=title))
        else:
            blocks.append(Para(f"No {title.lower()} were recorded at registration."))
    return blocks


def _events(events: list[dict[str, Any]], what: str) -> list[Block]:
    if not events:
        return [Para(f"No {what} are recorded for this version.")]
    rows = [
        [_time(e["at"]), e["kind"], e["subject"], e["actor"], _event_details(e)] for e in events
    ]
    return [Table(["time", "event", "subject", "actor", "details"], rows)]


def _event_details(e: dict[str, Any]) -> str:
    p = e["payload"]
    keys = (
        "endpoint",
        "alias",
        "from_version",
        "to_version",
        "baseline_version",
        "candidate_version",
        "to_phase",
        "outcome",
        "status",
        "reason",
        "severity",
        "message",
        "monitor",
        "kind",
        "value",
        "threshold",
    )
    return ", ".join(f"{k}={_text(p[k])}" for k in keys if p.get(k) not in (None, ""))


def _validation(reports: list[dict[str, Any]]) -> list[Block]:
    if not reports:
        return [Para("This version has no validation report.")]
    blocks: list[Block] = [
        Table(
            ["report", "time", "status", "baseline", "policy sha256"],
            [
                [
                    r["id"],
                    _time(r["created_at"]),
                    r["status"],
                    _text((r["baseline"] or {}).get("version")),
                    r["policy_sha256"][:12],
                ]
                for r in reports
            ],
        )
    ]
    for r in reports[:REPORTS_SHOWN]:
        blocks.append(
            Table(
                ["gate", "type", "status", "reason"],
                [[g["name"], g["type"], g["status"], g["reason"]] for g in r["gates"]],
                title=f"Report {r['id']} ({r['status']})",
            )
        )
    return blocks


def _fairness(results: list[dict[str, Any]]) -> list[Block]:
    if not results:
        return [Para("No fairness gate has evaluated this version.")]
    blocks: list[Block] = []
    for f in results[:REPORTS_SHOWN]:
        blocks.append(
            Para(f"Report {f['report_id']}, gate {f['gate']}: {f['status']}. {f['reason']}")
        )
        checks = [
            [c["key"], c["status"], c.get("observed"), _threshold(c), c.get("message", "")]
            for c in f["checks"]
        ]
        blocks.append(Table(["check", "status", "observed", "threshold", "message"], checks))
        for label, col in f["columns"].items():
            groups = (col.get("groups") or {}).get("groups") or []
            rows = [[_group(g.get("group")), *(g.get(m) for m in _GROUP_METRICS)] for g in groups]
            blocks.append(Table(["group", *_GROUP_METRICS], rows, title=f"Groups by {label}"))
            dis = col.get("disparities") or {}
            if dis:
                blocks.append(KV(sorted(dis.items()), title=f"Disparities by {label}"))
    return blocks


def _threshold(check: dict[str, Any]) -> str:
    if check.get("threshold") is None:
        return ""
    return f"{'≥' if check.get('bound') == 'min' else '≤'} {_text(check['threshold'])}"


def _group(key: Any) -> str:
    if isinstance(key, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in key.items())
    return _text(key)


def _profile(ref: dict[str, Any] | None) -> list[Block]:
    if not ref or not ref.get("summary"):
        return [Para("No reference data was registered with this version.")]
    s = ref["summary"]
    rows = []
    for name, c in (s.get("columns") or {}).items():
        if c.get("kind") == "numerical":
            stats = (
                f"mean {_text(c.get('mean'))}, std {_text(c.get('std'))}, "
                f"min {_text(c.get('min'))}, max {_text(c.get('max'))}"
            )
        else:
            top = ", ".join(f"{t['value']} ({t['count']})" for t in (c.get("top") or [])[:5])
            stats = f"{c.get('n_categories')} categories; top: {top}"
        rows.append([name, c.get("kind"), c.get("dtype"), _text(c.get("missing_rate")), stats])
    return [
        Para(
            f"{s.get('n_rows')} rows, {s.get('n_columns')} columns; profile sha256 {ref['sha256']}."
        ),
        Table(["column", "kind", "dtype", "missing rate", "summary"], rows),
    ]


class Block:
    """A piece of a card section."""


class Para(Block):
    def __init__(self, text: str) -> None:
        self.text = text


class KV(Block):
    def __init__(self, items: list[tuple[str, Any]], title: str = "") -> None:
        self.items = items
        self.title = title


class Table(Block):
    def __init__(self, columns: list[str], rows: list[list[Any]], title: str = "") -> None:
        self.columns = columns
        self.rows = rows
        self.title = title


def _md_cell(value: Any) -> str:
    return _text(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(card: dict[str, Any]) -> str:
    lines = [
        f"# Model card: {card['ref']}",
        "",
        f"Generated {_time(card['generated_at'])} by {card['generated_by']} from the records "
        "of the Lockgate registry, gate reports and event log.",
    ]
    for title, blocks in sections(card):
        lines += ["", f"## {title}"]
        for b in blocks:
            lines.append("")
            if isinstance(b, Para):
                lines.append(b.text)
            elif isinstance(b, KV):
                if b.title:
                    lines += [f"**{b.title}**", ""]
                lines += [f"- {k}: {_md_cell(v)}" for k, v in b.items] or ["- none"]
            elif isinstance(b, Table):
                if b.title:
                    lines += [f"**{b.title}**", ""]
                lines.append("| " + " | ".join(b.columns) + " |")
                lines.append("|" + " --- |" * len(b.columns))
                lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in b.rows]
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:960px;margin:2em auto;
padding:0 1em;color:#1b1f24;line-height:1.45}h1{border-bottom:2px solid #d0d7de}
h2{margin-top:1.6em;border-bottom:1px solid #d0d7de}table{border-collapse:collapse;
margin:.5em 0;font-size:.9em}th,td{border:1px solid #d0d7de;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f6f8fa}dl{display:grid;
grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}dd{margin:0;
word-break:break-all}.meta{color:#57606a;font-size:.9em}
"""


def to_html(card: dict[str, Any]) -> str:
    """A self-contained HTML page (inline CSS, no scripts, no external assets)."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Model card: {e(card['ref'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Model card: {e(card['ref'])}</h1>",
        f'<p class="meta">Generated {e(_time(card["generated_at"]))} by '
        f"{e(card['generated_by'])} from the records of the Lockgate registry, gate reports "
        "and event log.</p>",
    ]
    for title, blocks in sections(card):
        parts.append(f"<h2>{e(title)}</h2>")
        for b in blocks:
            if isinstance(b, Para):
                parts.append(f"<p>{e(b.text)}</p>")
            elif isinstance(b, KV):
                if b.title:
                    parts.append(f"<h3>{e(b.title)}</h3>")
                parts.append("<dl>")
                parts += [f"<dt>{e(str(k))}</dt><dd>{e(_text(v))}</dd>" for k, v in b.items]
                parts.append("</dl>")
            elif isinstance(b, Table):
                if b.title:
                    parts.append(f"<h3>{e(b.title)}</h3>")
                head = "".join(f"<th>{e(c)}</th>" for c in b.columns)
                body = "".join(
                    "<tr>" + "".join(f"<td>{e(_text(c))}</td>" for c in r) + "</tr>" for r in b.rows
                )
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
