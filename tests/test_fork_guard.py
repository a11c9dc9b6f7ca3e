"""The guard on children forked while a Lava run starts (graph/signals.py): a SIGTERM that reaches a child while
its fork hook is still putting the default handlers in place is held until they are, then ends the child; it is
never raised inside the hook (where Python prints it as an ignored exception and the child carries on)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import os, signal, sys
    from lava_matmulfree.graph import signals as S

    def on_term(signum, frame):                 # the handler a run has while it starts (termination_signals)
        raise S.Terminated(signum)

    signal.signal(signal.SIGTERM, on_term)
    parent, real, fired = os.getpid(), signal.signal, []

    def signal_with_a_term_arriving(sig, handler):   # the watchdog's SIGTERM lands during the child's hook
        if os.getpid() != parent and not fired:
            fired.append(sig)
            os.kill(os.getpid(), signal.SIGTERM)
        return real(sig, handler)

    S.signal.signal = signal_with_a_term_arriving
    with S.guard_forks():
        pid = os.fork()
        if pid == 0:
            os._exit(0)                         # reached only where the SIGTERM was lost in the hook
    S.signal.signal = real
    _, status = os.waitpid(pid, 0)
    print("signalled" if os.WIFSIGNALED(status) else "exited", os.WTERMSIG(status) if os.WIFSIGNALED(status)
          else os.WEXITSTATUS(status))
""")


@pytest.mark.timeout(60)
def test_a_sigterm_during_the_childs_fork_hook_ends_the_child():
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=50,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["signalled", str(int(signal.SIGTERM))], (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr
