"""``lockgate quickstart``: the whole path from a trained model to served, logged
predictions, unattended, on the embedded default workspace."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lockgate.client import connect
from lockgate.datasets import CREDIT_FEATURES, CREDIT_TARGET, credit

MODEL = "credit-risk"


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def run(
    *,
    home: Path,
    host: str = "127.0.0.1",
    port: int = 8470,
    requests: int = 300,
    keep_running: bool = False,
    console: Console | None = None,
    loop: bool = True,
) -> dict[str, Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    console = console or Console()
    home.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"home": str(home.resolve())}

    with console.status("training a credit-risk model on synthetic data"):
        train = credit(6000, seed=1)
        test = credit(2000, seed=2)
        pre = ColumnTransformer(
            [
                ("num", StandardScaler(), ["age", "income", "debt_ratio", "late_payments"]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["region", "employment"]),
            ]
        )
        model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))])
        model.fit(train[CREDIT_FEATURES], train[CREDIT_TARGET])
        auc = float(
            roc_auc_score(test[CREDIT_TARGET], model.predict_proba(test[CREDIT_FEATURES])[:, 1])
        )
    console.print(f"[green]✓[/] trained: logistic regression pipeline, test ROC AUC {auc:.3f}")

    with connect(home) as client:
        v = client.register_model(
            MODEL,
            model,
            reference=train,
            target=CREDIT_TARGET,
            metrics={"roc_auc": auc},
            params={"max_iter": 500},
            tags={"source": "quickstart"},
            training_data=train,
        )
        client.set_alias(MODEL, "champion", v.version, reason="quickstart")
        info = client.workspace.endpoints.deploy(MODEL, alias="champion")
    console.print(
        f"[green]✓[/] registered {v.ref} (sha256 {v.artifact_sha256[:12]}), "
        f"alias champion -> {v.version}, endpoint {info.name} deployed"
    )
    summary.update(version=v.version, endpoint=info.name)

    if not _port_free(host, port):
        port = _free_port(host)
    url = f"http://{host}:{port}"
    env = {**os.environ, "LOCKGATE_HOME": str(home)}
    # the server's log goes to a file: an unread pipe fills up and stalls the server
    log_path = home / "quickstart-server.log"
    server_log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "lockgate.cli", "server", "--host", host, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=server_log,
        text=True,
    )
    try:
        t0 = time.monotonic()
        # one client for the whole poll: each new httpx client builds an SSL context (tens of
        # ms of CPU), which every 50 ms would take a core from the starting server
        with console.status("starting the server"), httpx.Client(timeout=1) as http:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"the server exited: {log_path.read_text(errors='replace')[-4000:]}"
                    )
                try:
                    if http.get(f"{url}/v2/health/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() - t0 > 60:
                    raise RuntimeError("the server did not become ready in 60 s")
                time.sleep(0.05)
        console.print(f"[green]✓[/] server ready at {url} in {time.monotonic() - t0:.2f} s")
        summary["url"] = url
        summary.update(_traffic(url, info.name, requests, console))
        if loop:
            summary.update(_closed_loop(home, url, info.name, console))
        _print_tour(console, url, info.name)
        if keep_running:
            console.print("server keeps running; press Ctrl-C to stop it")
            with contextlib.suppress(KeyboardInterrupt):
                proc.wait()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        server_log.close()
    return summary


def _closed_loop(home: Path, url: str, endpoint: str, console: Console) -> dict[str, Any]:
    """Drift arrives, the alert fires, the pipeline retrains, the candidate passes the gates,
    goes through shadow and canary and is promoted; then the KPIs and the chain's check."""
    from lockgate.automation.demo import print_kpis, run_loop

    console.print()
    console.print("[bold]The closed loop[/] (no human step from here)")
    with connect(home) as client:
        loop = run_loop(client.workspace, url, endpoint, console)
        audit = print_kpis(client.workspace, MODEL, console)
    return {"loop": loop, **audit}


def _traffic(url: str, endpoint: str, n: int, console: Console) -> dict[str, Any]:
    rows = credit(n, seed=3)[CREDIT_FEATURES]
    latencies: list[float] = []
    failures = 0
    with (
        httpx.Client(base_url=url, timeout=10) as http,
        Progress(
            TextColumn("sending requests"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress,
    ):
        task = progress.add_task("requests", total=n)
        records = rows.to_dict(orient="records")
        for i, rec in enumerate(records):
            t = time.perf_counter()
            if i % 2:
                r = http.post(
                    f"/v1/endpoints/{endpoint}/predict", json={"dataframe_records": [rec]}
                )
            else:
                r = http.post(
                    f"/v2/models/{endpoint}/infer",
                    json={
                        "inputs": [
                            {
                                "name": k,
                                "shape": [1],
                                "datatype": "BYTES" if isinstance(val, str) else "FP64",
                                "data": [val],
                            }
                            for k, val in rec.items()
                        ]
                    },
                )
            latencies.append((time.perf_counter() - t) * 1000)
            failures += r.status_code != 200
            progress.advance(task)
    p50, p99 = np.percentile(latencies, [50, 99])
    console.print(
        f"[green]✓[/] {n} predictions served, {failures} failed, "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms (every one logged)"
    )
    return {"requests": n, "failed": failures, "p50_ms": float(p50), "p99_ms": float(p99)}


def _print_tour(console: Console, url: str, endpoint: str) -> None:
    console.print()
    console.print("[bold]What to look at[/]")
    console.print(f"  OIP V2 model metadata   {url}/v2/models/{endpoint}")
    console.print(f"  MLflow-style scoring    {url}/v1/endpoints/{endpoint}/predict")
    console.print(f"  Prometheus metrics      {url}/metrics")
    console.print(f"  Control plane API docs  {url}/api/v1/docs")
    console.print(f"  Recent predictions      lockgate predictions tail {endpoint}")
    console.print()
    console.print("[bold]curl[/]")
    console.print(
        f"  curl -s {url}/v1/endpoints/{endpoint}/predict -H 'content-type: application/json' "
        '-d \'{"dataframe_records": [{"age": 42, "income": 52000, "debt_ratio": 0.31, '
        '"late_payments": 1, "region": "north", "employment": "salaried"}]}\'',
        soft_wrap=True,
    )
    console.print()
    console.print(r"[bold]tritonclient[/] (pip install 'tritonclient\[http]')")
    host_port = url.removeprefix("http://")
    console.print(
        "  import numpy as np, tritonclient.http as tc\n"
        f"  c = tc.InferenceServerClient('{host_port}')\n"
        "  def t(name, value, dt):\n"
        "      x = tc.InferInput(name, [1], dt); x.set_data_from_numpy(np.array([value],"
        " dtype=object if dt == 'BYTES' else np.float64)); return x\n"
        f"  r = c.infer('{endpoint}', [t('age', 42.0, 'FP64'), t('income', 52000.0, 'FP64'),"
        " t('debt_ratio', 0.31, 'FP64'), t('late_payments', 1.0, 'FP64'),"
        " t('region', 'north', 'BYTES'), t('employment', 'salaried', 'BYTES')])\n"
        "  print(r.as_numpy('prediction'))",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
