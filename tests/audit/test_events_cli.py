"""``lockgate events``: listing, and verification that names the first broken event when a row
is edited, deleted or reordered with raw SQL; retention behind a signed checkpoint; forged,
edited or missing checkpoints; a rewritten chain caught by an anchor. Real database (SQLite
or PostgreSQL), real CLI."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, text
from typer.testing import CliRunner

from lockgate.audit.events import GENESIS, canonical, chain_hash, record_event, verify_chain
from lockgate.cli.main import app
from lockgate.client import Client
from lockgate.store.schema import EventRow


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


def add_events(client: Client, ages_days: list[float], kind: str = "test.event") -> list[int]:
    """Events at the given ages (days before now), oldest first; returns their ids."""
    ws = client.workspace
    now = ws.clock.now()
    ids = []
    for i, age in enumerate(ages_days):
        with ws.db.write() as s:
            row = record_event(
                ws.db,
                s,
                kind=kind,
                subject=f"s{i}",
                actor="tester",
                at=now - timedelta(days=age),
                payload={"i": i, "x": 0.1 * i, "tags": ["a", "b"]},
            )
            ids.append(row.id)
    return ids


def sql(client: Client, statement: str, **params: object) -> None:
    with client.workspace.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_list_filters_and_json(client: Client, env: dict[str, str]) -> None:
    add_events(client, [3, 2, 1])
    add_events(client, [0.5], kind="rollout.started")
    code, out, err = run(env, "events", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [e["kind"] for e in doc["events"]] == ["test.event"] * 3 + ["rollout.started"]
    assert all(len(e["hash"]) == 64 and len(e["prev_hash"]) == 64 for e in doc["events"])
    _, out, _ = run(env, "events", "--kind", "rollout.*", "--json")
    assert [e["kind"] for e in json.loads(out)["events"]] == ["rollout.started"]
    _, out, _ = run(env, "events", "--since", "36h", "--json")
    assert [e["subject"] for e in json.loads(out)["events"]] == ["s2", "s0"]
    _, out, _ = run(env, "events", "--subject", "s1", "--json")
    assert [e["payload"]["i"] for e in json.loads(out)["events"]] == [1]
    _, out, _ = run(env, "events", "--limit", "2", "--json")
    assert [e["subject"] for e in json.loads(out)["events"]] == ["s2", "s0"]  # newest two
    code, out, _ = run(env, "events")
    assert code == 0 and "rollout.started" in out and "test.event" in out
    code, _, err = run(env, "events", "--since", "yesterday")
    assert code == 1 and "since" in err


def test_verify_ok_then_an_edited_row_is_named(client: Client, env: dict[str, str]) -> None:
    ids = add_events(client, [5, 4, 3, 2, 1])
    code, out, _ = run(env, "events", "verify")
    assert code == 0 and "event chain OK: 5 events" in out
    sql(client, "UPDATE events SET actor = 'mallory' WHERE id = :i", i=ids[2])
    code, out, err = run(env, "events", "verify")
    assert code == 1
    assert f"event {ids[2]} was edited" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(env, "events", "verify", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["broken_id"] == ids[2]


def test_payload_and_time_edits_are_caught(client: Client) -> None:
    ids = add_events(client, [3, 2, 1])
    ws = client.workspace
    with ws.db.write() as s:
        row = s.get_one(EventRow, ids[1])
        row.payload = {**row.payload, "i": 99}
    assert verify_chain(ws.db).broken_id == ids[1]
    with ws.db.write() as s:
        row = s.get_one(EventRow, ids[1])
        row.payload = {**row.payload, "i": 1}
    assert verify_chain(ws.db).ok
    with ws.db.write() as s:
        row = s.get_one(EventRow, ids[2])
        row.at = row.at - timedelta(seconds=1)
    report = verify_chain(ws.db)
    assert report.broken_id == ids[2] and "edited" in report.reason


def test_deleted_row_is_detected(client: Client, env: dict[str, str]) -> None:
    ids = add_events(client, [4, 3, 2, 1])
    sql(client, "DELETE FROM events WHERE id = :i", i=ids[1])
    code, _, err = run(env, "events", "verify")
    assert code == 1 and f"event {ids[2]} does not follow the event before it" in err


def test_reordered_rows_are_detected(client: Client, env: dict[str, str]) -> None:
    ids = add_events(client, [4, 3, 2, 1])
    a, b = ids[1], ids[2]
    sql(client, "UPDATE events SET id = :t WHERE id = :a", t=-1, a=a)
    sql(client, "UPDATE events SET id = :a WHERE id = :b", a=a, b=b)
    sql(client, "UPDATE events SET id = :b WHERE id = :t", b=b, t=-1)
    code, out, _ = run(env, "events", "verify", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["broken_id"] == a and "does not follow" in doc["reason"]


def _key_file(home: Path) -> Path:
    return home / "audit.key"


def test_prune_keeps_verification_and_appends(
    client: Client, env: dict[str, str], home: Path
) -> None:
    ids = add_events(client, [400, 390, 370, 10, 1])
    code, out, err = run(env, "events", "prune", "--older-than", "365d", "--dry-run", "--json")
    assert code == 0, err
    assert json.loads(out)["pruned"] == 3
    code, out, err = run(env, "events", "prune", "--older-than", "365d", "--json")
    assert code == 0, err
    doc = json.loads(out)
    cp = doc["checkpoint"]
    assert doc["pruned"] == 3 and cp["last_event_id"] == ids[2] and cp["kind"] == "prune"
    # the key file was generated on first use, readable by its owner only
    key_file = _key_file(home)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert bytes.fromhex(key_file.read_text().strip()) not in (out + err).encode()
    code, out, err = run(env, "events", "verify")
    assert code == 0, err
    assert f"from checkpoint {cp['id']}" in out and "3 events" in out  # 2 kept + audit.pruned
    _, out, _ = run(env, "events", "--json")
    kinds = [e["kind"] for e in json.loads(out)["events"]]
    assert kinds == ["test.event", "test.event", "audit.pruned"]
    add_events(client, [0])  # the chain goes on from the checkpoint
    code, out, _ = run(env, "events", "verify", "--json")
    assert code == 0 and json.loads(out)["checked"] == 4
    # nothing older than the cutoff is left: a second prune deletes nothing
    code, out, _ = run(env, "events", "prune", "--older-than", "365d")
    assert code == 0 and "nothing deleted" in out


def _pruned(client: Client, env: dict[str, str]) -> list[int]:
    ids = add_events(client, [400, 390, 10, 5, 1])
    code, _, err = run(env, "events", "prune", "--older-than", "365d")
    assert code == 0, err
    return ids


def test_edited_checkpoint_is_detected(client: Client, env: dict[str, str]) -> None:
    _pruned(client, env)
    sql(client, "UPDATE audit_checkpoints SET last_event_hash = :h", h="f" * 64)
    code, out, _ = run(env, "events", "verify", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["broken_checkpoint_id"] is not None
    assert "invalid signature" in doc["reason"]


def test_forged_checkpoint_is_detected(client: Client, env: dict[str, str]) -> None:
    """Someone deletes more events and writes a checkpoint claiming the cutoff was later,
    without the key: the signature gives it away."""
    ids = _pruned(client, env)
    ws = client.workspace
    with ws.db.read() as s:
        last = s.execute(text("SELECT id, hash, at FROM events WHERE id = :i"), {"i": ids[2]}).one()
    sql(client, "DELETE FROM events WHERE id <= :i", i=ids[2])
    sql(
        client,
        "INSERT INTO audit_checkpoints (kind, created_at, actor, last_event_id, last_event_hash, "
        "last_event_at, pruned, prev_signature, key_id, signature) SELECT 'prune', created_at, "
        "actor, :lid, :lh, :lat, 1, signature, key_id, :sig FROM audit_checkpoints",
        lid=last[0],
        lh=last[1],
        lat=last[2],
        sig="ab" * 32,
    )
    code, _, err = run(env, "events", "verify")
    assert code == 1 and "invalid signature: it was forged or edited" in err


def test_deleting_below_the_checkpoint_boundary_is_detected(
    client: Client, env: dict[str, str]
) -> None:
    ids = _pruned(client, env)
    sql(client, "DELETE FROM events WHERE id = :i", i=ids[2])  # the oldest event kept
    code, _, err = run(env, "events", "verify")
    assert code == 1
    assert f"event {ids[3]} does not follow the last event pruned by checkpoint" in err


def test_deleting_the_prune_event_is_detected(client: Client, env: dict[str, str]) -> None:
    """Deleting the newest events, down to and including ``audit.pruned``: nothing follows
    them, but the newest checkpoint's own event is missing."""
    _pruned(client, env)
    sql(client, "DELETE FROM events WHERE kind = 'audit.pruned'")
    code, out, _ = run(env, "events", "verify", "--json")
    doc = json.loads(out)
    assert code == 1 and "the event recording checkpoint" in doc["reason"]
    sql(client, "DELETE FROM events")
    code, _, err = run(env, "events", "verify")
    assert code == 1 and "is missing (the newest events were deleted)" in err


def test_deleted_checkpoint_is_detected(client: Client, env: dict[str, str]) -> None:
    ids = _pruned(client, env)
    sql(client, "DELETE FROM audit_checkpoints")
    code, out, _ = run(env, "events", "verify", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["broken_id"] == ids[2]


def test_wrong_key_and_no_key(client: Client, env: dict[str, str], home: Path) -> None:
    _pruned(client, env)
    code, _, err = run(env, "events", "verify")
    assert code == 0, err
    other = {**env, "LOCKGATE_AUDIT_KEY": "another-secret-of-enough-length"}
    code, _, err = run(other, "events", "verify")
    assert code == 1 and "invalid signature" in err and "yours is" in err
    assert "another-secret" not in err
    _key_file(home).rename(home / "elsewhere.key")
    code, _, err = run(env, "events", "verify")
    assert code == 1 and "cannot be checked without the audit key" in err


def test_key_file_readable_by_others_is_refused(
    client: Client, env: dict[str, str], home: Path
) -> None:
    _pruned(client, env)
    os.chmod(_key_file(home), 0o644)
    code, _, err = run(env, "events", "verify")
    assert code == 1 and "chmod 600" in err
    code, _, err = run({**env, "LOCKGATE_AUDIT_KEY": "short"}, "events", "verify")
    assert code == 1 and "LOCKGATE_AUDIT_KEY" in err and "short" not in err


def test_prune_refuses_a_broken_chain(client: Client, env: dict[str, str]) -> None:
    ids = add_events(client, [400, 390, 1])
    sql(client, "UPDATE events SET subject = 'x' WHERE id = :i", i=ids[0])
    code, _, err = run(env, "events", "prune", "--older-than", "365d")
    assert code == 1 and "refusing to prune" in err and f"event {ids[0]}" in err
    with client.workspace.db.read() as s:
        assert s.execute(text("SELECT count(*) FROM events")).scalar_one() == 3


def test_anchor_catches_a_recomputed_chain_and_tail_deletion(
    client: Client, env: dict[str, str]
) -> None:
    """Editing an event and recomputing every hash after it fools the bare chain; a signed
    anchor checkpoint does not. Deleting the newest events is caught by the anchor too."""
    ids = add_events(client, [5, 4, 3])
    code, out, err = run(env, "events", "checkpoint", "--json")
    assert code == 0, err
    anchor = json.loads(out)
    assert anchor["kind"] == "anchor" and anchor["last_event_id"] == ids[-1]
    add_events(client, [0.5, 0.1])
    ws = client.workspace
    with ws.db.write() as s:  # the attacker edits one event and re-chains every later one
        prev = GENESIS
        for r in s.execute(select(EventRow).order_by(EventRow.id)).scalars():
            if r.id == ids[1]:
                r.actor = "mallory"
            r.prev_hash = prev
            r.hash = chain_hash(prev, canonical(r.at, r.actor, r.kind, r.subject, r.payload))
            prev = r.hash
    code, _, err = run(env, "events", "verify")
    assert code == 1 and f"event {ids[-1]} differs from the hash signed by checkpoint" in err


def test_deleting_the_newest_events_after_an_anchor(client: Client, env: dict[str, str]) -> None:
    ids = add_events(client, [3, 2, 1])
    code, _, err = run(env, "events", "checkpoint")
    assert code == 0, err
    sql(client, "DELETE FROM events WHERE id >= :i", i=ids[-1])
    code, _, err = run(env, "events", "verify")
    assert code == 1 and f"event {ids[-1]}, signed by checkpoint" in err and "missing" in err
