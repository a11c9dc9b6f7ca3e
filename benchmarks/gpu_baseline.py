"""Measure the GPU baselines' cells on a CUDA machine (docs/gpu_baselines.md, "Measuring a GPU").

    python benchmarks/gpu_baseline.py --out out/gpu_<name>.json [--models transformer++ qwen2.5-0.5b matmulfree]
        [--runtimes eager sdpa cuda-graph] [--prefill 16 128 512 2048 8192 16384] [--contexts 128 500 2048 16384]
        [--batches 1 8 64] [--min-seconds 1.5] [--warmup 2]

The protocol of the H200 measurement (lava_matmulfree/data/gpu_h200.json): fp16, random weights, ``model.eval()`` under
``torch.inference_mode()``; ``eager`` and ``sdpa`` are Hugging Face's LlamaForCausalLM / Qwen2ForCausalLM with
``attn_implementation`` set so; ``cuda-graph`` is the same architecture written as one step function (fp16
matmuls, SDPA over a static KV cache, greedy argmax on the GPU) captured once with ``torch.cuda.CUDAGraph`` and
replayed. A prompt pass is one forward of T tokens from an empty cache asking for the last position's logits;
a decode cell is 128 (eager, sdpa) or 64 (cuda-graph) single-token steps per stream after C tokens of context,
each feeding back its argmax (the context's keys and values are random: with random weights only their size
matters). Every figure is over at least ``--min-seconds`` of repeated work after ``--warmup`` warm-up runs, timed
with ``torch.cuda.synchronize()``; energy is NVML's board energy counter (``nvmlDeviceGetTotalEnergyConsumption``)
read around the same work, divided by the tokens; "above idle" subtracts the idle board power (measured first,
with nothing running) times the time.

The MatMul-free model runs as its upstream code does (BitLinear: RMSNorm, per-token int8 fake-quantisation, the
straight-through sub and add, an fp16 matmul of ternary values; the MLGRU element-wise; the LM head a BitLinear at
every position), with flash-linear-attention's fused kernels (``fla``: RMSNorm, FusedRMSNormSwishGate,
chunk_hgrn, fused_recurrent_hgrn) where that package is installed, plain PyTorch ops otherwise (more kernels; the
JSON says which).

Without torch, CUDA, transformers or NVML it prints one line and exits with status 2; a cell that fails (out of
memory, an API this transformers lacks) is recorded with its error and the rest go on. Commit the JSON with the
machine named (its ``source`` holds the GPU, driver and versions).

Kept whole: one file that a GPU's owner copies to the machine and runs, importing nothing of this project.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

PREFILL_TOKENS = (16, 128, 512, 2048, 8192, 16384)
DECODE_CONTEXTS = (128, 500, 2048, 16384)
BATCHES = (1, 8, 64)
MODELS = ("transformer++", "qwen2.5-0.5b", "matmulfree")
RUNTIMES = ("eager", "sdpa", "cuda-graph")
DECODE_STEPS = {"eager": 128, "sdpa": 128, "cuda-graph": 64}
IDLE_SECONDS = 3.0
EXIT_MISSING = 2
# the shapes (lava_matmulfree.loihi.gpu_baseline holds the same: LLAMA_370M, QWEN25_05B, matmulfree(370m))
SHAPES = {
    "transformer++": dict(family="llama", vocab_size=32000, hidden_size=1024, intermediate_size=2816,
                          num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=16,
                          tie_word_embeddings=False),
    "qwen2.5-0.5b": dict(family="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
                         num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                         tie_word_embeddings=True),
    "matmulfree": dict(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=24),
}


class Missing(Exception):
    """A dependency the measurement needs is not there."""


def _require():
    """torch, CUDA, transformers and NVML, or :class:`Missing` naming the first one absent."""
    try:
        import torch
    except ImportError:
        raise Missing("torch is not installed") from None
    if not torch.cuda.is_available():
        raise Missing("no CUDA device (torch.cuda.is_available() is False)")
    try:
        import transformers
    except ImportError:
        raise Missing("transformers is not installed (pip install transformers)") from None
    try:
        import pynvml
    except ImportError:
        raise Missing("NVML bindings are not installed (pip install nvidia-ml-py)") from None
    return torch, transformers, pynvml


# ------------------------------------------------------------------------------------------- measuring
class Meter:
    """NVML's board energy counter (millijoules) of the GPU torch uses."""

    def __init__(self, torch, pynvml):
        self.torch, self.nvml = torch, pynvml
        pynvml.nvmlInit()
        index = torch.cuda.current_device()
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.idle_w = None

    def mj(self) -> float:
        return float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def idle(self, seconds: float = IDLE_SECONDS) -> float:
        self.torch.cuda.synchronize()
        e0, t0 = self.mj(), time.perf_counter()
        time.sleep(seconds)
        self.idle_w = (self.mj() - e0) / 1e3 / (time.perf_counter() - t0)
        return self.idle_w

    def source(self) -> dict:
        nv = self.nvml
        name = nv.nvmlDeviceGetName(self.handle)
        return {"gpu": name.decode() if isinstance(name, bytes) else name,
                "driver": _text(nv.nvmlSystemGetDriverVersion()),
                "power_limit_w": nv.nvmlDeviceGetEnforcedPowerLimit(self.handle) / 1e3,
                "memory_bytes": nv.nvmlDeviceGetMemoryInfo(self.handle).total}


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def measure(torch, meter: Meter, work, tokens_per_call: int, min_seconds: float, warmup: int, setup=None) -> dict:
    """Repeat ``work()`` (``setup()`` before each call, inside the window: it must be cheap) for at least
    ``min_seconds`` after ``warmup`` calls; tokens/s, mJ/token and above idle over the whole window."""
    for _ in range(warmup):
        if setup:
            setup()
        work()
    torch.cuda.synchronize()
    calls, e0, t0 = 0, meter.mj(), time.perf_counter()
    while True:
        if setup:
            setup()
        work()
        torch.cuda.synchronize()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            break
    energy_mj = meter.mj() - e0
    tokens = calls * tokens_per_call
    above = energy_mj - 1e3 * meter.idle_w * elapsed
    return {"tokens_per_s": tokens / elapsed, "mj_per_token": energy_mj / tokens,
            "mj_per_token_above_idle": above / tokens, "seconds": elapsed, "calls": calls,
            "mean_power_w": energy_mj / 1e3 / elapsed}


# ------------------------------------------------------------------------------------------- the transformers
def hf_model(torch, transformers, name: str, attn: str, max_positions: int):
    """A random-weight fp16 LlamaForCausalLM / Qwen2ForCausalLM of the named shape on the GPU."""
    shape = dict(SHAPES[name])
    family = shape.pop("family")
    cls_cfg, cls_model = ((transformers.LlamaConfig, transformers.LlamaForCausalLM) if family == "llama" else
                          (transformers.Qwen2Config, transformers.Qwen2ForCausalLM))
    cfg = cls_cfg(**shape, max_position_embeddings=max_positions)
    cfg._attn_implementation = attn  # the attribute every transformers version reads
    with torch.device("cuda"):
        model = cls_model(cfg)
    return model.half().eval()


def _forward_kwargs(model) -> dict:
    """Ask the prompt's forward for the last position's logits only (logits_to_keep, num_logits_to_keep before
    transformers 4.50), as generate() does."""
    import inspect

    params = inspect.signature(model.forward).parameters
    for key in ("logits_to_keep", "num_logits_to_keep"):
        if key in params:
            return {key: 1}
    return {}


def filled_cache(torch, transformers, model, batch: int, context: int):
    """A DynamicCache holding ``context`` random keys and values per layer and stream."""
    cfg = model.config
    try:
        cache = transformers.DynamicCache(config=cfg)
    except TypeError:
        cache = transformers.DynamicCache()
    kv_heads = cfg.num_key_value_heads
    hd = cfg.hidden_size // cfg.num_attention_heads
    for layer in range(cfg.num_hidden_layers):
        k = torch.randn(batch, kv_heads, context, hd, device="cuda", dtype=torch.float16)
        cache.update(k, torch.randn_like(k), layer)
    return cache


def hf_cells(torch, transformers, meter, name, attn, args, out):
    """Prompt passes and decode steps of one transformer under eager or sdpa attention."""
    model = hf_model(torch, transformers, name, attn, max(args.prefill + args.contexts) + 256)
    kw = _forward_kwargs(model)
    V = model.config.vocab_size
    for T in args.prefill:
        ids = torch.randint(0, V, (1, T), device="cuda")
        run_cell(out, torch, dict(model=name, runtime=attn, phase="prefill", tokens=T, batch=1),
                 lambda: measure(torch, meter, lambda: model(input_ids=ids, use_cache=True, **kw), T,
                                 args.min_seconds, args.warmup))
    steps = DECODE_STEPS[attn]
    for C in args.contexts:
        for B in args.batches:
            def cell(C=C, B=B):
                cache = filled_cache(torch, transformers, model, B, C)
                first = torch.randint(0, V, (B, 1), device="cuda")

                def work():
                    nxt = first
                    for _ in range(steps):
                        logits = model(input_ids=nxt, past_key_values=cache, use_cache=True).logits
                        nxt = logits[:, -1:].argmax(-1)
                return measure(torch, meter, work, steps * B, args.min_seconds, args.warmup,
                               setup=lambda: cache.crop(C))
            run_cell(out, torch, dict(model=name, runtime=attn, phase="decode", context=C, batch=B), cell)
    del model
    torch.cuda.empty_cache()


def graph_step(torch, model, batch: int, max_len: int):
    """The transformer's decode step as one function over a static KV cache of ``max_len`` positions (fp16
    matmuls, HF's RMSNorm and rotary, SDPA with a mask of the filled positions, argmax), for CUDA-graph capture.
    Returns (step, token buffer, position tensor)."""
    F = torch.nn.functional
    cfg = model.config
    L, H, Hkv = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads
    hd = cfg.hidden_size // H
    core = model.model
    eps = cfg.rms_norm_eps
    k_cache = [torch.zeros(batch, Hkv, max_len, hd, device="cuda", dtype=torch.float16) for _ in range(L)]
    v_cache = [torch.zeros_like(k) for k in k_cache]
    positions = torch.arange(max_len, device="cuda")
    probe = torch.zeros(1, max_len, hd, device="cuda", dtype=torch.float16)
    cos_t, sin_t = core.rotary_emb(probe, positions[None])  # (1, max_len, hd)
    token = torch.zeros(batch, 1, dtype=torch.long, device="cuda")
    pos = torch.zeros(1, dtype=torch.long, device="cuda")
    head_w = model.lm_head.weight

    def norm(x, w):
        v = x.float()
        return w * (v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + eps)).to(torch.float16)

    def rope(x, cos, sin):
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin

    def step():
        x = core.embed_tokens(token)  # (B, 1, d)
        cos = cos_t.index_select(1, pos)[:, None]
        sin = sin_t.index_select(1, pos)[:, None]
        mask = torch.where(positions <= pos, 0.0, float("-inf")).to(torch.float16)[None, None, None]
        for i, layer in enumerate(core.layers):
            a = layer.self_attn
            h = norm(x, layer.input_layernorm.weight)
            q = F.linear(h, a.q_proj.weight, a.q_proj.bias).view(batch, 1, H, hd).transpose(1, 2)
            k = F.linear(h, a.k_proj.weight, a.k_proj.bias).view(batch, 1, Hkv, hd).transpose(1, 2)
            v = F.linear(h, a.v_proj.weight, a.v_proj.bias).view(batch, 1, Hkv, hd).transpose(1, 2)
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            k_cache[i].index_copy_(2, pos, k)
            v_cache[i].index_copy_(2, pos, v)
            o = F.scaled_dot_product_attention(q, k_cache[i], v_cache[i], attn_mask=mask, enable_gqa=Hkv != H)
            x = x + F.linear(o.transpose(1, 2).reshape(batch, 1, H * hd), a.o_proj.weight)
            m = layer.mlp
            h = norm(x, layer.post_attention_layernorm.weight)
            x = x + F.linear(F.silu(F.linear(h, m.gate_proj.weight)) * F.linear(h, m.up_proj.weight),
                             m.down_proj.weight)
        logits = F.linear(norm(x, core.norm.weight), head_w)
        token.copy_(logits[:, -1:].argmax(-1))
        pos.add_(1)

    return step, token, pos


def graph_cells(torch, transformers, meter, name, args, out):
    """The CUDA-graph decode of one transformer (its prompt passes are left to eager and sdpa)."""
    model = hf_model(torch, transformers, name, "sdpa", max(args.contexts) + DECODE_STEPS["cuda-graph"] + 8)
    steps = DECODE_STEPS["cuda-graph"]
    for C in args.contexts:
        for B in args.batches:
            def cell(C=C, B=B):
                step, token, pos = graph_step(torch, model, B, C + steps + 1)
                return replay_cell(torch, meter, step, pos, C, B, steps, args)
            run_cell(out, torch, dict(model=name, runtime="cuda-graph", phase="decode", context=C, batch=B), cell)
    del model
    torch.cuda.empty_cache()


def replay_cell(torch, meter, step, pos, context: int, batch: int, steps: int, args) -> dict:
    """Capture ``step`` once (after warm-up on a side stream) and replay it ``steps`` times per call, the
    position reset to ``context`` before each call."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            pos.fill_(context)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    pos.fill_(context)
    with torch.cuda.graph(graph):
        step()

    def work():
        for _ in range(steps):
            graph.replay()
    return measure(torch, meter, work, steps * batch, args.min_seconds, args.warmup,
                   setup=lambda: pos.fill_(context))


# ------------------------------------------------------------------------------------------- the MatMul-free model
def matmulfree_model(torch, batch: int):
    """The HGRN-Bit network as its upstream code runs (see the module docstring): (model, uses_fla)."""
    nn, F = torch.nn, torch.nn.functional
    s = SHAPES["matmulfree"]
    d, I, V, L = s["hidden_size"], s["intermediate_size"], s["vocab_size"], s["num_hidden_layers"]
    try:
        from fla.modules import FusedRMSNormSwishGate, RMSNorm
        from fla.ops.hgrn import chunk_hgrn, fused_recurrent_hgrn
        fla = _fla_scan_takes_btd(torch, chunk_hgrn, fused_recurrent_hgrn)
    except ImportError:
        fla = False

    class Norm(nn.Module):
        def __init__(self, n, eps=1e-6):
            super().__init__()
            self.weight, self.eps = nn.Parameter(torch.ones(n)), eps

        def forward(self, x):
            v = x.float()
            return (self.weight * v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)

    make_norm = (lambda n, eps=1e-6: RMSNorm(n, eps=eps)) if fla else Norm

    class BitLinear(nn.Module):
        def __init__(self, fin, fout):
            super().__init__()
            self.norm = make_norm(fin, 1e-8)
            ternary = torch.randint(-1, 2, (fout, fin), dtype=torch.float16)
            self.weight = nn.Parameter(ternary * 0.02)  # the ternary values times the scale, held in fp16

        def forward(self, x):
            x = self.norm(x)
            scale = 127.0 / x.abs().max(dim=-1, keepdim=True).values.clamp_(min=1e-5)
            q = (x * scale).round().clamp_(-128, 127) / scale
            return F.linear(x + (q - x).detach(), self.weight)

    def swiglu(x, y):
        return F.silu(x) * y

    def scan(i, f, h0):
        """h_t = f_t h_{t-1} + i_t over (B, T, d), from h0 (B, d); returns (h, last)."""
        if fla:
            if i.shape[1] == 1:
                o, last = fused_recurrent_hgrn(i, f.log(), initial_state=h0, output_final_state=True)
            else:
                o, last = chunk_hgrn(i, f.log(), initial_state=h0, output_final_state=True)
            return o, last
        if i.shape[1] == 1:
            h = f[:, 0].float() * h0 + i[:, 0].float()
            return h[:, None].to(i.dtype), h
        outs, h = [], h0
        for c in range(0, i.shape[1], 64):  # a chunked scan: log-space within 64 tokens, a loop across chunks
            lf = torch.cumsum(f[:, c:c + 64].float().log(), dim=1)
            acc = torch.cumsum(i[:, c:c + 64].float() * torch.exp(-lf), dim=1)
            hc = torch.exp(lf) * (h[:, None] + acc)
            outs.append(hc.to(i.dtype))
            h = hc[:, -1]
        return torch.cat(outs, dim=1), h

    class Layer(nn.Module):
        def __init__(self, index):
            super().__init__()
            self.index = index
            self.attn_norm, self.mlp_norm = make_norm(d), make_norm(d)
            self.i_proj, self.f_proj, self.g_proj, self.o_proj = (BitLinear(d, d) for _ in range(4))
            self.g_norm = FusedRMSNormSwishGate(d) if fla else make_norm(d)
            self.gate_proj, self.down_proj = BitLinear(d, 2 * I), BitLinear(I, d)

        def forward(self, x, h0, lower):
            y = self.attn_norm(x)
            i, f = self.i_proj(y), self.f_proj(y).sigmoid()
            if self.index > 0:
                f = lower + (1 - lower) * f
            i = swiglu(i, 1 - f)
            o, last = scan(i, f, h0)
            g = self.g_proj(y)
            o = self.g_norm(g, o) if fla else self.g_norm(o) * F.silu(g)
            x = x + self.o_proj(o)
            gate, up = self.gate_proj(self.mlp_norm(x)).chunk(2, -1)
            return x + self.down_proj(swiglu(gate, up)), last

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, d)
            self.layers = nn.ModuleList(Layer(n) for n in range(L))
            self.lower_bounds = nn.Parameter(torch.zeros(L, d))
            self.norm, self.head = make_norm(d), BitLinear(d, V)
            self.state = torch.zeros(L, batch, d, device="cuda", dtype=torch.float32)

        def forward(self, ids):
            x = self.embed(ids)
            lb = self.lower_bounds.softmax(0)
            lb = lb.cumsum(0) - lb[0]
            for n, layer in enumerate(self.layers):
                x, last = layer(x, self.state[n], lb[n])
                self.state[n].copy_(last)
            return self.head(self.norm(x))  # the head at every position, as upstream

    with torch.device("cuda"):
        model = Model()
    return model.half().eval(), fla


def _fla_scan_takes_btd(torch, chunk, fused) -> bool:
    """Whether this fla's HGRN kernels take (batch, time, dim) inputs (their layout changed across versions);
    if not, the PyTorch scan is used and the JSON says so."""
    try:
        x = torch.zeros(1, 64, 16, device="cuda", dtype=torch.float16)
        h0 = torch.zeros(1, 16, device="cuda", dtype=torch.float32)
        o1, _ = chunk(x, x, initial_state=h0, output_final_state=True)
        o2, _ = fused(x[:, :1], x[:, :1], initial_state=h0, output_final_state=True)
        return tuple(o1.shape) == (1, 64, 16) and tuple(o2.shape) == (1, 1, 16)
    except Exception:  # noqa: BLE001 - any failure means: use the PyTorch scan
        return False


def matmulfree_cells(torch, meter, args, out, runtimes):
    V = SHAPES["matmulfree"]["vocab_size"]
    models: dict = {}

    def model_for(batch):
        if batch not in models:
            models.clear()  # one 374M model on the GPU at a time
            torch.cuda.empty_cache()
            models[batch] = matmulfree_model(torch, batch)
        return models[batch]

    for runtime in runtimes:
        steps = DECODE_STEPS[runtime]
        if runtime != "cuda-graph":
            model, fla = model_for(1)
            for T in args.prefill:
                ids = torch.randint(0, V, (1, T), device="cuda")
                run_cell(out, torch, dict(model="matmulfree", runtime=runtime, phase="prefill", tokens=T, batch=1),
                         lambda: {**measure(torch, meter, lambda: model(ids), T, args.min_seconds, args.warmup,
                                            setup=lambda: model.state.zero_()), "fla": fla})
        for C in args.contexts:  # the recurrent state does not grow: the context only names the cell
            for B in args.batches:
                def cell(B=B, runtime=runtime, steps=steps):
                    model, fla = model_for(B)
                    token = torch.randint(0, V, (B, 1), device="cuda")

                    def one():
                        token.copy_(model(token)[:, -1:].argmax(-1))
                    if runtime == "cuda-graph":
                        pos = torch.zeros(1, dtype=torch.long, device="cuda")
                        return {**replay_cell(torch, meter, one, pos, 0, B, steps, args), "fla": fla}
                    return {**measure(torch, meter, lambda: [one() for _ in range(steps)], steps * B,
                                      args.min_seconds, args.warmup), "fla": fla}
                run_cell(out, torch, dict(model="matmulfree", runtime=runtime, phase="decode", context=C, batch=B),
                         cell)
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------- driver
def run_cell(out: list, torch, key: dict, fn) -> None:
    """Measure one cell, recording its figures or its error; print a line per cell."""
    try:
        with torch.inference_mode():
            row = {**key, **fn()}
    except Exception as e:  # noqa: BLE001 - one failing cell (out of memory, an API) must not stop the rest
        row = {**key, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
        torch.cuda.empty_cache()
    out.append(row)
    what = f"{row['tokens']} tokens" if row["phase"] == "prefill" else f"context {row['context']} x {row['batch']}"
    figures = (f"{row['tokens_per_s']:,.1f} tok/s, {row['mj_per_token']:,.2f} mJ/token" if "error" not in row
               else row["error"])
    print(f"{row['model']:<14}{row['runtime']:<11}{row['phase']:<8}{what:<22}{figures}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    ap.add_argument("--prefill", type=int, nargs="+", default=list(PREFILL_TOKENS))
    ap.add_argument("--contexts", type=int, nargs="+", default=list(DECODE_CONTEXTS))
    ap.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    ap.add_argument("--min-seconds", type=float, default=1.5)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args(argv)
    try:
        torch, transformers, pynvml = _require()
    except Missing as e:
        print(f"gpu_baseline: {e}; nothing measured", file=sys.stderr)
        return EXIT_MISSING
    meter = Meter(torch, pynvml)
    idle = meter.idle()
    source = {**meter.source(), "idle_power_w": idle, "date": datetime.date.today().isoformat(),
              "host": platform.node(), "cuda": torch.version.cuda, "torch": torch.__version__,
              "transformers": transformers.__version__, "python": platform.python_version(),
              "protocol": "benchmarks/gpu_baseline.py (its docstring)", "min_seconds": args.min_seconds,
              "warmup": args.warmup}
    print(f"{source['gpu']}, driver {source['driver']}, idle {idle:.0f} W", flush=True)
    cells: list = []
    torch.manual_seed(0)
    for name in args.models:
        if name == "matmulfree":
            matmulfree_cells(torch, meter, args, cells, args.runtimes)
            continue
        for runtime in args.runtimes:
            if runtime == "cuda-graph":
                graph_cells(torch, transformers, meter, name, args, cells)
            else:
                hf_cells(torch, transformers, meter, name, runtime, args, cells)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"source": source, "cells": cells}, indent=1))
    print(f"wrote {args.out} ({len(cells)} cells, {sum('error' in c for c in cells)} failed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
