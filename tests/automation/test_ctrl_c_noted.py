"""Ctrl-C while a pipeline run waits for its training child is noted, not raised inside
``Popen.wait`` (where it can leave the child's wait lock taken), and the previous SIGINT
handler is back afterwards."""

from __future__ import annotations

import os
import signal
import threading
import time

from lockgate.automation.runner import _ctrl_c_noted


def test_sigint_in_the_block_sets_the_event_and_raises_nothing() -> None:
    before = signal.getsignal(signal.SIGINT)
    with _ctrl_c_noted() as ctrl_c:
        assert not ctrl_c.is_set()
        os.kill(os.getpid(), signal.SIGINT)
        deadline = time.monotonic() + 5
        while not ctrl_c.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)  # the handler runs between bytecodes of the main thread
        assert ctrl_c.is_set()
    assert signal.getsignal(signal.SIGINT) is before


def test_the_previous_handler_is_back_after_an_exception() -> None:
    before = signal.getsignal(signal.SIGINT)
    try:
        with _ctrl_c_noted():
            raise ValueError("boom")
    except ValueError:
        pass
    assert signal.getsignal(signal.SIGINT) is before


def test_outside_the_main_thread_the_handlers_are_left_alone() -> None:
    before = signal.getsignal(signal.SIGINT)
    seen: list[object] = []

    def worker() -> None:
        with _ctrl_c_noted() as ctrl_c:
            seen.append(signal.getsignal(signal.SIGINT))
            seen.append(ctrl_c.is_set())

    t = threading.Thread(target=worker)
    t.start()
    t.join(10)
    assert seen == [before, False]
    assert signal.getsignal(signal.SIGINT) is before
