"""The core knows no HTTP and no CLI: importing it must not load a web framework or Typer."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("fastapi", "starlette", "uvicorn", "typer", "click", "rich")


def test_core_imports_no_web_or_cli() -> None:
    code = (
        "import sys\n"
        "import lockgate.registry.service, lockgate.store.db, lockgate.store.artifacts\n"
        "import lockgate.runtimes, lockgate.runtimes.sklearn, lockgate.runtimes.onnx\n"
        "import lockgate.client, lockgate.workspace, lockgate.audit.events\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported: {out.stdout.strip()}"
