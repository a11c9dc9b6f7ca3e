"""GPU baselines: one roofline of a Hugging Face transformer in eager PyTorch at batch 1, for any GPU
(:class:`~.hardware.GpuSpec`: the paper's Jetson Orin Nano 8 GB, and an H100 SXM from its datasheet).

**The baseline models** (:data:`BASELINES`). The paper compares with FP16 transformer LLMs of similar size on
the Jetson. We model two with their real shapes: the Llama-style "Transformer++" that Zhu et al. 2024 trained
beside MMfreeLM 370M (same d=1024, L=24, I=2816, V=32000; 16 heads of 64; untied embedding and head: 374M
parameters) and Qwen2.5-0.5B (d=896, L=24, 14 query and 2 key/value heads of 64, I=4864, V=151,936, tied:
494M). Another config is compared with the Transformer++ of its own shape (:func:`baselines_for`) and
Qwen2.5-0.5B; the calibration always uses the 370M pair.

**Prefill (compute-bound).** FLOPs for a T-token prompt: 2 T x (layer weights) for the projections,
2 d V for the LM head (``generate()`` asks the prompt's forward for the last position's logits only; 2 d V T
with ``logits_for_all_positions``, as a plain forward computes), and attention: QK^T and PV
are 2 T^2 (heads x head size) FLOPs each per layer over the full T x T score matrix (eager attention), so
attention grows as T^2. Time = FLOPs / (peak x ``prefill_efficiency``) + the score matrix's passes through
DRAM (scaling, mask, softmax and its casts are memory-bound: ``EAGER_SCORE_PASSES``), but never less than the
time the host needs to issue the ops. Eager attention holds a layer's scores in fp16 and their float32 softmax
at once: heads x T^2 x 6 bytes, 26 GB at 16k tokens, so a long prompt does not fit in the Jetson's 8 GB
(``fits_in_memory``); a fused kernel (``attention_score_passes=0``) materialises no scores.

**Decode (memory-bound).** Each generated token reads every layer weight, the LM head and the KV cache of the
context (2 L x kv heads x head size values per past token) once: time = max(bytes / (bandwidth x
``memory_efficiency``), FLOPs / (peak x ``prefill_efficiency``), host ops x ``host_op_overhead_s``). At batch 1
in eager PyTorch the host's op dispatch binds on both GPUs (docs/cost_model.md).

Energy per token = ``power_w`` x time.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lava_matmulfree.loihi.hardware import JETSON_ORIN_NANO, SOFTMAX_OUTPUT_BYTES, CostModelError, GpuSpec

QK_AND_PV = 2  # matmuls per attention: Q K^T and P V
FLOPS_PER_MAC = 2
KV = 2  # a key and a value vector per token per layer
SWIGLU_MATRICES = 3  # gate, up, down: d x I each


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

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "params": self.params, "layer_params": self.layer_params}


LLAMA_370M = TransformerShape("Llama-style 370M (Transformer++ of MMfreeLM 370M)", 1024, 24, 2816, 32000,
                              16, 16, 64, False)
QWEN25_05B = TransformerShape("Qwen2.5-0.5B", 896, 24, 4864, 151936, 14, 2, 64, True)
BASELINES = {"llama370m": LLAMA_370M, "qwen0.5b": QWEN25_05B}  # the paper's comparison (370M class)
HEAD_DIM = 64  # the Transformer++ baselines' attention head size


def transformer_pp(cfg) -> TransformerShape:
    """The Llama-style Transformer++ that Zhu et al. 2024 trained beside an MMfreeLM of this shape (source
    ``zhu``): the same d, L, I and V, heads of 64 (one head of d below 64), untied embedding and head. For the
    370M config it is :data:`LLAMA_370M`."""
    d = cfg.hidden_size
    heads = max(1, d // HEAD_DIM)
    size = cfg.name.upper() if cfg.name[:1].isdigit() else cfg.name
    return TransformerShape(f"Llama-style {size} (Transformer++ of MMfreeLM {size})", d, cfg.num_layers,
                            cfg.intermediate_size, cfg.vocab_size, heads, heads, d // heads, False)


def transformer_pp_key(config_name: str) -> str:
    """The report's key of a config's Transformer++ baseline (platforms ``<gpu>/<key>``): ``llama370m``."""
    return f"llama{config_name}"


def baselines_for(cfg) -> dict[str, TransformerShape]:
    """The GPU baselines a config is compared with: the Transformer++ of its own shape and Qwen2.5-0.5B."""
    return {transformer_pp_key(cfg.name): transformer_pp(cfg), "qwen0.5b": QWEN25_05B}


def host_ops(shape: TransformerShape, gpu: GpuSpec) -> int:
    return shape.num_layers * gpu.host_ops_per_layer + gpu.host_ops_outside_layers


def prefill_time(shape: TransformerShape, tokens: int, gpu: GpuSpec = JETSON_ORIN_NANO) -> dict[str, float]:
    """Seconds (and FLOPs/bytes) to run a T-token prompt and produce the first token's logits."""
    gpu.check()
    T, d, L, V = int(tokens), shape.hidden_size, shape.num_layers, shape.vocab_size
    if T < 1:
        raise CostModelError(f"prompt length must be >= 1, got {T}")
    b = gpu.bytes_per_value
    compute = gpu.peak_flops * gpu.prefill_efficiency
    bw = gpu.memory_bandwidth_bps * gpu.memory_efficiency
    head_positions = T if gpu.logits_for_all_positions else 1
    f_lin = FLOPS_PER_MAC * T * shape.layer_params + FLOPS_PER_MAC * d * V * head_positions
    square = T * T if gpu.attention_full_square else T * (T + 1) / 2
    f_att = QK_AND_PV * FLOPS_PER_MAC * L * square * shape.attention_width
    w_bytes = (shape.layer_params + shape.embedding_params) * b
    score_bytes = L * shape.num_heads * square * b * gpu.attention_score_passes
    t_lin = max(f_lin / compute, w_bytes / bw)
    t_att = f_att / compute + score_bytes / bw
    t_host = host_ops(shape, gpu) * gpu.host_op_overhead_s
    return {"flops": f_lin + f_att, "attention_flops": f_att, "bytes": w_bytes + score_bytes,
            "t_projections_s": t_lin, "t_attention_s": t_att, "t_host_s": t_host,
            "total_s": max(t_lin + t_att, t_host), "scores_peak_bytes": scores_peak_bytes(shape, T, gpu)}


def scores_peak_bytes(shape: TransformerShape, tokens: int, gpu: GpuSpec) -> int:
    """Bytes of one layer's materialised attention scores at their peak (softmax's fp16 input beside its float32
    output, plus the T x T mask); 0 for a fused kernel that materialises none (``attention_score_passes=0``)."""
    if gpu.attention_score_passes == 0:
        return 0
    T, b = int(tokens), gpu.bytes_per_value
    return shape.num_heads * T * T * (b + SOFTMAX_OUTPUT_BYTES) + T * T * b


def decode_time(shape: TransformerShape, context: int, gpu: GpuSpec = JETSON_ORIN_NANO) -> dict[str, float]:
    """Seconds to generate one token with ``context`` tokens in the KV cache."""
    gpu.check()
    L = shape.num_layers
    b = gpu.bytes_per_value
    weights = shape.layer_params + shape.embedding_params  # layers + LM head (one embedding row: negligible)
    kv_bytes = KV * L * shape.kv_width * context * b
    bytes_ = weights * b + kv_bytes
    flops = FLOPS_PER_MAC * weights + QK_AND_PV * FLOPS_PER_MAC * L * context * shape.attention_width
    t_mem = bytes_ / (gpu.memory_bandwidth_bps * gpu.memory_efficiency)
    t_cmp = flops / (gpu.peak_flops * gpu.prefill_efficiency)
    t_host = host_ops(shape, gpu) * gpu.host_op_overhead_s
    return {"bytes": bytes_, "kv_bytes": kv_bytes, "flops": flops, "t_memory_s": t_mem, "t_compute_s": t_cmp,
            "t_host_s": t_host, "total_s": max(t_mem, t_cmp, t_host)}


def gpu_estimate(shape: TransformerShape, prompt_tokens: int, gpu: GpuSpec = JETSON_ORIN_NANO) -> dict[str, Any]:
    """TTFT, throughputs and energy per token at batch 1 for a prompt of ``prompt_tokens``."""
    p = prefill_time(shape, prompt_tokens, gpu)
    dcd = decode_time(shape, prompt_tokens, gpu)
    ttft = p["total_s"]
    weights_bytes = shape.params * gpu.bytes_per_value
    # the prompt's pass holds the weights, the KV cache it fills and one layer's scores at a time
    peak_bytes = weights_bytes + dcd["kv_bytes"] + p["scores_peak_bytes"]
    return {
        "gpu": gpu.name, "model": shape.name, "dtype": gpu.dtype,
        "weights_bytes": weights_bytes, "peak_bytes": peak_bytes,
        "fits_in_memory": bool(peak_bytes <= gpu.memory_capacity_bytes),
        "prompt_tokens": prompt_tokens, "ttft_s": ttft, "prefill_tokens_per_s": prompt_tokens / ttft,
        "prefill_flops": p["flops"], "prefill_attention_flops": p["attention_flops"],
        "prefill_bound": "host ops" if p["t_host_s"] >= p["t_projections_s"] + p["t_attention_s"] else "compute",
        "decode_token_s": dcd["total_s"], "decode_tokens_per_s": 1.0 / dcd["total_s"],
        "decode_bound": max((("memory", dcd["t_memory_s"]), ("compute", dcd["t_compute_s"]),
                             ("host ops", dcd["t_host_s"])), key=lambda kv: kv[1])[0],
        "decode_bytes_per_token": dcd["bytes"],
        "power_w": gpu.power_w,
        "prefill_energy_per_token_j": gpu.power_w * ttft / prompt_tokens,
        "decode_energy_per_token_j": gpu.power_w * dcd["total_s"],
    }
