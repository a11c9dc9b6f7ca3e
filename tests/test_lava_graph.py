"""The Lava process graph against the golden model: identical integers on every backend, probes labelled
per token, the runtime always stopped. Every test that starts a Lava runtime has a hard timeout."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from lava_matmulfree.evaluation.accuracy import build_evaluation
from lava_matmulfree.graph.backends import generate
from lava_matmulfree.errors import BackendError
from lava_matmulfree.model.float_model import silu
from lava_matmulfree.graph.builder import build_graph
from lava_matmulfree.graph.runner import LavaRunError, run_graph

PROBES = ("l0.h", "l1.h", "l2.h", "l0.x", "l2.r", "l1.y", "l1.attn_sum_sq", "l2.down_sum_sq", "head.x")
N_PROMPT, N_NEW = 8, 8


@pytest.fixture(scope="module")
def nets():
    return {seed: build_evaluation("tiny", seed=seed).net for seed in (0, 1, 2)}


def prompt_for(seed, vocab):
    return np.random.default_rng(100 + seed).integers(0, vocab, N_PROMPT).tolist()


def assert_same(a, b):
    assert a.tokens == b.tokens
    assert a.logits.shape == (N_PROMPT + N_NEW - 1, a.logits.shape[1])
    np.testing.assert_array_equal(a.logits, b.logits)
    for p in PROBES:
        assert a.probes[p].shape[0] == N_PROMPT + N_NEW - 1, p
        np.testing.assert_array_equal(a.probes[p], b.probes[p], err_msg=p)


def child_pids():
    """Live children of this test process, except multiprocessing's resource tracker (one per interpreter,
    it exits with it; it is not a Lava process)."""
    me = str(os.getpid())
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me and fields[0] != "Z":
                try:
                    cmd = (d / "cmdline").read_bytes()
                except OSError:
                    continue
                if b"resource_tracker" not in cmd:
                    out.append(int(d.name))
    return out


# ------------------------------------------------------------------------------------ equality
@pytest.mark.lava
@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sim_fused_equals_reference(nets, seed):
    net = nets[seed]
    prompt = prompt_for(seed, net.cfg.vocab_size)
    ref = generate("reference", net, prompt, N_NEW, probes=PROBES)
    fused = generate("sim-fused", net, prompt, N_NEW, probes=PROBES)
    assert_same(fused, ref)
    assert fused.steps_per_layer == 0  # every block in the step x arrives
    assert fused.steps == N_PROMPT + N_NEW * 1  # prefill back to back, then 1 hop (the fused head) per new token
    assert fused.leaf_processes == 2 + net.cfg.num_layers + 1 + len(PROBES)  # source, sink, blocks, head
    for l in range(net.cfg.num_layers):  # the state after the run, read back from the Vars
        np.testing.assert_array_equal(fused.final_state[f"l{l}.h"], ref.final_state[f"l{l}.h"])
    np.testing.assert_array_equal(fused.final_state["l0.h"], fused.probes["l0.h"][-1])


@pytest.mark.lava
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_sim_decomposed_equals_reference(nets, seed):
    net = nets[seed]
    prompt = prompt_for(seed, net.cfg.vocab_size)
    ref = generate("reference", net, prompt, N_NEW, probes=PROBES)
    sim = generate("sim", net, prompt, N_NEW, probes=PROBES)
    assert_same(sim, ref)
    assert sim.steps_per_layer == 12  # one step per connection a token crosses
    assert sim.leaf_processes == 2 + net.cfg.num_layers * 22 + 5 + len(PROBES)  # the leaves Lava built, probes too


@pytest.mark.lava
@pytest.mark.timeout(600)
def test_sim_mixers_equals_reference(nets):
    """Blocks decomposed, token and channel mixers fused: the hierarchical mixers' two models agree."""
    net = nets[2]
    prompt = prompt_for(2, net.cfg.vocab_size)
    ref = generate("reference", net, prompt, N_NEW, probes=PROBES)
    mixers = generate("sim-mixers", net, prompt, N_NEW, probes=PROBES)
    assert_same(mixers, ref)
    assert mixers.steps_per_layer == 6  # the fused mixers answer after one step: the residual's queues absorb it
    assert mixers.leaf_processes == 2 + net.cfg.num_layers * 9 + 5 + len(PROBES)


@pytest.mark.lava
@pytest.mark.timeout(240)
def test_sampling_is_identical_across_backends(nets):
    net = nets[1]
    prompt = prompt_for(1, net.cfg.vocab_size)
    kw = dict(temperature=1.3, top_k=30, seed=11)
    ref = generate("reference", net, prompt, N_NEW, **kw)
    fused = generate("sim-fused", net, prompt, N_NEW, **kw)
    greedy = generate("reference", net, prompt, N_NEW)
    assert fused.tokens == ref.tokens
    assert ref.tokens != greedy.tokens  # the sampler is really in use at this temperature


@pytest.mark.lava
@pytest.mark.timeout(240)
def test_h_persists_between_tokens_and_probes_are_per_token(nets):
    net = nets[0]
    prompt = prompt_for(0, net.cfg.vocab_size)
    res = generate("sim-fused", net, prompt, N_NEW, probes=("l0.h",))
    h = res.probes["l0.h"]
    assert h.dtype.kind == "i" and h.shape == (N_PROMPT + N_NEW - 1, net.cfg.hidden_size)
    assert np.all(np.any(h[1:] != h[:-1], axis=1))  # a new state every token
    # h after token k equals the golden recurrence continued from the state after token k-1
    from lava_matmulfree.model.golden import GoldenModel

    g = GoldenModel(net)
    _, st = g.prefill(prompt[:4])
    np.testing.assert_array_equal(st.h[0], h[3])


# ------------------------------------------------------------------------------------ errors and lifecycle
def test_loihi2_without_lava_loihi_is_one_clear_error(nets):
    from lava.utils.loihi import is_installed

    assert not is_installed()
    with pytest.raises(BackendError, match="lava-loihi"):
        generate("loihi2", nets[0], [1, 2, 3], 2)
    assert child_pids() == []


@pytest.mark.lava
@pytest.mark.timeout(300)
def test_a_graph_runs_with_any_block_model(nets):
    """No process knows a timetable: the graph built for fused blocks runs with the decomposed models (the run
    config decides) and still gives the golden tokens and logits."""
    from lava_matmulfree.graph.backends import lava_run_config

    net = nets[0]
    prompt = [1, 2, 3]
    ref = generate("reference", net, prompt, 2)
    g = build_graph(net, "fused", capacity=5)
    res = run_graph(g, lava_run_config("sim-mixers"), prompt, 2, timeout=120)
    assert res.tokens == ref.tokens
    np.testing.assert_array_equal(res.logits, ref.logits)
    # counted and timed as Lava built it (the run config's models), not as the graph was built
    assert g.kind == "mixers" and res.leaf_processes == 2 + 3 * 9 + 5 and res.steps == 3 + 2 * (3 * 6 + 3)
    assert child_pids() == []


def test_unknown_probe_name(nets):
    g = build_graph(nets[0], "fused", capacity=4)
    with pytest.raises(ValueError, match="unknown probe 'l9.h'"):
        g.probe_target("l9.h")
    with pytest.raises(ValueError, match="unknown probe"):
        g.probe_target("l0.nope")


@pytest.mark.lava
@pytest.mark.timeout(180)
def test_model_error_raises_and_leaves_no_child(nets, monkeypatch):
    from lava_matmulfree.processes.block import models as block_models

    orig = block_models.PyFusedBlockFixed.run_spk

    def failing(self):
        if self.time_step == 2 and self.l == 1:
            raise ArithmeticError("injected failure")
        orig(self)

    monkeypatch.setattr(block_models.PyFusedBlockFixed, "run_spk", failing)  # the forked children inherit it
    g = build_graph(nets[0], "fused", capacity=6)
    with pytest.raises(LavaRunError, match="injected failure"):
        run_graph(g, __import__("lava_matmulfree.graph.backends").graph.backends.lava_run_config("sim-fused"), [1, 2, 3], 3,
                  timeout=60)
    deadline = time.time() + 10
    while child_pids() and time.time() < deadline:
        time.sleep(0.2)
    assert child_pids() == []


@pytest.mark.lava
@pytest.mark.timeout(180)
def test_deadlocked_run_times_out_and_leaves_no_child(nets, monkeypatch):
    from lava_matmulfree.graph.backends import lava_run_config
    from lava_matmulfree.processes.block import models as block_models

    orig = block_models.PyFusedBlockFixed.run_spk

    def hanging(self):
        if self.time_step == 2 and self.l == 0:
            time.sleep(3600)  # every downstream process now waits forever
        orig(self)

    monkeypatch.setattr(block_models.PyFusedBlockFixed, "run_spk", hanging)
    g = build_graph(nets[0], "fused", capacity=6)
    t0 = time.time()
    with pytest.raises(LavaRunError, match="did not finish within 5 s"):
        run_graph(g, lava_run_config("sim-fused"), [1, 2, 3], 3, timeout=5)
    assert time.time() - t0 < 60
    deadline = time.time() + 10
    while child_pids() and time.time() < deadline:
        time.sleep(0.2)
    assert child_pids() == []


@pytest.mark.lava
@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", [0, 1])
def test_sim_float_equals_float_reference(seed):
    """The floating_pt models (fused blocks, folded head with exact eps) reproduce the float reference."""
    setup = build_evaluation("tiny", seed=seed)
    prompt = prompt_for(seed, setup.cfg.vocab_size)
    ref = generate("float", None, prompt, N_NEW, float_model=setup.float_model)
    lava = generate("sim-float", setup.net, prompt, N_NEW, float_model=setup.float_model, probes=("l1.h", "l2.x"))
    assert lava.tokens == ref.tokens
    np.testing.assert_allclose(lava.logits, ref.logits, rtol=1e-9, atol=1e-12)
    rec = []
    setup.float_model.prefill(prompt + ref.tokens[:-1], record=rec)
    np.testing.assert_allclose(lava.probes["l1.h"], rec[1]["h"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lava.probes["l2.x"], rec[2]["x"], rtol=1e-9, atol=1e-12)


N_PROMPT_FLOAT_DECOMPOSED, N_NEW_FLOAT_DECOMPOSED = 6, 4  # the 13-leaf blocks are slow: a shorter run


@pytest.mark.lava
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", [0, 1])
def test_sim_float_decomposed_equals_float_reference(seed):
    """The floating_pt leaf models (residual, MLGRU, GLU, aggregators with exact eps constants, synapses
    scaled by 1/s) in the decomposed graph, with the chip's timing, reproduce the float reference."""
    setup = build_evaluation("tiny", seed=seed)
    cfg = setup.cfg
    prompt = prompt_for(seed, cfg.vocab_size)[:N_PROMPT_FLOAT_DECOMPOSED]
    n_new = N_NEW_FLOAT_DECOMPOSED
    ref = generate("float", None, prompt, n_new, float_model=setup.float_model)
    probes = ("l1.h", "l2.x", "l0.r", "l1.y")
    lava = generate("sim-float-decomposed", setup.net, prompt, n_new, float_model=setup.float_model,
                    probes=probes)
    assert lava.steps_per_layer == 12
    assert lava.leaf_processes == 2 + cfg.num_layers * 22 + 5 + len(probes)
    assert lava.tokens == ref.tokens
    assert lava.logits.shape == (len(prompt) + n_new - 1, cfg.vocab_size)
    np.testing.assert_allclose(lava.logits, ref.logits, rtol=1e-9, atol=1e-12)
    rec = []
    setup.float_model.prefill(prompt + ref.tokens[:-1], record=rec)
    np.testing.assert_allclose(lava.probes["l1.h"], rec[1]["h"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lava.probes["l2.x"], rec[2]["x"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lava.probes["l0.r"], rec[0]["r"], rtol=1e-9, atol=1e-12)
    from lava_matmulfree.model.float_model import silu

    np.testing.assert_allclose(lava.probes["l1.y"], silu(rec[1]["u"]) * rec[1]["v"], rtol=1e-9, atol=1e-12)


@pytest.mark.lava
@pytest.mark.timeout(600)
def test_float_fused_mixers_equal_float_reference():
    """Decomposed blocks whose token and channel mixers run the fused floating_pt models (the floating_pt
    counterpart of sim-mixers): same timing, same float reference."""
    from lava.magma.core.run_configs import Loihi2SimCfg

    from lava_matmulfree.processes.channel_mixer.models import PyFusedChannelMixerFloat
    from lava_matmulfree.processes.channel_mixer.process import ChannelMixer
    from lava_matmulfree.processes.token_mixer.models import PyFusedTokenMixerFloat
    from lava_matmulfree.processes.token_mixer.process import TokenMixer

    seed = 0
    setup = build_evaluation("tiny", seed=seed)
    prompt = prompt_for(seed, setup.cfg.vocab_size)[:N_PROMPT_FLOAT_DECOMPOSED]
    n_new = N_NEW_FLOAT_DECOMPOSED
    ref = generate("float", None, prompt, n_new, float_model=setup.float_model)
    g = build_graph(setup.net, "mixers", capacity=len(prompt) + n_new, float_model=setup.float_model)
    cfg = Loihi2SimCfg(select_tag="floating_pt", select_sub_proc_model=True,
                       exception_proc_model_map={TokenMixer: PyFusedTokenMixerFloat,
                                                 ChannelMixer: PyFusedChannelMixerFloat})
    res = run_graph(g, cfg, prompt, n_new, probes=("l1.h", "l2.x", "l1.y"), timeout=500)
    assert res.leaf_processes == 2 + setup.cfg.num_layers * 9 + 5 + 3  # and the three probes
    assert res.tokens == ref.tokens
    np.testing.assert_allclose(res.logits, ref.logits, rtol=1e-9, atol=1e-12)
    rec = []
    setup.float_model.prefill(prompt + ref.tokens[:-1], record=rec)
    from lava_matmulfree.model.float_model import silu

    np.testing.assert_allclose(res.probes["l1.h"], rec[1]["h"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.probes["l2.x"], rec[2]["x"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.probes["l1.y"], silu(rec[1]["u"]) * rec[1]["v"], rtol=1e-9, atol=1e-12)


def test_sim_float_needs_the_float_model(nets):
    with pytest.raises(BackendError, match="float model"):
        generate("sim-float", nets[0], [1, 2], 2)
    with pytest.raises(BackendError, match="float model"):
        generate("sim-float-decomposed", nets[0], [1, 2], 2)


@pytest.mark.lava
@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", [0, 1])
def test_sim_stack_equals_reference(nets, seed):
    """Every layer in one process: same integers, per-layer probes from the stack's [L, d] Vars."""
    net = nets[seed]
    prompt = prompt_for(seed, net.cfg.vocab_size)
    probes = ("l0.h", "l1.h", "l2.h", "l0.x", "l2.r", "head.x")
    ref = generate("reference", net, prompt, N_NEW, probes=probes)
    stack = generate("sim-stack", net, prompt, N_NEW, probes=probes)
    assert stack.tokens == ref.tokens
    np.testing.assert_array_equal(stack.logits, ref.logits)
    for p in probes:
        np.testing.assert_array_equal(stack.probes[p], ref.probes[p], err_msg=p)
    for k, h in ref.final_state.items():
        np.testing.assert_array_equal(stack.final_state[k], h)
    assert stack.leaf_processes == 4 + len(probes) and stack.steps_per_layer == 0  # source, stack, head, sink
    assert stack.steps == len(prompt) + N_NEW  # one step per new token
    with pytest.raises(ValueError, match="unknown probe"):
        build_graph(net, "stack", capacity=2).probe_target("l0.attn_sum_sq")


def test_dequantised_probes_are_the_float_models_values():
    """probe_frac_bits names the right format for every probe: dequantised values track the float model."""
    from lava_matmulfree.graph.backends import dequantise_probes

    setup = build_evaluation("tiny", seed=0)
    prompt = prompt_for(0, setup.cfg.vocab_size)
    names = ("l0.h", "l2.h", "l1.x", "l2.r", "l1.y", "head.x")
    ref = generate("reference", setup.net, prompt, 1, probes=names)
    real = dequantise_probes(setup.net, ref.probes)
    rec = []
    _, _, hidden = setup.float_model.prefill(prompt, return_hidden=True, record=rec)
    want = {"l0.h": rec[0]["h"], "l2.h": rec[2]["h"], "l1.x": rec[1]["x"], "l2.r": rec[2]["r"],
            "l1.y": silu(rec[1]["u"]) * rec[1]["v"], "head.x": hidden[-1]}
    for name, w in want.items():
        err = np.linalg.norm(real[name] - w) / np.linalg.norm(w)
        assert err < 0.05, (name, err)  # ~1 % quantisation error; a wrong format would be off by 2x or more


_WARM_SCRIPT = """
import json
from numba.core.registry import CPUDispatcher
from lava_matmulfree.model import golden_fast
from lava_matmulfree.evaluation.accuracy import build_evaluation
from lava_matmulfree.graph.builder import build_graph

def compiled():
    return sorted(k for k, v in vars(golden_fast).items() if isinstance(v, CPUDispatcher) and v.signatures)

net = build_evaluation("tiny", seed=0).net
before = compiled()
build_graph(net, "fused", capacity=8)
print(json.dumps([before, compiled()]))
"""


@pytest.mark.timeout(300)
def test_build_graph_compiles_the_block_kernels_before_lava_forks():
    """In a fresh interpreter: the neuron kernels the fused block models call (MLGRU, GLU, norm stage, residual) are
    compiled in the building process by build_graph, so Lava's forked workers share them (docs/graph.md,
    "Memory")."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _WARM_SCRIPT], capture_output=True, text=True, timeout=240,
                         check=True).stdout.strip().splitlines()[-1]
    before, after = json.loads(out)
    block_kernels = {"_k_mlgru", "_k_glu", "_k_norm_stage", "_k_residual"}
    assert not block_kernels & set(before)
    assert block_kernels <= set(after)
