"""Gather the input of a rollout analysis from the prediction log and the feedback store.

The window is ``[state.window_start, until)``: records of the baseline (any role but shadow)
and of the candidate (its canary, arm or shadow records), the primary's and the shadow's
outputs for the same prediction ids, and, when feedback exists, the predictions since the
stage began joined with their ground truth.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from lockgate.errors import InvalidInputError
from lockgate.rollout.analysis import AnalysisInput, VersionWindow, summarize
from lockgate.store.predlog_read import to_numpy

if TYPE_CHECKING:
    from lockgate.feedback import FeedbackService
    from lockgate.rollout.service import RolloutInfo
    from lockgate.store.predlog import PredictionLog

_COLUMNS = ["id", "version", "role", "status", "latency_ms"]


def read_window(
    predlog: PredictionLog, endpoint: str, since: datetime, until: datetime
) -> dict[str, np.ndarray]:
    """The window's records as arrays (``output`` None when outputs are stored per name)."""
    try:
        table = predlog.read_table(
            endpoint, since=since, until=until, columns=[*_COLUMNS, "output"], roles=None
        )
    except InvalidInputError:
        table = predlog.read_table(endpoint, since=since, until=until, columns=_COLUMNS, roles=None)
        table = table.append_column("output", pa.nulls(table.num_rows))
    cols = {c: to_numpy(table.column(c)) for c in _COLUMNS}
    out = table.column("output")
    cols["output"] = to_numpy(out) if not pa.types.is_null(out.type) else None  # type: ignore[assignment]
    return cols


def _version_window(cols: dict[str, np.ndarray], mask: np.ndarray, version: int) -> VersionWindow:
    out = cols["output"]
    return VersionWindow(
        version,
        cols["status"][mask].astype(np.int32),
        cols["latency_ms"][mask].astype(np.float64),
        out[mask] if out is not None else None,
    )


def shadow_pairs(
    cols: dict[str, np.ndarray], baseline: int, candidate: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The primary's and the shadow's successful outputs for the same prediction ids."""
    out = cols["output"]
    if out is None:
        return None
    ok = cols["status"] < 400
    prim = ok & (cols["version"] == baseline) & (cols["role"] == "primary")
    shad = ok & (cols["version"] == candidate) & (cols["role"] == "shadow")
    if not prim.any() or not shad.any():
        return None
    index = pd.Index(cols["id"][prim])
    keep = ~index.duplicated()
    index = index[keep]
    prim_out = out[prim][keep]
    pos = index.get_indexer(cols["id"][shad])
    hit = pos >= 0
    return prim_out[pos[hit]], out[shad][hit]


def gather(
    info: RolloutInfo,
    predlog: PredictionLog,
    feedback: FeedbackService | None,
    until: datetime,
) -> tuple[AnalysisInput, dict[str, float]]:
    """The analysis input of ``info`` for the window ending at ``until``, and the baseline
    figures worth remembering (when the window had enough baseline rows)."""
    st = info.state
    since = st.window_start or st.step_started_at or st.started_at
    cols = read_window(predlog, info.endpoint, since, until)
    base_mask = (cols["version"] == info.baseline) & (cols["role"] != "shadow")
    cand_mask = cols["version"] == info.candidate
    baseline = _version_window(cols, base_mask, info.baseline)
    candidate = _version_window(cols, cand_mask, info.candidate)
    pairs = shadow_pairs(cols, info.baseline, info.candidate) if st.phase == "shadow" else None
    lab_b = lab_c = None
    if feedback is not None and feedback.count(info.endpoint):
        stage_start = st.step_started_at if st.phase == "ab" else st.started_at
        joined = feedback.joined(info.endpoint, since=stage_start, until=until)
        if not joined.empty:
            lab_b = feedback.labeled(joined, info.baseline, ["primary", "canary", "arm"])
            lab_c = feedback.labeled(joined, info.candidate)
    remember: dict[str, float] = {}
    if baseline.n >= info.plan.analysis.min_requests:
        fig = summarize(baseline)
        remember = {k: float(fig[k]) for k in ("error_rate", "p99_ms") if fig[k] is not None}
    data = AnalysisInput(
        phase=st.phase,
        baseline=baseline,
        candidate=candidate,
        pairs=pairs,
        labeled_baseline=lab_b,
        labeled_candidate=lab_c,
        remembered=st.remembered or None,
    )
    return data, remember
