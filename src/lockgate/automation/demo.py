"""The closed loop of ``lockgate quickstart``, on a running server, with no human step.

After v1 serves traffic: a pipeline (:func:`lockgate.quickstart_pipeline.train`), a gate
policy, an automation policy and a drift monitor are defined; drifted traffic
(``datasets.credit(shift=1.5)``) arrives with its ground truth; the monitor fires, the policy
retrains, the candidate passes the gates and goes through shadow and canary (2 s steps) to be
promoted. Progress bars follow each step from the event log; the KPIs are printed and the
event chain verified at the end.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from lockgate.automation.pipelines import PipelineSpec, PipelineStore
from lockgate.automation.service import AutomationService
from lockgate.datasets import CREDIT_FEATURES, CREDIT_TARGET, credit
from lockgate.store.schema import EventRow
from lockgate.workspace import Workspace

#: the quality gate judges ROC AUC (steady on a few hundred held-out rows)
GATES = {
    "baseline": "champion",
    "gates": [
        {"type": "schema"},
        {"type": "smoke"},
        {"type": "quality", "metrics": {"roc_auc": {"max_regression": 0.03}}},
    ],
}
#: seconds of drifted traffic after which a loop without an alert gives up
NO_ALERT_AFTER = 60.0
#: the steps the bar follows: (event kind, extra condition on its payload, label)
STEPS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("monitor.firing", {}, "drift alert fired"),
    ("automation.decision", {"taken": True}, "policy decided: retrain"),
    ("pipeline.started", {}, "retraining in a subprocess"),
    ("validation.completed", {}, "candidate through the gates"),
    ("rollout.started", {}, "shadow: candidate sees a copy of the traffic"),
    ("rollout.advanced", {"to_phase": "canary"}, "canary: candidate takes a share"),
    ("rollout.promoted", {}, "promoted: the candidate is champion"),
)


def configure(ws: Workspace, model: str) -> None:
    """The pipeline, gate policy, automation policy and drift monitor of the loop."""
    from lockgate.monitoring.service import MonitorService

    ws.gates.set_policy(model, GATES, reason="quickstart loop")
    PipelineStore(ws).set(
        PipelineSpec(
            model=model,
            entry="lockgate.quickstart_pipeline:train",
            target=CREDIT_TARGET,
            strategy="shadow-then-canary",
            steps=(50.0, 100.0),
            interval=2.0,
            window=900.0,
            min_rows=1000,
            timeout=300.0,
            analysis={
                "min_requests": 30,
                "min_labels": 30,
                "min_agreement": 0.6,
                "output_shift": "warn",
                # a laptop trains and serves at once: judge latency loosely in the demo
                "max_latency_ratio": 10.0,
                "latency_margin_ms": 250.0,
            },
        ),
        reason="quickstart loop",
    )
    AutomationService(ws).set_policy(
        {"endpoint": model, "cooldown": 3600, "max_concurrent": 1}, reason="quickstart loop"
    )
    MonitorService(ws, background=False).add(
        {
            "name": f"{model}-drift",
            "endpoint": model,
            "kind": "drift",
            "window": 300,
            "interval": 1,
            "min_samples": 1500,
        },
        replace=True,
        reason="quickstart loop",
    )


class _Traffic(threading.Thread):
    """Posts drifted rows in batches of 100 and their labels as feedback until stopped."""

    def __init__(self, url: str, endpoint: str) -> None:
        super().__init__(name="quickstart-traffic", daemon=True)
        self.url = url
        self.endpoint = endpoint
        self.rows = 0
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        frame = credit(5000, seed=11, shift=1.5)
        records = frame[CREDIT_FEATURES].to_dict(orient="records")
        labels = frame[CREDIT_TARGET].tolist()
        i = 0
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                chunk = slice(i, i + 100)
                i = i + 100 if i + 200 <= len(records) else 0
                try:
                    r = http.post(
                        f"/v1/endpoints/{self.endpoint}/predict",
                        json={"dataframe_records": records[chunk]},
                    )
                    if r.status_code != 200:
                        self.failures += 1
                        continue
                    items = [
                        {"id": p, "value": y}
                        for p, y in zip(r.json()["prediction_ids"], labels[chunk], strict=True)
                    ]
                    for _ in range(30):  # ids are known once the log flushed them
                        f = http.post(
                            "/api/v1/feedback", json={"endpoint": self.endpoint, "items": items}
                        )
                        if f.status_code == 200 and f.json().get("unknown") == 0:
                            break
                        time.sleep(0.1)
                    self.rows += len(items)
                except httpx.HTTPError:
                    self.failures += 1
                    time.sleep(0.2)
                time.sleep(0.05)


def _seen(ws: Workspace, model: str, after: int) -> list[tuple[str, dict[str, Any]]]:
    with ws.db.read() as s:
        rows = s.execute(
            select(EventRow.kind, EventRow.subject, EventRow.payload)
            .where(EventRow.id > after)
            .order_by(EventRow.id)
        ).all()
    return [(k, dict(p or {})) for k, subj, p in rows if subj.split("/")[0] == model]


def run_loop(
    ws: Workspace, url: str, model: str, console: Console, *, timeout: float = 300.0
) -> dict[str, Any]:
    """Drive the loop on the server at ``url``; return what happened (``ok``: promoted)."""
    with ws.db.read() as s:
        start_id = s.execute(select(EventRow.id).order_by(EventRow.id.desc()).limit(1)).scalar()
    configure(ws, model)
    console.print(
        f"[green]✓[/] closed loop armed on {model}: drift monitor, automation policy, "
        "pipeline lockgate.quickstart_pipeline:train, gate policy (ROC AUC vs champion)"
    )
    traffic = _Traffic(url, model)
    started = time.monotonic()
    reached: dict[str, float] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(
            "drifted traffic arriving (income and debt ratio shifted)", total=len(STEPS)
        )
        traffic.start()
        try:
            while len(reached) < len(STEPS) and time.monotonic() - started < timeout:
                events = _seen(ws, model, start_id or 0)
                for kind, cond, label in STEPS:
                    if label in reached:
                        continue
                    if any(
                        k == kind and all(p.get(a) == b for a, b in cond.items()) for k, p in events
                    ):
                        reached[label] = time.monotonic() - started
                        progress.console.print(f"  [green]✓[/] {label} at {reached[label]:.1f} s")
                failed = [
                    p
                    for k, p in events
                    if k == "pipeline.finished"
                    and p.get("status") not in ("rolling_out", "validated")
                ]
                rolled_back = any(k == "rollout.rolled_back" for k, _ in events)
                progress.update(
                    task,
                    completed=len(reached),
                    description=f"closed loop: {len(reached)}/{len(STEPS)} steps, "
                    f"{traffic.rows} drifted rows labelled",
                )
                if failed or rolled_back:
                    break
                if not reached and time.monotonic() - started > NO_ALERT_AFTER:
                    break  # the server evaluates no monitor: say so rather than wait
                time.sleep(0.25)
        finally:
            traffic.stop.set()
            traffic.join(30)
    seconds = time.monotonic() - started
    ok = len(reached) == len(STEPS)
    events = _seen(ws, model, start_id or 0)
    run = next((p for k, p in events if k == "pipeline.finished"), None)
    if ok:
        champion = ws.registry.get_version(f"{model}@champion")
        console.print(
            f"[green]✓[/] closed loop done in {seconds:.1f} s: {champion.ref} is champion, "
            f"trained on the drifted traffic (parent v{champion.lineage.get('parent_version')})"
        )
    else:
        why = (run or {}).get("error") or (
            "no drift alert: the server's controller evaluates no monitor"
            if not reached
            else "not finished in time"
        )
        console.print(f"[yellow]![/] the closed loop stopped after {len(reached)} steps: {why}")
    return {
        "ok": ok,
        "seconds": round(seconds, 1),
        "steps": reached,
        "run": run,
        "drifted_rows": traffic.rows,
    }


def print_kpis(ws: Workspace, model: str, console: Console) -> dict[str, Any]:
    """The model's delivery KPIs over the last day and the event chain's verification."""
    from lockgate.audit.service import AuditService

    audit = AuditService(ws)
    doc = audit.kpis(period="1d", model=model)
    k = doc["models"][0]
    t = Table(title=f"KPIs of {model} (last day)")
    t.add_column("KPI")
    t.add_column("value", justify="right")

    def fmt(v: Any) -> str:
        return "-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))

    t.add_row("deployments", fmt(k["deployment_frequency"]["deployments"]))
    t.add_row("change fail rate", fmt(k["change_fail_rate"]["rate"]))
    t.add_row("deployment success rate", fmt(k["deployment_success_rate"]["rate"]))
    lead = k["lead_time"]["registration"]
    t.add_row("lead time from registration (s, median)", fmt(lead.get("median_s")))
    console.print(t)
    report = audit.verify()
    mark = "[green]✓[/]" if report.ok else "[red]✗[/]"
    console.print(f"{mark} {report.summary()}")
    return {"kpis": k, "chain": report.to_dict()}
