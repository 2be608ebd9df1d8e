from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")

# CPU time, not wall time: the budget is about the work done, and CPU time does not grow when
# other jobs share the machine.
CODE = """
import json, sys, time
t = time.process_time()
import lockgate.monitoring
spent = time.process_time() - t
heavy = [m for m in ("scipy.stats", "sqlalchemy", "fastapi", "starlette", "typer")
         if m in sys.modules]
print(json.dumps({"seconds": spent, "heavy": heavy}))
"""


def test_import_is_light_and_does_not_load_scipy_stats() -> None:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=True
    )
    result = json.loads(out.stdout)
    assert result["heavy"] == []
    assert result["seconds"] < 1.5, result
