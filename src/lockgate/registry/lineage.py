"""Lineage captured at registration: code (git), data hash, library versions, who and when."""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

_LIBRARIES = ("lockgate", "numpy", "pandas", "scikit-learn", "scipy", "skops", "onnxruntime")


def git_info(cwd: Path | None = None) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool, "branch": name, "committed_at": ISO time}`` when
    ``cwd`` is inside a git work tree, else None (``committed_at`` is the commit time of HEAD,
    from which the KPIs measure lead time). Never fails registration: git missing or slow
    means no code lineage."""
    cwd = cwd or Path.cwd()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
        branch = subprocess.run(
            ["git", "rev-parse", "--abbrev-ref", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
        committed = subprocess.run(
            ["git", "show", "-s", "--format=%cI", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {
        "commit": commit.stdout.strip(),
        "dirty": bool(status.stdout.strip()),
        "branch": branch.stdout.strip() or None,
        "committed_at": (committed.stdout.strip() or None) if committed.returncode == 0 else None,
    }


def library_versions(extra: dict[str, str] | None = None) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in _LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    out.update(extra or {})
    return out


def data_sha256(data: pd.DataFrame | Path | None) -> str | None:
    """A stable hash of training data: the file's bytes, or the frame's columns, dtypes and
    row hashes (independent of memory layout)."""
    if data is None:
        return None
    if isinstance(data, Path):
        h = hashlib.sha256()
        with open(data, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()
    h = hashlib.sha256()
    h.update(repr([(str(c), str(t)) for c, t in data.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
    return h.hexdigest()


def current_actor(configured: str | None = None) -> str:
    if configured:
        return configured
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")
