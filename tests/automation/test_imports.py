"""Automation is core: importing it (and the controller that calls it) loads no web framework,
no CLI and no terminal UI."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("fastapi", "starlette", "uvicorn", "typer", "click", "rich")


def test_automation_imports_no_web_or_cli() -> None:
    code = (
        "import sys\n"
        "import lockgate.automation.service, lockgate.automation.runner\n"
        "import lockgate.automation._worker, lockgate.automation.online\n"
        "import lockgate.rollout.controller, lockgate.quickstart_pipeline\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"automation imported: {out.stdout.strip()}"
