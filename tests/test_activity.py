"""Activity counters (docs/graph.md, "Activity counters"): the golden model's counts by hand on small cases and
against the structure of the model, and the Lava graphs' counts (fused and decomposed blocks) equal to the golden
model's on random prompts, several seeds; fused mixers and the layer stack too, and a Session's requests."""
from __future__ import annotations

import numpy as np
import pytest

from lava_matmulfree.evaluation.accuracy import build_evaluation
from lava_matmulfree.model.activity import ActivityRecorder, layer_connections, layer_groups
from lava_matmulfree.model.golden import GoldenModel
from lava_matmulfree.model.golden_fast import FastGoldenModel


@pytest.fixture(scope="module")
def net():
    return build_evaluation("tiny", seed=0).net


def golden_counts(net, tokens, fast=False):
    g = (FastGoldenModel if fast else GoldenModel)(net)
    g.activity = ActivityRecorder()
    logits, _ = g.prefill(tokens)
    return g.activity, logits


def test_connection_counts_by_hand():
    rec = ActivityRecorder()
    a = np.array([[0, 3, -1], [2, 0, 0]])
    w = np.array([[1, 0, -1], [0, 0, 1]])  # columns hold 1, 0, 2 non-zero weights
    rec.connection("c", a, w, 8)
    # token 0: spikes on inputs 1 (no synapse) and 2 (two synapses); token 1: input 0 (one synapse)
    assert rec.connections["c"] == {"messages": 6, "spikes": 3, "bits": 24, "synops": 3}
    assert rec.weights["c"] == (6, 3)
    rec.neuron("n", 5, 2, rounds=1)
    rec.neuron("n", 5, 2)
    assert rec.neurons["n"] == {"updates": 20, "rounds": 2}


def test_vector_round_trip():
    rec = ActivityRecorder()
    rec.connection("l0.i", np.array([[1, 0]]), np.array([[1, 1]]), 8)
    rec.neuron("l0.glu", 3, 1, rounds=1)
    v = rec.vector(layer_connections(0), layer_groups(0))
    back = ActivityRecorder()
    back.add_vector(v, layer_connections(0), layer_groups(0))
    assert back.connections["l0.i"] == rec.connections["l0.i"]
    assert back.neurons["l0.glu"] == rec.neurons["l0.glu"]
    assert back.connections["l0.o"] == {"messages": 0, "spikes": 0, "bits": 0, "synops": 0}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_golden_counts_match_the_recorded_spikes(net, seed):
    cfg, fp = net.cfg, net.fp
    d, n_i, T = cfg.hidden_size, cfg.intermediate_size, 6
    tokens = np.random.default_rng(seed).integers(0, cfg.vocab_size, T)
    g = GoldenModel(net)
    g.activity, g.probes = ActivityRecorder(), {}
    g.prefill(tokens)
    act = g.activity
    for l, q in enumerate(net.layers):
        for p, w, stage, consumer in (("i", q.i.w, "attn", "i"), ("o", q.o.w, "gate", "o"),
                                      ("gate", q.gate_w, "mlp", "gate"), ("down", q.down.w, "down", "down")):
            a = g.probes[f"l{l}.{stage}.{consumer}.spikes"][0]
            synops = sum(np.count_nonzero(w[:, row != 0]) for row in a)  # synapses of the non-zero inputs
            c = act.connections[f"l{l}.{p}"]
            assert c["messages"] == a.size == T * w.shape[1]
            assert c["spikes"] == np.count_nonzero(a)
            assert c["bits"] == fp.act_bits * np.count_nonzero(a)
            assert c["synops"] == synops
        assert act.connections[f"l{l}.attn.broadcast"]["synops"] == T * d
        assert act.connections[f"l{l}.down.broadcast"]["synops"] == T * n_i
        assert act.neurons[f"l{l}.residual"] == {"updates": 5 * d * T, "rounds": 2 * T}
        assert act.neurons[f"l{l}.mlgru"] == {"updates": 2 * d * T, "rounds": T}
        assert act.neurons[f"l{l}.glu"] == {"updates": 2 * n_i * T, "rounds": T}
        assert act.neurons[f"l{l}.rms_aggregator"] == {"updates": 4 * T, "rounds": 4 * T}
    assert act.neurons["head.final_norm"] == {"updates": 2 * d * T, "rounds": T}
    assert act.connections["head.lm_head"]["messages"] == T * d


def test_counting_changes_no_integer_and_fast_counts_the_same(net):
    tokens = np.random.default_rng(5).integers(0, net.cfg.vocab_size, 9)
    plain, _ = GoldenModel(net).prefill(tokens)
    rec, logits = golden_counts(net, tokens)
    rec_fast, logits_fast = golden_counts(net, tokens, fast=True)
    np.testing.assert_array_equal(plain, logits)
    np.testing.assert_array_equal(plain, logits_fast)
    assert rec.counts() == rec_fast.counts()
    # token by token adds up to the whole prefill (the counts are per token)
    g = GoldenModel(net)
    g.activity = ActivityRecorder()
    state = None
    for t in tokens:
        _, state = g.step(int(t), state)
    assert g.activity.counts() == rec.counts()


def lava_counts(net, backend, prompt, n_new, explicit_config=False):
    from lava_matmulfree.graph.activity import count_activity, counting_run_config, read_activity
    from lava_matmulfree.graph.backends import GRAPH_KIND, lava_run_config
    from lava_matmulfree.graph.builder import build_graph
    from lava_matmulfree.graph.runner import GraphRunner

    graph = build_graph(net, GRAPH_KIND[backend], capacity=32)
    count_activity(graph)
    run_cfg = lava_run_config(backend)  # the runner makes it select the counting models
    with GraphRunner(graph, counting_run_config(run_cfg) if explicit_config else run_cfg) as runner:
        res = runner.generate(prompt, n_new)
        return read_activity(graph), list(res.tokens)


@pytest.mark.lava
@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend,seed", [("sim-fused", 0), ("sim-fused", 1), ("sim-fused", 2), ("sim", 0), ("sim", 1),
                                          ("sim-mixers", 0), ("sim-mixers", 1), ("sim-stack", 0), ("sim-stack", 1)])
def test_lava_counts_equal_golden(net, backend, seed):
    prompt = np.random.default_rng(200 + seed).integers(0, net.cfg.vocab_size, 5).tolist()
    lava, generated = lava_counts(net, backend, prompt, 3, explicit_config=seed == 0)
    # every token but the last generated one entered the graph
    gold, _ = golden_counts(net, prompt + generated[:-1])
    assert lava.counts()["connections"]  # something was counted
    assert lava.counts() == gold.counts()


@pytest.mark.lava
@pytest.mark.timeout(120)
def test_counting_is_off_by_default_and_refused_where_not_counted(net):
    from lava_matmulfree.errors import BackendError
    from lava_matmulfree.graph.activity import count_activity
    from lava_matmulfree.graph.builder import build_graph

    graph = build_graph(net, "fused", capacity=8)
    assert not any(hasattr(p, "activity") for p in graph.blocks + [graph.head])
    stack = build_graph(net, "stack", capacity=8)
    assert not hasattr(stack.stack, "activity")
    stack.floating = True  # as a float graph (sim-float*) is: not counted
    with pytest.raises(BackendError, match="sim-mixers, sim-stack"):
        count_activity(stack)


# ------------------------------------------------------------------------------------ lava-matmulfree profile
CONNECTION_KEYS = {"density", "spikes_per_token", "bits_per_token", "synops_per_token", "inputs",
                   "weight_nonzero_fraction"}
NAMES = {"i_proj", "f_proj", "g_proj", "o_proj", "gate_proj", "down_proj"}


def test_profile_command_on_a_prompt(tmp_path, capsys):
    import json

    from lava_matmulfree.cli import main
    from lava_matmulfree.io.tokenizer import ByteTokenizer

    text = "def f(x):\n    return x + 1"
    out = tmp_path / "p"
    assert main(["profile", "--config", "tiny", "--prompt", text, "--tokens", "12", "--out", str(out)]) == 0
    prof = json.loads((tmp_path / "p.json").read_text())
    assert (tmp_path / "p.png").stat().st_size > 0
    assert set(prof) == {"format", "model", "source", "tokens", "act_bits", "connections", "layers", "head"}
    assert prof["format"] == "lava-matmulfree activity profile 1"
    assert prof["tokens"] == 12 and "--prompt" in prof["source"] and prof["act_bits"] == 8
    assert set(prof["connections"]) == NAMES
    assert [layer["layer"] for layer in prof["layers"]] == [0, 1, 2]
    assert set(prof["head"]["connections"]) == {"lm_head"}
    for layer in prof["layers"]:
        assert set(layer["connections"]) == NAMES
        assert set(layer["neurons"]) == {"mlgru", "glu", "residual", "rms_aggregator"}
        for c in layer["connections"].values():
            assert set(c) == CONNECTION_KEYS
    # the same tokens through the golden model, counted here from its recorded spikes
    net = build_evaluation("tiny", seed=0).net
    tokens = ByteTokenizer().encode(text, add_bos=True)[:12]
    g = GoldenModel(net)
    g.probes = {}
    g.prefill(tokens)
    for l in range(3):
        a = g.probes[f"l{l}.down.down.spikes"][0]
        c = prof["layers"][l]["connections"]["down_proj"]
        assert c["density"] == pytest.approx(np.count_nonzero(a) / a.size)
        assert c["spikes_per_token"] == pytest.approx(np.count_nonzero(a) / 12)
        assert c["inputs"] == net.cfg.intermediate_size
        w = np.asarray(net.layers[l].down.w)
        assert c["weight_nonzero_fraction"] == pytest.approx(np.count_nonzero(w) / w.size)
    mean_i = np.mean([layer["connections"]["i_proj"]["density"] for layer in prof["layers"]])
    assert prof["connections"]["i_proj"]["density"] == pytest.approx(mean_i)
    captured = capsys.readouterr()
    assert "down_proj" in captured.out and "measured 12 tokens" in captured.err


def test_profile_command_on_a_file_and_errors(tmp_path, capsys):
    import json

    from lava_matmulfree.cli import main

    f = tmp_path / "t.txt"
    f.write_text("abc", encoding="utf-8")
    assert main(["profile", "--config", "tiny", "--text", str(f), "--out", str(tmp_path / "q"), "--no-plot"]) == 0
    prof = json.loads((tmp_path / "q.json").read_text())
    assert prof["tokens"] == 4 and str(f) in prof["source"]  # <s> a b c: fewer than --tokens
    assert not (tmp_path / "q.png").exists()
    capsys.readouterr()
    for bad in (["--text", str(tmp_path / "missing.txt")], ["--tokens", "0"]):
        with pytest.raises(SystemExit) as e:
            main(["profile", "--config", "tiny", *bad, "--out", str(tmp_path / "r")])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "error:" in err and "calibrate" not in err  # refused before the model is built
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("model", ["demo", "deep"])
def test_shipped_profiles_are_the_measured_ones(tmp_path, model):
    import json

    from lava_matmulfree.cli import main
    from lava_matmulfree.io.packaged import packaged_model

    shipped = packaged_model(model) / "activity.json"
    if not (packaged_model(model) / "compiled.safetensors").exists():
        pytest.skip(f"the {model} model is not installed")
    assert main(["profile", "--model", model, "--no-plot", "--out", str(tmp_path / "m")]) == 0
    fresh = json.loads((tmp_path / "m.json").read_text())
    assert json.loads(shipped.read_text()) == fresh
    assert fresh["tokens"] == 256 and "validation split" in fresh["source"]


@pytest.mark.lava
@pytest.mark.timeout(240)
def test_generate_counts_on_reference_and_lava(net):
    from lava_matmulfree.errors import BackendError
    from lava_matmulfree.graph.backends import generate

    prompt = np.random.default_rng(7).integers(0, net.cfg.vocab_size, 4).tolist()
    ref = generate("reference", net, prompt, 4, activity=True)
    fused = generate("sim-fused", net, prompt, 4, activity=True)
    assert fused.tokens == ref.tokens
    assert fused.activity.counts() == ref.activity.counts()
    assert ref.activity.connections["l0.i"]["messages"] == (4 + 4 - 1) * net.cfg.hidden_size
    assert generate("sim-fused", net, prompt, 2).activity is None  # off by default
    with pytest.raises(BackendError, match="activity"):
        generate("sim-float", net, prompt, 2, activity=True)


@pytest.mark.lava
@pytest.mark.timeout(240)
def test_a_session_returns_each_requests_counts(net):
    """Session(activity=True): each answer counts the tokens its request put into the graph (prompt and every new
    token but the last), equal to the golden model's from the state the request started from."""
    from lava_matmulfree.errors import BackendError
    from lava_matmulfree.graph.session import Session

    p1, p2 = [5, 17, 99, 3], [42, 8, 250]
    with Session("sim-stack", net, capacity=8, activity=True) as chat:
        a1, a2, a3 = chat.ask(p1, 3), chat.ask(p2, 2), chat.ask(p2, 2, reset=True)
    g = GoldenModel(net)
    expected, state = [], None
    for a, reset in ((a1, True), (a2, False), (a3, True)):
        g.activity = ActivityRecorder()
        _, state = g.prefill(a.prompt + a.tokens[:-1], None if reset else state)
        expected.append(g.activity.counts())
    assert [a.activity.counts() for a in (a1, a2, a3)] == expected
    with Session("sim-stack", net, capacity=4) as chat:
        assert chat.ask([1, 2], 1).activity is None  # off by default
    with pytest.raises(BackendError, match="activity"):
        Session("sim-float", net, capacity=4, activity=True)
