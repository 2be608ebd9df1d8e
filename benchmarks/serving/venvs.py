"""Peer virtualenvs for the serving benchmark: MLServer and MLflow, each in its own venv
under ``benchmarks/serving/.venvs/`` (git-ignored).

Idempotent and cached: a venv is (re)built only when its stamp file, which records the
requirements it was built from, is missing or differs. scikit-learn, numpy and joblib are
pinned to the versions of the running interpreter, so every system loads the very same
fitted model.

    python benchmarks/serving/venvs.py            # build both (or do nothing when current)
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"

PEERS: dict[str, list[str]] = {
    "mlserver": ["mlserver", "mlserver-sklearn"],
    "mlflow": ["mlflow"],
}


def pinned() -> list[str]:
    """The libraries that must match the benchmark's own so the one model loads everywhere."""
    return [f"{d}=={metadata.version(d)}" for d in ("scikit-learn", "numpy", "joblib", "scipy")]


def python_of(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def bin_of(name: str, exe: str) -> Path:
    return VENVS / name / "bin" / exe


def ensure(name: str, *, quiet: bool = True) -> Path:
    """Build (or reuse) the venv of peer ``name``; return its python."""
    reqs = [*PEERS[name], *pinned()]
    stamp = VENVS / name / ".lockgate-bench.json"
    want = {"python": sys.version.split()[0], "requirements": reqs}
    py = python_of(name)
    if py.exists() and stamp.exists():
        try:
            if json.loads(stamp.read_text()) == want:
                return py
        except ValueError:
            pass
    print(f"[venv] building {VENVS / name} with {' '.join(reqs)}", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(VENVS / name)
    cmd = [str(py), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet:
        cmd.append("-q")
    subprocess.run([*cmd, "--upgrade", "pip"], check=True)
    subprocess.run([*cmd, *reqs], check=True)
    stamp.write_text(json.dumps(want))
    return py


def version_in(name: str, dist: str) -> str:
    out = subprocess.run(
        [
            str(python_of(name)),
            "-c",
            f"from importlib.metadata import version; print(version({dist!r}))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


if __name__ == "__main__":
    for peer in sys.argv[1:] or list(PEERS):
        print(peer, ensure(peer, quiet=False))
