"""Events: every state change, append-only and hash-chained.

Each event's ``hash`` is the sha256 of the previous event's hash and the canonical JSON of
the event (time, actor, kind, subject, payload). Editing, deleting or reordering a row breaks
the chain at that row, which :func:`verify_chain` reports.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from lockgate.store.db import LOCK_EVENT_CHAIN, Database
from lockgate.store.schema import EventRow

GENESIS = "0" * 64


def canonical(at: datetime, actor: str, kind: str, subject: str, payload: dict[str, Any]) -> bytes:
    doc = {
        "at": at.isoformat(timespec="microseconds"),
        "actor": actor,
        "kind": kind,
        "subject": subject,
        "payload": payload,
    }
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def chain_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()


@dataclass(frozen=True)
class Event:
    id: int
    at: datetime
    actor: str
    kind: str
    subject: str
    payload: dict[str, Any]
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "kind": self.kind,
            "subject": self.subject,
            "payload": self.payload,
            "hash": self.hash,
        }


def record_event(
    db: Database,
    session: Session,
    *,
    kind: str,
    subject: str,
    actor: str,
    at: datetime,
    payload: dict[str, Any] | None = None,
) -> EventRow:
    """Append an event inside the caller's write transaction (so the state change and its
    event commit together or not at all)."""
    payload = orjson.loads(orjson.dumps(payload or {}, option=orjson.OPT_SERIALIZE_NUMPY))
    at = at.replace(microsecond=at.microsecond)  # stored with microseconds on both dialects
    db.lock(session, LOCK_EVENT_CHAIN)
    prev = session.execute(
        select(EventRow.hash).order_by(EventRow.id.desc()).limit(1)
    ).scalar_one_or_none()
    prev_hash = prev or GENESIS
    row = EventRow(
        at=at,
        actor=actor,
        kind=kind,
        subject=subject,
        payload=payload,
        prev_hash=prev_hash,
        hash=chain_hash(prev_hash, canonical(at, actor, kind, subject, payload)),
    )
    session.add(row)
    session.flush()
    return row


def to_event(row: EventRow) -> Event:
    return Event(row.id, row.at, row.actor, row.kind, row.subject, row.payload, row.hash)


def iter_events(
    db: Database,
    *,
    since: datetime | None = None,
    kind: str | None = None,
    subject: str | None = None,
    limit: int | None = None,
) -> Iterator[Event]:
    with db.read() as s:
        q = select(EventRow).order_by(EventRow.id)
        if since is not None:
            q = q.where(EventRow.at >= since)
        if kind is not None:
            q = q.where(EventRow.kind == kind)
        if subject is not None:
            q = q.where(EventRow.subject == subject)
        if limit is not None:
            q = q.limit(limit)
        rows = s.execute(q).scalars().all()
    for row in rows:
        yield to_event(row)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_id: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "broken_id": self.broken_id,
            "reason": self.reason,
        }


def verify_chain(db: Database) -> ChainReport:
    """Walk the chain in id order and name the first event whose link or content is wrong."""
    prev_hash = GENESIS
    checked = 0
    with db.read() as s:
        for row in s.execute(select(EventRow).order_by(EventRow.id)).scalars():
            if row.prev_hash != prev_hash:
                return ChainReport(
                    False,
                    checked,
                    row.id,
                    f"event {row.id} does not follow the event before it "
                    "(an event was deleted, inserted or reordered)",
                )
            body = canonical(row.at, row.actor, row.kind, row.subject, row.payload)
            if chain_hash(prev_hash, body) != row.hash:
                return ChainReport(
                    False,
                    checked,
                    row.id,
                    f"event {row.id} was edited: its content no longer matches its hash",
                )
            prev_hash = row.hash
            checked += 1
    return ChainReport(True, checked)
