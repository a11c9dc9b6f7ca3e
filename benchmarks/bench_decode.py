"""Decode and prefill speed and memory of every way to run the model, against PyTorch fp32, in one run.

    .venv/bin/python benchmarks/bench_decode.py [--config 370m] [--seed 0] [--prompt 128] [--decode 16]
                                                [--repeats 5] [--lava-prompt 48] [--lava-tokens 5]
                                                [--lava-repeats 2] [--no-lava] [--out out/bench_decode.json]

Weights: random (``random_params`` of the config, seed ``--seed``), ternarised; calibration on
``--calib-sequences`` random sequences of ``--calib-length`` tokens (``accuracy.build_evaluation``, float32).
Rows, all measured in this run:

``float``       the float reference ``FloatModel`` (numpy, float32), one token per ``step`` call;
``golden``      the integer golden model ``GoldenModel`` (numpy + numba kernels, one thread);
``torch``       the outside reference: the same architecture in PyTorch fp32 under ``torch.no_grad`` (see
                ``TorchReference``): dense float32 weights ``Wt / s`` (the ternary values times the matrix
                scale), per-token int8 absmax activation quantisation exactly as ``FloatModel`` does it, the
                MLGRU state carried between calls; torch's default thread count (2 here);
``torch-plain`` the same without the activation quantisation (plain fp32 activations);
``sim-fused``   the Lava process graph (``Loihi2SimCfg``, one fused process per block), run by a worker
                process on the same compiled network, see below.

numpy / torch rows: prefill = one call on a ``--prompt``-token prompt from the zero state (logits of every
prompt token); decode = ``--decode`` single-token calls (fixed tokens, state carried) after a 4-token
prefix, per-token time = wall time / tokens. Every repeat runs every row (in rotating order, so machine
noise hits all rows alike); the figures are medians over ``--repeats`` repeats. Memory per row: the bytes the
model holds (every array / tensor it references, plus the packed ternary kernels it uses; the float and
golden models share their int8 ternary arrays) and the transient peak above that while it runs (the process
high-water mark ``VmHWM``, reset through ``/proc/self/clear_refs`` before each row).

sim-fused (worker subprocess; the network file is written here, read there): one Lava run per repeat with a
``--lava-prompt``-token prompt and ``--lava-tokens`` new tokens, run in four chunks of time steps: the first
prompt token (every fused block computes a token in the step it arrives), steady prefill (one prompt token per
step: prefill tokens/s = its steps / its time), drain (head, sink, the first new token fed back) and the steady
decode of
the other new tokens (decode time per token = its time / their count, start-up excluded). Start-up =
compile + ``create_runtime`` (one OS process per leaf), reported separately, as is the teardown. The
``run_spk`` of every process model is timed in the Lava processes (bench_lava_overhead.InstrumentedRun), so the
table says what bounds a Lava step: compute by model or Lava's own per-step synchronisation; and the worker
then runs a chain of as many trivial leaf processes (lava's Dense, 1x1) for as many steps: Lava's floor per
step with no model compute, measured next to the real run.

Golden stage timing: one more prefill and ``--decode`` decode steps with the golden model's stages wrapped in
timers (norm rounds, MLGRU, GLU, residual, ternary synapses), so a missed target comes with what bounds it.

Targets (this machine): golden decode >= 50 tokens/s and >= 1.5x torch; golden prefill >= 300 tokens/s;
sim-fused decode >= 5 tokens/s. The machine's load average is printed and saved (2 cores shared with other
jobs). Writes the table and out/bench_decode.json.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

DEFAULT_OUT = ROOT / "out" / "bench_decode.json"
MS = 1e3
MIB = 1 << 20
DECODE_PREFIX = 4  # prompt tokens before the timed decode steps
TARGETS = {"golden_decode_tokens_per_s": 50.0, "golden_over_torch_decode": 1.5,
           "golden_prefill_tokens_per_s": 300.0, "sim_fused_decode_tokens_per_s": 5.0}
Q8_MAX, Q8_MIN = 127.0, -128.0


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def med(values):
    return statistics.median(values) if values else float("nan")


# =========================================================================================== memory
def _status_kib(key: str) -> int:
    m = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(m.group(1)) if m else 0


def rss_bytes() -> int:
    return _status_kib("VmRSS") * 1024


def reset_peak_rss() -> bool:
    """Reset the process's high-water mark VmHWM to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    return _status_kib("VmHWM") * 1024


def resident_bytes(*roots) -> int:
    """Bytes of every numpy array / torch tensor reachable from ``roots`` (objects, dataclasses, dicts, lists),
    each buffer counted once, plus the packed ternary kernels (float_model.ternary_matrix) of the int8 arrays."""
    from lava_matmulfree import float_model as fm_mod

    seen, buffers = set(), {}

    def visit(o, depth):
        if (id(o) in seen or depth > 8 or o is None
                or isinstance(o, (int, float, str, bool, type, types.ModuleType, types.FunctionType))):
            return
        seen.add(id(o))
        if isinstance(o, np.ndarray):
            buffers[o.__array_interface__["data"][0]] = max(buffers.get(o.__array_interface__["data"][0], 0),
                                                             o.nbytes)
            tm = fm_mod.ternary_matrix(o, build=False)
            if tm is not None:
                visit(tm.codes, depth + 1)
            return
        if type(o).__module__.startswith("torch") and hasattr(o, "untyped_storage"):
            st = o.untyped_storage()
            buffers[st.data_ptr()] = max(buffers.get(st.data_ptr(), 0), st.nbytes())
            return
        if isinstance(o, dict):
            for v in o.values():
                visit(v, depth + 1)
        elif isinstance(o, (list, tuple)):
            for v in o:
                visit(v, depth + 1)
        elif hasattr(o, "__dict__"):
            for v in vars(o).values():
                visit(v, depth + 1)

    for r in roots:
        visit(r, 0)
    return int(sum(buffers.values()))


# =========================================================================================== torch reference
class TorchReference:
    """The HGRN-Bit architecture of docs/model.md in PyTorch fp32, for inference (``torch.no_grad``).

    Built from a ``FloatModel`` (unfused): the same ternary matrices and scales, as dense float32 weights
    ``Wt / s``; the same norms, lower bounds and embedding. ``act_quant``: per-token int8 absmax fake
    quantisation of every BitLinear input (as ``FloatModel``); False gives plain fp32 activations.
    ``prefill(tokens, state)`` / ``step(token, state)`` mirror FloatModel's API (state: torch [L, d]).
    ``dtype``: torch.float32 (the benchmark) or torch.float64 (to check the architecture against FloatModel)."""

    def __init__(self, fm, act_quant: bool = True, dtype=None):
        import torch

        self.torch = torch
        self.F = torch.nn.functional
        self.cfg = fm.cfg
        self.act_quant = act_quant
        self.dtype = torch.float32 if dtype is None else dtype
        self.eps, self.beps = fm.cfg.rms_norm_eps, fm.cfg.bitlinear_eps

        def t(a):
            return torch.from_numpy(np.ascontiguousarray(a)).to(self.dtype)

        def lin(bl):  # dense W = Wt / s, and the BitLinear's own norm gain
            w = torch.from_numpy(np.ascontiguousarray(bl.wt)).to(self.dtype)
            w /= float(bl.s)
            return w, t(bl.norm_w)

        self.emb = t(fm.embeddings)
        self.layers = []
        for lw in fm.layers:
            self.layers.append({
                "attn_norm": t(lw.attn_norm), "g_norm": t(lw.g_norm), "mlp_norm": t(lw.mlp_norm),
                "lb": t(lw.lower_bound), "i": lin(lw.i_proj), "f": lin(lw.f_proj), "g": lin(lw.g_proj),
                "o": lin(lw.o_proj), "gate": lin(lw.gate_proj), "down": lin(lw.down_proj)})
        self.final_norm = t(fm.final_norm)
        self.lm_head = lin(fm.lm_head)

    def rms(self, x, w, eps):
        return w * x / self.torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps)

    def bitlinear(self, x, wn):
        w, norm_w = wn
        x = self.rms(x, norm_w, self.beps)
        if self.act_quant:
            q = Q8_MAX / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
            x = (x * q).round().clamp(Q8_MIN, Q8_MAX) / q
        return self.F.linear(x, w)

    def init_state(self):
        return self.torch.zeros(self.cfg.num_layers, self.cfg.hidden_size, dtype=self.dtype)

    def prefill(self, tokens, state=None):
        torch, F = self.torch, self.F
        with torch.no_grad():
            h_all = self.init_state() if state is None else state.clone()
            x = self.emb[torch.as_tensor(np.asarray(tokens, dtype=np.int64))]
            I = self.cfg.intermediate_size
            for l, p in enumerate(self.layers):
                a = self.rms(x, p["attn_norm"], self.eps)
                pre_i, pre_f, pre_g = self.bitlinear(a, p["i"]), self.bitlinear(a, p["f"]), self.bitlinear(a, p["g"])
                f = torch.sigmoid(pre_f)
                f = p["lb"] + (1.0 - p["lb"]) * f
                i = F.silu(pre_i) * (1.0 - f)
                h = h_all[l]
                hs = torch.empty_like(i)
                for k in range(x.shape[0]):
                    h = f[k] * h + i[k]
                    hs[k] = h
                h_all[l] = h
                o = self.bitlinear(self.rms(pre_g, p["g_norm"], self.eps) * F.silu(hs), p["o"])
                r = x + o
                uv = self.bitlinear(self.rms(r, p["mlp_norm"], self.eps), p["gate"])
                x = r + self.bitlinear(F.silu(uv[..., :I]) * uv[..., I:], p["down"])
            logits = self.bitlinear(self.rms(x, self.final_norm, self.eps), self.lm_head)
        return logits, h_all

    def step(self, token, state=None):
        logits, state = self.prefill([token], state)
        return logits[0], state


# =========================================================================================== timing
class Row:
    """One model under test: prefill(tokens, state) -> (logits, state); step(token, state)."""

    def __init__(self, name: str, model, note: str):
        self.name, self.model, self.note = name, model, note
        self.prefill_s, self.decode_s_per_token, self.transient = [], [], []
        self.resident = 0

    def prefill(self, tokens, state=None):
        return self.model.prefill(tokens, state)

    def step(self, token, state):
        return self.model.step(token, state)


def time_row(row: Row, prompt, prefix, decode_tokens) -> None:
    """One repeat of one row: prefill of the prompt, then decode steps after the prefix."""
    gc.collect()
    base = rss_bytes()
    reset_peak_rss()
    t0 = time.perf_counter()
    row.prefill(prompt)
    row.prefill_s.append(time.perf_counter() - t0)
    _, st = row.prefill(prefix)
    t0 = time.perf_counter()
    for tok in decode_tokens:
        _, st = row.step(tok, st)
    row.decode_s_per_token.append((time.perf_counter() - t0) / len(decode_tokens))
    row.transient.append(max(0, peak_rss_bytes() - base))


def golden_stage_timing(net, prompt, prefix, decode_tokens) -> dict:
    """Wall time per stage of the golden model (ms per token) for one prefill and the decode steps."""
    from lava_matmulfree import golden as G0
    from lava_matmulfree import golden_fast as G

    acc: dict = {}
    originals = {}

    def wrap(owner, name, key):
        f = getattr(owner, name)
        originals[(owner, name)] = f

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                acc[key] = acc.get(key, 0.0) + time.perf_counter() - t0
        setattr(owner, name, timed)

    for name, key in (("norm_spikes", "norm rounds (x^2, aggregate, 1/sqrt, spikes)"), ("mlgru", "MLGRU neurons"),
                      ("glu", "GLU neurons"), ("residual", "residual neurons")):
        wrap(G.FastGoldenModel, name, key)
    wrap(G0, "synapses", "ternary synapses (packed 2-bit kernel)")  # the LM head (golden.prefill)
    wrap(G, "synapses32", "ternary synapses (packed 2-bit kernel)")  # inside the layers
    out = {}
    try:
        g = G.FastGoldenModel(net)
        _, st0 = g.prefill(prefix)

        def decode(st=st0):
            for tok in decode_tokens:
                st = g.step(tok, st)[1]

        for phase, run, n_tok in (("prefill", lambda: g.prefill(prompt), len(prompt)),
                                  ("decode", decode, len(decode_tokens))):
            acc.clear()
            t0 = time.perf_counter()
            run()
            total = time.perf_counter() - t0
            stages = {k: v / n_tok * MS for k, v in acc.items()}
            stages["other (embedding, Python, records)"] = (total - sum(acc.values())) / n_tok * MS
            out[phase] = {"ms_per_token": total / n_tok * MS, "stages_ms_per_token": stages}
    finally:
        for (owner, name), f in originals.items():
            setattr(owner, name, f)
    return out


# =========================================================================================== sim-fused worker
def lava_chunks(loop_depth: int, prompt_len: int, new_tokens: int) -> list[int]:
    """[first prompt token, steady prefill, drain + first new token, steady decode] steps (see the docstring):
    the prompt streams one token per step, every new token takes one loop depth."""
    return [1, prompt_len - 1, loop_depth, (new_tokens - 1) * loop_depth]


def lava_worker(args) -> int:
    """In a subprocess: run sim-fused on the saved network, write the per-repeat results as JSON."""
    from bench_lava_overhead import InstrumentedRun

    from lava_matmulfree.backends import lava_run_config
    from lava_matmulfree.golden_fast import FastGoldenModel as GoldenModel
    from lava_matmulfree.graph import build_graph
    from lava_matmulfree.quantise import QuantisedNetwork

    net = QuantisedNetwork.load(args.lava_worker)
    t0 = time.perf_counter()
    GoldenModel(net).prefill([1, 2])  # numba kernels and packed weights in memory before the fork
    warm_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed + 7)
    prompt = rng.integers(0, net.cfg.vocab_size, args.lava_prompt).tolist()
    reps = []
    for r in range(args.lava_repeats):
        graph = build_graph(net, "fused", capacity=len(prompt) + args.lava_tokens, record_logits=False)
        graph.set_request(prompt, args.lava_tokens, started=False)
        chunks = lava_chunks(graph.loop_depth, len(prompt), args.lava_tokens)
        res = InstrumentedRun(graph.source, lava_run_config("sim-fused"), chunks).run()
        res["chunk_names"] = ["first", "prefill", "drain", "decode"]
        res["steps_per_decode_token"] = graph.loop_depth
        res["load"] = loadavg()
        reps.append(res)
        print(f"  sim-fused repeat {r + 1}/{args.lava_repeats}: decode "
              f"{res['chunks'][3]['wall_s'] / (args.lava_tokens - 1) * MS:.0f} ms/token, "
              f"start-up {res['compile_s'] + res['create_runtime_s']:.1f} s, load {loadavg()}",
              file=sys.stderr, flush=True)
    # Lava's floor in this process: a chain of as many trivial leaf processes, as many steps as a decode chunk
    from bench_lava_overhead import build_chain
    from lava.magma.core.run_configs import Loihi2SimCfg

    n_leaves, dec_steps = reps[0]["leaf_processes"], reps[0]["chunks"][3]["steps"]
    chain = InstrumentedRun(build_chain(n_leaves, 1), Loihi2SimCfg(select_tag="floating_pt"),
                            [dec_steps, dec_steps], profile=False).run()
    steady = chain["chunks"][1]
    floor = {"leaf_processes": n_leaves, "width": 1, "steps": steady["steps"],
             "ms_per_step": steady["wall_s"] / steady["steps"] * MS,
             "children_cpu_ms_per_step": steady["children_cpu_s"] / steady["steps"] * MS, "load": loadavg()}
    Path(args.worker_out).write_text(json.dumps({"warm_s": warm_s, "repeats": reps, "chain_floor": floor,
                                                 "prompt_len": args.lava_prompt, "new_tokens": args.lava_tokens}))
    return 0


def run_sim_fused(net, args, log) -> dict | None:
    """Save the network, run the worker, summarise its repeats."""
    with tempfile.TemporaryDirectory(prefix="bench_decode_") as tmp:
        path, out = Path(tmp) / "net.safetensors", Path(tmp) / "lava.json"
        t0 = time.perf_counter()
        net.save(path)
        log(f"sim-fused: network written in {time.perf_counter() - t0:.1f} s; worker starts")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--lava-worker", str(path), "--worker-out", str(out),
               "--seed", str(args.seed), "--lava-prompt", str(args.lava_prompt),
               "--lava-tokens", str(args.lava_tokens), "--lava-repeats", str(args.lava_repeats)]
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=None, timeout=args.lava_timeout)
        if proc.returncode != 0 or not out.is_file():
            log(f"sim-fused worker failed (exit {proc.returncode})")
            return None
        data = json.loads(out.read_text())
    reps = data["repeats"]
    n_dec = data["new_tokens"] - 1
    summary = {"prompt_len": data["prompt_len"], "new_tokens": data["new_tokens"], "repeats": len(reps),
               "leaf_processes": reps[0]["leaf_processes"], "steps_per_decode_token": reps[0]["steps_per_decode_token"],
               "worker_warm_s": data["warm_s"], "loads": [r["load"] for r in reps],
               "chain_floor": data["chain_floor"]}

    def per(key_fn):
        vals = [key_fn(r) for r in reps]
        return med(vals), vals

    summary["decode_ms_per_token"], summary["decode_ms_per_token_all"] = per(
        lambda r: r["chunks"][3]["wall_s"] / n_dec * MS)
    summary["prefill_ms_per_token"], summary["prefill_ms_per_token_all"] = per(
        lambda r: r["chunks"][1]["wall_s"] / max(r["chunks"][1]["steps"], 1) * MS)
    summary["prompt_to_first_token_s"], _ = per(lambda r: sum(c["wall_s"] for c in r["chunks"][:3]))
    summary["startup_s"], summary["startup_s_all"] = per(lambda r: r["compile_s"] + r["create_runtime_s"])
    summary["compile_s"], _ = per(lambda r: r["compile_s"])
    summary["create_runtime_s"], _ = per(lambda r: r["create_runtime_s"])
    summary["stop_s"], _ = per(lambda r: r["stop_s"])
    summary["pss_peak_mib"], _ = per(lambda r: r["pss_peak_mib"])
    for k, name in ((1, "prefill"), (3, "decode")):
        steps = [r["chunks"][k]["steps"] for r in reps]
        summary[f"{name}_ms_per_step"] = med([r["chunks"][k]["wall_s"] / r["chunks"][k]["steps"] * MS for r in reps])
        summary[f"{name}_children_cpu_ms_per_step"] = med(
            [r["chunks"][k]["children_cpu_s"] / r["chunks"][k]["steps"] * MS for r in reps])
        summary[f"{name}_lava_cpu_ms_per_step"] = med(
            [(r["chunks"][k]["children_cpu_s"] - r["chunks"][k]["compute_cpu_s"]) / r["chunks"][k]["steps"] * MS
             for r in reps])
        summary[f"{name}_compute_cpu_ms_per_step"] = med(
            [r["chunks"][k]["compute_cpu_s"] / r["chunks"][k]["steps"] * MS for r in reps])
        models = sorted({m for r in reps for m in r["chunks"][k]["compute"]})
        summary[f"{name}_compute_by_model_ms_per_step"] = {
            m: med([r["chunks"][k]["compute"].get(m, {"cpu_s": 0.0})["cpu_s"] / r["chunks"][k]["steps"] * MS
                    for r in reps]) for m in models}
        summary[f"{name}_steps"] = steps[0]
    summary["raw"] = reps
    return summary


# =========================================================================================== main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="370m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calib-sequences", type=int, default=2)
    p.add_argument("--calib-length", type=int, default=8)
    p.add_argument("--prompt", type=int, default=128, help="prompt tokens of the timed prefill (default 128)")
    p.add_argument("--decode", type=int, default=16, help="decode steps timed per repeat (default 16)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-torch-plain", action="store_true", help="skip the torch row without activation quant")
    p.add_argument("--no-lava", action="store_true", help="skip sim-fused")
    p.add_argument("--lava-prompt", type=int, default=48, help="prompt tokens of each sim-fused run (default 48)")
    p.add_argument("--lava-tokens", type=int, default=5, help="new tokens of each sim-fused run (default 5)")
    p.add_argument("--lava-repeats", type=int, default=2)
    p.add_argument("--lava-timeout", type=float, default=1800.0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--lava-worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.lava_worker:
        return lava_worker(args)
    if args.lava_tokens < 2:
        raise SystemExit("--lava-tokens must be >= 2 (the decode chunk times tokens 2..N)")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    from lava_matmulfree.accuracy import build_evaluation
    from lava_matmulfree.golden_fast import FastGoldenModel as GoldenModel

    t_start = time.perf_counter()
    load_start = loadavg()
    setup = build_evaluation(args.config, seed=args.seed, num_calib=args.calib_sequences,
                             calib_length=args.calib_length, dtype=np.float32)
    cfg, net, fm = setup.cfg, setup.net, setup.float_model
    if not args.no_lava and args.lava_prompt <= cfg.num_layers:
        raise SystemExit(f"--lava-prompt must exceed the {cfg.num_layers} layers (the steady prefill is timed "
                         "while every block is busy)")
    gc.collect()
    log(f"built {setup.source} (L={cfg.num_layers}, d={cfg.hidden_size}, I={cfg.intermediate_size}, "
        f"V={cfg.vocab_size}) + calibration + compile in {time.perf_counter() - t_start:.1f} s, load {loadavg()}")

    import torch

    torch_threads = torch.get_num_threads()
    rows = [Row("float", fm, "FloatModel float32 (numpy; int8 x ternary products by the exact integer kernel)"),
            Row("golden", GoldenModel(net), "GoldenModel, integers (numpy + numba kernels, 1 thread)")]
    t0 = time.perf_counter()
    rows.append(Row("torch", TorchReference(fm, act_quant=True),
                    f"PyTorch {torch.__version__} fp32, dense Wt/s, per-token int8 absmax act. quant, "
                    f"{torch_threads} threads"))
    if not args.no_torch_plain:
        rows.append(Row("torch-plain", TorchReference(fm, act_quant=False),
                        f"PyTorch fp32, dense Wt/s, plain fp32 activations, {torch_threads} threads"))
    log(f"torch reference built in {time.perf_counter() - t0:.1f} s")

    rng = np.random.default_rng(args.seed + 1)
    V = cfg.vocab_size
    prompt = rng.integers(0, V, args.prompt).tolist()
    prefix = rng.integers(0, V, DECODE_PREFIX).tolist()
    decode_tokens = rng.integers(0, V, args.decode).tolist()

    # agreement of the outside reference with the float model (same architecture, both fp32)
    check = prompt[:8]
    f_logits, _ = fm.prefill(check)
    t_logits = rows[2].model.prefill(check)[0].numpy()
    agreement = {"tokens": len(check),
                 "torch_vs_float_rel_err": float(np.linalg.norm(t_logits - f_logits) / np.linalg.norm(f_logits)),
                 "torch_vs_float_top1": float(np.mean(t_logits.argmax(-1) == f_logits.argmax(-1)))}
    for row in rows:  # warm-up: JIT / disk cache of the numba kernels, packing, torch's first calls
        t0 = time.perf_counter()
        _, st = row.prefill(prompt[:8])
        row.step(decode_tokens[0], st)
        row.warmup_s = time.perf_counter() - t0
        row.resident = resident_bytes(row.model)
    log(f"warm-up done, load {loadavg()}")

    for r in range(args.repeats):
        order = rows[r % len(rows):] + rows[:r % len(rows)]
        for row in order:
            time_row(row, prompt, prefix, decode_tokens)
        log(f"repeat {r + 1}/{args.repeats}: " + ", ".join(
            f"{row.name} {row.decode_s_per_token[-1] * MS:.1f} ms/tok" for row in rows) + f"; load {loadavg()}")

    stages = golden_stage_timing(net, prompt, prefix, decode_tokens)
    load_mid = loadavg()

    lava = None
    if not args.no_lava:
        lava = run_sim_fused(net, args, log)
    load_end = loadavg()

    # ------------------------------------------------------------------ summary
    res_rows = {}
    for row in rows:
        dec, pre = med(row.decode_s_per_token), med(row.prefill_s)
        res_rows[row.name] = {
            "note": row.note, "decode_ms_per_token": dec * MS, "decode_tokens_per_s": 1.0 / dec,
            "prefill_ms_per_token": pre / args.prompt * MS, "prefill_tokens_per_s": args.prompt / pre,
            "resident_mib": row.resident / MIB, "transient_peak_mib": med(row.transient) / MIB,
            "decode_ms_per_token_all": [x * MS for x in row.decode_s_per_token],
            "prefill_s_all": row.prefill_s, "warmup_s": row.warmup_s}
    if lava is not None:
        res_rows["sim-fused"] = {
            "note": f"Lava Loihi2SimCfg fixed_pt, fused blocks, {lava['leaf_processes']} leaf processes, "
                    f"{lava['steps_per_decode_token']} steps per decoded token",
            "decode_ms_per_token": lava["decode_ms_per_token"], "decode_tokens_per_s": MS / lava["decode_ms_per_token"],
            "prefill_ms_per_token": lava["prefill_ms_per_token"],
            "prefill_tokens_per_s": MS / lava["prefill_ms_per_token"],
            "startup_s": lava["startup_s"], "pss_peak_mib": lava["pss_peak_mib"]}
    torch_row = res_rows["torch"]
    g = res_rows["golden"]
    checks = {
        "golden_decode_tokens_per_s": g["decode_tokens_per_s"],
        "golden_over_torch_decode": g["decode_tokens_per_s"] / torch_row["decode_tokens_per_s"],
        "golden_prefill_tokens_per_s": g["prefill_tokens_per_s"],
    }
    if lava is not None:
        checks["sim_fused_decode_tokens_per_s"] = res_rows["sim-fused"]["decode_tokens_per_s"]
    targets = {k: {"value": v, "target": TARGETS[k], "met": bool(v >= TARGETS[k])} for k, v in checks.items()}

    result = {
        "benchmark": "bench_decode",
        "command": " ".join([".venv/bin/python", "benchmarks/bench_decode.py"]
                            + (argv if argv is not None else sys.argv[1:])),
        "config": args.config, "seed": args.seed, "source": setup.source,
        "model": {"layers": cfg.num_layers, "hidden": cfg.hidden_size, "intermediate": cfg.intermediate_size,
                  "vocab": cfg.vocab_size},
        "calibration": {"sequences": args.calib_sequences, "length": args.calib_length},
        "protocol": {"prompt_tokens": args.prompt, "decode_prefix": DECODE_PREFIX, "decode_tokens": args.decode,
                     "repeats": args.repeats, "torch_threads": torch_threads, "statistic": "median"},
        "load_start": load_start, "load_after_numpy_rows": load_mid, "load_end": load_end,
        "rows": res_rows, "targets": targets, "torch_agreement": agreement, "golden_stages": stages,
        "sim_fused": lava, "peak_rss_mib_process": peak_rss_bytes() / MIB,
        "wall_s": time.perf_counter() - t_start,
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                        "cpus": os.cpu_count(), "machine": platform.machine()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")

    # ------------------------------------------------------------------ table
    print(f"== {args.config}, random ternary weights (seed {args.seed}): decode and prefill, one run ==")
    print(f"load average: start {load_start}, after the numpy/torch rows {load_mid}, end {load_end}; "
          f"medians of {args.repeats} repeats (sim-fused: {args.lava_repeats}); prefill = {args.prompt}-token "
          f"prompt; decode = {args.decode} tokens after a {DECODE_PREFIX}-token prefix")
    print("| model | decode tokens/s | ms/token | x torch | prefill tokens/s | x torch | resident MiB "
          "| transient peak MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in res_rows.items():
        mem = (f"{r['resident_mib']:.0f} | {r['transient_peak_mib']:.1f}" if "resident_mib" in r
               else f"{r['pss_peak_mib']:.0f} (PSS of the run) | -")
        print(f"| {name} | {r['decode_tokens_per_s']:.1f} | {r['decode_ms_per_token']:.1f} "
              f"| {r['decode_tokens_per_s'] / torch_row['decode_tokens_per_s']:.2f} "
              f"| {r['prefill_tokens_per_s']:.1f} | {r['prefill_tokens_per_s'] / torch_row['prefill_tokens_per_s']:.2f} "
              f"| {mem} |")
    for name, r in res_rows.items():
        print(f"  {name}: {r['note']}")
    print(f"  torch vs float logits on {agreement['tokens']} tokens: rel. error "
          f"{agreement['torch_vs_float_rel_err']:.2e}, top-1 agreement {agreement['torch_vs_float_top1']:.0%}")
    if lava is not None:
        print(f"  sim-fused: start-up {lava['startup_s']:.1f} s (compile {lava['compile_s']:.2f} s, "
              f"create_runtime {lava['create_runtime_s']:.1f} s), teardown {lava['stop_s']:.1f} s, "
              f"prompt in -> first new token {lava['prompt_to_first_token_s']:.1f} s for {lava['prompt_len']} tokens")
    print()
    print("targets:")
    for k, t in targets.items():
        print(f"  {k}: {t['value']:.2f} (target >= {t['target']}) {'MET' if t['met'] else 'MISSED'}")
    print()
    print("golden model by stage (ms per token):")
    for phase, s in stages.items():
        parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(s["stages_ms_per_token"].items(), key=lambda kv: -kv[1]))
        print(f"  {phase}: {s['ms_per_token']:.2f} total = {parts}")
    if lava is not None:
        fl = lava["chain_floor"]
        print(f"sim-fused, {lava['steps_per_decode_token']} steps per decoded token; Lava's floor in the same "
              f"worker: a chain of {fl['leaf_processes']} trivial leaf processes (Dense 1x1) "
              f"{fl['ms_per_step']:.1f} ms/step wall, {fl['children_cpu_ms_per_step']:.1f} ms CPU/step "
              f"(= {fl['ms_per_step'] * lava['steps_per_decode_token']:.0f} ms per token with no compute at all)")
        for phase in ("decode", "prefill"):
            by = sorted(lava[f"{phase}_compute_by_model_ms_per_step"].items(), key=lambda kv: -kv[1])
            print(f"  {phase} step: {lava[f'{phase}_ms_per_step']:.1f} ms wall; CPU of all Lava processes "
                  f"{lava[f'{phase}_children_cpu_ms_per_step']:.1f} ms = Lava's own "
                  f"{lava[f'{phase}_lava_cpu_ms_per_step']:.1f} + run_spk (models + port send/recv) "
                  f"{lava[f'{phase}_compute_cpu_ms_per_step']:.1f}: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in by[:6]))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
