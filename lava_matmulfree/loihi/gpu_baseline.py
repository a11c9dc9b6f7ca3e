"""What each GPU baseline runs: the models' shapes, and one forward pass as the list of PyTorch ops it
dispatches, with each op's kernels, FLOPs and DRAM bytes (docs/gpu_baselines.md). The time and the energy of
those ops on a GPU are :mod:`.gpu_runtimes`' and :mod:`.gpu_power`'s.

**Models** (:data:`BASELINES`, :func:`baselines_for`): the Llama-style "Transformer++" that Zhu et al. 2024
trained beside MMfreeLM 370M (d=1024, L=24, I=2816, V=32000; 16 heads of 64; untied: 374M parameters),
Qwen2.5-0.5B (d=896, L=24, 14 query and 2 key/value heads of 64, I=4864, V=151,936, tied: 494M), each run by
Hugging Face transformers' LlamaForCausalLM / Qwen2ForCausalLM code; and the MatMul-free model itself
(:class:`MatmulFreeShape`: the HGRN-Bit network of the Loihi deployment) run the way its upstream code runs
it in PyTorch: every BitLinear an RMSNorm, a per-token int8 fake-quantisation of its input and an fp16 matmul
of the ternary weights (stored as fp16 values, so a weight costs 2 bytes to read), the MLGRU element-wise, the
recurrence a fused kernel (one token) or a chunked parallel scan (a prompt), the LM head a BitLinear at every
position (its forward takes no ``logits_to_keep``).

**Ops** (:class:`Op`): one entry per PyTorch call the host dispatches, counted from the models' code (sources
``hf``, ``hf_eager``, ``hf_cache``, ``mmfree_upstream``, ``fla_chunk``): ``host_ops`` dispatches (views and
no-op calls included), ``kernels`` CUDA kernels, ``flops``, ``bytes`` of DRAM traffic, and the ``kind`` of
roofline it runs on (``gemm``, ``attention`` for a fused attention kernel, ``memory`` for element-wise work).
The runtime (``eager``, ``sdpa``, ``cuda-graph``) chooses the attention (eager's materialised T x T scores or
a fused kernel) and the KV cache (DynamicCache's concatenation or a static cache written in place).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lava_matmulfree.loihi.hardware import EAGER_SCORE_PASSES, SOFTMAX_OUTPUT_BYTES, CostModelError, GpuSpec

QK_AND_PV = 2  # matmuls per attention: Q K^T and P V
FLOPS_PER_MAC = 2
KV = 2  # a key and a value vector per token per layer
SWIGLU_MATRICES = 3  # gate, up, down: d x I each
FP32 = 4  # bytes of a float32 value
RUNTIMES = ("eager", "sdpa", "cuda-graph")
HEAD_DIM = 64  # the Transformer++ baselines' attention head size


@dataclass(frozen=True)
class Op:
    """One PyTorch call of a forward pass (or a group of them named together)."""

    name: str
    kernels: int
    host_ops: int
    flops: float = 0.0
    bytes: float = 0.0
    kind: str = "memory"  # "gemm" | "attention" | "memory"


# ------------------------------------------------------------------------------------------- shapes
@dataclass(frozen=True)
class TransformerShape:
    name: str
    hidden_size: int
    num_layers: int
    intermediate_size: int
    vocab_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tied_embeddings: bool
    qkv_bias: bool = False

    family = "transformer"

    @property
    def attention_width(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def layer_params(self) -> int:
        d, I = self.hidden_size, self.intermediate_size
        attn = 2 * d * self.attention_width + 2 * d * self.kv_width  # q, o; k, v
        return self.num_layers * (attn + SWIGLU_MATRICES * d * I)

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def params(self) -> int:
        """Total parameters (norms and biases are negligible and left out)."""
        return self.layer_params + (1 if self.tied_embeddings else 2) * self.embedding_params

    def state_bytes(self, tokens: int, b: int) -> float:
        """The KV cache of one stream holding ``tokens`` tokens."""
        return KV * self.num_layers * self.kv_width * tokens * b

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "params": self.params, "layer_params": self.layer_params}


@dataclass(frozen=True)
class MatmulFreeShape:
    """The HGRN-Bit network of the Loihi deployment (a :class:`~lava_matmulfree.config.ModelConfig`'s shape):
    per layer the i, f, g, o projections (d x d), the GLU's gate and up (one d x 2I BitLinear) and down (I x d);
    the embedding and a ternary LM head (d x V), untied."""

    name: str
    hidden_size: int
    num_layers: int
    intermediate_size: int
    vocab_size: int
    use_lower_bound: bool = True

    family = "matmulfree"

    @property
    def layer_params(self) -> int:
        d, I = self.hidden_size, self.intermediate_size
        return self.num_layers * (4 * d * d + SWIGLU_MATRICES * d * I)

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def params(self) -> int:
        return self.layer_params + 2 * self.embedding_params

    def state_bytes(self, tokens: int, b: int) -> float:
        """The recurrent state of one stream (the MLGRU's h per layer, float32): flat in the context."""
        return self.num_layers * self.hidden_size * FP32

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "params": self.params, "layer_params": self.layer_params}


LLAMA_370M = TransformerShape("Llama-style 370M (Transformer++ of MMfreeLM 370M)", 1024, 24, 2816, 32000,
                              16, 16, 64, False)
QWEN25_05B = TransformerShape("Qwen2.5-0.5B", 896, 24, 4864, 151936, 14, 2, 64, True, qkv_bias=True)
BASELINES = {"llama370m": LLAMA_370M, "qwen0.5b": QWEN25_05B}  # the paper's comparison (370M class)
# the report's model axis: its names (docs/gpu_baselines.md) and how a config's shape is found
MODELS = ("transformer++", "qwen2.5-0.5b", "matmulfree")


def transformer_pp(cfg) -> TransformerShape:
    """The Llama-style Transformer++ that Zhu et al. 2024 trained beside an MMfreeLM of this shape (source
    ``zhu``): the same d, L, I and V, heads of 64 (one head of d below 64), untied embedding and head. For the
    370M config it is :data:`LLAMA_370M`."""
    d = cfg.hidden_size
    heads = max(1, d // HEAD_DIM)
    size = cfg.name.upper() if cfg.name[:1].isdigit() else cfg.name
    return TransformerShape(f"Llama-style {size} (Transformer++ of MMfreeLM {size})", d, cfg.num_layers,
                            cfg.intermediate_size, cfg.vocab_size, heads, heads, d // heads, False)


def matmulfree(cfg) -> MatmulFreeShape:
    """The MatMul-free model of a config, as its upstream PyTorch code runs on a GPU."""
    size = cfg.name.upper() if cfg.name[:1].isdigit() else cfg.name
    return MatmulFreeShape(f"MatMul-free {size} (HGRN-Bit, upstream PyTorch)", cfg.hidden_size, cfg.num_layers,
                           cfg.intermediate_size, cfg.vocab_size, cfg.use_lower_bound)


def transformer_pp_key(config_name: str) -> str:
    """The report's key of a config's Transformer++ baseline (platforms ``<gpu>/<key>``): ``llama370m``."""
    return f"llama{config_name}"


def is_paper_model(cfg) -> bool:
    """Whether ``cfg`` has the shape of the paper's 370M (d, L, I and V of :data:`LLAMA_370M`): the model the
    paper's figures, its claims and its Qwen2.5-0.5B baseline belong to."""
    return ((cfg.hidden_size, cfg.num_layers, cfg.intermediate_size, cfg.vocab_size)
            == (LLAMA_370M.hidden_size, LLAMA_370M.num_layers, LLAMA_370M.intermediate_size, LLAMA_370M.vocab_size))


def baselines_for(cfg) -> dict[str, TransformerShape]:
    """The GPU baselines a config is compared with: the Transformer++ of its own shape, and Qwen2.5-0.5B for
    the paper's 370M only (a 494M model of the 370M's class; docs/gpu_baselines.md, section 4)."""
    out = {transformer_pp_key(cfg.name): transformer_pp(cfg)}
    if is_paper_model(cfg):
        out["qwen0.5b"] = QWEN25_05B
    return out


def model_axis(cfg) -> dict[str, TransformerShape | MatmulFreeShape]:
    """The report's model axis for a config: :data:`MODELS` -> shape (Qwen2.5-0.5B for the paper's 370M only,
    as :func:`baselines_for`)."""
    out = {"transformer++": transformer_pp(cfg), "qwen2.5-0.5b": QWEN25_05B, "matmulfree": matmulfree(cfg)}
    if not is_paper_model(cfg):
        del out["qwen2.5-0.5b"]
    return out


# ------------------------------------------------------------------------------------------- op lists
def _check(runtime: str, tokens: int, context: int, batch: int) -> None:
    if runtime not in RUNTIMES:
        raise CostModelError(f"unknown GPU runtime {runtime!r} (known: {', '.join(RUNTIMES)})")
    if tokens < 1 or context < 0 or batch < 1:
        raise CostModelError(f"a forward needs tokens >= 1, context >= 0, batch >= 1 (got {tokens}, {context}, "
                             f"{batch})")


def linear(name: str, n: float, fin: int, fout: int, b: int, bias: bool = False) -> Op:
    """``F.linear`` of n rows: one GEMM reading the weights once and the rows' input and output."""
    return Op(name, 1, 1, FLOPS_PER_MAC * n * fin * fout, b * (fin * fout + n * fin + n * fout + bias * fout),
              "gemm")


def hf_rmsnorm(name: str, n: float, d: int, b: int) -> Op:
    """transformers' LlamaRMSNorm: to(float32), pow, mean, + eps, rsqrt, mul, to(fp16), * weight: 8 kernels;
    bytes per element: (b + 4) + 8 + 4 + 8 + (4 + b) + 2b."""
    return Op(name, 8, 8, 0.0, n * d * (4 * b + 28))


def elementwise(name: str, n_elements: float, reads: int, writes: int, b: int, kernels: int = 1,
                host_ops: int | None = None) -> Op:
    return Op(name, kernels, kernels if host_ops is None else host_ops, 0.0, n_elements * (reads + writes) * b)


def rotary(n: float, width: int, b: int) -> list[Op]:
    """apply_rotary_pos_emb on q (width a) or k (width kv): x*cos, rotate_half (two slices, neg, cat), *sin,
    add: 5 kernels over n x width, 10 values of traffic per element; the slices are host-only."""
    return [Op("rotary", 5, 7, 0.0, 10 * n * width * b)]


def eager_attention(shape: TransformerShape, batch: int, tq: int, tk: int, gpu: GpuSpec) -> list[Op]:
    """transformers' eager_attention_forward (source ``hf_eager``) over B streams of tq queries and tk keys:
    the scores (B x heads x tq x tk) written by Q K^T, scaled, masked, softmaxed in float32, cast back and read
    by P V (EAGER_SCORE_PASSES); the mask, one tq x tk matrix per stream broadcast over the heads, is read
    once per head where it does not fit in the L2 (from 5k tokens on a Hopper)."""
    b, h, hd = gpu.bytes_per_value, shape.num_heads, shape.head_dim
    a = shape.attention_width
    s = batch * h * tq * tk * b  # one pass over the scores
    mask = batch * tq * tk * b
    mask_reads = mask * (h if tq * tk * b > gpu.l2_cache_bytes else 1)
    ops = []
    if shape.num_kv_heads != h:  # repeat_kv: expand (a view) and a reshape that copies, for k and v
        ops.append(Op("repeat_kv", 2, 4, 0.0, 2 * batch * tk * (shape.kv_width + a) * b))
    qk = FLOPS_PER_MAC * batch * h * tq * tk * hd
    p = EAGER_SCORE_PASSES
    ops += [Op("q k^T", 1, 2, qk, batch * (tq + tk) * a * b + p["Q K^T writes the scores"] * s, "gemm"),
            elementwise("x scaling", s / b, 1, 1, b),
            Op("+ causal mask", 1, 2, 0.0, (p["+ causal mask: read, write"]) * s + mask_reads),
            Op("softmax(float32)", 1, 1, 0.0, p["softmax(dtype=float32): read fp16, write fp32"] * s),
            Op(".to(fp16), dropout", 1, 2, 0.0, p[".to(fp16): read fp32, write fp16"] * s),
            Op("p v", 1, 1, qk, p["P V reads the probabilities"] * s + batch * (tk + tq) * a * b, "gemm"),
            Op("transpose.contiguous", 1, 2, 0.0, 2 * batch * tq * a * b)]
    return ops


# The host cost of one fused SDPA call, in dispatched ops: the eager ops it replaces (Q K^T, scaling, mask,
# softmax, cast, dropout, P V, the key's transpose). PyTorch picks the kernel per call (flash, or cuDNN on
# Hopper) and the measured SDPA forward is no faster on the host than the eager one (docs/gpu_baselines.md).
SDPA_HOST_OPS = 9


def fused_attention(shape: TransformerShape, batch: int, tq: int, tk: int, gpu: GpuSpec) -> list[Op]:
    """F.scaled_dot_product_attention (one fused kernel that materialises no scores; with a causal mask over a
    prompt from an empty cache half the q x k pairs are computed), then transpose(1, 2).contiguous()."""
    b, h, hd, a = gpu.bytes_per_value, shape.num_heads, shape.head_dim, shape.attention_width
    pairs = tq * tk - tq * (tq - 1) / 2 if tq > 1 else tk  # causal: the prompt attends to itself
    flops = QK_AND_PV * FLOPS_PER_MAC * batch * h * pairs * hd
    io = batch * (2 * tq * a + KV * tk * shape.kv_width) * b
    return [Op("sdpa", 1, SDPA_HOST_OPS, flops, io, "attention"),
            Op("transpose.contiguous", 1, 2, 0.0, 2 * batch * tq * a * b)]


def kv_update(shape: TransformerShape, batch: int, tokens: int, context: int, b: int, runtime: str) -> Op:
    """The layer's cache update (source ``hf_cache``): DynamicCache concatenates keys and values with the new
    ones into new tensors (reads the old cache, writes it again); a static cache writes the new rows in place."""
    kv = shape.kv_width
    if runtime == "cuda-graph":
        return Op("static cache index_copy_", 2, 2, 0.0, KV * 2 * batch * tokens * kv * b)
    return Op("DynamicCache torch.cat", 2, 2, 0.0, KV * 2 * batch * (context + tokens) * kv * b)


def transformer_layer(shape: TransformerShape, runtime: str, tokens: int, context: int, batch: int,
                      gpu: GpuSpec) -> list[Op]:
    """One LlamaDecoderLayer / Qwen2DecoderLayer forward over B streams of ``tokens`` new tokens."""
    b, d, I = gpu.bytes_per_value, shape.hidden_size, shape.intermediate_size
    a, kv = shape.attention_width, shape.kv_width
    n = batch * tokens
    attention = eager_attention if runtime == "eager" else fused_attention
    return [hf_rmsnorm("input_layernorm", n, d, b),
            linear("q_proj", n, d, a, b, shape.qkv_bias), linear("k_proj", n, d, kv, b, shape.qkv_bias),
            linear("v_proj", n, d, kv, b, shape.qkv_bias),
            Op("view, transpose (q, k, v)", 0, 6), Op("cos, sin unsqueeze", 0, 2),
            *rotary(n, a, b), *rotary(n, kv, b),
            kv_update(shape, batch, tokens, context, b, runtime),
            *attention(shape, batch, tokens, context + tokens, gpu),
            Op("reshape, contiguous", 0, 2), linear("o_proj", n, a, d, b),
            elementwise("residual add", n * d, 2, 1, b),
            hf_rmsnorm("post_attention_layernorm", n, d, b),
            linear("gate_proj", n, d, I, b), elementwise("silu", n * I, 1, 1, b), linear("up_proj", n, d, I, b),
            elementwise("act * up", n * I, 2, 1, b), linear("down_proj", n, I, d, b),
            elementwise("residual add", n * d, 2, 1, b)]


def transformer_outside(shape: TransformerShape, runtime: str, tokens: int, context: int, batch: int,
                        gpu: GpuSpec, decode: bool) -> tuple[list[Op], list[Op]]:
    """The ops before the first layer (embedding, rotary cos/sin, positions, the causal mask) and after the last
    (final norm, the LM head at the last position as generate() asks, or at every one; a decode step's argmax)."""
    b, d, V = gpu.bytes_per_value, shape.hidden_size, shape.vocab_size
    n = batch * tokens
    tk = context + tokens
    mask = (Op("causal mask (eager: float tq x tk)", 4, 6, 0.0, batch * tokens * tk * (1 + b))
            if runtime == "eager" else Op("mask check (sdpa: is_causal)", 0, 3))
    pre = [Op("embedding", 1, 1, 0.0, 2 * n * d * b), Op("cache_position, position_ids", 2, 4),
           Op("rotary cos, sin", 8, 12, 0.0, 4 * n * shape.head_dim * b), mask]
    rows = n if gpu.logits_for_all_positions and not decode else batch
    post = [hf_rmsnorm("norm", n, d, b), Op("hidden[:, -1:]", 0, 1), linear("lm_head", rows, d, V, b)]
    if decode:
        post.append(Op("argmax, feed back", 1, 2, 0.0, rows * V * b))
    return pre, post


# MatMul-free: BitLinear.forward (source mmfree_upstream) per input element: the RMSNorm (one fused kernel: read
# and write), then activation_quant's abs (r, w), max (r), x * scale (r, w), round (r, w), clamp_ (r, w),
# / scale (r, w), and the straight-through sub (r r w) and add (r r w); the scalar steps are per row
BITLINEAR_QUANT_KERNELS = 10  # abs, max, clamp_ (of the max), 127 / max, mul, round, clamp_, div, sub, add
BITLINEAR_QUANT_TRAFFIC = 2 + 1 + 2 + 2 + 2 + 2 + 3 + 3  # values read or written per input element


def bitlinear(name: str, n: float, fin: int, fout: int, b: int) -> list[Op]:
    """An upstream BitLinear over n rows: RMSNorm, per-token int8 fake-quantisation, fp16 matmul of the ternary
    weights (held as fp16 values: 2 bytes per weight read)."""
    return [Op(f"{name}.norm", 1, 1, 0.0, 2 * n * fin * b),
            Op(f"{name}.activation_quant", BITLINEAR_QUANT_KERNELS, BITLINEAR_QUANT_KERNELS + 3, 0.0,
               BITLINEAR_QUANT_TRAFFIC * n * fin * b),
            linear(name, n, fin, fout, b)]


def matmulfree_layer(shape: MatmulFreeShape, tokens: int, batch: int, gpu: GpuSpec, layer: int) -> list[Op]:
    """One HGRNBitBlock forward (source mmfree_upstream): attn_norm, the MLGRU (i, f BitLinears, sigmoid, the
    lower bound, swiglu(i, 1 - f), the recurrence, g BitLinear, fused norm-swish-gate, o BitLinear), the fused
    residual norm, the GLU (gate+up BitLinear, swiglu, down BitLinear), the residual add. The recurrence is
    fused_recurrent_hgrn for one token, a chunked scan (chunk_hgrn, source fla_chunk) over a prompt, whose
    inputs and output are made contiguous around it."""
    b, d, I = gpu.bytes_per_value, shape.hidden_size, shape.intermediate_size
    n = batch * tokens
    ops = [Op("attn_norm (fused RMSNorm)", 1, 1, 0.0, 2 * n * d * b),
           *bitlinear("i_proj", n, d, d, b), *bitlinear("f_proj", n, d, d, b),
           elementwise("f.sigmoid", n * d, 1, 1, b)]
    if shape.use_lower_bound and layer > 0:
        ops.append(Op("lower_bound + (1 - lower_bound) * f", 3, 3, 0.0, 5 * n * d * b))
    ops += [elementwise("1 - f", n * d, 1, 1, b), elementwise("swiglu(i, 1 - f)", n * d, 2, 1, b),
            Op("rearrange i, f", 0, 4)]
    state = batch * d * FP32 * 2  # read and write the recurrent state
    if tokens == 1:
        ops.append(Op("fused_recurrent_hgrn", 1, 2, 0.0, 3 * n * d * b + state))
    else:
        ops += [elementwise("contiguous i, f", n * d, 2, 2, b, kernels=2),
                Op("chunk_hgrn (2 kernels)", 2, 2, 0.0, 5 * n * d * b + state),
                elementwise("rearrange o (copy)", n * d, 1, 1, b, host_ops=2)]
    ops += [*bitlinear("g_proj", n, d, d, b), Op("g_norm (fused RMSNorm, swish gate)", 1, 1, 0.0, 3 * n * d * b),
            *bitlinear("o_proj", n, d, d, b),
            Op("mlp_norm (fused residual add, RMSNorm)", 1, 1, 0.0, 4 * n * d * b),
            *bitlinear("gate_proj", n, d, 2 * I, b), Op("chunk", 0, 1), elementwise("swiglu", n * I, 2, 1, b),
            *bitlinear("down_proj", n, I, d, b), elementwise("residual add", n * d, 2, 1, b)]
    return ops


def matmulfree_outside(shape: MatmulFreeShape, tokens: int, batch: int, gpu: GpuSpec, decode: bool
                       ) -> tuple[list[Op], list[Op]]:
    """Embedding and the lower bounds' softmax and cumsum before the layers; the final norm and the ternary LM
    head (a BitLinear at every position: the upstream forward has no logits_to_keep) after them."""
    b, d, V = gpu.bytes_per_value, shape.hidden_size, shape.vocab_size
    n = batch * tokens
    pre = [Op("embedding", 1, 1, 0.0, 2 * n * d * b), Op("recurrent state (RecurrentCache)", 0, 4)]
    if shape.use_lower_bound:
        pre.append(Op("lower_bounds softmax, cumsum, sub", 3, 4, 0.0, 3 * shape.num_layers * d * FP32))
    post = [Op("norm (fused RMSNorm)", 1, 1, 0.0, 2 * n * d * b), *bitlinear("lm_head", n, d, V, b)]
    if decode:
        post.append(Op("argmax, feed back", 1, 2, 0.0, n * V * b))
    return pre, post


def forward_ops(shape, runtime: str, tokens: int, context: int, batch: int, gpu: GpuSpec
                ) -> tuple[list[Op], list[Op], list[Op], int]:
    """One forward of B streams, each ``tokens`` new tokens after ``context`` cached ones: (ops before the
    layers, the ops of one layer, after the layers, layers). A prompt pass is ``context=0``; a decode step
    ``tokens=1``. The MatMul-free model has no attention: its eager and sdpa runtimes run the same ops. Its
    layers differ only by the first one's missing lower bound, which the first layer's list drops."""
    _check(runtime, tokens, context, batch)
    decode = tokens == 1 and context > 0
    if isinstance(shape, MatmulFreeShape):
        pre, post = matmulfree_outside(shape, tokens, batch, gpu, decode)
        first = matmulfree_layer(shape, tokens, batch, gpu, layer=0)
        layer = matmulfree_layer(shape, tokens, batch, gpu, layer=1)
        return pre + first, layer, post, shape.num_layers - 1
    pre, post = transformer_outside(shape, runtime, tokens, context, batch, gpu, decode)
    return pre, transformer_layer(shape, runtime, tokens, context, batch, gpu), post, shape.num_layers


def peak_bytes(shape, runtime: str, tokens: int, context: int, batch: int, gpu: GpuSpec) -> float:
    """GPU memory a forward holds at its peak: the weights, the streams' cache after it, and the largest
    transient: eager attention's scores beside their float32 softmax and the mask, DynamicCache's new copy of
    one layer's keys and values, the MLP's intermediates, or the MatMul-free head's logits at every position."""
    b = gpu.bytes_per_value
    n = batch * tokens
    weights = shape.params * b
    cache = batch * shape.state_bytes(context + tokens, b)
    transient = n * 3 * shape.intermediate_size * b
    if isinstance(shape, MatmulFreeShape):
        transient = max(transient, n * shape.vocab_size * b)
    else:
        tk = context + tokens
        if runtime == "eager":
            transient = max(transient, batch * tokens * tk * (shape.num_heads * (b + SOFTMAX_OUTPUT_BYTES) + b))
        if runtime != "cuda-graph":
            transient = max(transient, batch * shape.state_bytes(tk, b) / shape.num_layers)
    return weights + cache + transient
