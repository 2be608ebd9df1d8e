"""The monitoring service layer knows no web framework and no CLI, and the pure modules
(quality, monitor rules, alerts, the HTML report) need no database either."""

from __future__ import annotations

import json
import subprocess
import sys

WEB_OR_CLI = ("fastapi", "starlette", "uvicorn", "typer", "click", "rich")


def imported(code: str) -> list[str]:
    probe = (
        "import json, sys\n"
        f"{code}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{(*WEB_OR_CLI, 'sqlalchemy', 'httpx')!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return sorted({m.split(".")[0] for m in json.loads(out.stdout)})


def test_the_service_layer_imports_no_web_framework_or_cli() -> None:
    got = imported(
        "import lockgate.monitoring.service, lockgate.monitoring.live, "
        "lockgate.monitoring.gauges, lockgate.monitoring.records"
    )
    assert not set(got) & set(WEB_OR_CLI), got


def test_the_pure_modules_import_no_database_and_no_http_client() -> None:
    got = imported(
        "import lockgate.monitoring.quality, lockgate.monitoring.monitors, "
        "lockgate.monitoring.alerts, lockgate.monitoring.report_html, "
        "lockgate.monitoring.intervals"
    )
    assert got == [], got  # httpx is imported when a webhook is posted, not before
