"""No signal to the CLI, and no death of its process, leaves a Lava worker or a shared-memory segment behind.

Each case starts ``lava-matmulfree generate --backend sim`` (73 Lava leaf processes on the tiny config; one case
a ``chat`` session idle between prompts),
waits until the runtime runs, records every process of the run's tree and every /dev/shm segment they map,
signals the parent alone (as a service manager, a closed terminal or the OOM killer would) and asserts
that all of them are gone within a deadline.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lava, pytest.mark.slow]

CLI = [sys.executable, "-m", "lava_matmulfree"]
RUN = ["generate", "--config", "tiny", "--backend", "sim", "--prompt", "ab", "--max-new-tokens", "400"]
MIN_WORKERS = 40  # the tiny sim graph has 73 leaf processes: the runtime has started
CHAT_WORKERS = 8  # the tiny sim-fused graph with its token tap has 11
START_DEADLINE_S = 90.0
GONE_DEADLINE_S = 60.0  # teardown of ~75 workers on a loaded 2-core machine
RUNNING_S = 2.0  # let it take a few time steps before the signal


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d.name))
    return kids


def _tree(root: int) -> set[int]:
    kids, out, todo = _children(), set(), [root]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _shm_segments(pids) -> set[str]:
    segs = set()
    for p in pids:
        try:
            maps = Path(f"/proc/{p}/maps").read_text()
        except OSError:
            continue
        segs.update(line.split()[-1] for line in maps.splitlines() if "/dev/shm/" in line)
    return segs


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie holds nothing; its parent (pytest, init) reaps it


def _start_run(tmp_path, args=RUN, min_workers=MIN_WORKERS, stdin=None):
    # output to files: a pipe held open by orphaned workers would block the test instead of failing it
    err = open(tmp_path / "stderr", "w+b")
    proc = subprocess.Popen(CLI + list(args), stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                            stdin=stdin)
    proc.err = err
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the signal: {_stderr(proc)[-2000:]}")
        if len(_tree(proc.pid)) >= min_workers:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the Lava runtime did not start")
    time.sleep(RUNNING_S)
    pids = _tree(proc.pid)
    segs = _shm_segments(pids)
    assert segs, "the running workers map no shared memory: the test would prove nothing"
    return proc, pids, segs


def _stderr(proc) -> str:
    proc.err.seek(0)
    return proc.err.read().decode(errors="replace")


def _assert_all_gone(proc, pids, segs):
    deadline = time.monotonic() + GONE_DEADLINE_S
    while time.monotonic() < deadline:
        alive = [p for p in pids | {proc.pid} if _alive(p)]
        left = [s for s in segs if os.path.exists(s)]
        if not alive and not left:
            return
        time.sleep(0.2)
    _cleanup(pids, segs)
    pytest.fail(f"{len(alive)} of {len(pids) + 1} processes survived, {len(left)} of {len(segs)} /dev/shm "
                "segments were left")


def _cleanup(pids, segs):
    """Do not leave a failed case's processes and segments to the machine."""
    alive = [p for p in pids if _alive(p)]
    for p in alive:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if alive:
        time.sleep(1.0)  # let the killed resource tracker's peers go before unlinking
    for s in segs:
        try:
            os.unlink(s)
        except FileNotFoundError:
            pass


def _run_and_stop(tmp_path, stop):
    """Start a run, stop it with ``stop(proc)``; every worker and shared-memory segment must then be gone."""
    proc, pids, segs = _start_run(tmp_path)
    try:
        stop(proc)
        proc.wait(timeout=GONE_DEADLINE_S)
        _assert_all_gone(proc, pids, segs)
    finally:
        _cleanup(pids | {proc.pid}, segs)
    return proc


def _assert_quiet_exit(proc, sig):
    """The run ended by ``sig`` and said nothing but its own line: no traceback from any process."""
    assert proc.returncode == 128 + sig
    text = _stderr(proc)
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
    assert f"stopped by {signal.Signals(sig).name}" in text, text[-3000:]
    # the segments unlinked by the teardown are not reported "leaked" by Python's resource tracker
    assert "resource_tracker" not in text and "leaked" not in text, text[-3000:]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_to_the_parent_stops_every_worker(sig, tmp_path):
    proc = _run_and_stop(tmp_path, lambda p: os.kill(p.pid, sig))
    _assert_quiet_exit(proc, sig)


@pytest.mark.timeout(180)
def test_ctrl_c_to_the_whole_group_prints_no_child_traceback(tmp_path):
    # a terminal's Ctrl-C reaches every process of the foreground group
    proc = _run_and_stop(tmp_path, lambda p: os.killpg(p.pid, signal.SIGINT))
    _assert_quiet_exit(proc, signal.SIGINT)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_termination_of_the_whole_group_stops_quietly(sig, tmp_path):
    # `kill -TERM -PGID`, a container's stop; SIGHUP, a closed terminal: the manager of Lava's shared memory dies
    # with the workers, so the teardown unlinks the segments itself; Python's resource tracker must survive a
    # hangup (it ignores SIGTERM on its own), or the tracker started anew reports every segment as a traceback
    proc = _run_and_stop(tmp_path, lambda p: os.killpg(p.pid, sig))
    _assert_quiet_exit(proc, sig)


@pytest.mark.timeout(60)
def test_a_worker_left_running_does_not_hold_the_exit(tmp_path):
    """multiprocessing joins every child at interpreter exit: a worker a teardown left running (one that
    ignores SIGTERM here) must be stopped first, or the command never exits (graph/runtime.py)."""
    script = tmp_path / "leftover.py"
    script.write_text("import multiprocessing, signal, time\n"
                      "import lava_matmulfree.graph.runtime  # noqa: F401\n"
                      "def stubborn():\n"
                      "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                      "    time.sleep(600)\n"
                      "if __name__ == '__main__':\n"
                      "    p = multiprocessing.Process(target=stubborn)\n"
                      "    p.start()\n"
                      "    time.sleep(0.5)\n"
                      "    print(p.pid, flush=True)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=45)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[0])
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        state = "gone"
    assert state in ("gone", "Z"), f"the worker {pid} outlived the command ({state})"


@pytest.mark.timeout(180)
def test_parent_killed_outright_takes_its_workers_and_shared_memory(tmp_path):
    _run_and_stop(tmp_path, lambda p: p.kill())  # SIGKILL: no handler, no teardown; the workers must notice alone


@pytest.mark.timeout(180)
def test_signal_to_an_idle_chat_stops_its_runtime(tmp_path):
    """A chat session waiting for its next prompt holds a live runtime: SIGTERM still takes all of it down."""
    read_end, write_end = os.pipe()
    chat = ["chat", "--config", "tiny", "--backend", "sim-fused", "--max-new-tokens", "4"]
    try:
        os.write(write_end, b"ab\n")  # one prompt; the pipe stays open, so the chat waits for the next one
        proc, pids, segs = _start_run(tmp_path, chat, min_workers=CHAT_WORKERS, stdin=read_end)
        try:
            deadline = time.monotonic() + START_DEADLINE_S
            while "new tokens" not in _stderr(proc) and time.monotonic() < deadline:
                time.sleep(0.2)  # the first answer is done: the runtime idles between prompts
            assert "new tokens" in _stderr(proc)
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=GONE_DEADLINE_S)
            _assert_all_gone(proc, pids, segs)
        finally:
            _cleanup(pids | {proc.pid}, segs)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in _stderr(proc)
