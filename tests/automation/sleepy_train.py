"""A training script that never finishes, for the shutdown test: it writes its pid and the pid
of a grandchild it starts (in its process group) to ``$SLEEPY_TRAIN_PIDS``, then sleeps.
With ``SLEEPY_TRAIN_IGNORE_TERM=1`` both ignore SIGTERM, so only SIGKILL ends them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd


def train(data: pd.DataFrame, context: Any) -> Any:
    ignore = os.environ.get("SLEEPY_TRAIN_IGNORE_TERM") == "1"
    if ignore:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    code = "import time\ntime.sleep(600)"
    if ignore:
        code = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + code
    grandchild = subprocess.Popen([sys.executable, "-c", code])
    out = Path(os.environ["SLEEPY_TRAIN_PIDS"])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"child": os.getpid(), "grandchild": grandchild.pid}))
    tmp.replace(out)  # whole or absent: the test reads it as soon as it exists
    time.sleep(600)
