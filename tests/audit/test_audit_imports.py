"""The audit core (events, keys, KPIs, cards, exports, the service) imports no web framework
and no CLI library: the CLI and the REST API sit on top of it."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("fastapi", "starlette", "uvicorn", "typer", "click", "rich")


def test_audit_core_imports_no_web_or_cli() -> None:
    code = (
        "import sys\n"
        "import lockgate.audit.events, lockgate.audit.keys, lockgate.audit.kpis\n"
        "import lockgate.audit.cards, lockgate.audit.export, lockgate.audit.service\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"audit core imported: {out.stdout.strip()}"
