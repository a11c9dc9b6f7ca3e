"""The head as one hierarchical process (processes/lm_head, docs/graph.md "Timing"): its fused model equals its
decomposition (final norm, head norm, LM head Dense) bit for bit on random inputs, several seeds and shapes that are
not powers of two, one step after x arrives instead of three; the loop depth and leaf counts of every graph kind;
sim-fused and sim-stack choose the golden model's tokens with either head."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from lava.magma.core.run_conditions import RunSteps
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import RingBuffer as Source

from lava_matmulfree.config import FixedPointConfig, load_config
from lava_matmulfree.evaluation.accuracy import build_evaluation
from lava_matmulfree.graph.backends import generate, lava_run_config
from lava_matmulfree.graph.builder import HEAD_TIMING, build_graph, leaf_processes, loop_depth
from lava_matmulfree.graph.runner import GraphRunner
from lava_matmulfree.io.params import random_params
from lava_matmulfree.model.calibration import calibrate, random_calibration_sequences
from lava_matmulfree.model.float_model import FloatModel
from lava_matmulfree.model.golden import GoldenModel
from lava_matmulfree.model.quantise import compile_network
from lava_matmulfree.processes.lm_head.models import SubLmHeadModel
from lava_matmulfree.processes.lm_head.process import LmHead

SHAPES = [(44, 37), (61, 53)]  # (d, V): not powers of two


def odd_net(d: int, V: int, seed: int):
    """A compiled one-layer network of hidden size d and vocabulary V (seeded random weights)."""
    cfg = dataclasses.replace(load_config("tiny").model, num_layers=1, hidden_size=d, intermediate_size=d + 16,
                              vocab_size=V, bos_token_id=-1, eos_token_id=-1)
    model = FloatModel(cfg, random_params(cfg, seed=seed))
    fp = FixedPointConfig()
    return compile_network(model, calibrate(model, random_calibration_sequences(V, 2, 6), fp), fp)


def random_x(net, seed: int, steps: int) -> np.ndarray:
    """Messages [d + 1, steps] into the head: random residual streams (24-bit values, some beyond the norm's
    clamp) in the steps whose lane is set, back to back and with gaps."""
    rng = np.random.default_rng(seed)
    d = net.cfg.hidden_size
    x = np.zeros((d + 1, steps), dtype=np.int64)
    lanes = rng.random(steps) < 0.6
    lanes[0], lanes[-4:] = True, False  # the last tokens' logits leave within the run
    big = 1 << min(net.x_frac + 3, net.fp.state_bits - 1)  # within the 24-bit registers
    x[:d, lanes] = rng.integers(-big, big, (d, int(lanes.sum())))
    x[d] = lanes
    return x


def run_head(net, x: np.ndarray, backend: str) -> dict:
    """The head alone, driven by Lava's RingBuffer: what leaves it ([n + 1, steps]: column k is step k + 1) and its
    Vars at the end."""
    steps = x.shape[1]
    head = LmHead(net=net)
    src = Source(data=x)
    logits = Sink(shape=(net.cfg.vocab_size + 1,), buffer=steps)
    spikes = Sink(shape=(net.cfg.hidden_size + 1,), buffer=steps)
    src.s_out.connect(head.x_in)
    head.logits_out.connect(logits.a_in)
    head.spikes_out.connect(spikes.a_in)
    try:
        src.run(condition=RunSteps(num_steps=steps), run_cfg=lava_run_config(backend))
        out = {"logits": np.asarray(logits.data.get()).astype(np.int64),
               "spikes": np.asarray(spikes.data.get()).astype(np.int64)}
        out.update({v: np.asarray(getattr(head, v).get()).astype(np.int64) for v in ("x", "sum_sq", "inv_rms")})
        out["model"] = head.model_class
    finally:
        src.stop()
    return out


@pytest.mark.lava
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", SHAPES)
def test_fused_head_equals_the_decomposed_head(shape, seed):
    net = odd_net(*shape, seed=seed)
    x = random_x(net, seed, 14)
    fused = run_head(net, x, "sim-fused")
    decomposed = run_head(net, x, "sim")
    assert fused["model"].__name__ == "PyLmHeadFixed" and decomposed["model"] is SubLmHeadModel
    lanes = np.flatnonzero(x[-1])
    for out, hops in ((fused, HEAD_TIMING["fused"][0]), (decomposed, HEAD_TIMING["decomposed"][0])):
        np.testing.assert_array_equal(np.flatnonzero(out["logits"][-1]), lanes + hops)  # the head's latency
    rows = {k: out["logits"][:, np.flatnonzero(out["logits"][-1])] for k, out in (("f", fused), ("d", decomposed))}
    np.testing.assert_array_equal(rows["f"], rows["d"])  # every token's logits, bit for bit
    spikes = {k: out["spikes"][:, np.flatnonzero(out["spikes"][-1])] for k, out in (("f", fused), ("d", decomposed))}
    np.testing.assert_array_equal(spikes["f"], spikes["d"])
    # both are the golden model's head on the same x (the LM head's exact sums, before the sink's dendrite)
    g = GoldenModel(net)
    g.probes = {}
    a = g.norm_spikes(net.head, x[:-1, lanes].T, "head")["lm_head"]
    np.testing.assert_array_equal(rows["f"][:-1].T, g.synapses(net.lm_head, a))
    np.testing.assert_array_equal(spikes["f"][:-1].T, a)
    # the fused head's Vars keep the last token's values, as the leaves' do (test_probes.py)
    last = {"x": x[:-1, lanes[-1]], "sum_sq": g.probes["head.sum_sq"][0][-1],
            "inv_rms": g.probes["head.inv_rms"][0][-1]}
    for v, want in last.items():
        np.testing.assert_array_equal(fused[v], want, err_msg=v)


def test_loop_depth_and_leaf_counts_per_graph_kind():
    assert [loop_depth(k, 3) for k in ("decomposed", "mixers", "fused", "stack")] == [39, 21, 1, 1]
    assert loop_depth("fused", 24) == 1 and loop_depth("fused", 24, head="decomposed") == 3
    assert [leaf_processes(k, 3) for k in ("decomposed", "mixers", "fused", "stack")] == [73, 34, 6, 4]
    assert leaf_processes("fused", 24) == 27 and leaf_processes("fused", 24, head="decomposed") == 31
    assert leaf_processes("stack", 24, extra=1, head="decomposed") == 9


@pytest.fixture(scope="module")
def tiny():
    return build_evaluation("tiny", seed=1).net


def test_built_graphs_expect_their_head(tiny):
    fused, stack, sim = (build_graph(tiny, k, capacity=4) for k in ("fused", "stack", "decomposed"))
    assert (fused.loop_depth, fused.leaf_process_count()) == (1, 6)
    assert (stack.loop_depth, stack.leaf_process_count()) == (1, 4)
    assert (sim.loop_depth, sim.leaf_process_count()) == (39, 73)
    assert fused.probe_target("head.sum_sq")[2] == 0 and sim.probe_target("head.sum_sq")[2] == 3 * 12 + 1
    assert build_graph(tiny, "fused", capacity=4, head_kind="decomposed").loop_depth == 3
    with pytest.raises(ValueError, match="unknown head kind"):
        build_graph(tiny, "fused", capacity=4, head_kind="folded")


@pytest.mark.lava
@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", ["sim-fused", "sim-stack"])
def test_tokens_equal_golden_with_either_head(tiny, backend):
    """The backend's fused head (1 step per new token) and, by an exception map, the decomposed one (3): the golden
    model's tokens and logits; a GraphRunner takes the head's timing from the run config."""
    prompt, n = [7, 100, 3, 250, 41], 6
    ref = generate("reference", tiny, prompt, n)
    for head, hops, leaves in (("fused", 1, 1), ("decomposed", 3, 5)):
        cfg = lava_run_config(backend)
        if head == "decomposed":
            cfg.exception_proc_model_map[LmHead] = SubLmHeadModel
        kind = "fused" if backend == "sim-fused" else "stack"
        graph = build_graph(tiny, kind, capacity=len(prompt) + n)
        with GraphRunner(graph, cfg, timeout=500) as runner:
            res = runner.generate(prompt, n)
        assert graph.head_kind == head and res.tokens == ref.tokens, (backend, head)
        np.testing.assert_array_equal(res.logits, ref.logits)
        assert res.steps == len(prompt) + n * hops
        blocks = 3 if backend == "sim-fused" else 1
        assert res.leaf_processes == 2 + blocks + leaves
