"""Live processes read from Linux's /proc: the children a Lava runtime forked and the members of a process
session, for teardown (graph/signals.py), the benchmarks' memory figures and the tests' "no orphan" checks."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, NamedTuple

PROC = Path("/proc")
ZOMBIE = "Z"


class ProcStat(NamedTuple):
    pid: int
    state: str
    ppid: int
    session: int


def live_processes() -> Iterator[ProcStat]:
    """Every process that is not a zombie (one that exits while being read is skipped)."""
    for d in PROC.iterdir():
        if not d.name.isdigit():
            continue
        try:
            # after the command name in parentheses (which may hold spaces): state ppid pgrp session ...
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != ZOMBIE:
            yield ProcStat(int(d.name), fields[0], int(fields[1]), int(fields[3]))


def child_pids(parent: int | None = None) -> set[int]:
    """Live children of ``parent`` (this process by default)."""
    parent = os.getpid() if parent is None else parent
    return {p.pid for p in live_processes() if p.ppid == parent}


def session_members(session: int) -> set[int]:
    """Live processes of the session ``session`` (a process started with start_new_session and its
    descendants)."""
    return {p.pid for p in live_processes() if p.session == session}
