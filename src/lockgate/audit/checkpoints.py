"""Signed checkpoints of the event chain: the id, hash and time of the last event a checkpoint
covers, signed with HMAC-SHA256 under the audit key and chained to the checkpoint before it.
How they are written, and how verification uses them, is in :mod:`lockgate.audit.events`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from lockgate.audit.keys import key_id, sign, signature_ok
from lockgate.store.db import Database
from lockgate.store.schema import AuditCheckpointRow, EventRow

#: the ``prev_signature`` of the first checkpoint
GENESIS_SIGNATURE = "0" * 64
PURPOSE = "lockgate.audit.checkpoint.v1"


@dataclass(frozen=True)
class Checkpoint:
    id: int
    kind: str
    created_at: datetime
    actor: str
    last_event_id: int
    last_event_hash: str
    last_event_at: datetime
    pruned: int
    prev_signature: str
    key_id: str
    signature: str

    @classmethod
    def of(cls, row: AuditCheckpointRow) -> Checkpoint:
        return cls(
            row.id,
            row.kind,
            row.created_at,
            row.actor,
            row.last_event_id,
            row.last_event_hash,
            row.last_event_at,
            row.pruned,
            row.prev_signature,
            row.key_id,
            row.signature,
        )

    def body(self) -> bytes:
        return checkpoint_body(
            self.kind,
            self.created_at,
            self.actor,
            self.last_event_id,
            self.last_event_hash,
            self.last_event_at,
            self.pruned,
            self.prev_signature,
            self.key_id,
        )

    def signature_ok(self, key: bytes) -> bool:
        return signature_ok(key, PURPOSE, self.body(), self.signature)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "created_at": self.created_at.isoformat(),
            "actor": self.actor,
            "last_event_id": self.last_event_id,
            "last_event_hash": self.last_event_hash,
            "last_event_at": self.last_event_at.isoformat(),
            "pruned": self.pruned,
            "prev_signature": self.prev_signature,
            "key_id": self.key_id,
            "signature": self.signature,
        }


def checkpoint_body(
    kind: str,
    created_at: datetime,
    actor: str,
    last_event_id: int,
    last_event_hash: str,
    last_event_at: datetime,
    pruned: int,
    prev_signature: str,
    key: str,
) -> bytes:
    doc = {
        "kind": kind,
        "created_at": created_at.isoformat(timespec="microseconds"),
        "actor": actor,
        "last_event_id": last_event_id,
        "last_event_hash": last_event_hash,
        "last_event_at": last_event_at.isoformat(timespec="microseconds"),
        "pruned": pruned,
        "prev_signature": prev_signature,
        "key_id": key,
    }
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def list_checkpoints(db: Database) -> list[Checkpoint]:
    with db.read() as s:
        rows = s.execute(select(AuditCheckpointRow).order_by(AuditCheckpointRow.id)).scalars()
        return [Checkpoint.of(r) for r in rows]


def add_checkpoint(
    s: Session,
    key: bytes,
    *,
    kind: str,
    last: EventRow,
    pruned: int,
    actor: str,
    at: datetime,
) -> AuditCheckpointRow:
    prev = s.execute(
        select(AuditCheckpointRow.signature).order_by(AuditCheckpointRow.id.desc()).limit(1)
    ).scalar_one_or_none()
    prev_signature = prev or GENESIS_SIGNATURE
    kid = key_id(key)
    at = at.astimezone(UTC)
    body = checkpoint_body(
        kind, at, actor, last.id, last.hash, last.at, pruned, prev_signature, kid
    )
    row = AuditCheckpointRow(
        kind=kind,
        created_at=at,
        actor=actor,
        last_event_id=last.id,
        last_event_hash=last.hash,
        last_event_at=last.at,
        pruned=pruned,
        prev_signature=prev_signature,
        key_id=kid,
        signature=sign(key, PURPOSE, body),
    )
    s.add(row)
    s.flush()
    return row


def checkpoint_payload(cp: AuditCheckpointRow) -> dict[str, Any]:
    return {
        "checkpoint": cp.id,
        "signature": cp.signature,
        "key_id": cp.key_id,
        "last_event_id": cp.last_event_id,
        "last_event_hash": cp.last_event_hash,
        "last_event_at": cp.last_event_at.isoformat(),
        "pruned": cp.pruned,
    }
