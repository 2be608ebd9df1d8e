"""Record-keeping exports: a folder a regulator or an auditor can take away and check alone.

``events.jsonl``
    every event from the first one at or after ``since`` to the newest, with ``prev_hash`` and
    ``hash`` (a contiguous piece of the chain: each line's hash can be recomputed offline);
``checkpoints.jsonl``
    the signed checkpoints of the chain;
``alias_history.jsonl``
    every alias set, move and delete since ``since``;
``gate_reports.jsonl``
    every validation report since ``since``: policy, inputs, each gate's result;
``monitoring.jsonl``
    monitoring events (alerts, drift, failed rollout analyses) since ``since``;
``manifest.json``
    sha256, size and record count of each file, the chain verification result at export
    time, the head of the chain, and an HMAC-SHA256 signature under the audit key.

:func:`verify_bundle` checks a bundle: the signature, every file's hash and the events' own
hash links.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import func, select

from lockgate import __version__
from lockgate.audit.cards import MONITORING_KINDS
from lockgate.audit.checkpoints import list_checkpoints
from lockgate.audit.events import canonical, chain_hash, iter_events
from lockgate.audit.keys import key_id, sign, signature_ok
from lockgate.errors import InvalidInputError
from lockgate.store.schema import (
    AliasHistoryRow,
    EventRow,
    GateReportRow,
    ModelRow,
    VersionRow,
)

if TYPE_CHECKING:
    from lockgate.audit.events import ChainReport
    from lockgate.workspace import Workspace

FORMAT = "lockgate.audit-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_PURPOSE = "lockgate.audit.export-manifest.v1"
_JSONL = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY


def _write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    h = hashlib.sha256()
    n = size = 0
    with open(path, "wb") as f:
        for rec in records:
            line = orjson.dumps(rec, option=_JSONL, default=str)
            f.write(line)
            h.update(line)
            n += 1
            size += len(line)
        f.flush()
        os.fsync(f.fileno())
    return {"sha256": h.hexdigest(), "bytes": size, "records": n}


def _manifest_body(manifest: dict[str, Any]) -> bytes:
    doc = {k: v for k, v in manifest.items() if k != "signature"}
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def _prepare(output: Path) -> Path:
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise InvalidInputError.for_field(
            "output", "a new or empty folder (an export never overwrites)", str(output)
        )
    output.mkdir(parents=True, exist_ok=True)
    return output


def export_bundle(
    ws: Workspace, *, since: datetime, output: Path, key: bytes, chain: ChainReport
) -> dict[str, Any]:
    """Write the bundle of everything recorded since ``since`` into ``output`` (a new or
    empty folder) and return its manifest. ``chain`` is the verification done just before."""
    if since.tzinfo is None:
        raise InvalidInputError.for_field("since", "a time with a zone", since.isoformat())
    out = _prepare(output)
    with ws.db.read() as s:
        first = s.execute(
            select(func.min(EventRow.id)).where(EventRow.at >= since)
        ).scalar_one_or_none()
        aliases = s.execute(
            select(AliasHistoryRow, ModelRow.name)
            .join(ModelRow, ModelRow.id == AliasHistoryRow.model_id)
            .where(AliasHistoryRow.at >= since)
            .order_by(AliasHistoryRow.id)
        ).all()
        alias_docs = [
            {
                "id": r.id,
                "model": name,
                "alias": r.alias,
                "action": r.action,
                "from_version": r.from_version,
                "to_version": r.to_version,
                "at": r.at.isoformat(),
                "actor": r.actor,
                "reason": r.reason,
            }
            for r, name in aliases
        ]
        reports = s.execute(
            select(GateReportRow, ModelRow.name, VersionRow.version)
            .join(ModelRow, ModelRow.id == GateReportRow.model_id)
            .join(VersionRow, VersionRow.id == GateReportRow.version_id)
            .where(GateReportRow.created_at >= since)
            .order_by(GateReportRow.id)
        ).all()
        report_docs = [_report_doc(r, name, version) for r, name, version in reports]
    files: dict[str, Any] = {}
    events = iter_events(ws.db, from_id=first) if first is not None else iter(())
    files["events.jsonl"] = _write_jsonl(out / "events.jsonl", (e.to_dict() for e in events))
    files["checkpoints.jsonl"] = _write_jsonl(
        out / "checkpoints.jsonl", (c.to_dict() for c in list_checkpoints(ws.db))
    )
    files["alias_history.jsonl"] = _write_jsonl(out / "alias_history.jsonl", alias_docs)
    files["gate_reports.jsonl"] = _write_jsonl(out / "gate_reports.jsonl", report_docs)
    files["monitoring.jsonl"] = _write_jsonl(
        out / "monitoring.jsonl",
        (e.to_dict() for e in iter_events(ws.db, since=since, kinds=MONITORING_KINDS)),
    )
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lockgate_version": __version__,
        "created_at": ws.clock.now().astimezone(UTC).isoformat(),
        "created_by": ws.actor,
        "since": since.astimezone(UTC).isoformat(),
        "database": ws.db.dialect,
        "files": files,
        "chain": chain.to_dict(),
        "key_id": key_id(key),
    }
    manifest["signature"] = sign(key, _PURPOSE, _manifest_body(manifest))
    path = out / MANIFEST
    path.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return manifest


def _report_doc(r: GateReportRow, model: str, version: int) -> dict[str, Any]:
    return {
        "id": r.id,
        "model": model,
        "version": version,
        "status": r.status,
        "baseline": {"alias": r.baseline_alias, "version": r.baseline_version},
        "policy": r.policy,
        "policy_sha256": r.policy_sha256,
        "policy_source": r.policy_source,
        "inputs": r.inputs,
        "results": r.results,
        "duration_s": r.duration_s,
        "created_at": r.created_at.isoformat(),
        "created_by": r.created_by,
    }


def verify_bundle(directory: Path, key: bytes | None) -> list[str]:
    """Problems found in an export folder; an empty list means it is intact. Without the
    key, the files are checked against the manifest but the manifest itself is not."""
    directory = Path(directory)
    try:
        manifest = orjson.loads((directory / MANIFEST).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        return [f"{MANIFEST}: unreadable ({exc})"]
    problems: list[str] = []
    if manifest.get("format") != FORMAT:
        problems.append(f"{MANIFEST}: not a Lockgate audit export")
    if key is None:
        problems.append(f"{MANIFEST}: signature not checked (no audit key)")
    elif not signature_ok(key, _PURPOSE, _manifest_body(manifest), manifest.get("signature", "")):
        mine = key_id(key)
        other = f" (signed with key {manifest.get('key_id')}, yours is {mine})"
        problems.append(
            f"{MANIFEST}: invalid signature: the manifest was edited or forged"
            + (other if manifest.get("key_id") != mine else "")
        )
    for name, meta in (manifest.get("files") or {}).items():
        path = directory / name
        if Path(name).name != name:
            problems.append(f"{name}: not a plain file name")
            continue
        try:
            data = path.read_bytes()
        except OSError:
            problems.append(f"{name}: missing")
            continue
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            problems.append(f"{name}: sha256 does not match the manifest (the file was changed)")
        elif name == "events.jsonl":
            problems += _check_events(data)
    return problems


def _check_events(data: bytes) -> list[str]:
    prev: str | None = None
    for i, line in enumerate(data.splitlines(), start=1):
        e = orjson.loads(line)
        if prev is not None and e["prev_hash"] != prev:
            return [f"events.jsonl line {i} (event {e['id']}) does not follow the line before"]
        at = datetime.fromisoformat(e["at"])
        body = canonical(at, e["actor"], e["kind"], e["subject"], e["payload"])
        if chain_hash(e["prev_hash"], body) != e["hash"]:
            return [f"events.jsonl line {i} (event {e['id']}) does not match its hash"]
        prev = e["hash"]
    return []
