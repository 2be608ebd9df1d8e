"""The ``lockgate`` command keeps the garbage collector off while it starts (imports of
hundreds of thousands of objects cost 0.35 s of collections in a 2 s server start) and turns it
back on: at once for every command but ``server``, and for the server once it is up."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockgate import gcpause


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    assert gc.isenabled()
    yield
    gcpause.resume()
    gc.enable()


def test_pause_and_resume() -> None:
    gcpause.pause()
    assert not gc.isenabled()
    gcpause.resume()
    assert gc.isenabled()
    gcpause.resume()  # twice: nothing more
    assert gc.isenabled()


def test_a_collector_turned_off_by_someone_else_stays_off() -> None:
    gc.disable()
    gcpause.pause()
    gcpause.resume()
    assert not gc.isenabled()


def test_a_command_runs_with_the_collector_on(tmp_path: Path) -> None:
    """A fresh interpreter runs ``lockgate init`` through the real entry point and reports
    whether the collector was paused when the command was dispatched, and whether it runs
    inside the command."""
    probe = (
        "import gc, sys\n"
        "import lockgate.cli.main as m\n"
        "from lockgate import gcpause\n"
        "resume = gcpause.resume\n"
        "def seen_resume():\n"
        "    print('gc-paused' if not gc.isenabled() else 'gc-never-paused', file=sys.stderr)\n"
        "    resume()\n"
        "gcpause.resume = seen_resume\n"
        "import lockgate.store.migrate as mig\n"
        "real = mig.current_revision\n"
        "def spy(*a, **k):\n"
        "    print('collector on' if gc.isenabled() else 'collector off', file=sys.stderr)\n"
        "    return real(*a, **k)\n"
        "mig.current_revision = spy\n"
        "sys.argv = ['lockgate', '--home', sys.argv[1], 'init']\n"
        "m.main()\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "home")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "gc-paused" in r.stderr.split() and "collector on" in r.stderr, r.stderr


def test_the_server_resumes_the_collector_once_up() -> None:
    from lockgate.server import _freeze_heap

    gcpause.pause()
    _freeze_heap()
    assert gc.isenabled()
    gc.unfreeze()
