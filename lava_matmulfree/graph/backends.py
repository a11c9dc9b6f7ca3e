"""One generate API over every backend (docs/graph.md):

    float       the float reference (float_model.py), numpy
    reference   the golden fixed-point model (golden.py), numpy, no Lava
    sim         Lava CPU simulator (Loihi2SimCfg), blocks decomposed into their 22 leaf processes
    sim-mixers  Lava CPU simulator, blocks decomposed but token and channel mixers fused (same timing)
    sim-fused   Lava CPU simulator, each block fused into one process
    sim-stack   Lava CPU simulator, every layer in one process (fastest; probes l<k>.x/r/h and head.x)
    sim-float   Lava CPU simulator running the floating_pt models (fused blocks): the float reference as a graph
    sim-float-decomposed  the floating_pt models with every block decomposed into its 22 leaf processes
                (the chip's graph and timing computing the float reference)
    loihi2      a real Loihi 2 (Loihi2HwCfg); needs Intel's lava-loihi

``reference`` and every Lava simulator backend produce the same integers: same logits, tokens and probes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lava_matmulfree.config import BACKEND_NAMES, DENSE_MODEL_NAMES, RunConfig, check_values
from lava_matmulfree.errors import BackendError
from lava_matmulfree.graph.builder import FLOAT_LAVA_BACKENDS, GRAPH_KIND, check_probe_names  # noqa: F401  (API)
from lava_matmulfree.utils.limits import check_generation, token_ids, whole_number
from lava_matmulfree.model.fixed_point import INVSQRT_OUT_FRAC
from lava_matmulfree.model.quantise import QuantisedNetwork
from lava_matmulfree.model.sampling import Sampler

LAVA_LOIHI_MISSING = ("the loihi2 backend runs on a real Loihi 2 through Intel's lava-loihi package, which is not "
                      "installed here (it is available to members of Intel's Neuromorphic Research Community); "
                      "the sim and sim-fused backends run the same graph on Lava's CPU simulator")


@dataclass
class Generation:
    backend: str
    prompt: list
    tokens: list  # the new tokens
    logits: np.ndarray | None  # [prompt + new - 1, V]: integers (units of logit_scale) or floats (float backend)
    probes: dict = field(default_factory=dict)  # name -> [prompt + new - 1, ...]
    seconds: float = 0.0
    final_state: dict = field(default_factory=dict)  # l<layer>.h after the last token that entered
    steps: int | None = None  # Lava time steps run
    steps_per_layer: float | None = None  # time steps a token spends in each block (0 on fused blocks)
    leaf_processes: int | None = None
    first_token_seconds: float | None = None  # request -> first token handed to on_token (reference, float and
    #                                           streaming Lava runs)
    activity: object = None  # generate(activity=True): an ActivityRecorder (docs/graph.md, "Activity counters")

    @property
    def tokens_per_second(self) -> float:
        return len(self.tokens) / self.seconds if self.seconds > 0 else float("inf")

    @property
    def decode_tokens_per_second(self) -> float | None:
        """The new tokens after the first, per second after it: the rate of decoding alone, without the start-up
        (numba's kernels loaded, a Lava runtime started) and the prompt that the first token waits for. None where
        the first token's time is unknown or there is no second token."""
        if self.first_token_seconds is None or len(self.tokens) < 2:
            return None
        rest = self.seconds - self.first_token_seconds
        return (len(self.tokens) - 1) / rest if rest > 0 else float("inf")


#: The backends that count activity (generate(..., activity=True), Session(..., activity=True)).
ACTIVITY_BACKENDS = ("reference", "sim", "sim-fused", "sim-mixers", "sim-stack")


def lava_run_config(backend: str, dense_model: str = "packed"):
    """The Lava run config of a backend: which model every process gets."""
    if backend == "loihi2":
        from lava.utils.loihi import is_installed

        if not is_installed():
            raise BackendError(LAVA_LOIHI_MISSING)
        return loihi2_run_config()  # pragma: no cover - needs the chip
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense

    from lava_matmulfree.graph import channels

    channels.install()  # the workers' channel ports without Lava's helper threads (graph/channels.py)
    if dense_model not in DENSE_MODEL_NAMES:
        raise BackendError(f"unknown dense model {dense_model!r} (known: {', '.join(DENSE_MODEL_NAMES)})")
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel

    floating = backend in FLOAT_LAVA_BACKENDS
    exceptions = {Extractor: PyLoihiExtractorModel}  # Lava's host I/O models are untagged
    if not floating and dense_model == "packed":
        from lava_matmulfree.processes.connections import PyTernaryDenseModel

        exceptions[Dense] = PyTernaryDenseModel
    if backend == "sim-mixers":
        from lava_matmulfree.processes.channel_mixer.models import PyFusedChannelMixerFixed
        from lava_matmulfree.processes.channel_mixer.process import ChannelMixer
        from lava_matmulfree.processes.token_mixer.models import PyFusedTokenMixerFixed
        from lava_matmulfree.processes.token_mixer.process import TokenMixer

        exceptions.update({TokenMixer: PyFusedTokenMixerFixed, ChannelMixer: PyFusedChannelMixerFixed})
    if backend not in GRAPH_KIND:
        raise BackendError(f"{backend!r} is not a Lava backend")
    decomposed = GRAPH_KIND[backend] in ("decomposed", "mixers")
    return Loihi2SimCfg(select_tag="floating_pt" if floating else "fixed_pt", select_sub_proc_model=decomposed,
                        exception_proc_model_map=exceptions)


def loihi2_run_config():
    """Loihi 2 through lava-loihi: every hierarchical process decomposed down to its leaves; the custom neurons
    get their NC models (processes/*/ncmodels.py), Lava's Dense its NC model; the embedding source and the sink
    stay on the host (Python models)."""
    from lava.magma.core.run_configs import Loihi2HwCfg

    return Loihi2HwCfg(select_tag="fixed_pt", select_sub_proc_model=True)


def golden_probe_name(name: str, num_layers: int) -> str:
    """Lava probe names (``l3.attn_sum_sq``, ``l0.x_out``, ``head.logits``) -> the golden model's record names."""
    where, _, var = name.partition(".")
    for suffix in ("_sum_sq", "_inv_rms"):
        if var.endswith(suffix):
            return f"{where}.{var[:-len(suffix)]}.{suffix[1:]}"
    if where == "head" and var in ("sum_sq", "inv_rms"):
        return f"head.{var}"
    if var == "x_out":  # a block's output is the next block's (or the head's) x
        if where == "embedding":
            return "embed"
        layer = int(where[1:])
        return f"l{layer + 1}.x" if layer + 1 < num_layers else "head.x"
    return {"head.spikes": "head.lm_head.spikes", "head.logits": "logits"}.get(name, name)


def probe_frac_bits(net: QuantisedNetwork, name: str) -> int:
    """Fraction bits of a fixed-point probe (``l3.h`` -> that layer's h format): value = int * 2**-frac."""
    where, _, var = name.partition(".")
    if var.endswith("_inv_rms") or var == "inv_rms":
        return INVSQRT_OUT_FRAC  # r ~ 2**22 / sqrt(S)
    if where in ("head", "embedding"):
        if var == "sum_sq":
            return 2 * net.head.u_frac
        if var in ("spikes", "logits"):
            raise ValueError(f"{name}: graded spikes and logits are integers with a per-tensor scale, not a Q format")
        return net.x_frac
    q = net.layers[int(where[1:])]
    if var.endswith("_sum_sq"):  # S = sum u^2 with u in Q(u_frac) of that norm stage
        stage = {"attn": q.attn, "gate": q.gate, "mlp": q.mlp, "down": q.down_norm}[var[:-len("_sum_sq")]]
        return 2 * stage.u_frac
    return {"x": net.x_frac, "r": net.x_frac, "x_out": net.x_frac, "h": q.h_frac, "y": q.y_frac}[var]


def dequantise_probes(net: QuantisedNetwork, probes: dict) -> dict:
    """Real values of fixed-point probes (integer arrays); float probes (the floating_pt backends) as they are."""
    out = {}
    for name, a in probes.items():
        a = np.asarray(a)
        if a.dtype.kind != "i":
            out[name] = a.astype(np.float64)
        elif name in ("head.spikes", "head.logits"):
            out[name] = a.astype(np.float64) * (net.logit_scale if name == "head.logits" else 1.0)
        else:
            out[name] = a * 2.0 ** -probe_frac_bits(net, name)
    return out


def run_config_for(backend: str, run: RunConfig | None) -> RunConfig:
    """The run config of a request on ``backend``: ``run`` checked as a run config file's would be (a RunConfig made
    in Python is not checked when made), and for this backend (its ``backend`` field must agree: a run config of
    another backend was silently run on ``backend``); a default one where ``run`` is None."""
    if run is None:
        return RunConfig(backend=backend)
    if not isinstance(run, RunConfig):
        raise BackendError(f"run must be a RunConfig (lava_matmulfree.config), got {type(run).__name__}")
    check_values(run, "run")
    if run.backend != backend:
        raise BackendError(f"backend {backend!r} but run.backend {run.backend!r}: pass the run config's backend, "
                           f"or dataclasses.replace(run, backend={backend!r})")
    return run


def _check_request(backend, prompt, max_new_tokens, vocab_size):
    if backend not in BACKEND_NAMES:
        raise BackendError(f"unknown backend {backend!r} (known: {', '.join(BACKEND_NAMES)})")
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    whole_number(max_new_tokens, "max_new_tokens", least=1)
    bad = [t for t in prompt if not 0 <= int(t) < vocab_size]
    if bad:
        raise ValueError(f"token id {bad[0]} is outside the model's vocabulary [0, {vocab_size})")


def _sample_and_step(model, logits, state, max_new_tokens: int, sample, on_token, t0: float):
    """The host's decode loop: sample a token from the last logits, hand it to ``on_token``, step the model on it
    (not after the last one: nothing reads its logits). Returns (logits of every token that entered, the new
    tokens, the state after the last step, seconds from ``t0`` (a perf_counter) to the first token)."""
    rows, tokens, last, first_s = [logits], [], logits[-1], None
    for n in range(max_new_tokens):
        tok = sample(last)
        tokens.append(tok)
        if first_s is None:
            first_s = time.perf_counter() - t0
        if on_token is not None:
            on_token(tok)
        if n + 1 < max_new_tokens:
            last, state = model.step(tok, state)
            rows.append(last[None])
    return np.concatenate(rows), tokens, state, first_s


def generate_reference(net: QuantisedNetwork, prompt, max_new_tokens: int, sampler: Sampler, probes=(),
                       on_token=None, activity: bool = False, threads: int = 1) -> Generation:
    """The golden model with the sink's sampling rule (softmax over logit_scale * integer logits); ``threads`` > 1
    runs its whole-model kernel on a team of that many threads (the same integers)."""
    from lava_matmulfree.model.activity import ActivityRecorder
    from lava_matmulfree.model.golden_fast import FastGoldenModel
    from lava_matmulfree.model.thread_team import use_threads

    check_probe_names(probes, net.cfg.num_layers)  # before the run, not after it
    with use_threads(threads):
        g = FastGoldenModel(net, parallel=threads > 1)
        g.activity = ActivityRecorder() if activity else None
        if probes:
            g.probes = {}
        t0 = time.perf_counter()
        logits, state = g.prefill(prompt)
        logits, tokens, state, first_s = _sample_and_step(
            g, logits, state, max_new_tokens, lambda last: sampler(last.astype(np.float64) * net.logit_scale), on_token,
            t0)
        out = {}
        for name in probes:
            rec = g.probes.get(golden_probe_name(name, net.cfg.num_layers))
            if rec is None:
                raise ValueError(f"unknown probe {name!r}")
            out[name] = np.concatenate(rec)
        final = {f"l{l}.h": state.h[l].copy() for l in range(net.cfg.num_layers)}
        return Generation("reference", list(prompt), tokens, logits, out, time.perf_counter() - t0,
                          final_state=final, first_token_seconds=first_s, activity=g.activity)


def generate_float(model, prompt, max_new_tokens: int, sampler: Sampler, on_token=None) -> Generation:
    t0 = time.perf_counter()
    logits, state = model.prefill(prompt)
    logits, tokens, _, first_s = _sample_and_step(model, logits, state, max_new_tokens, sampler, on_token, t0)
    return Generation("float", list(prompt), tokens, logits, {}, time.perf_counter() - t0,
                      first_token_seconds=first_s)


def generate(backend: str, net: QuantisedNetwork | None, prompt, max_new_tokens: int, temperature: float = 0.0,
             top_k: int = 0, seed: int = 0, probes=(), run: RunConfig | None = None, float_model=None,
             on_token=None, activity: bool = False, on_prompt=None) -> Generation:
    """Generate ``max_new_tokens`` after ``prompt`` (token ids) on ``backend``; ``probes`` names variables to
    record per token (``l<layer>.h``, ``l<layer>.x``, ``l<layer>.attn_sum_sq``, ``head.x`` ...). ``activity``: count
    spikes, SynOps and updates of the tokens that entered the model (``Generation.activity``; on
    ``ACTIVITY_BACKENDS``: docs/graph.md, "Activity counters"). ``on_prompt(entered)``: on the Lava backends,
    called as the prompt's tokens enter the graph, one a step (a progress bar for a long prompt)."""
    from lava_matmulfree.graph.builder import probe_names

    if net is None and float_model is None:
        raise BackendError("generate needs the compiled network (net) or, for the float backend, the float model")
    if backend != "float" and not isinstance(net, QuantisedNetwork):
        raise BackendError(f"the {backend} backend needs the compiled network (a QuantisedNetwork) as net, got "
                           f"{type(net).__name__}")
    probes = probe_names(probes)
    cfg = net.cfg if net is not None else float_model.cfg
    prompt = token_ids(prompt, cfg.vocab_size)  # refuses float and string ids instead of converting them
    _check_request(backend, prompt, max_new_tokens, cfg.vocab_size)
    run = run_config_for(backend, run)
    check_generation(cfg, len(prompt), max_new_tokens)
    sampler = Sampler(temperature, top_k, seed)
    if activity and backend not in ACTIVITY_BACKENDS:
        raise BackendError(f"activity is counted on {', '.join(ACTIVITY_BACKENDS)}, not on {backend}")
    if backend == "float":
        if probes:
            raise ValueError("probes are recorded on the fixed-point backends (reference, sim, sim-fused)")
        if float_model is None:
            raise BackendError("the float backend runs the float model: pass float_model= (e.g. "
                               "build_evaluation(...).float_model); net is the compiled network of the other backends")
        return generate_float(float_model, prompt, max_new_tokens, sampler, on_token)
    if backend == "reference":
        return generate_reference(net, prompt, max_new_tokens, sampler, probes, on_token, activity, run.threads)
    from lava_matmulfree.graph.builder import build_graph
    from lava_matmulfree.graph.runner import run_graph
    from lava_matmulfree.graph.plan import check_run

    run_cfg = lava_run_config(backend, run.dense_model)  # checks lava-loihi first
    floating = backend in FLOAT_LAVA_BACKENDS
    if floating and float_model is None:
        raise BackendError(f"the {backend} backend needs the float model (a Hugging Face checkpoint or a config, "
                           "not a compiled network)")
    stream = on_token is not None or on_prompt is not None  # the token tap: the host follows the run step by step
    if backend != "loihi2":  # processes, memory and time, before the runtime is created (graph/plan.py)
        check_run(backend, cfg, len(prompt), max_new_tokens, run.record_logits, len(probes), stream, run.timeout_s)
    graph = build_graph(net, GRAPH_KIND[backend], capacity=len(prompt) + max_new_tokens, temperature=temperature,
                        top_k=top_k, seed=seed, record_logits=run.record_logits,
                        float_model=float_model if floating else None, stream=stream)
    if activity:
        from lava_matmulfree.graph.activity import count_activity
        count_activity(graph)
    res = run_graph(graph, run_cfg, prompt, max_new_tokens, probes=probes, timeout=run.timeout_s,
                    on_token=on_token, on_prompt=on_prompt)
    per_layer = graph.block_hops if graph.stack is None else 0
    return Generation(backend, prompt, res.tokens, res.logits, res.probes, res.seconds, res.final_state,
                      res.steps, per_layer, res.leaf_processes, res.first_token_seconds, res.activity)
