"""The feedback store over a real metadata store and prediction log: unknown ids reported,
corrections replace, quality per version and role (a shadow's record of a row is scored by
the same label)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.rollout.conftest import emit

from lockgate.client import Client
from lockgate.clock import FakeClock
from lockgate.errors import InvalidInputError, NotFoundError
from lockgate.feedback import FeedbackService, frame_items, parse_items
from lockgate.store.predlog import PredictionLog


def test_send_reports_unknown_ids_and_replaces_corrections(
    fc: Client, plog: PredictionLog, clock: FakeClock
) -> None:
    svc = FeedbackService(fc.workspace, plog)
    outputs = np.array([0, 1, 1, 0, 1, 1, 0, 0, 1, 1])
    ids = emit(plog, clock, 1, "primary", 10, outputs=outputs)
    emit(plog, clock, 2, "shadow", 10, outputs=1 - outputs, ids=ids)
    truth = outputs.copy()
    truth[:2] = 1 - truth[:2]  # the primary is right on 8 of 10, the shadow on 2
    items = [{"id": i, "value": int(v)} for i, v in zip(ids, truth, strict=True)]
    res = svc.send("iris", [*items, {"id": "nope-0", "value": 1}])
    assert (res.received, res.stored, res.updated) == (11, 10, 0)
    assert res.unknown_ids == ["nope-0"]
    quality = {(q["version"], q["role"]): q for q in svc.quality("iris")}
    assert quality[(1, "primary")]["accuracy"] == pytest.approx(0.8)
    assert quality[(2, "shadow")]["accuracy"] == pytest.approx(0.2)
    assert quality[(1, "primary")]["labels"] == 10
    fixed = svc.send("iris", [{"id": ids[0], "value": int(outputs[0])}])
    assert (fixed.stored, fixed.updated) == (0, 1)
    quality = {(q["version"], q["role"]): q for q in svc.quality("iris")}
    assert quality[(1, "primary")]["accuracy"] == pytest.approx(0.9)
    kinds = [e.payload for e in fc.events(kind="feedback.received")]
    assert kinds[0]["unknown"] == 1 and kinds[-1]["updated"] == 1


def test_numbers_metrics_and_frames(fc: Client, plog: PredictionLog, clock: FakeClock) -> None:
    svc = FeedbackService(fc.workspace, plog)
    ids = emit(plog, clock, 1, "primary", 4, outputs=np.array([1.5, 2.0, 3.0, 4.0]))
    frame = pd.DataFrame(
        {"id": ids, "value": [1.0, 2.0, 3.5, 4.0], "revenue": [1.0, np.nan, 3.0, 4.0]}
    )
    items = frame_items(frame)
    assert items[1] == {"id": ids[1], "value": 2.0}  # a missing metric is left out
    svc.send("iris", items)
    (q,) = svc.quality("iris")
    assert q["mae"] == pytest.approx(0.25)
    assert q["metric.revenue"] == pytest.approx(8 / 3)


def test_bad_batches_are_refused_whole(fc: Client, plog: PredictionLog) -> None:
    svc = FeedbackService(fc.workspace, plog)
    with pytest.raises(InvalidInputError) as e:
        parse_items([{"id": f"x-{i}", "value": 1} for i in range(10_001)])
    assert e.value.field == "items"
    for bad, field in [
        ([{"id": "a", "value": None}], "items[0].value"),
        ([{"id": "a", "value": float("nan")}], "items[0].value"),
        ([{"id": "", "value": 1}], "items[0].id"),
        ([{"id": "a", "value": 1, "extra": 2}], "items[0]"),
        ([{"id": "a", "value": 1, "metrics": {"r": "x"}}], "items[0].metrics.r"),
        ([], "items"),
    ]:
        with pytest.raises(InvalidInputError) as e:
            svc.send("iris", bad)
        assert e.value.field == field
    with pytest.raises(NotFoundError):
        svc.send("ghost", [{"id": "a", "value": 1}])
    assert svc.count("iris") == 0 and not fc.events(kind="feedback.received")
