"""Probes of any documented name (docs/graph.md, "Streaming, sessions and probes"): Vars of leaves inside
hierarchical blocks (through their aliases), OutPorts of any process (the messages that carry a token), recorded
once per token by probe processes, equal to the golden model's records. Every test that starts a Lava runtime has
a hard timeout."""
from __future__ import annotations

import numpy as np
import pytest

from lava_matmulfree.evaluation.accuracy import build_evaluation
from lava_matmulfree.graph.backends import dequantise_probes, generate

#: Vars of leaves (aggregators' inverse RMS and sums, MLGRU h, GLU y, residual x and r) and ports (a block's output,
#: the final norm's spikes, the LM head's logits, the embedding source's output).
PROBES = ("l0.h", "l1.attn_inv_rms", "l1.gate_inv_rms", "l2.mlp_inv_rms", "l2.down_inv_rms", "l0.down_sum_sq",
          "l1.y", "l2.r", "head.x", "head.sum_sq", "head.inv_rms", "head.spikes", "head.logits", "l1.x_out",
          "l2.x_out", "embedding.x_out")


@pytest.fixture(scope="module")
def net():
    return build_evaluation("tiny", seed=2).net


@pytest.mark.lava
@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", ["sim-fused", pytest.param("sim", marks=pytest.mark.slow)])
def test_probes_of_leaves_and_ports_equal_the_golden_records(net, backend):
    prompt = [7, 200, 13, 99, 4]
    ref = generate("reference", net, prompt, 4, probes=PROBES)
    lava = generate(backend, net, prompt, 4, probes=PROBES)
    assert lava.tokens == ref.tokens
    for name in PROBES:
        assert lava.probes[name].shape[0] == len(prompt) + 4 - 1, name  # one row per token that entered
        np.testing.assert_array_equal(lava.probes[name], ref.probes[name], err_msg=name)
    np.testing.assert_array_equal(lava.probes["head.logits"], ref.logits)
    real = dequantise_probes(net, {"l1.gate_inv_rms": lava.probes["l1.gate_inv_rms"],
                                   "head.logits": lava.probes["head.logits"]})
    S = lava.probes["head.sum_sq"].astype(float) * 2.0 ** -(2 * net.head.u_frac)
    r = dequantise_probes(net, {"head.inv_rms": lava.probes["head.inv_rms"]})["head.inv_rms"]
    np.testing.assert_allclose(r, 1 / np.sqrt(S) * 2.0 ** -net.head.u_frac, rtol=1e-3)  # r ~ 1/sqrt(S) in its units
    assert np.all(real["l1.gate_inv_rms"] > 0)


def test_unknown_probe_names_list_the_known_ones(net):
    from lava_matmulfree.graph.builder import build_graph

    g = build_graph(net, "fused", capacity=3)
    with pytest.raises(ValueError, match=r"head\.inv_rms.*embedding\.x_out"):
        g.probe_target("head.nope")
    assert g.probe_target("l0.x_out")[0] == "port" and g.probe_target("l0.h")[0] == "var"


def test_every_block_kind_times_every_probe_its_block_declares():
    """A Var added to a block's probes (BLOCK_VARS) but not to one kind's timing was a KeyError at probe time on
    that kind's backend only."""
    from lava_matmulfree.graph.builder import BLOCK_TIMING, GRAPH_KIND
    from lava_matmulfree.processes.block.process import BLOCK_VARS
    from lava_matmulfree.processes.layer_stack.process import STACK_VARS

    assert set(BLOCK_TIMING) == set(GRAPH_KIND.values())
    for kind, (_, offsets) in BLOCK_TIMING.items():
        assert set(offsets) == set(STACK_VARS if kind == "stack" else BLOCK_VARS), kind
def test_the_reference_and_the_probe_command_refuse_a_name_before_running(net, monkeypatch, capsys):
    """The reference backend generated every token and then said "unknown probe 'l0.nope'" with no list; `probe
    --backend sim-stack --vars l0.y` passed the command's own check (a fused block's names) and failed in the
    builder. One check, before the run, naming what the graph records."""
    from lava_matmulfree.cli import main
    from lava_matmulfree.model import golden_fast

    monkeypatch.setattr(golden_fast.FastGoldenModel, "prefill", lambda *a: pytest.fail("ran before the check"))
    with pytest.raises(ValueError, match=r"unknown probe 'l0\.nope' \(known: l<layer>\.x, .*head\.logits"):
        generate("reference", net, [7, 200], 3, probes=["l0.h", "l0.nope"])
    with pytest.raises(SystemExit):
        main(["probe", "--config", "tiny", "--backend", "sim-stack", "--vars", "l0.h,l0.y", "--out", "p"])
    err = capsys.readouterr().err
    assert "--vars: unknown probe 'l0.y' (known: l<layer>.x, l<layer>.r, l<layer>.h, head.x" in err, err


@pytest.mark.lava
@pytest.mark.timeout(600)
def test_runner_probes_and_block_vars_between_runs_do_not_depend_on_the_models(net):
    """A GraphRunner's own probes come back without being named again (they came back as {}); after a run a block's
    probe Vars hold the last token's values whichever models ran it (the decomposed ones read 0 before: each neuron
    wrote them in every step, also the steps with no token for them)."""
    from lava.magma.core.run_configs import Loihi2SimCfg

    from lava_matmulfree.graph.builder import build_graph
    from lava_matmulfree.graph.runner import GraphRunner

    prompt = [7, 200, 13]
    names = ("l0.h", "l1.attn_inv_rms")
    ref = generate("reference", net, prompt, 2, probes=names)
    after = {}
    for kind, cfg in (("fused", Loihi2SimCfg(select_tag="fixed_pt")),
                      ("decomposed", Loihi2SimCfg(select_tag="fixed_pt", select_sub_proc_model=True))):
        graph = build_graph(net, "fused", capacity=8)
        with GraphRunner(graph, cfg, timeout=500, probes=names) as runner:
            res = runner.generate(prompt, 2)
            assert graph.kind == kind and set(res.probes) == set(names)
            for name in names:
                np.testing.assert_array_equal(res.probes[name], ref.probes[name], err_msg=f"{kind} {name}")
            after[kind] = {v: np.asarray(getattr(graph.blocks[1], v).get()) for v in ("attn_inv_rms", "y", "x")}
    for v, value in after["fused"].items():
        assert value.any(), v
        np.testing.assert_array_equal(after["decomposed"][v], value, err_msg=v)


@pytest.mark.lava
@pytest.mark.timeout(300)
def test_a_run_config_that_maps_one_block_alone_is_refused_before_the_run(net):
    """exception_proc_model_map keyed by one block (an instance, which Lava's compiler honours) decomposed that block
    alone: the graph ran at the fused timing and its probes came back shifted, without a word."""
    from lava.magma.core.run_configs import Loihi2SimCfg

    from lava_matmulfree.errors import BackendError
    from lava_matmulfree.graph.builder import build_graph
    from lava_matmulfree.graph.runner import GraphRunner
    from lava_matmulfree.processes.block.models import SubBlockModel

    for which in (0, 1):
        graph = build_graph(net, "fused", capacity=8)
        cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={graph.blocks[which]: SubBlockModel})
        with pytest.raises(BackendError, match="different models for the blocks"):
            GraphRunner(graph, cfg, timeout=200)
        assert graph.source.runtime is None  # refused before any runtime was made
    graph = build_graph(net, "fused", capacity=8)  # every block alike by its class: fused mixers inside
    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={type(graph.blocks[0]): SubBlockModel})
    ref = generate("reference", net, [7, 200, 13], 2, probes=("l1.h",))
    with GraphRunner(graph, cfg, timeout=500, probes=("l1.h",)) as runner:
        res = runner.generate([7, 200, 13], 2)
    assert graph.kind == "mixers" and res.tokens == ref.tokens
    np.testing.assert_array_equal(res.probes["l1.h"], ref.probes["l1.h"])
