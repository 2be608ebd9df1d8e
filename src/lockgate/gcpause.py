"""Keeping the garbage collector off while a process starts.

Starting ``lockgate server`` imports scikit-learn, SciPy, pandas, SQLAlchemy and FastAPI:
hundreds of thousands of objects, and every few thousand allocations the collector walks the
young ones, every so often all of them (measured: 535 collections, 0.35 s of a 2 s start). None of
that garbage matters yet, so the ``lockgate`` command pauses the collector before it runs a
command; every command but ``server`` resumes it at once, the server once it is up and its
heap frozen (:func:`lockgate.server.run`).
"""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    """Turn the collector off, if it is on, until :func:`resume`."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Turn the collector back on if :func:`pause` turned it off (a collector someone else
    turned off stays off)."""
    global _paused
    if _paused:
        _paused = False
        gc.enable()
