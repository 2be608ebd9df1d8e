"""Model cards and record-keeping exports from a real history: a registered model with a
reference profile, a fairness validation, an alias, a deploy and a monitoring alert."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression
from sqlalchemy import text
from typer.testing import CliRunner

from lockgate.audit.events import record_event
from lockgate.audit.export import _PURPOSE, _manifest_body, verify_bundle
from lockgate.audit.keys import audit_key, sign
from lockgate.cli.main import app
from lockgate.client import Client
from lockgate.registry.lineage import git_info
from lockgate.web.api import create_api

DESCRIPTION = "Scores <script>alert(1)</script> loan | applications"


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


def alert(client: Client, model: str, message: str) -> None:
    ws = client.workspace
    with ws.db.write() as s:
        record_event(
            ws.db,
            s,
            kind="alert.fired",
            subject=model,
            actor="lockgate-controller",
            at=ws.clock.now(),
            payload={"model": model, "version": None, "severity": "warning", "message": message},
        )


@pytest.fixture
def history(client: Client) -> Client:
    rng = np.random.default_rng(5)
    n = 600
    frame = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    frame["group"] = np.where(rng.random(n) < 0.5, "a", "b")
    frame["y"] = ((frame.x1 + 0.3 * frame.x2) > 0).astype(np.int64)
    model = LogisticRegression().fit(frame[["x1", "x2"]], frame["y"])
    client.register_model(
        "credit",
        model,
        reference=frame[["x1", "x2", "group", "y"]],
        target="y",
        metrics={"auc": 0.93},
        description=DESCRIPTION,
        signature={
            "inputs": [{"name": "x1", "dtype": "float64"}, {"name": "x2", "dtype": "float64"}]
        },
    )
    client.validate(
        "credit",
        1,
        eval_data=frame,
        target="y",
        sensitive=["group"],
        policy={"gates": [{"type": "fairness", "n_boot": 0}]},
    )
    client.set_alias("credit", "champion", 1, reason="first")
    client.workspace.endpoints.deploy("credit", version=1)
    alert(client, "credit", "x1 drifted (PSI 0.31)")
    alert(client, "other", "unrelated")
    ws = client.workspace
    for endpoint, name in (("credit", "drift-x1"), ("elsewhere", "drift-other")):
        with ws.db.write() as s:  # as monitors record them: about an endpoint, no model
            record_event(
                ws.db,
                s,
                kind="monitor.firing",
                subject=endpoint,
                actor="lockgate-monitor",
                at=ws.clock.now(),
                payload={"monitor": name, "kind": "drift", "value": 0.31, "version": 1},
            )
    return client


def test_markdown_card(history: Client, env: dict[str, str]) -> None:
    code, out, err = run(env, "card", "credit", "1")
    assert code == 0, err
    assert out.startswith("# Model card: credit/1\n")
    for heading in (
        "Model details",
        "Lineage",
        "Signature",
        "Validation",
        "Fairness",
        "Reference data",
        "Deployment history",
        "Monitoring history",
    ):
        assert f"\n## {heading}\n" in out
    assert DESCRIPTION in out and "- auc: 0.93" in out
    assert "| x1 | float64 |" in out and "| prediction |" in out
    assert "**Groups by group**" in out and "| group=a |" in out and "| group=b |" in out
    assert "demographic_parity_ratio" in out
    assert "| x1 | numerical | float64 | 0 | mean" in out and "600 rows, 4 columns" in out
    assert "endpoint.deployed" in out and "alias.set" in out and "version.registered" in out
    assert "alert.fired" in out and "x1 drifted (PSI 0.31)" in out and "unrelated" not in out
    assert "monitor.firing" in out and "monitor=drift-x1" in out and "drift-other" not in out
    code, out, _ = run(env, "card", "credit", "1", "--json")
    doc = json.loads(out)
    assert doc["validation"][0]["status"] in ("pass", "fail", "inconclusive")
    assert doc["fairness"][0]["gate"] == "fairness" and "group" in doc["fairness"][0]["columns"]
    assert doc["reference_profile"]["summary"]["n_rows"] == 600
    code, _, err = run(env, "card", "credit", "7")
    assert code == 1 and "credit/7" in err


def test_html_card_is_self_contained_and_escaped(
    history: Client, env: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "card.html"
    code, out, err = run(env, "card", "credit", "1", "--html", "--output", str(target))
    assert code == 0, err
    assert str(target) in out
    page = target.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "http://" not in page and "https://" not in page and "src=" not in page
    assert "<h2>Fairness</h2>" in page and "<td>group=a</td>" in page
    assert "x1 drifted (PSI 0.31)" in page
    api = TestClient(create_api(history.workspace))
    r = api.get("/api/v1/models/credit/versions/1/card", params={"format": "html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<h2>Monitoring history</h2>" in r.text
    r = api.get("/api/v1/models/credit/versions/1/card", params={"format": "markdown"})
    assert r.status_code == 200 and r.text.startswith("# Model card: credit/1")
    assert api.get("/api/v1/models/credit/versions/9/card").status_code == 404


def test_git_info_records_the_commit_time(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    when = "2026-02-03T04:05:06+00:00"
    env = {**os.environ, "GIT_COMMITTER_DATE": when, "GIT_AUTHOR_DATE": when}
    for cmd in (
        ["git", "init", "-q"],
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
    ):
        subprocess.run(cmd, cwd=repo, check=True, env=env)
    info = git_info(repo)
    assert info is not None and datetime.fromisoformat(info["committed_at"]) == datetime(
        2026, 2, 3, 4, 5, 6, tzinfo=UTC
    )


def _export(env: dict[str, str], out: Path, since: str = "1h") -> dict[str, object]:
    code, stdout, err = run(
        env, "audit", "export", "--since", since, "--output", str(out), "--json"
    )
    assert code == 0, err
    manifest: dict[str, object] = json.loads(stdout)
    return manifest


def test_export_bundle_and_its_verification(
    history: Client, env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    m = _export(env, out)
    files = m["files"]
    assert isinstance(files, dict)
    assert set(files) == {
        "events.jsonl",
        "checkpoints.jsonl",
        "alias_history.jsonl",
        "gate_reports.jsonl",
        "monitoring.jsonl",
    }
    assert m["chain"]["ok"] is True  # type: ignore[index]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert files["events.jsonl"]["records"] == len(events) == len(history.events())
    assert events[0]["prev_hash"] == "0" * 64 and events[-1]["hash"] == m["chain"]["head_hash"]  # type: ignore[index]
    aliases = [json.loads(x) for x in (out / "alias_history.jsonl").read_text().splitlines()]
    assert [(a["model"], a["alias"], a["to_version"]) for a in aliases] == [
        ("credit", "champion", 1)
    ]
    reports = [json.loads(x) for x in (out / "gate_reports.jsonl").read_text().splitlines()]
    assert len(reports) == 1 and reports[0]["results"]["gates"][0]["type"] == "fairness"
    monitoring = (out / "monitoring.jsonl").read_text().splitlines()
    kinds = [json.loads(x)["kind"] for x in monitoring]
    assert kinds == ["alert.fired", "alert.fired", "monitor.firing", "monitor.firing"]
    code, stdout, _ = run(env, "audit", "verify", str(out))
    assert code == 0 and "intact" in stdout

    # a changed file, then a manifest edited to match it: both caught
    path = out / "gate_reports.jsonl"
    original = path.read_bytes()
    path.write_bytes(original.replace(b'"fairness"', b'"fairnesz"', 1))
    code, _, err = run(env, "audit", "verify", str(out))
    assert code == 1 and "gate_reports.jsonl: sha256 does not match" in err
    import hashlib

    manifest = orjson.loads((out / "manifest.json").read_bytes())
    manifest["files"]["gate_reports.jsonl"]["sha256"] = hashlib.sha256(
        path.read_bytes()
    ).hexdigest()
    (out / "manifest.json").write_bytes(orjson.dumps(manifest))
    code, _, err = run(env, "audit", "verify", str(out))
    assert code == 1 and "invalid signature" in err
    # an insider with the key re-signs a rewritten event: its hash link still gives it away
    path.write_bytes(original)
    ev_path = out / "events.jsonl"
    lines = ev_path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"actor":"', b'"actor":"x', 1)
    ev_path.write_bytes(b"".join(lines))
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    manifest["files"]["gate_reports.jsonl"]["sha256"] = hashlib.sha256(original).hexdigest()
    manifest["files"]["events.jsonl"]["sha256"] = hashlib.sha256(ev_path.read_bytes()).hexdigest()
    key = audit_key(history.workspace.settings, create=False)
    assert key is not None
    manifest["signature"] = sign(key, _PURPOSE, _manifest_body(manifest))
    (out / "manifest.json").write_bytes(orjson.dumps(manifest))
    assert verify_bundle(out, key) == [
        f"events.jsonl line 2 (event {events[1]['id']}) does not match its hash"
    ]
    # never into a folder with files
    code, _, err = run(env, "audit", "export", "--since", "1h", "--output", str(out))
    assert code == 1 and "output" in err


def test_export_since_and_a_broken_chain(
    history: Client, env: dict[str, str], tmp_path: Path
) -> None:
    ws = history.workspace
    alias_set = next(e for e in history.events() if e.kind == "alias.set")
    with ws.db.write() as s:  # dated before --since but recorded last: kept (contiguous)
        record_event(
            ws.db, s, kind="test.old", subject="x", actor="t", at=alias_set.at - timedelta(days=9)
        )
    m = _export(env, tmp_path / "b1", since=alias_set.at.isoformat())
    lines = [json.loads(x) for x in (tmp_path / "b1" / "events.jsonl").read_text().splitlines()]
    ids = [e["id"] for e in lines]
    assert ids[0] == alias_set.id and ids == list(range(ids[0], ids[0] + len(ids)))
    assert [e["kind"] for e in lines][-1] == "test.old"
    assert m["chain"]["ok"] is True  # type: ignore[index]
    with ws.db.engine.begin() as conn:
        conn.execute(text("UPDATE events SET actor = 'mallory' WHERE id = :i"), {"i": ids[1]})
    code, out, _ = run(env, "audit", "export", "--since", "2d", "--output", str(tmp_path / "b2"))
    assert code == 1 and "CHAIN BROKEN" in out and f"event {ids[1]} was edited" in out
    manifest = json.loads((tmp_path / "b2" / "manifest.json").read_text())
    assert manifest["chain"]["ok"] is False and manifest["chain"]["broken_id"] == ids[1]


def test_the_migration_matches_the_table(client: Client) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from lockgate.store.schema import Base

    with client.workspace.db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert [d for d in diff if "audit_checkpoints" in repr(d)] == []
    assert "audit_checkpoints" in Base.metadata.tables
