"""The rollout core and the feedback store know no HTTP and no CLI."""

from __future__ import annotations

import subprocess
import sys


def test_rollout_core_imports_no_web_or_cli() -> None:
    code = (
        "import sys\n"
        "import lockgate.rollout.policy, lockgate.rollout.router, lockgate.rollout.state\n"
        "import lockgate.rollout.analysis, lockgate.rollout.abtest, lockgate.rollout.service\n"
        "import lockgate.rollout.controller, lockgate.rollout.collect, lockgate.feedback\n"
        "bad = [m for m in ('fastapi', 'starlette', 'uvicorn', 'typer', 'click', 'rich')"
        " if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"rollout core imported: {out.stdout.strip()}"
