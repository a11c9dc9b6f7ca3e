"""The watchdog's and the stop timer's view of Lava's workers (graph/runtime.py ``_alive`` and ``kill``): read
from /proc, never by collecting a worker's exit status, which the main thread's join collects (two threads
waiting on one child: the second got ECHILD, and Lava's join raised "Cannot close a process while it is still
running"; docs/reliability.md). Plain forked children stand in for Lava's workers (multiprocessing.Process,
which Lava's SystemProcess extends)."""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from lava_matmulfree.graph import runtime

pytestmark = pytest.mark.timeout(60)
EXIT_CODE = 7
DEADLINE_S = 20.0


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _wait_for_state(pid: int, state: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while _state(pid) != state:
        assert time.monotonic() < deadline, f"child {pid} never reached state {state}"
        time.sleep(0.01)


def _sleep_forever():
    while True:
        time.sleep(1)


def test_a_finished_worker_is_not_alive_and_its_exit_status_is_left_to_its_joiner():
    p = multiprocessing.get_context("fork").Process(target=os._exit, args=(EXIT_CODE,))
    p.start()
    _wait_for_state(p.pid, "Z")                   # exited; its status not collected yet
    assert not runtime._alive(p)
    runtime.kill([p], grace=0.1)                  # nothing to stop
    assert _state(p.pid) == "Z" and p._popen.returncode is None   # still the joiner's to collect
    p.join()
    assert p.exitcode == EXIT_CODE


def test_kill_stops_a_running_worker_and_leaves_it_to_its_joiner():
    p = multiprocessing.get_context("fork").Process(target=_sleep_forever)
    p.start()
    try:
        assert runtime._alive(p)
        runtime.kill([p], grace=5.0)
        assert not runtime._alive(p) and p._popen.returncode is None
        p.join()
        assert p.exitcode == -signal.SIGTERM
    finally:
        if p.exitcode is None:
            p.kill()
            p.join()


def test_a_joined_or_closed_worker_is_not_alive():
    p = multiprocessing.get_context("fork").Process(target=os._exit, args=(0,))
    assert not runtime._alive(p)                  # not started
    p.start()
    p.join()
    assert not runtime._alive(p)
    p.close()
    assert not runtime._alive(p)
