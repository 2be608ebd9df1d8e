"""Two processes registering 50 versions each of one model end with versions 1..100."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.linear_model import LinearRegression

from lockgate.client import connect

SCRIPT = textwrap.dedent(
    """
    import sys
    import pandas as pd
    import lockgate
    home, url, model_path, sample_path, n = sys.argv[1:6]
    sample = pd.read_csv(sample_path)
    with lockgate.connect(home, database_url=url) as c:
        for i in range(int(n)):
            c.register_model("shared", model_path, sample=sample, tags={"writer": sys.argv[6]})
    """
)


def test_two_processes_register_concurrently(tmp_path: Path, home: Path, database_url: str) -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50)})
    model = LinearRegression().fit(X, X["a"] * 2 + X["b"])
    model_path = tmp_path / "model.skops"
    sio.dump(model, model_path)
    sample_path = tmp_path / "sample.csv"
    X.head(5).to_csv(sample_path, index=False)
    with connect(home, database_url=database_url):
        pass  # migrate once up front; the writers then race only on registrations
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                SCRIPT,
                str(home),
                database_url,
                str(model_path),
                str(sample_path),
                "50",
                f"w{i}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        _out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    with connect(home, database_url=database_url) as c:
        versions = c.list_versions("shared")
        assert [v.version for v in versions] == list(range(1, 101))
        writers = [v.tags["writer"] for v in versions]
        assert writers.count("w0") == 50 and writers.count("w1") == 50
        report = c.verify_events()
        assert report.ok, report.reason
        assert len([e for e in c.events(kind="version.registered")]) == 100
