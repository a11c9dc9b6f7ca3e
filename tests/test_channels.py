"""graph/channels.py: Lava's channel ports without their helper threads in the workers. The ports' semantics in one
process (slots, blocking, probe, peek, select, a direct end against a threaded one), and a graph whose workers run
with them: no thread for their ports, the same tokens as with Lava's own ports."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lava_matmulfree.graph import channels

SLOTS = 2
SHAPE = (3,)
BLOCKED_S = 0.2
WORKER_THREADS = 2  # long enough for a send that does not block to have returned


@pytest.fixture
def infra():
    """Lava's message infrastructure (its shared-memory manager, which PyPyChannel asks for), stopped after."""
    from lava.magma.runtime.message_infrastructure.multiprocessing import MultiProcessing

    channels.install()
    mp = MultiProcessing()
    mp.start()
    yield mp
    mp.stop()


@pytest.fixture
def as_worker(monkeypatch):
    """This process as if Lava had forked it: ports it starts are direct."""
    channels.install()
    monkeypatch.setitem(channels._state, "worker", True)
    monkeypatch.setitem(channels._state, "direct", True)


def channel(infra, recv_threaded=False):
    from lava.magma.compiler.channels.pypychannel import PyPyChannel

    ch = PyPyChannel(infra, "src", "dst", SHAPE, np.int32, SLOTS)
    if recv_threaded:
        setattr(ch.dst_port, channels.THREADED, True)
    ch.src_port.start()
    ch.dst_port.start()
    return ch.src_port, ch.dst_port


def msg(i):
    return np.full(SHAPE, i, dtype=np.int32)


def test_direct_ports_keep_order_slots_and_blocking(infra, as_worker):
    send, recv = channel(infra)
    assert send._direct and recv._direct and send.thread is None and recv.thread is None
    assert not recv.probe()
    for i in range(SLOTS):
        assert send.probe()
        send.send(msg(i))
    assert not send.probe()  # every slot in flight
    assert recv.probe() and recv._queue.qsize() == SLOTS
    np.testing.assert_array_equal(recv.peek(), msg(0))
    third = threading.Thread(target=send.send, args=(msg(SLOTS),))
    third.start()
    third.join(BLOCKED_S)
    assert third.is_alive()  # blocks until the receiver takes one
    np.testing.assert_array_equal(recv.recv(), msg(0))
    third.join(5)
    assert not third.is_alive()
    for i in range(1, SLOTS + 1):
        np.testing.assert_array_equal(recv.recv(), msg(i))
    assert not recv.probe() and recv._queue.qsize() == 0
    send.join()
    recv.join()


@pytest.mark.parametrize("recv_threaded", [False, True])
def test_select_waits_for_a_message(infra, as_worker, recv_threaded):
    from lava.magma.compiler.channels.pypychannel import CspSelector

    send, recv = channel(infra, recv_threaded)
    assert recv._direct is not recv_threaded and send._direct  # a direct sender works with either receiver
    send2, recv2 = channel(infra)
    later = threading.Timer(BLOCKED_S, send.send, args=(msg(7),))
    later.start()
    t0 = time.monotonic()
    assert CspSelector().select((recv, lambda: "one")) == "one"
    assert time.monotonic() - t0 >= BLOCKED_S / 2
    np.testing.assert_array_equal(recv.recv(), msg(7))
    send2.send(msg(8))  # several ports: the one with a message
    assert CspSelector().select((recv, lambda: "one"), (recv2, lambda: "two")) == "two"
    np.testing.assert_array_equal(recv2.recv(), msg(8))
    for p in (send, recv, send2, recv2):
        p.join()


def test_ports_started_in_the_parent_keep_lavas_threads(infra):
    channels.install()
    send, recv = channel(infra)
    assert not send._direct and not recv._direct and recv.thread is not None
    send.send(msg(1))
    np.testing.assert_array_equal(recv.recv(), msg(1))
    send.join()
    recv.join()


def _threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


@pytest.mark.lava
@pytest.mark.timeout(240)
def test_workers_run_on_direct_ports_and_choose_the_same_tokens():
    """sim-fused on the tiny net: with direct ports no worker (nor the runtime service) has a thread for its
    ports; the tokens are those of Lava's own ports."""
    from lava_matmulfree.evaluation.accuracy import build_evaluation
    from lava_matmulfree.graph.backends import GRAPH_KIND, lava_run_config
    from lava_matmulfree.graph.builder import build_graph
    from lava_matmulfree.graph.runner import GraphRunner
    from lava_matmulfree.graph.runtime import actors

    net = build_evaluation("tiny", seed=0).net
    prompt = np.random.default_rng(5).integers(0, net.cfg.vocab_size, 6).tolist()
    tokens, threads = {}, {}
    for direct in (False, True):
        previous = channels.set_direct(direct)
        try:
            graph = build_graph(net, GRAPH_KIND["sim-fused"], capacity=len(prompt) + 4)
            with GraphRunner(graph, lava_run_config("sim-fused"), timeout=120) as runner:
                tokens[direct] = runner.generate(prompt, 4).tokens
                threads[direct] = [_threads(a.pid) for a in actors(graph.source)]
        finally:
            channels.set_direct(previous)
    assert tokens[True] == tokens[False]
    # a direct worker: its main thread and multiprocessing's queue feeder (Lava's start-up report); Lava's ports
    # add a thread per channel end
    assert set(threads[True]) == {WORKER_THREADS}, threads[True]
    assert min(threads[False]) > WORKER_THREADS, threads[False]
