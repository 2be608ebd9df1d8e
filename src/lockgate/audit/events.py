"""Events: every state change, append-only and hash-chained, with signed checkpoints.

Each event's ``hash`` is the sha256 of the previous event's hash and the canonical JSON of
the event (time, actor, kind, subject, payload). Editing, deleting or reordering a row breaks
the chain at that row, which :func:`verify_chain` reports.

Retention (:func:`prune_events`) deletes the oldest events, but first writes a *checkpoint*:
the id, hash and time of the last deleted event, signed with HMAC-SHA256 under the audit key
(:mod:`lockgate.audit.keys`) and chained to the checkpoint before it. Verification then starts
from the newest pruning checkpoint instead of the genesis hash. :func:`write_checkpoint` signs
the current head without deleting anything (an *anchor*). Every checkpoint is also named by an
event (``audit.pruned`` / ``audit.checkpointed``) appended right after it, so removing a
checkpoint, forging one or rewriting the events below one is detected too.

What a hash chain cannot show by itself: the newest events being deleted after the last
checkpoint (nothing follows them to break). Anchor the head regularly
(``lockgate events checkpoint``) or keep an export's manifest to bound that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from lockgate.audit.checkpoints import (
    GENESIS_SIGNATURE,
    Checkpoint,
    add_checkpoint,
    checkpoint_payload,
)
from lockgate.audit.keys import key_id
from lockgate.errors import ConflictError, InvalidInputError
from lockgate.store.db import LOCK_EVENT_CHAIN, Database
from lockgate.store.schema import AuditCheckpointRow, EventRow

GENESIS = "0" * 64
#: event kinds written by the audit trail itself
PRUNED = "audit.pruned"
CHECKPOINTED = "audit.checkpointed"


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
    prev_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "kind": self.kind,
            "subject": self.subject,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
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
    if at.tzinfo is not None:  # stored as UTC: hash what is read back
        at = at.astimezone(UTC)
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
    return Event(
        row.id, row.at, row.actor, row.kind, row.subject, row.payload, row.hash, row.prev_hash
    )


def iter_events(
    db: Database,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: str | None = None,
    kinds: Collection[str] | None = None,
    subject: str | None = None,
    limit: int | None = None,
    newest: bool = False,
    from_id: int | None = None,
) -> Iterator[Event]:
    """Events in id (chain) order with ``since <= at < until``; ``kind`` (or any of
    ``kinds``) ending in ``.*`` matches a prefix (``rollout.*``). With ``newest``, ``limit``
    keeps the newest events (still returned oldest first). ``from_id`` starts at that id."""
    with db.read() as s:
        q = select(EventRow)
        if from_id is not None:
            q = q.where(EventRow.id >= from_id)
        if since is not None:
            q = q.where(EventRow.at >= since)
        if until is not None:
            q = q.where(EventRow.at < until)
        if kind is not None:
            if kind.endswith(".*"):
                q = q.where(EventRow.kind.startswith(kind[:-1], autoescape=True))
            else:
                q = q.where(EventRow.kind == kind)
        if kinds is not None:
            exact = [k for k in kinds if not k.endswith(".*")]
            prefixes = [k[:-1] for k in kinds if k.endswith(".*")]
            q = q.where(
                or_(
                    EventRow.kind.in_(exact),
                    *(EventRow.kind.startswith(p, autoescape=True) for p in prefixes),
                )
            )
        if subject is not None:
            q = q.where(EventRow.subject == subject)
        q = q.order_by(EventRow.id.desc() if newest else EventRow.id)
        if limit is not None:
            q = q.limit(limit)
        rows = list(s.execute(q).scalars().all())
    if newest:
        rows.reverse()
    for row in rows:
        yield to_event(row)


# -- retention and anchors -------------------------------------------------------------------


def _require_intact(s: Session, key: bytes, action: str) -> None:
    report = _verify(s, key)
    if not report.ok:
        raise ConflictError(
            f"refusing to {action}: the event chain is broken ({report.reason}); "
            "export it with `lockgate audit export` and investigate first"
        )


@dataclass(frozen=True)
class PruneResult:
    cutoff: datetime
    pruned: int
    checkpoint: Checkpoint | None
    remaining: int
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "pruned": self.pruned,
            "remaining": self.remaining,
            "dry_run": self.dry_run,
            "checkpoint": self.checkpoint.to_dict() if self.checkpoint else None,
        }


def prune_events(
    db: Database,
    key: bytes,
    *,
    before: datetime,
    actor: str,
    at: datetime,
    dry_run: bool = False,
) -> PruneResult:
    """Delete the oldest events, up to (not including) the first event at or after
    ``before``, after writing a signed checkpoint of the last one deleted and an
    ``audit.pruned`` event naming it; all in one transaction. Refuses (ConflictError) when
    the chain does not verify, so pruning never hides tampering."""
    with db.write() as s:
        db.lock(s, LOCK_EVENT_CHAIN)
        _require_intact(s, key, "prune events")
        boundary = s.execute(
            select(func.min(EventRow.id)).where(EventRow.at >= before)
        ).scalar_one_or_none()
        q = select(EventRow).order_by(EventRow.id.desc()).limit(1)
        if boundary is not None:
            q = q.where(EventRow.id < boundary)
        last = s.execute(q).scalar_one_or_none()
        total = s.execute(select(func.count()).select_from(EventRow)).scalar_one()
        if last is None:
            return PruneResult(before, 0, None, total, dry_run)
        count = s.execute(
            select(func.count()).select_from(EventRow).where(EventRow.id <= last.id)
        ).scalar_one()
        if dry_run:
            return PruneResult(before, count, None, total - count, True)
        cp = add_checkpoint(s, key, kind="prune", last=last, pruned=count, actor=actor, at=at)
        payload = {**checkpoint_payload(cp), "cutoff": before.isoformat()}
        record_event(db, s, kind=PRUNED, subject="events", actor=actor, at=at, payload=payload)
        s.execute(delete(EventRow).where(EventRow.id <= last.id))
        return PruneResult(before, count, Checkpoint.of(cp), total - count + 1)


def write_checkpoint(db: Database, key: bytes, *, actor: str, at: datetime) -> Checkpoint:
    """Sign the current head of the chain (an *anchor*; nothing is deleted) and record an
    ``audit.checkpointed`` event naming it. Afterwards, rewriting any event up to the head, or
    deleting the newest of them, fails verification."""
    with db.write() as s:
        db.lock(s, LOCK_EVENT_CHAIN)
        _require_intact(s, key, "write a checkpoint")
        last = s.execute(
            select(EventRow).order_by(EventRow.id.desc()).limit(1)
        ).scalar_one_or_none()
        if last is None:
            raise InvalidInputError.for_field("events", "at least one event to sign", 0)
        cp = add_checkpoint(s, key, kind="anchor", last=last, pruned=0, actor=actor, at=at)
        record_event(
            db,
            s,
            kind=CHECKPOINTED,
            subject="events",
            actor=actor,
            at=at,
            payload=checkpoint_payload(cp),
        )
        return Checkpoint.of(cp)


# -- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_id: int | None = None
    reason: str = ""
    #: the checkpoint verification started from (the newest pruning one), if any
    checkpoint_id: int | None = None
    checkpoints: int = 0
    broken_checkpoint_id: int | None = None
    first_id: int | None = None
    last_id: int | None = None
    head_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "broken_id": self.broken_id,
            "broken_checkpoint_id": self.broken_checkpoint_id,
            "reason": self.reason,
            "checkpoint_id": self.checkpoint_id,
            "checkpoints": self.checkpoints,
            "first_id": self.first_id,
            "last_id": self.last_id,
            "head_hash": self.head_hash,
        }

    def summary(self) -> str:
        """One readable line."""
        if not self.ok:
            return self.reason
        if not self.checked:
            return "event chain OK: no events"
        start = f" from checkpoint {self.checkpoint_id}" if self.checkpoint_id else ""
        return (
            f"event chain OK: {self.checked} events (ids {self.first_id}-{self.last_id}) "
            f"verified{start}, {self.checkpoints} signed checkpoint(s); "
            f"head {(self.head_hash or '')[:16]}"
        )


def verify_chain(db: Database, key: bytes | None = None) -> ChainReport:
    """Walk the chain in id order and name the first event (or checkpoint) whose link,
    content or signature is wrong. ``key`` is needed once checkpoints exist."""
    with db.read() as s:
        return _verify(s, key)


def _fail(checked: int, reason: str, **kw: Any) -> ChainReport:
    return ChainReport(False, checked, reason=reason, **kw)


def _verify_checkpoints(cps: list[AuditCheckpointRow], key: bytes | None) -> ChainReport | None:
    prev_sig = GENESIS_SIGNATURE
    prev_last = 0
    mine = key_id(key) if key is not None else None
    for row in cps:
        cp = Checkpoint.of(row)
        if key is None:
            return _fail(
                0,
                f"checkpoint {cp.id} cannot be checked without the audit key "
                "(set LOCKGATE_AUDIT_KEY or restore <home>/audit.key)",
                broken_checkpoint_id=cp.id,
            )
        if cp.prev_signature != prev_sig:
            return _fail(
                0,
                f"checkpoint {cp.id} does not follow the checkpoint before it "
                "(a checkpoint was deleted, inserted or reordered)",
                broken_checkpoint_id=cp.id,
            )
        if not cp.signature_ok(key):
            other = f"; it names key {cp.key_id}, yours is {mine}" if cp.key_id != mine else ""
            return _fail(
                0,
                f"checkpoint {cp.id} has an invalid signature: it was forged or edited{other}",
                broken_checkpoint_id=cp.id,
            )
        if cp.last_event_id < prev_last:
            return _fail(
                0,
                f"checkpoint {cp.id} covers event {cp.last_event_id}, before the "
                f"checkpoint preceding it (event {prev_last})",
                broken_checkpoint_id=cp.id,
            )
        prev_sig, prev_last = cp.signature, cp.last_event_id
    return None


def _verify(s: Session, key: bytes | None) -> ChainReport:
    cps = list(s.execute(select(AuditCheckpointRow).order_by(AuditCheckpointRow.id)).scalars())
    bad = _verify_checkpoints(cps, key)
    if bad is not None:
        return bad
    by_signature = {c.signature: c for c in cps}
    pruning = [c for c in cps if c.kind == "prune"]
    start = pruning[-1] if pruning else None
    prev_hash = start.last_event_hash if start else GENESIS
    after_id = start.last_event_id if start else 0
    anchors = sorted((c for c in cps if c.last_event_id > after_id), key=lambda c: c.last_event_id)
    ai = 0
    checked = 0
    recorded: set[int] = set()
    first_id: int | None = None
    last_id: int | None = None
    ctx: dict[str, Any] = {"checkpoint_id": start.id if start else None, "checkpoints": len(cps)}
    q = select(EventRow).order_by(EventRow.id).execution_options(yield_per=2000)
    for row in s.execute(q).scalars():
        if row.id <= after_id:
            return _fail(
                checked,
                f"event {row.id} precedes checkpoint {start.id if start else '?'}, which "
                f"covers the events up to {after_id} as pruned (an event was inserted)",
                broken_id=row.id,
                **ctx,
            )
        if ai < len(anchors) and row.id > anchors[ai].last_event_id:
            a = anchors[ai]
            return _fail(
                checked,
                f"event {a.last_event_id}, signed by checkpoint {a.id}, is missing "
                "(an event was deleted)",
                broken_id=a.last_event_id,
                **ctx,
            )
        if row.prev_hash != prev_hash:
            where = (
                f"the last event pruned by checkpoint {start.id}"
                if start is not None and checked == 0
                else "the event before it"
            )
            return _fail(
                checked,
                f"event {row.id} does not follow {where} "
                "(an event was deleted, inserted or reordered)",
                broken_id=row.id,
                **ctx,
            )
        body = canonical(row.at, row.actor, row.kind, row.subject, row.payload)
        if chain_hash(prev_hash, body) != row.hash:
            return _fail(
                checked,
                f"event {row.id} was edited: its content no longer matches its hash",
                broken_id=row.id,
                **ctx,
            )
        while ai < len(anchors) and anchors[ai].last_event_id == row.id:
            a = anchors[ai]
            if a.last_event_hash != row.hash:
                return _fail(
                    checked,
                    f"event {row.id} differs from the hash signed by checkpoint {a.id}: "
                    "the events up to it were rewritten",
                    broken_id=row.id,
                    **ctx,
                )
            ai += 1
        if row.kind in (PRUNED, CHECKPOINTED):
            sig = (row.payload or {}).get("signature")
            named = by_signature.get(sig) if isinstance(sig, str) else None
            if named is None or named.id != (row.payload or {}).get("checkpoint"):
                cid = (row.payload or {}).get("checkpoint")
                return _fail(
                    checked,
                    f"event {row.id} names checkpoint {cid}, which is missing or altered",
                    broken_id=row.id,
                    broken_checkpoint_id=cid if isinstance(cid, int) else None,
                    **ctx,
                )
            recorded.add(named.id)
        prev_hash = row.hash
        first_id = row.id if first_id is None else first_id
        last_id = row.id
        checked += 1
    if ai < len(anchors):
        a = anchors[ai]
        return _fail(
            checked,
            f"event {a.last_event_id}, signed by checkpoint {a.id}, is missing "
            "(the newest events were deleted)",
            broken_id=a.last_event_id,
            **ctx,
        )
    if cps and cps[-1].id not in recorded:  # its event is always kept: it follows it
        return _fail(
            checked,
            f"the event recording checkpoint {cps[-1].id} is missing "
            "(the newest events were deleted)",
            broken_checkpoint_id=cps[-1].id,
            **ctx,
        )
    head = prev_hash if checked else None
    return ChainReport(True, checked, first_id=first_id, last_id=last_id, head_hash=head, **ctx)
