"""The graph follows Lava's conventions, so a Lava user can wire it by hand and Lava's own parts fit it:

* ternary matrices are Lava's ``Dense`` (2W, weight_exp=-1): exact through Lava's bit-accurate model, where plain
  ``W`` is not; the packed-kernel model of Dense equals Lava's;
* a Lava LIF population drives the project's neurons through a Dense connection without deadlock;
* one block built by hand from the leaf processes, with Lava's RingBuffer source and sink, a Monitor and plain
  ``Loihi2SimCfg(select_tag="fixed_pt")``, gives the golden model's integers (docs/tutorial.ipynb, run by
  tests/test_tutorial.py);
Every test that starts a Lava runtime has a hard timeout."""
from __future__ import annotations

import numpy as np
import pytest
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.dense.process import Dense
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import RingBuffer as Source

from lava_matmulfree.evaluation.accuracy import build_evaluation
from lava_matmulfree.processes import build, connections


@pytest.fixture(scope="module")
def net():
    return build_evaluation("tiny", seed=0).net


def run_through(conn: Dense, spikes: np.ndarray, run_cfg) -> np.ndarray:
    """Messages [n_in + 1, T] through one connection; what arrives, [n_out + 1, T] (one step later)."""
    T = spikes.shape[1]
    src = Source(data=spikes)
    sink = Sink(shape=(conn.a_out.shape[0],), buffer=T + 1)
    src.s_out.connect(conn.s_in)
    conn.a_out.connect(sink.a_in)
    try:
        sink.run(condition=RunSteps(num_steps=T + 1), run_cfg=run_cfg)
        return np.asarray(sink.data.get())[:, 1:].astype(np.int64)
    finally:
        sink.stop()


def ternary_case(seed: int, n_out: int, n_in: int, T: int = 4):
    rng = np.random.default_rng(seed)
    w = rng.integers(-1, 2, (n_out, n_in)).astype(np.int8)
    a = rng.integers(-128, 128, (n_in, T))
    msgs = np.vstack([a, np.ones((1, T), dtype=np.int64)])  # every step carries a token
    msgs = np.hstack([msgs, np.zeros((n_in + 1, 1), dtype=np.int64)])  # and one step without
    want = np.vstack([w.astype(np.int64) @ msgs[:-1], msgs[-1:]])
    return w, msgs, want


@pytest.mark.lava
@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed,n_out,n_in", [(0, 37, 29), (1, 5, 72), (2, 50, 3)])
def test_ternary_connection_is_exact_through_lavas_bit_accurate_dense(seed, n_out, n_in):
    """Lava's own PyDenseModelBitAcc (plain fixed_pt selection): 2W with weight_exp=-1 gives W a exactly, lane
    included; weights=W silently does not (mixed-sign truncation); the packed-kernel model equals Lava's."""
    w, msgs, want = ternary_case(seed, n_out, n_in)
    lava_cfg = Loihi2SimCfg(select_tag="fixed_pt")
    got = run_through(connections.ternary_connection(w), msgs, lava_cfg)
    np.testing.assert_array_equal(got, want)
    naive = Dense(weights=np.vstack([np.hstack([w, np.zeros((n_out, 1))]), np.eye(1, n_in + 1, n_in)]),
                  num_message_bits=8)
    assert not np.array_equal(run_through(naive, msgs, lava_cfg), want)
    packed_cfg = Loihi2SimCfg(select_tag="fixed_pt",
                              exception_proc_model_map={Dense: connections.PyTernaryDenseModel})
    np.testing.assert_array_equal(run_through(connections.ternary_connection(w), msgs, packed_cfg), want)


@pytest.mark.lava
@pytest.mark.timeout(240)
def test_packed_dense_model_takes_every_8_bit_lava_weight():
    """A general Dense (not ternary) through the packed-kernel model equals Lava's bit-accurate model on weights at
    both ends of Lava's 8-bit range (mixed signs: even values -256..254, which Lava keeps exactly): the model's int16
    weights Var holds them; the ternary connections' 2W is int8 in the process."""
    rng = np.random.default_rng(9)
    n_out, n_in, T = 7, 11, 3
    w = 2 * rng.integers(-128, 128, (n_out, n_in))
    w[0, :2] = (-256, 254)
    msgs = np.hstack([rng.integers(-128, 128, (n_in, T)), np.zeros((n_in, 1), dtype=np.int64)])
    want = run_through(Dense(weights=w, num_message_bits=8), msgs, Loihi2SimCfg(select_tag="fixed_pt"))
    packed_cfg = Loihi2SimCfg(select_tag="fixed_pt",
                              exception_proc_model_map={Dense: connections.PyTernaryDenseModel})
    got = run_through(Dense(weights=w, num_message_bits=8), msgs, packed_cfg)
    np.testing.assert_array_equal(got, want)
    assert np.abs(want).max() > 1 << 15  # products beyond int16: the model accumulates wider
    assert connections.ternary_connection(np.eye(3, dtype=np.int8)).weights.init.dtype == np.int8


@pytest.mark.lava
@pytest.mark.timeout(240)
def test_norm_connections_carry_24_bit_messages_exactly():
    """Fan-in sums 24-bit squares into one neuron, broadcast copies one value to every channel, exactly (where
    Lava's int32 accumulator does not wrap)."""
    rng = np.random.default_rng(4)
    n, T = 72, 3
    sq = rng.integers(0, 1 << 22, (n, T))
    msgs = np.vstack([sq, np.ones((1, T), dtype=np.int64)])
    got = run_through(connections.fan_in(n), msgs, Loihi2SimCfg(select_tag="fixed_pt"))
    np.testing.assert_array_equal(got, np.vstack([sq.sum(axis=0, keepdims=True), np.ones((1, T))]))
    r = np.vstack([rng.integers(0, 1 << 23, (1, T)), np.ones((1, T), dtype=np.int64)])
    got = run_through(connections.broadcast(n), r, Loihi2SimCfg(select_tag="fixed_pt"))
    np.testing.assert_array_equal(got, np.vstack([np.repeat(r[:1], n, axis=0), np.ones((1, T))]))


@pytest.mark.lava
@pytest.mark.timeout(240)
def test_lava_lif_drives_a_project_neuron_through_a_dense_connection(net):
    """Lava's LIF -> the fan-in connection -> the project's RMS aggregator: no deadlock, and the aggregator
    answers exactly the steps whose lane neuron spiked, with the inverse RMS of the number of spikes."""
    from lava.proc.lif.process import LIF

    from lava_matmulfree.model.fixed_point import inv_sqrt

    n, T = 40, 30
    rng = np.random.default_rng(7)
    lif = LIF(shape=(n + 1,), du=4095, dv=0, bias_mant=rng.integers(20, 200, n + 1), bias_exp=6, vth=300)
    fan, agg, bc = build.norm(net, n, "lif")
    spikes, answers = Sink(shape=(n + 1,), buffer=T), Sink(shape=(2,), buffer=T)
    lif.s_out.connect(fan.s_in)
    lif.s_out.connect(spikes.a_in)
    agg.r_out.connect(answers.a_in)
    try:
        lif.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        s = np.asarray(spikes.data.get()).astype(np.int64)
        r = np.asarray(answers.data.get()).astype(np.int64)
    finally:
        lif.stop()
    lane = s[-1]
    assert lane.any() and not lane.all()  # some steps with a "token", some without
    S = s[:-1].sum(axis=0)
    for t in range(1, T):
        if lane[t - 1]:
            want = inv_sqrt(np.array([S[t - 1]]), net.invsqrt_lut, net.fp.invsqrt_seed_bits,
                            net.fp.invsqrt_newton_steps)[0]
            assert r[1, t] == 1 and r[0, t] == want, t
        else:
            assert r[1, t] == 0, t


@pytest.mark.lava
@pytest.mark.timeout(240)
def test_a_residual_queue_that_overflows_is_a_clear_error(net):
    """Residual neurons whose token mixer never answers: after MIXER_QUEUE_DEPTH tokens the next one has no
    register to wait in; the run stops with an error naming the queue (and no child survives)."""
    from lava_matmulfree.events import MIXER_QUEUE_DEPTH
    from lava_matmulfree.graph.runtime import LavaRunError, run_steps, stop

    d = net.cfg.hidden_size
    steps = MIXER_QUEUE_DEPTH + 3
    x = np.zeros((d + 1, steps), dtype=np.int64)
    x[:d] = net.embed[np.arange(steps)].T
    x[d] = 1  # a token every step; o_in stays unconnected: no answer ever comes
    residual = build.residual(net, 0)
    src = Source(data=x)
    src.s_out.connect(residual.x_in)
    with pytest.raises(LavaRunError, match=r"Residual: queue xn out of range \[0, 8\]"):
        try:
            run_steps(src, Loihi2SimCfg(select_tag="fixed_pt"), steps, timeout=120)
        finally:
            stop(src, failed=True)
