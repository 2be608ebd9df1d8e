from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_import_is_light_and_does_not_load_scipy_stats() -> None:
    code = (
        "import sys, lockgate.monitoring\n"
        "heavy = [m for m in ('scipy.stats', 'sqlalchemy', 'fastapi', 'starlette', 'typer')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert out.stdout.strip() == "[]"
    line = next(
        ln for ln in out.stderr.splitlines() if re.search(r"\|\s+lockgate\.monitoring$", ln)
    )
    cumulative_us = int(line.split("|")[1])
    assert cumulative_us < 1_500_000, line
