"""``lockgate predictions tail|export`` over a real prediction log folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lockgate.cli.main import app
from lockgate.cli.predictions import parse_time
from lockgate.errors import InvalidInputError
from lockgate.store.predlog import LogBatch, PredictionLog


@pytest.fixture
def now() -> float:
    """The test's own now (a time taken at import would age by the minutes a slow suite
    takes to reach the test, and the last-hour window would lose its oldest record)."""
    return time.time()


@pytest.fixture
def cli_env(home: Path) -> dict[str, str]:
    return {"LOCKGATE_HOME": str(home)}


@pytest.fixture
def log(home: Path, now: float) -> PredictionLog:
    """30 records of `churn`, one every 6 minutes over the last 3 hours (newest 1 minute
    ago), with a tensor input; plus one failed request."""
    plog = PredictionLog(home / "predictions", compact_interval=None)
    for i in range(30):
        plog.submit_nowait(
            LogBatch(
                request_id=f"q{i:02d}",
                endpoint="churn",
                model="churn-model",
                version=1 + i // 20,
                role="primary",
                ts=now - 60 - (29 - i) * 360,
                inputs={
                    "age": np.array([20 + i]),
                    "plan": np.array(["basic" if i % 2 else "pro"], dtype=object),
                    "emb": np.array([[i, i + 0.5]]),
                },
                outputs=np.array([i % 2]),
                latency_ms=1.5 + i,
                status=200,
            )
        )
    plog.submit_nowait(
        LogBatch("bad", "churn", "churn-model", 2, "primary", now - 30, None, None, 0.3, 400,
                 "age: expected int64, got 'x'")
    )  # fmt: skip
    plog.close()
    return PredictionLog(home / "predictions", compact_interval=None)


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


def test_tail_json_shows_the_newest_records(cli_env: dict[str, str], log: PredictionLog) -> None:
    code, out, err = run(cli_env, "predictions", "tail", "churn", "-n", "3", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["endpoint"] == "churn" and doc["count"] == 3
    recs = doc["records"]
    assert [r["id"] for r in recs] == ["q28-0", "q29-0", "bad-0"]
    assert recs[1]["inputs"] == {"age": 49, "plan": "basic", "emb": [29.0, 29.5]}
    assert recs[1]["output"] == 1 and recs[1]["version"] == 2 and recs[1]["status"] == 200
    assert recs[2]["status"] == 400 and recs[2]["error"].startswith("age: expected")
    assert recs[2]["inputs"] == {"age": None, "plan": None, "emb": None}
    assert recs[0]["ts"].endswith("+00:00")


def test_tail_table(cli_env: dict[str, str], log: PredictionLog) -> None:
    code, out, err = run(cli_env, "predictions", "tail", "churn")
    assert code == 0, err
    assert "last 20 predictions of churn" in out
    assert "q29-0" in out and "bad-0" in out and "q10-0" not in out
    assert "400" in out and "age=49" in out


def test_export_parquet_round_trips(
    cli_env: dict[str, str], log: PredictionLog, tmp_path: Path
) -> None:
    target = tmp_path / "out.parquet"
    code, out, err = run(
        cli_env, "predictions", "export", "churn", "--format", "parquet", "--output",
        str(target), "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["rows"] == 31 and doc["format"] == "parquet" and doc["output"] == str(target)
    got = pd.read_parquet(target)
    pd.testing.assert_frame_equal(got, log.read("churn"))
    assert not list(tmp_path.glob(".*tmp"))


def test_export_csv_round_trips(
    cli_env: dict[str, str], log: PredictionLog, tmp_path: Path
) -> None:
    target = tmp_path / "out.csv"
    code, out, err = run(cli_env, "predictions", "export", "churn", "-o", str(target))
    assert code == 0, err
    assert "exported 31 records of churn" in out
    got = pd.read_csv(target)
    want = log.read("churn")
    assert list(got.columns) == list(want.columns)
    assert got["id"].tolist() == want["id"].tolist()
    assert got["input.age"].tolist()[:30] == list(range(20, 50))
    assert got["input.plan"].tolist()[:2] == ["pro", "basic"]
    assert [json.loads(v) for v in got["input.emb"][:2]] == [[0.0, 0.5], [1.0, 1.5]]
    assert pd.isna(got["input.emb"].iloc[30])
    assert got["status"].tolist() == want["status"].tolist()
    assert got["latency_ms"].tolist() == pytest.approx(want["latency_ms"].tolist())
    ts = pd.to_datetime(got["ts"], utc=True)
    assert (ts == want["ts"]).all()


def test_export_window_relative_and_iso(
    cli_env: dict[str, str], log: PredictionLog, tmp_path: Path, now: float
) -> None:
    target = tmp_path / "hour.csv"
    code, out, err = run(
        cli_env, "predictions", "export", "churn", "--format", "csv", "-o", str(target),
        "--since", "1h", "--json",
    )  # fmt: skip
    assert code == 0, err
    ids = pd.read_csv(target)["id"].tolist()
    # rows at now-60s-k*360s for k = 0..9 are inside the last hour (k=9: now-3300s), + "bad"
    assert ids == [f"q{i:02d}-0" for i in range(20, 30)] + ["bad-0"]
    assert json.loads(out)["rows"] == 11
    start = pd.Timestamp(now - 60 - 29 * 360, unit="s", tz="UTC").isoformat()
    until = pd.Timestamp(now - 60 - 27 * 360, unit="s", tz="UTC").isoformat()
    code, out, err = run(
        cli_env, "predictions", "export", "churn", "-o", str(target), "--since", start,
        "--until", until,
    )  # fmt: skip
    assert code == 0, err
    assert pd.read_csv(target)["id"].tolist() == ["q00-0", "q01-0"]


def test_unknown_endpoint_is_one_line_and_exit_1(
    cli_env: dict[str, str], log: PredictionLog, tmp_path: Path
) -> None:
    for args in (
        ("tail", "nope"),
        ("tail", "nope", "--json"),
        ("export", "nope", "-o", str(tmp_path / "x.csv")),
    ):
        code, out, err = run(cli_env, "predictions", *args)
        assert code == 1, (args, out, err)
        assert out == ""
        assert err.strip().count("\n") == 0
        assert "no predictions logged for endpoint 'nope'" in err
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tail", "Bad/Name"), "endpoint: expected"),
        (("export", "churn", "-o", "out.txt"), "--format: expected parquet or csv"),
        (("export", "churn", "-o", "o.csv", "--since", "last tuesday"), "--since: expected"),
        (("export", "churn", "-o", "o.csv", "--since", "1h", "--until", "2h"), "--until"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_1(
    cli_env: dict[str, str], log: PredictionLog, args: tuple[str, ...], message: str
) -> None:
    code, out, err = run(cli_env, "predictions", *args)
    assert code == 1, (out, err)
    assert err.strip().count("\n") == 0 and message in err


def test_parse_time() -> None:
    now = pd.Timestamp("2026-03-01T12:00:00Z").to_pydatetime()
    assert parse_time("30m", "--since", now) == pd.Timestamp("2026-03-01T11:30:00Z")
    assert parse_time("2d", "--since", now) == pd.Timestamp("2026-02-27T12:00:00Z")
    assert parse_time("1.5h", "--since", now) == pd.Timestamp("2026-03-01T10:30:00Z")
    assert parse_time("2026-01-31T12:00:00Z", "--since") == pd.Timestamp("2026-01-31T12:00Z")
    assert parse_time("2026-01-31 12:00", "--since") == pd.Timestamp("2026-01-31T12:00Z")
    assert parse_time(None, "--since") is None
    with pytest.raises(InvalidInputError, match="--until"):
        parse_time("soon", "--until")
