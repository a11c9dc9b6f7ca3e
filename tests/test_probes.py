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
