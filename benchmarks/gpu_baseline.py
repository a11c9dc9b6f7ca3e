"""Measure the GPU baselines' cells on a CUDA machine (docs/gpu_baselines.md, "Measuring a GPU").

    python benchmarks/gpu_baseline.py --out out/gpu_<name>.json [--models transformer++ qwen2.5-0.5b matmulfree]
        [--runtimes eager sdpa cuda-graph] [--prefill 16 128 512 2048 8192 16384] [--contexts 128 500 2048 16384]
        [--batches 1 8 64] [--min-seconds 1.5] [--warmup 2]
    python benchmarks/gpu_baseline.py --device cpu --tiny --out out/gpu_smoke.json    # a smoke run, no GPU

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

Before any cell is timed, each model's code is checked in fp32 against a reference (``checks`` in the JSON): the
cuda-graph step function, uncaptured and fed CHECK_TOKENS tokens one at a time, against Hugging Face's own forward
of the same model (logits per position), and the MatMul-free model's prompt pass against its own decode steps.

``--checks-only`` runs the checks alone (``--device cpu --checks-only``: at full size on a CPU, about 1.5 min).
``--device cpu --tiny`` runs every code path but NVML and the graph capture (the step function runs uncaptured) on
the CPU, in fp32, with 2-layer models and a small grid: a smoke run for a machine without a GPU, before one is lent
(no energy figures; its tokens/s say nothing of a GPU).

Without torch, CUDA, transformers or NVML it prints one line and exits with status 2; a cell that fails (out of
memory, an API this transformers lacks) is recorded with its error and the rest go on. Commit the JSON with the
machine named (its ``source`` holds the GPU, driver and versions).

Kept whole: one file that a GPU's owner copies to the machine and runs, importing nothing of this project.
"""
from __future__ import annotations

import argparse
import contextlib
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
# --tiny: the same architectures at a size a CPU runs in seconds (odd sizes, grouped queries kept), for a smoke run
TINY_SHAPES = {
    "transformer++": dict(family="llama", vocab_size=331, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False),
    "qwen2.5-0.5b": dict(family="qwen2", vocab_size=347, hidden_size=64, intermediate_size=112, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),
    "matmulfree": dict(vocab_size=331, hidden_size=64, intermediate_size=96, num_hidden_layers=2),
}
TINY_GRID = {"prefill": [16, 70], "contexts": [20], "batches": [1, 3], "min_seconds": 0.05, "warmup": 1}
SCAN_CHUNK = 64  # tokens per chunk of the MatMul-free model's prompt scan in PyTorch (fla's chunk size)
CHECK_TOKENS = 70  # the checks' sequence: past one chunk of that scan
CHECK_TOLERANCE = 1e-4  # fp32 logits' max relative difference a check passes (3-4e-7 measured; a wrong sign 4e-3)


class Rig:
    """Where and how the cells run: the GPU in fp16 (the measurement), or ``--device cpu`` in fp32 (a smoke run
    of every code path but NVML and the CUDA-graph capture, with no energy figures)."""
    device, dtype, shapes = "cuda", "float16", SHAPES
    round_activations = True  # BitLinear's int8 rounding; off in the scan's check (see check_matmulfree_scan)

    @classmethod
    def set(cls, device: str, tiny: bool) -> None:
        cls.device, cls.dtype = device, "float16" if device == "cuda" else "float32"
        cls.shapes = TINY_SHAPES if tiny else SHAPES

    @classmethod
    @contextlib.contextmanager
    def holding(cls, **values):
        """These settings for the ``with`` block, then again what they were."""
        kept = {name: getattr(cls, name) for name in values}
        for name, value in values.items():
            setattr(cls, name, value)
        try:
            yield
        finally:
            for name, value in kept.items():
                setattr(cls, name, value)

    @classmethod
    def exact(cls):
        """fp32 for the checks, also on the GPU: fp16 rounding would hide a wrong rotary sign (0.4-0.9%)."""
        return cls.holding(dtype="float32")


def _dtype(torch):
    return getattr(torch, Rig.dtype)


def _sync(torch) -> None:
    if Rig.device == "cuda":
        torch.cuda.synchronize()


def _free(torch) -> None:
    if Rig.device == "cuda":
        torch.cuda.empty_cache()


class Missing(Exception):
    """A dependency the measurement needs is not there."""


def _require(device: str = "cuda", need_transformers: bool = True):
    """torch, CUDA, transformers and NVML (on the CPU: torch, and transformers where a transformer runs), or
    :class:`Missing` naming the first one absent."""
    try:
        import torch
    except ImportError:
        raise Missing("torch is not installed") from None
    if device == "cuda" and not torch.cuda.is_available():
        raise Missing("no CUDA device (torch.cuda.is_available() is False; --device cpu makes a smoke run)")
    transformers = pynvml = None
    if need_transformers:
        try:
            import transformers
        except ImportError:
            raise Missing("transformers is not installed (pip install transformers)") from None
        if not transformers.utils.is_torch_available():  # transformers 5 takes no torch older than it supports
            raise Missing(f"transformers {transformers.__version__} cannot use torch {torch.__version__} (its models "
                          "need a newer torch)")
    if device == "cuda":
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


class Clock:
    """The CPU smoke run's stand-in for :class:`Meter`: time only, no energy."""

    idle_w = None

    def mj(self) -> float:
        return float("nan")

    def idle(self, seconds: float = 0.0) -> None:
        return None

    def source(self) -> dict:
        return {"gpu": f"none: a CPU smoke run ({platform.processor() or platform.machine()}), no energy figures",
                "driver": None, "power_limit_w": None, "memory_bytes": None}


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def measure(torch, meter: Meter, work, tokens_per_call: int, min_seconds: float, warmup: int, setup=None) -> dict:
    """Repeat ``work()`` (``setup()`` before each call, inside the window: it must be cheap) for at least
    ``min_seconds`` after ``warmup`` calls; tokens/s, mJ/token and above idle over the whole window."""
    for _ in range(warmup):
        if setup:
            setup()
        work()
    _sync(torch)
    calls, e0, t0 = 0, meter.mj(), time.perf_counter()
    while True:
        if setup:
            setup()
        work()
        _sync(torch)
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            break
    energy_mj = meter.mj() - e0
    tokens = calls * tokens_per_call
    row = {"tokens_per_s": tokens / elapsed, "seconds": elapsed, "calls": calls}
    if meter.idle_w is None:  # the CPU smoke run: no energy counter
        return {**row, "mj_per_token": None, "mj_per_token_above_idle": None, "mean_power_w": None}
    above = energy_mj - 1e3 * meter.idle_w * elapsed
    return {**row, "mj_per_token": energy_mj / tokens, "mj_per_token_above_idle": above / tokens,
            "mean_power_w": energy_mj / 1e3 / elapsed}


# ------------------------------------------------------------------------------------------- the transformers
def hf_model(torch, transformers, name: str, attn: str, max_positions: int):
    """A random-weight fp16 LlamaForCausalLM / Qwen2ForCausalLM of the named shape on the GPU (fp32 on the CPU)."""
    shape = dict(Rig.shapes[name])
    family = shape.pop("family")
    cls_cfg, cls_model = ((transformers.LlamaConfig, transformers.LlamaForCausalLM) if family == "llama" else
                          (transformers.Qwen2Config, transformers.Qwen2ForCausalLM))
    cfg = cls_cfg(**shape, max_position_embeddings=max_positions)
    cfg._attn_implementation = attn  # the attribute every transformers version reads
    with torch.device(Rig.device):
        model = cls_model(cfg)
    return model.to(_dtype(torch)).eval()


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
        k = torch.randn(batch, kv_heads, context, hd, device=Rig.device, dtype=_dtype(torch))
        cache.update(k, torch.randn_like(k), layer)
    return cache


def _crop(cache, context: int) -> None:
    """Cut the cache back to its first ``context`` positions, by a negative count (the form transformers 4 and 5
    both take; a positive length is deprecated in 5.17 and goes in 5.18)."""
    extra = cache.get_seq_length() - context
    if extra > 0:
        cache.crop(-extra)
    if cache.get_seq_length() != context:  # a cache API that changed under us: the cell would time another context
        raise RuntimeError(f"the cache holds {cache.get_seq_length()} positions after a crop to {context}")


def hf_cells(torch, transformers, meter, name, attn, args, out):
    """Prompt passes and decode steps of one transformer under eager or sdpa attention."""
    model = hf_model(torch, transformers, name, attn, max(args.prefill + args.contexts) + 256)
    kw = _forward_kwargs(model)
    V = model.config.vocab_size
    for T in args.prefill:
        ids = torch.randint(0, V, (1, T), device=Rig.device)
        run_cell(out, torch, dict(model=name, runtime=attn, phase="prefill", tokens=T, batch=1),
                 lambda: measure(torch, meter, lambda: model(input_ids=ids, use_cache=True, **kw), T,
                                 args.min_seconds, args.warmup))
    steps = DECODE_STEPS[attn]
    for C in args.contexts:
        for B in args.batches:
            def cell(C=C, B=B):
                cache = filled_cache(torch, transformers, model, B, C)
                first = torch.randint(0, V, (B, 1), device=Rig.device)

                def work():
                    nxt = first
                    for _ in range(steps):
                        logits = model(input_ids=nxt, past_key_values=cache, use_cache=True).logits
                        nxt = logits[:, -1:].argmax(-1)
                return measure(torch, meter, work, steps * B, args.min_seconds, args.warmup,
                               setup=lambda: _crop(cache, C))
            run_cell(out, torch, dict(model=name, runtime=attn, phase="decode", context=C, batch=B), cell)
    del model
    _free(torch)


def graph_step(torch, model, batch: int, max_len: int, keep_logits: bool = False):
    """The transformer's decode step as one function over a static KV cache of ``max_len`` positions (fp16
    matmuls, HF's RMSNorm and rotary, SDPA with a mask of the filled positions, argmax), for CUDA-graph capture.
    Returns (step, token buffer, position tensor, the last step's logits where ``keep_logits``, else None)."""
    F = torch.nn.functional
    cfg = model.config
    L, H, Hkv = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads
    hd = cfg.hidden_size // H
    core = model.model
    eps = cfg.rms_norm_eps
    k_cache = [torch.zeros(batch, Hkv, max_len, hd, device=Rig.device, dtype=_dtype(torch)) for _ in range(L)]
    v_cache = [torch.zeros_like(k) for k in k_cache]
    positions = torch.arange(max_len, device=Rig.device)
    probe = torch.zeros(1, max_len, hd, device=Rig.device, dtype=_dtype(torch))
    cos_t, sin_t = core.rotary_emb(probe, positions[None])  # (1, max_len, hd)
    token = torch.zeros(batch, 1, dtype=torch.long, device=Rig.device)
    pos = torch.zeros(1, dtype=torch.long, device=Rig.device)
    kept = torch.zeros(batch, cfg.vocab_size, device=Rig.device, dtype=_dtype(torch)) if keep_logits else None
    head_w = model.lm_head.weight

    def norm(x, w):
        v = x.float()
        return w * (v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)

    gqa = {"enable_gqa": True} if Hkv != H and _sdpa_takes_gqa(torch) else {}
    repeat = H // Hkv if Hkv != H and not gqa else 1  # torch < 2.5: the grouped keys repeated per query head

    def rope(x, cos, sin):
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin

    def step():
        x = core.embed_tokens(token)  # (B, 1, d)
        cos = cos_t.index_select(1, pos)[:, None]
        sin = sin_t.index_select(1, pos)[:, None]
        mask = torch.where(positions <= pos, 0.0, float("-inf")).to(x.dtype)[None, None, None]
        for i, layer in enumerate(core.layers):
            a = layer.self_attn
            h = norm(x, layer.input_layernorm.weight)
            q = F.linear(h, a.q_proj.weight, a.q_proj.bias).view(batch, 1, H, hd).transpose(1, 2)
            k = F.linear(h, a.k_proj.weight, a.k_proj.bias).view(batch, 1, Hkv, hd).transpose(1, 2)
            v = F.linear(h, a.v_proj.weight, a.v_proj.bias).view(batch, 1, Hkv, hd).transpose(1, 2)
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            k_cache[i].index_copy_(2, pos, k)
            v_cache[i].index_copy_(2, pos, v)
            kc, vc = k_cache[i], v_cache[i]
            if repeat > 1:
                kc, vc = kc.repeat_interleave(repeat, dim=1), vc.repeat_interleave(repeat, dim=1)
            o = F.scaled_dot_product_attention(q, kc, vc, attn_mask=mask, **gqa)
            x = x + F.linear(o.transpose(1, 2).reshape(batch, 1, H * hd), a.o_proj.weight)
            m = layer.mlp
            h = norm(x, layer.post_attention_layernorm.weight)
            x = x + F.linear(F.silu(F.linear(h, m.gate_proj.weight)) * F.linear(h, m.up_proj.weight),
                             m.down_proj.weight)
        logits = F.linear(norm(x, core.norm.weight), head_w)
        token.copy_(logits[:, -1:].argmax(-1))
        if kept is not None:
            kept.copy_(logits[:, -1])
        pos.add_(1)

    return step, token, pos, kept


def _sdpa_takes_gqa(torch) -> bool:
    """Whether this torch's scaled_dot_product_attention takes ``enable_gqa`` (torch >= 2.5)."""
    q = torch.zeros(1, 2, 1, 4)
    try:
        torch.nn.functional.scaled_dot_product_attention(q, q[:, :1], q[:, :1], enable_gqa=True)
        return True
    except TypeError:
        return False


def graph_cells(torch, transformers, meter, name, args, out):
    """The CUDA-graph decode of one transformer (its prompt passes are left to eager and sdpa)."""
    model = hf_model(torch, transformers, name, "sdpa", max(args.contexts) + DECODE_STEPS["cuda-graph"] + 8)
    steps = DECODE_STEPS["cuda-graph"]
    for C in args.contexts:
        for B in args.batches:
            def cell(C=C, B=B):
                step, token, pos, _ = graph_step(torch, model, B, C + steps + 1)
                return replay_cell(torch, meter, step, pos, C, B, steps, args)
            run_cell(out, torch, dict(model=name, runtime="cuda-graph", phase="decode", context=C, batch=B), cell)
    del model
    _free(torch)


def replay_cell(torch, meter, step, pos, context: int, batch: int, steps: int, args) -> dict:
    """Capture ``step`` once (after warm-up on a side stream) and replay it ``steps`` times per call, the
    position reset to ``context`` before each call. On the CPU (a smoke run) ``step`` itself runs, uncaptured."""
    if Rig.device != "cuda":
        def plain():
            for _ in range(steps):
                step()
        return {**measure(torch, meter, plain, steps * batch, args.min_seconds, args.warmup,
                          setup=lambda: pos.fill_(context)), "captured": False}
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
    s = Rig.shapes["matmulfree"]
    d, I, V, L = s["hidden_size"], s["intermediate_size"], s["vocab_size"], s["num_hidden_layers"]
    fla = False
    if Rig.device == "cuda":  # fla's kernels are Triton's, GPU only
        try:
            from fla.modules import FusedRMSNormSwishGate, RMSNorm
            from fla.ops.hgrn import chunk_hgrn, fused_recurrent_hgrn
            fla = _fla_scan_takes_btd(torch, chunk_hgrn, fused_recurrent_hgrn)
        except ImportError:
            pass

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
            ternary = torch.randint(-1, 2, (fout, fin)).to(_dtype(torch))
            self.weight = nn.Parameter(ternary * 0.02)  # the ternary values times the scale, held in fp16

        def forward(self, x):
            x = self.norm(x)
            scale = 127.0 / x.abs().max(dim=-1, keepdim=True).values.clamp_(min=1e-5)
            q = (x * scale).round().clamp_(-128, 127) / scale if Rig.round_activations else x
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
        for c in range(0, i.shape[1], SCAN_CHUNK):  # a chunked scan: the decays within a chunk, a loop across them
            # (B, C, d): log of f_1 ... f_t; a gate rounded to 0 (sigmoid below -104 in fp32, -17 in fp16) taken
            # as the smallest normal float, whose decay exp(-87) is 0 as well, not log 0 = -inf (then -inf + inf)
            lf = torch.cumsum(f[:, c:c + SCAN_CHUNK].float().clamp_min(torch.finfo(torch.float32).tiny).log(), dim=1)
            # h_t = sum_{s<=t} exp(lf_t - lf_s) i_s + exp(lf_t) h0: each factor <= 1 (exp(-lf_s) alone overflowed
            # fp32 within a chunk where f is small: 64 tokens at f = 0.01 is exp(295))
            gap = lf[:, :, None] - lf[:, None]  # (B, t, s, d)
            later = torch.ones(gap.shape[1], gap.shape[2], dtype=torch.bool, device=gap.device).triu(1)
            decay = gap.masked_fill(later[None, :, :, None], float("-inf")).exp()
            hc = torch.einsum("btsd,bsd->btd", decay, i[:, c:c + SCAN_CHUNK].float()) + lf.exp() * h[:, None]
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
            self.state = torch.zeros(L, batch, d, device=Rig.device, dtype=torch.float32)

        def forward(self, ids):
            x = self.embed(ids)
            lb = self.lower_bounds.softmax(0)
            lb = lb.cumsum(0) - lb[0]
            for n, layer in enumerate(self.layers):
                x, last = layer(x, self.state[n], lb[n])
                self.state[n].copy_(last)
            return self.head(self.norm(x))  # the head at every position, as upstream

    with torch.device(Rig.device):
        model = Model()
    return model.to(_dtype(torch)).eval(), fla


def _fla_scan_takes_btd(torch, chunk, fused) -> bool:
    """Whether this fla's HGRN kernels take (batch, time, dim) inputs (their layout changed across versions);
    if not, the PyTorch scan is used and the JSON says so."""
    try:
        x = torch.zeros(1, 64, 16, device="cuda", dtype=torch.float16)  # fla runs on the GPU only
        h0 = torch.zeros(1, 16, device="cuda", dtype=torch.float32)
        o1, _ = chunk(x, x, initial_state=h0, output_final_state=True)
        o2, _ = fused(x[:, :1], x[:, :1], initial_state=h0, output_final_state=True)
        return tuple(o1.shape) == (1, 64, 16) and tuple(o2.shape) == (1, 1, 16)
    except Exception:  # noqa: BLE001 - any failure means: use the PyTorch scan
        return False


def matmulfree_cells(torch, meter, args, out, runtimes):
    V = Rig.shapes["matmulfree"]["vocab_size"]
    models: dict = {}

    def model_for(batch):
        if batch not in models:
            models.clear()  # one 374M model on the GPU at a time
            _free(torch)
            models[batch] = matmulfree_model(torch, batch)
        return models[batch]

    for runtime in runtimes:
        if runtime == "sdpa" and "eager" in runtimes:  # no attention: its sdpa is its eager, measured once
            print("matmulfree    sdpa       the same code as eager (the model has no attention): not measured again",
                  flush=True)
            continue
        steps = DECODE_STEPS[runtime]
        if runtime != "cuda-graph":
            model, fla = model_for(1)
            for T in args.prefill:
                ids = torch.randint(0, V, (1, T), device=Rig.device)
                run_cell(out, torch, dict(model="matmulfree", runtime=runtime, phase="prefill", tokens=T, batch=1),
                         lambda: {**measure(torch, meter, lambda: model(ids), T, args.min_seconds, args.warmup,
                                            setup=lambda: model.state.zero_()), "fla": fla})
        for C in args.contexts:  # the recurrent state does not grow: the context only names the cell
            for B in args.batches:
                def cell(B=B, runtime=runtime, steps=steps):
                    model, fla = model_for(B)
                    token = torch.randint(0, V, (B, 1), device=Rig.device)

                    def one():
                        token.copy_(model(token)[:, -1:].argmax(-1))
                    if runtime == "cuda-graph":
                        pos = torch.zeros(1, dtype=torch.long, device=Rig.device)
                        return {**replay_cell(torch, meter, one, pos, 0, B, steps, args), "fla": fla}
                    return {**measure(torch, meter, lambda: [one() for _ in range(steps)], steps * B,
                                      args.min_seconds, args.warmup), "fla": fla}
                run_cell(out, torch, dict(model="matmulfree", runtime=runtime, phase="decode", context=C, batch=B),
                         cell)
        _free(torch)


# ------------------------------------------------------------------------------------------- checks
def check_graph_step(torch, transformers, name: str) -> dict:
    """What the cuda-graph cells time, held against Hugging Face's own forward of the same model: the step
    function (uncaptured), fed the same CHECK_TOKENS tokens one at a time, gives the same logits (the greedy
    token alone hardly sees attention in a random model: a wrong rotary sign moved 1 of 70)."""
    model = hf_model(torch, transformers, name, "sdpa", CHECK_TOKENS + 8)
    ids = torch.randint(0, model.config.vocab_size, (1, CHECK_TOKENS), device=Rig.device)
    with torch.inference_mode():
        want = model(input_ids=ids).logits[0].float()
        step, token, _, kept = graph_step(torch, model, 1, CHECK_TOKENS + 1, keep_logits=True)
        got = []
        for t in range(CHECK_TOKENS):
            token.fill_(int(ids[0, t]))
            step()
            got.append(kept[0].float().clone())
        got = torch.stack(got)
    del model
    _free(torch)
    return {"check": "cuda-graph step function against Hugging Face's forward (logits per position)",
            "model": name, "tokens": CHECK_TOKENS, **_agreement(torch, want, got)}


def _agreement(torch, want, got) -> dict:
    diff = float((want - got).abs().max() / want.abs().max())
    finite = bool(torch.isfinite(got).all() and torch.isfinite(want).all())
    return {"finite": finite, "max_rel_diff": diff, "ok": finite and diff <= CHECK_TOLERANCE,
            "agreement": float((want.argmax(-1) == got.argmax(-1)).float().mean())}


def check_matmulfree_scan(torch) -> dict:
    """The MatMul-free model's prompt pass (its chunked scan) against the same tokens stepped one at a time, with
    BitLinear's activation rounding off: the two paths differ in their last bits (a scan against an update, a
    matrix product against a vector's), and at width 1024 rounding to int8 turns those into whole steps (relative
    differences 0.005 at 1 layer, 0.1 at 24, measured on a CPU in fp32; 3.3e-6 without the rounding)."""
    model, fla = matmulfree_model(torch, 1)
    ids = torch.randint(0, Rig.shapes["matmulfree"]["vocab_size"], (1, CHECK_TOKENS), device=Rig.device)
    with Rig.holding(round_activations=False), torch.inference_mode():
        model.state.zero_()
        whole = model(ids)[0].float()
        model.state.zero_()
        stepped = torch.cat([model(ids[:, t:t + 1])[0] for t in range(CHECK_TOKENS)]).float()
    del model
    _free(torch)
    return {"check": "MatMul-free prompt pass against its decode steps (logits per position, activations not rounded)",
            "model": "matmulfree",
            "fla": fla, "tokens": CHECK_TOKENS, **_agreement(torch, whole, stepped)}


# ------------------------------------------------------------------------------------------- driver
def run_check(torch, transformers, name: str) -> dict:
    """One model's check, in fp32, printed; one that fails to run is recorded with its error (the cells still run:
    a lent GPU's minutes are not spent twice)."""
    try:
        with Rig.exact():
            c = (check_matmulfree_scan(torch) if name == "matmulfree" else
                 check_graph_step(torch, transformers, name))
    except Exception as e:  # noqa: BLE001 - an API this stack lacks must not cost the measurement
        _free(torch)
        first = str(e).splitlines()[0][:200] if str(e) else ""
        c = {"model": name, "ok": False, "error": f"{type(e).__name__}: {first}"}
        print(f"check {name:<14}ERROR: {c['error']}", flush=True)
        return c
    print(f"check {name:<14}{'ok' if c['ok'] else 'MISMATCH'}: logits' max relative difference {c['max_rel_diff']:.2g} "
          f"(fp32; at most {CHECK_TOLERANCE:g}), greedy agreement {c['agreement']:.3f}", flush=True)
    return c


class Cells(list):
    """The measured cells, the JSON file rewritten after each one: a run stopped at a device's time limit keeps
    what it measured (``complete`` is false in its file until the last cell)."""

    def __init__(self, path: Path, source: dict, checks: list):
        super().__init__()
        self.path, self.source, self.checks = path, source, checks

    def append(self, row) -> None:
        super().append(row)
        self.save()

    def save(self, complete: bool = False) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_name(self.path.name + ".part")
        scratch.write_text(json.dumps({"source": self.source, "complete": complete, "checks": self.checks,
                                       "cells": list(self)}, indent=1))
        scratch.replace(self.path)

def run_cell(out: list, torch, key: dict, fn) -> None:
    """Measure one cell, recording its figures or its error; print a line per cell."""
    try:
        with torch.inference_mode():
            row = {**key, **fn()}
    except Exception as e:  # noqa: BLE001 - one failing cell (out of memory, an API) must not stop the rest
        row = {**key, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
        _free(torch)
    out.append(row)
    what = f"{row['tokens']} tokens" if row["phase"] == "prefill" else f"context {row['context']} x {row['batch']}"
    energy = "no energy" if row.get("mj_per_token") is None else f"{row['mj_per_token']:,.2f} mJ/token"
    figures = f"{row['tokens_per_s']:,.1f} tok/s, {energy}" if "error" not in row else row["error"]
    print(f"{row['model']:<14}{row['runtime']:<11}{row['phase']:<8}{what:<22}{figures}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    ap.add_argument("--prefill", type=int, nargs="+", help=f"prompt lengths (default: {list(PREFILL_TOKENS)})")
    ap.add_argument("--contexts", type=int, nargs="+", help=f"decode contexts (default: {list(DECODE_CONTEXTS)})")
    ap.add_argument("--batches", type=int, nargs="+", help=f"decode batches (default: {list(BATCHES)})")
    ap.add_argument("--min-seconds", type=float, help="timed seconds per cell at least (default: 1.5)")
    ap.add_argument("--warmup", type=int, help="untimed calls per cell (default: 2)")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                    help="cpu: a smoke run of every code path but NVML and the graph capture, in fp32, no energy")
    ap.add_argument("--tiny", action="store_true",
                    help=f"2-layer models of width 64 and a small grid ({TINY_GRID}): the smoke run's size")
    ap.add_argument("--checks-only", action="store_true", help="run the checks and time no cell")
    args = ap.parse_args(argv)
    grid = TINY_GRID if args.tiny else {"prefill": list(PREFILL_TOKENS), "contexts": list(DECODE_CONTEXTS),
                                        "batches": list(BATCHES), "min_seconds": 1.5, "warmup": 2}
    for key, value in grid.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    Rig.set(args.device, args.tiny)
    try:
        torch, transformers, pynvml = _require(args.device, any(m != "matmulfree" for m in args.models))
    except Missing as e:
        print(f"gpu_baseline: {e}; nothing measured", file=sys.stderr)
        return EXIT_MISSING
    meter = Meter(torch, pynvml) if args.device == "cuda" else Clock()
    idle = meter.idle()
    source = {**meter.source(), "idle_power_w": idle, "date": datetime.date.today().isoformat(),
              "host": platform.node(), "cuda": torch.version.cuda, "torch": torch.__version__,
              "transformers": transformers.__version__ if transformers else None,
              "python": platform.python_version(), "device": args.device, "dtype": Rig.dtype, "tiny": args.tiny,
              "protocol": "benchmarks/gpu_baseline.py (its docstring)", "min_seconds": args.min_seconds,
              "warmup": args.warmup}
    print(source["gpu"] + (f", driver {source['driver']}, idle {idle:.0f} W" if idle is not None else ""), flush=True)
    torch.manual_seed(0)
    checks: list = []
    cells = Cells(args.out, source, checks)
    cells.save()
    for name in args.models:
        checks.append(run_check(torch, transformers, name))
        cells.save()
    for name in [] if args.checks_only else args.models:
        if name == "matmulfree":
            matmulfree_cells(torch, meter, args, cells, args.runtimes)
            continue
        for runtime in args.runtimes:
            if runtime == "cuda-graph":
                graph_cells(torch, transformers, meter, name, args, cells)
            else:
                hf_cells(torch, transformers, meter, name, runtime, args, cells)
    cells.save(complete=True)
    print(f"wrote {args.out} ({len(cells)} cells, {sum('error' in c for c in cells)} failed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
