from __future__ import annotations

from sqlalchemy import text

from lockgate.audit.events import record_event, verify_chain
from lockgate.client import Client


def _events(client: Client, n: int) -> None:
    ws = client.workspace
    for i in range(n):
        with ws.db.write() as s:
            record_event(
                ws.db,
                s,
                kind="test.event",
                subject=f"s{i}",
                actor="tester",
                at=ws.clock.now(),
                payload={"i": i, "f": 0.1 * i},
            )


def test_chain_verifies(client: Client) -> None:
    _events(client, 5)
    report = verify_chain(client.workspace.db)
    assert report.ok and report.checked == 5


def test_edited_event_is_named(client: Client) -> None:
    _events(client, 5)
    with client.workspace.db.engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM events ORDER BY id"))]
        conn.execute(text("UPDATE events SET actor = 'mallory' WHERE id = :i"), {"i": ids[2]})
    report = verify_chain(client.workspace.db)
    assert not report.ok and report.broken_id == ids[2] and "edited" in report.reason


def test_deleted_event_is_detected(client: Client) -> None:
    _events(client, 5)
    with client.workspace.db.engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM events ORDER BY id"))]
        conn.execute(text("DELETE FROM events WHERE id = :i"), {"i": ids[1]})
    report = verify_chain(client.workspace.db)
    assert not report.ok and report.broken_id == ids[2]
