"""What a Lava user trips over (issue 24), each written as a Lava user writes it: processes wired with
``.connect()``, Lava's own run configs, ``RunSteps``, ``Monitor``, ``Dense`` and ``RingBuffer``.

1. a request is one thing: the source and the sink take it in their constructors, a graph sets a new one on both
   at once and says how many steps it needs; a hand-wired graph and build_graph take the same calls;
2. the sink reads its scales from the network and refuses a mismatch with one line;
3. the packed model of Dense is Lava's bit-accurate Dense, odd weights, clipping and int32 wrapping included; a
   Dense whose weights Lava truncates, connected into a project process, gives a warning;
4. RunResult counts the leaf processes Lava really built, probes included;
5. a hardware run config that would select a mixed graph is refused with one line naming the project's config;
   the fixed-point models carry ``bit_accurate_loihi``;
6. a Monitor's per-step rows become per-token rows.

Every test that starts a Lava runtime has a hard timeout and stops the runtime in ``finally``."""
from __future__ import annotations

import importlib
import sys
import warnings

import numpy as np
import pytest
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg
from lava.proc.dense.models import PyDenseModelFloat
from lava.proc.dense.process import Dense
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import RingBuffer as Source
from lava.proc.monitor.process import Monitor
from lava.utils.weightutils import SignMode

from conftest import stub_lava_loihi
from lava_matmulfree.errors import BackendError
from lava_matmulfree.evaluation.accuracy import build_evaluation
from lava_matmulfree.graph.backends import generate, lava_run_config, loihi2_run_config
from lava_matmulfree.graph.builder import LavaGraph, build_graph
from lava_matmulfree.graph.runner import GraphRunner
from lava_matmulfree.graph.runtime import LavaRunError, run_steps, stop
from lava_matmulfree.graph.wiring import built_leaves, check_run_config, token_rows
from lava_matmulfree.processes import build, connections
from lava_matmulfree.processes.block.models import PyFusedBlockFixed
from lava_matmulfree.processes.block.process import MMFreeBlock
from lava_matmulfree.processes.connections import PyTernaryDenseModel, TruncatedWeightsWarning
from lava_matmulfree.processes.embedding.process import EmbeddingSource
from lava_matmulfree.processes.lm_head_sink.process import LmHeadSink

SAMPLING = dict(temperature=1.3, top_k=30, seed=11)
FIXED = Loihi2SimCfg(select_tag="fixed_pt")  # Lava's own choice: fused blocks, Lava's bit-accurate Dense
PACKED = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={Dense: PyTernaryDenseModel})


@pytest.fixture(scope="module")
def nets():
    return {seed: build_evaluation("tiny", seed=seed).net for seed in (0, 1)}


def prompt_for(seed: int, n: int, vocab: int) -> list[int]:
    return np.random.default_rng(700 + seed).integers(0, vocab, n).tolist()


def hand_wired(net, capacity: int, prompt=(), max_new_tokens: int = 0, head_weights=None, **sampling):
    """The whole model wired by hand, as docs/graph.md shows: the request in the source's and the sink's
    constructors, the sink's scales from the network. ``head_weights``: the LM head as a plain Lava Dense of these
    weights (with the lane), instead of the project's 2W connection."""
    d = net.cfg.hidden_size
    source = EmbeddingSource(embed=net.embed, capacity=capacity, prompt=prompt, max_new_tokens=max_new_tokens,
                             name="embedding")
    blocks = [MMFreeBlock(net=net, layer=l) for l in range(net.cfg.num_layers)]
    final_norm = build.final_norm(net)
    fan_in, _, broadcast = build.norm(net, d, "head")
    if head_weights is None:
        lm_head = build.projection(net.lm_head, "lm_head", act_bits=net.fp.act_bits)
    else:
        lm_head = Dense(weights=head_weights, num_message_bits=8, name="lm_head_W")
    sink = LmHeadSink(net=net, capacity=capacity, prompt=prompt, max_new_tokens=max_new_tokens, name="sink",
                      **sampling)
    x = source.x_out
    for block in blocks:
        x.connect(block.x_in)
        x = block.x_out
    x.connect(final_norm.x_in)
    final_norm.sq_out.connect(fan_in.s_in)
    broadcast.a_out.connect(final_norm.r_in)
    final_norm.a_out.connect(lm_head.s_in)
    lm_head.a_out.connect(sink.logits_in)
    sink.token_out.connect(source.token_in)
    return source, blocks, sink


def first(var):
    """A one-element Var's initial value."""
    return np.asarray(var.init).reshape(-1)[0]


def tokens_of(sink, n: int) -> list[int]:
    return [int(t) for t in np.asarray(sink.tokens.get()).reshape(-1)[:n]]


# ------------------------------------------------------------------------------------ 1. one request
@pytest.mark.lava
@pytest.mark.timeout(300)
def test_a_request_is_one_thing_in_a_hand_wired_and_a_built_graph(nets):
    """The request in the constructors, the step count from the graph, plain RunSteps: the reference's tokens
    (sampled). A new request (greedy) set on the running graph at once: its tokens. build_graph's graph takes the
    same calls; a GraphRunner runs the hand-wired graph until the sink is done."""
    net = nets[0]
    V = net.cfg.vocab_size
    p1, n1, p2, n2 = prompt_for(0, 5, V), 4, prompt_for(1, 3, V), 3
    want1 = generate("reference", net, p1, n1, **SAMPLING).tokens
    want2 = generate("reference", net, p2, n2).tokens
    assert want1 != generate("reference", net, p1, n1).tokens  # the sampler is really in use

    source, blocks, sink = hand_wired(net, 10, p1, n1, **SAMPLING)
    graph = LavaGraph.of(source)
    assert graph.sink is sink and graph.blocks == blocks and graph.kind == "decomposed"  # LavaGraph.of's default
    assert graph.steps_needed(5, 4, run_cfg=FIXED) == 5 + 4 * 3 and graph.kind == "fused"  # the config's models
    try:
        source.run(condition=RunSteps(num_steps=graph.steps_needed(len(p1), n1, run_cfg=FIXED)), run_cfg=FIXED)
        assert int(sink.generated.get()[0]) == n1 and graph.tokens() == tokens_of(sink, n1) == want1
        assert all(type(t) is int for t in graph.tokens())
        graph.set_request(p2, n2, temperature=0.0)  # the runtime runs: Var.set on the source and the sink
        for block in blocks:
            block.h.set(np.zeros(net.cfg.hidden_size))  # a fresh conversation
        source.run(condition=RunSteps(num_steps=graph.steps_needed(len(p2), n2)), run_cfg=FIXED)
        assert int(sink.generated.get()[0]) == n2 and graph.tokens() == want2
        assert (np.asarray(sink.tokens.get())[n2:] == -1).all()  # none of the first request's 4 tokens stays
    finally:
        source.stop()

    built = build_graph(net, "fused", capacity=10)
    built.set_request(p1, n1, **SAMPLING)  # before the runtime: the initial values
    try:
        built.source.run(condition=RunSteps(num_steps=built.steps_needed(len(p1), n1)), run_cfg=FIXED)
        assert tokens_of(built.sink, n1) == want1
    finally:
        built.source.stop()

    source, _, _ = hand_wired(net, 10, **SAMPLING)
    with GraphRunner(LavaGraph.of(source), lava_run_config("sim-fused"), timeout=200) as runner:
        assert runner.graph.kind == "fused"  # from the run config, not from LavaGraph.of's default
        assert runner.generate(p1, n1).tokens == want1


@pytest.mark.lava
@pytest.mark.timeout(400)
def test_the_steps_follow_the_run_config_and_a_short_run_is_named(nets):
    """A graph built fused, run by hand with a config that selects the mixers: the steps counted for the build
    leave the sink short, and graph.tokens() says so (not a row of -1); counted with the config, the run ends with
    the reference's tokens; a config that would select other models after Lava compiled the graph is refused."""
    net = nets[1]
    prompt, n = prompt_for(4, 4, net.cfg.vocab_size), 3
    want = generate("reference", net, prompt, n).tokens
    graph = build_graph(net, "fused", capacity=8)
    graph.set_request(prompt, n)
    cfg = lava_run_config("sim-mixers")
    short = graph.steps_needed(len(prompt), n)  # the fused blocks' count: 1 step a token
    assert short == len(prompt) + n
    try:
        graph.source.run(condition=RunSteps(num_steps=short), run_cfg=cfg)
        assert np.asarray(graph.sink.tokens.get())[0] == -1  # what a plain read of the sink shows
        with pytest.raises(BackendError, match=r"chosen 0 of the request's 3 tokens: the steps were counted for "
                           r"fused block models \(1 step a token\), but Lava selected mixers ones \(21 steps"):
            graph.tokens()
        full = graph.steps_needed(len(prompt), n, run_cfg=cfg)
        assert graph.kind == "mixers" and full == len(prompt) + n * (3 * 6 + 3)
        graph.source.run(condition=RunSteps(num_steps=full - short), run_cfg=cfg)
        assert graph.tokens() == want
        with pytest.raises(BackendError, match="already compiled this graph with mixers ones"):
            graph.steps_needed(1, 1, run_cfg=FIXED)
    finally:
        graph.source.stop()


def test_a_run_config_of_the_other_precision_is_refused_before_compiling(nets):
    """floating_pt models for a graph built without the float model, and fixed-point ones for a float graph: one
    line each, before Lava compiles anything (they failed in every block's worker)."""
    net = nets[0]
    setup = build_evaluation("tiny", seed=0)
    with pytest.raises(BackendError, match="selects the floating_pt models, but the graph was built without the "
                                           "float model"):
        GraphRunner(build_graph(net, "fused", capacity=6), lava_run_config("sim-float"))
    source, _, _ = hand_wired(net, 6)
    with pytest.raises(BackendError, match="floating_pt models"):
        LavaGraph.of(source).steps_needed(2, 2, run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
    floating = build_graph(setup.net, "decomposed", capacity=6, float_model=setup.float_model)
    with pytest.raises(BackendError, match="selects the fixed-point models, but the graph was built for the float"):
        floating.follow(lava_run_config("sim"))
    assert floating.follow(lava_run_config("sim-float-decomposed")) is not None and floating.kind == "decomposed"


def test_a_graph_that_has_not_run_and_bad_step_counts_are_named(nets):
    graph = build_graph(nets[0], "fused", capacity=6)
    with pytest.raises(BackendError, match="the graph has not run yet"):
        graph.tokens()
    for args, name in (((0, 2), "prompt_len"), ((-3, 4), "prompt_len"), ((2, -1), "max_new_tokens"),
                       ((2.5, 1), "prompt_len"), ((2, True), "max_new_tokens")):
        with pytest.raises(ValueError, match=f"{name} must be an integer"):
            graph.steps_needed(*args)
    assert graph.steps_needed(2, 0) == 2


def test_the_float_backend_says_what_it_needs():
    setup = build_evaluation("tiny", seed=0)
    with pytest.raises(BackendError, match="the float backend runs the float model: pass float_model="):
        generate("float", setup.net, [5, 17, 99], 3)
    with pytest.raises(BackendError, match="activity is counted on .*not on float"):
        generate("float", setup.net, [5, 17, 99], 3, float_model=setup.float_model, activity=True)


def test_requests_are_checked_where_they_enter(nets):
    net = nets[0]
    with pytest.raises(ValueError, match="exceed the capacity of 4"):
        EmbeddingSource(embed=net.embed, capacity=4, prompt=[1, 2, 3], max_new_tokens=2)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        LmHeadSink(net=net, capacity=8, prompt=[net.cfg.vocab_size], max_new_tokens=1)
    graph = build_graph(net, "fused", capacity=6)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        graph.set_request([1, 2], 2, temperature=-1.0)
    graph.set_request([4, 5, 6], 2, top_k=7)
    assert list(graph.source.prompt.init[:3]) == [4, 5, 6] and first(graph.sink.prompt_len) == 3
    assert first(graph.sink.max_new_tokens) == 2 and first(graph.sink.top_k) == 7 and first(graph.sink.seed) == 0


# ------------------------------------------------------------------------------------ 2. the sink's scales
@pytest.mark.parametrize("seed", [0, 1])
def test_the_sink_reads_its_scales_from_the_network_and_refuses_a_mismatch(nets, seed):
    net = nets[seed]
    sink = LmHeadSink(net=net, capacity=4)
    assert first(sink.logit_scale) == net.logit_scale and first(sink.accumulator_bits) == net.fp.state_bits
    assert sink.proc_params["vocab_size"] == net.cfg.vocab_size
    other = nets[1 - seed].logit_scale
    assert other != net.logit_scale
    for wrong in (dict(logit_scale=other), dict(accumulator_bits=net.fp.state_bits - 8),
                  dict(vocab_size=net.cfg.vocab_size + 1)):
        with pytest.raises(ValueError, match="differs from the network's") as err:
            LmHeadSink(net=net, capacity=4, **wrong)
        assert "\n" not in str(err.value) and next(iter(wrong)) in str(err.value)
    with pytest.raises(ValueError, match="pass net="):
        LmHeadSink(vocab_size=net.cfg.vocab_size, capacity=4)  # the former defaults gave other tokens silently
    # a sink given scales by hand (no net) in a hand-wired graph: the graph checks them against its network
    source, _, _ = hand_wired(net, 6)
    good = LavaGraph.of(source)
    good.sink.logit_scale.init = np.array([other])
    with pytest.raises(BackendError, match="logit_scale .* differs from the network's") as err:
        LavaGraph.of(source)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------ 3. Dense: packed == Lava's
def dense_cases(rng, n_in: int) -> dict:
    """Weights of every kind Lava's bit-accurate Dense treats differently: name -> Dense keyword arguments."""
    def mixed(lo, hi, n_out):
        w = rng.integers(lo, hi + 1, (n_out, n_in))
        w[0, :2] = (lo, hi)  # both signs, odd and even
        return w

    tern = rng.integers(-1, 2, (23, n_in))
    return {
        "ternary W (odd)": dict(weights=tern, num_message_bits=8),
        "ternary 2W, exp -1": dict(weights=2 * tern, weight_exp=-1, num_message_bits=8),
        "mixed, clipped": dict(weights=mixed(-300, 300, 7), num_message_bits=8),
        "excitatory, exp 1": dict(weights=np.abs(mixed(-300, 300, 11)), weight_exp=1, num_message_bits=8),
        "inhibitory, exp -2": dict(weights=-np.abs(mixed(-255, 255, 5)), weight_exp=-2, num_message_bits=8),
        "6 weight bits": dict(weights=mixed(-256, 255, 13), num_weight_bits=6, num_message_bits=8),
        "sign mode given": dict(weights=np.abs(mixed(-120, 120, 3)), sign_mode=SignMode.MIXED, num_message_bits=8),
        "binary spikes": dict(weights=mixed(-256, 255, 9), weight_exp=-1, num_message_bits=0),
    }


def run_dense_cases(cases: dict, msgs: np.ndarray, run_cfg) -> dict:
    """One source feeding every case's Dense, each into its own sink: what arrives, [n_out, T] per case."""
    T = msgs.shape[1]
    source = Source(data=msgs)
    sinks = {}
    for name, kw in cases.items():
        dense = Dense(name=name, **kw)
        sinks[name] = Sink(shape=(kw["weights"].shape[0],), buffer=T + 1)
        source.s_out.connect(dense.s_in)
        dense.a_out.connect(sinks[name].a_in)
    try:
        source.run(condition=RunSteps(num_steps=T + 1), run_cfg=run_cfg)
        return {name: np.asarray(s.data.get())[:, 1:].astype(np.int64) for name, s in sinks.items()}
    finally:
        source.stop()


@pytest.mark.lava
@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed,n_in", [(0, 37), (1, 29), (2, 51)])
def test_the_packed_model_of_dense_is_lavas_bit_accurate_dense(seed, n_in):
    """Random weights, odd and even, of every sign mode, clipped, truncated by num_weight_bits, graded and binary
    messages from int8 to int32 wide (int32 sums that wrap): the packed model's messages are Lava's, bit for bit."""
    rng = np.random.default_rng(seed)
    msgs = np.hstack([rng.integers(-128, 128, (n_in, 2)), rng.integers(-30000, 30000, (n_in, 2)),
                      rng.integers(-(1 << 30), 1 << 30, (n_in, 1)), np.zeros((n_in, 1), dtype=np.int64)])
    cases = dense_cases(rng, n_in)
    lava = run_dense_cases(cases, msgs, FIXED)
    packed = run_dense_cases(cases, msgs, PACKED)  # the same weights: each run makes its own Dense processes
    for name in cases:
        np.testing.assert_array_equal(packed[name], lava[name], err_msg=name)
    # the cases really exercise what differs from a plain product: truncation, clipping and the int32 wrap
    naive = {name: kw["weights"].astype(np.int64) @ msgs for name, kw in cases.items()}
    assert not np.array_equal(lava["ternary W (odd)"], naive["ternary W (odd)"])
    np.testing.assert_array_equal(lava["ternary 2W, exp -1"][:, :4], naive["ternary 2W, exp -1"][:, :4] >> 1)
    assert not np.array_equal(lava["mixed, clipped"][:, :2], naive["mixed, clipped"][:, :2])
    assert np.abs(naive["mixed, clipped"][:, 4]).max() > np.iinfo(np.int32).max  # a sum beyond int32: wrapped


@pytest.mark.lava
@pytest.mark.timeout(180)
def test_the_packed_model_refuses_weights_it_cannot_hold():
    """Initial weights beyond int16 (Lava's model clips them to 8 bits; this model's weights Var is int16): one
    clear error instead of other sums."""
    w = np.array([[40000, 3], [1, 2]])
    source = Source(data=np.ones((2, 3), dtype=np.int64))
    dense = Dense(weights=w, num_message_bits=8, name="wide")
    sink = Sink(shape=(2,), buffer=3)
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(sink.a_in)
    try:
        with pytest.raises(LavaRunError, match=r"Dense wide: initial weights in \[1, 40000\] lie beyond the int16"):
            run_steps(source, PACKED, 3, timeout=120)
    finally:
        stop(source, failed=True)


def test_a_dense_whose_weights_lava_truncates_warns_when_connected(nets):
    net = nets[0]
    V, d = net.cfg.vocab_size, net.cfg.hidden_size
    W = connections._with_lane(net.lm_head.astype(np.int8), 1)  # the head as W, not 2W with weight_exp=-1
    sink = LmHeadSink(net=net, capacity=4, name="sink")
    with pytest.warns(TruncatedWeightsWarning, match=r"lm_head_W -> sink\.logits_in: .*odd weights lose their "
                                                     r"lowest bit.*store 2W with weight_exp=-1"):
        Dense(weights=W, num_message_bits=8, name="lm_head_W").a_out.connect(sink.logits_in)
    agg = build.norm(net, d, "x")[1]
    with pytest.warns(TruncatedWeightsWarning, match="clipped to"):
        Dense(weights=np.full((2, 9), 300), num_message_bits=24, name="big").a_out.connect(agg.sq_in)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncatedWeightsWarning)  # the project's own connections: nothing to say
        build_graph(net, "fused", capacity=4)
        Dense(weights=np.ones((2, 9)), num_message_bits=24, name="ones").a_out.connect(
            build.norm(net, 8, "y")[1].sq_in)
        Dense(weights=W, num_message_bits=8).a_out.connect(Sink(shape=(V + 1,), buffer=1).a_in)  # not ours


@pytest.mark.lava
@pytest.mark.timeout(300)
def test_an_odd_head_means_the_same_under_both_dense_models(nets):
    """The issue's head built with W: Lava's model truncates the lane synapse 1 to 0, so the sink never sees a
    token; the packed model now does the same (it gave the right text before: two meanings of one process)."""
    net = nets[1]
    W = connections._with_lane(net.lm_head.astype(np.int8), 1)
    prompt = prompt_for(2, 4, net.cfg.vocab_size)
    got = {}
    for name, cfg in (("lava", FIXED), ("packed", PACKED)):
        with pytest.warns(TruncatedWeightsWarning):
            source, _, sink = hand_wired(net, 7, prompt, 3, head_weights=W)
        graph = LavaGraph.of(source, kind="fused")
        try:
            source.run(condition=RunSteps(num_steps=graph.steps_needed(len(prompt), 3)), run_cfg=cfg)
            got[name] = (tokens_of(sink, 3), int(sink.generated.get()[0]), int(sink.seen.get()[0]))
        finally:
            source.stop()
    assert got["packed"] == got["lava"] == ([-1, -1, -1], 0, 0)


# ------------------------------------------------------------------------------------ 4. leaf counts
@pytest.mark.lava
@pytest.mark.timeout(600)
def test_run_result_counts_the_leaves_lava_built(nets):
    """A graph built fused, run with Lava's bit-accurate config that decomposes it, two probes: 3 x 22 + 7 + 2
    leaves (the count of the build kind said 6); every leaf's model is bit-accurate; tokens, step count and
    probes are the reference's (the probes read at the decomposed timing)."""
    net = nets[0]
    prompt = prompt_for(3, 3, net.cfg.vocab_size)
    probes = ("l1.h", "head.logits")
    ref = generate("reference", net, prompt, 2, probes=probes)
    graph = build_graph(net, "fused", capacity=5)
    assert graph.leaf_process_count() == 6
    cfg = Loihi2SimCfg(select_tag="bit_accurate_loihi", select_sub_proc_model=True)
    with GraphRunner(graph, cfg, timeout=500, probes=probes) as runner:
        res = runner.generate(prompt, 2, probes=probes)
        leaves = built_leaves(graph.source)
        assert all("bit_accurate_loihi" in p.model_class.tags for p in leaves), \
            sorted({p.model_class.__name__ for p in leaves if "bit_accurate_loihi" not in p.model_class.tags})
    assert graph.kind == "decomposed" and res.leaf_processes == 3 * 22 + 7 + len(probes) == len(leaves)
    assert not any(isinstance(p, MMFreeBlock) for p in leaves)
    assert res.tokens == ref.tokens and res.steps == len(prompt) + 2 * (3 * 12 + 3)
    for name in probes:
        np.testing.assert_array_equal(res.probes[name], ref.probes[name], err_msg=name)


# ------------------------------------------------------------------------------------ 5. run configs


NC_MODULES = [f"lava_matmulfree.processes.{n}.ncmodels" for n in ("residual", "mlgru", "glu", "rms_aggregator",
                                                                   "final_norm")]


def test_a_hardware_config_that_selects_a_mixed_graph_is_refused(nets, monkeypatch):
    """Plain Loihi2HwCfg() (fused Python blocks, Lava's float Dense next to integer neurons), a fixed_pt config
    without sub-models, a bit_accurate_loihi one (Python neurons where NC models exist): one line naming the
    project's config, before anything is compiled. loihi2_run_config() passes."""
    graph = build_graph(nets[0], "fused", capacity=4)
    stub_lava_loihi(monkeypatch)
    try:
        for m in NC_MODULES:
            assert importlib.reload(importlib.import_module(m)).NC_AVAILABLE
        refused = {Loihi2HwCfg(): ("fused Python models for block0",),
                   Loihi2HwCfg(select_tag="fixed_pt"): ("fused Python models for block0",),
                   Loihi2HwCfg(select_tag="bit_accurate_loihi", select_sub_proc_model=True):
                       ("Python models for final_norm, head_aggregator where their NC models exist",),
                   Loihi2HwCfg(select_tag="fixed_pt", select_sub_proc_model=True,
                               exception_proc_model_map={MMFreeBlock: PyFusedBlockFixed}):
                       ("exception map that puts MMFreeBlock on Python models",)}
        for cfg, words in refused.items():
            with pytest.raises(BackendError, match=r"selects a mixed graph: .*loihi2_run_config\(\)$") as err:
                GraphRunner(graph, cfg)
            assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), str(err.value)
        assert not graph.source.is_compiled  # refused before Lava compiled anything: the graph stays usable
        check_run_config(graph.source, loihi2_run_config())
        with pytest.raises(BackendError, match="the layer stack layer_stack .*loihi2_run_config"):
            check_run_config(build_graph(nets[0], "stack", capacity=4).source, loihi2_run_config())
        assert GraphRunner(graph, loihi2_run_config()).graph.kind == "decomposed"
    finally:
        monkeypatch.undo()
        for m in NC_MODULES:  # fresh modules: a reload would keep the NC classes defined under the stub
            sys.modules.pop(m, None)
            assert not importlib.import_module(m).NC_AVAILABLE
    with pytest.raises(BackendError, match="selects a mixed graph: floating_pt models for head_broadcast"):
        GraphRunner(graph, Loihi2SimCfg(select_sub_proc_model=True))  # Lava's float Dense in the decomposed head
    assert GraphRunner(graph, Loihi2SimCfg()).graph.kind == "fused"  # fused models only: every one fixed_pt
    with pytest.raises(BackendError, match="needs Intel's lava-loihi, which is not installed") as err:
        GraphRunner(graph, Loihi2HwCfg())  # without lava-loihi Lava's own selection fails with a NameError
    assert "\n" not in str(err.value) and not graph.source.is_compiled
    # the refusal names the config as written, its exception map too; a stream graph's tap needs its model named
    with pytest.raises(BackendError, match=r"exception_proc_model_map=\{Dense: PyDenseModelFloat\}\) selects a mixed"):
        GraphRunner(graph, Loihi2SimCfg(select_tag="fixed_pt", select_sub_proc_model=True,
                                        exception_proc_model_map={Dense: PyDenseModelFloat}))
    with pytest.raises(BackendError, match=r"\(Extractor\): .*\{Extractor: PyLoihiExtractorModel\}.*stream=False"):
        GraphRunner(build_graph(nets[0], "fused", capacity=4, stream=True), Loihi2SimCfg(select_tag="fixed_pt"))


# ------------------------------------------------------------------------------------ 6. Monitor rows per token
@pytest.mark.lava
@pytest.mark.timeout(300)
def test_monitor_rows_per_token(nets):
    """A Monitor records a Var every step; with a Monitor of the source's output (its lane marks the tokens) and
    the probe latency, graph.token_rows (and the documented one-liner) give one row per token: the golden records.
    Blocks with fused mixers: h is 2 steps after x enters a block, 6 per layer."""
    net = nets[1]
    prompt, n = prompt_for(4, 4, net.cfg.vocab_size), 3
    ref = generate("reference", net, prompt, n, probes=("l1.h", "head.inv_rms"))
    graph = build_graph(net, "mixers", capacity=len(prompt) + n)
    graph.set_request(prompt, n)
    steps = graph.steps_needed(len(prompt), n)
    lane, h, inv_rms = Monitor(), Monitor(), Monitor()
    lane.probe(graph.source.x_out, steps)
    h.probe(graph.blocks[1].h, steps)
    inv_rms.probe(graph.head.inv_rms, steps)  # the head aggregator's Var, through the LmHead's alias
    try:
        graph.source.run(condition=RunSteps(num_steps=steps), run_cfg=lava_run_config("sim-mixers"))
        lanes = lane.get_data()["embedding"]["x_out"]
        h_rows = h.get_data()[graph.blocks[1].name]["h"]
        r_rows = inv_rms.get_data()[graph.head.name]["inv_rms"]
    finally:
        graph.source.stop()
    assert lanes.shape == (steps, net.cfg.hidden_size + 1) and lanes[:, -1].sum() == len(prompt) + n - 1
    got = graph.token_rows("l1.h", h_rows, lanes)
    np.testing.assert_array_equal(np.rint(got).astype(np.int64), ref.probes["l1.h"])
    latency = graph.probe_target("l1.h")[2]
    assert latency == 6 + 2
    np.testing.assert_array_equal(h_rows[np.flatnonzero(lanes[:, -1]) + latency], got)  # the one-liner
    np.testing.assert_array_equal(np.rint(token_rows(r_rows, lanes[:, -1], graph.probe_target("head.inv_rms")[2])),
                                  ref.probes["head.inv_rms"])
    assert not np.array_equal(token_rows(h_rows, lanes, latency - 1), got)  # the latency matters
