"""Edge-GPU baseline: a roofline cost model of a Llama-style transformer on an NVIDIA Jetson Orin Nano 8 GB.

**The baseline model.** The paper compares the MatMul-free LM on Loihi 2 with "transformer-based LLMs" of
similar size on the Jetson. We model the Llama-style "Transformer++" that Zhu et al. 2024 trained as the
baseline of each MMfreeLM size, with the same hidden size d, depth L, SwiGLU width I and vocabulary V as the
MatMul-free model (``TransformerShape.like``): per layer q, k, v, o (4 d^2 weights, one KV head per query head,
head size 64) and gate/up/down (3 d I); untied embedding and head (V d each). For 370M: d=1024, L=24, I=2816,
V=32000, 16 heads, 308M layer weights + 2 x 32.8M = 374M parameters.

**Prefill (compute-bound).** FLOPs for a T-token prompt: 2 T x (layer weights) for the projections,
2 d V T for the LM head (a Hugging Face forward computes logits at every position), and attention:
QK^T and PV are each 2 T^2 d FLOPs per layer when the full T x T score matrix is computed (eager attention; half
if the kernel skips the masked triangle), so attention grows as T^2 while everything else grows as T. Time =
projections at max(FLOPs / (peak x efficiency), weight bytes / bandwidth) + attention FLOPs at the same
efficiency + the score matrix's passes through DRAM (softmax kernels are memory-bound) + one launch overhead
per kernel.

**Decode (memory-bound).** Each generated token reads every weight (except the embedding table, of which one
row) and the KV cache of the context (2 L d values per past token) once: time = max(bytes / (bandwidth x
efficiency), FLOPs / (peak x efficiency)) + launch overheads. Energy = board power x time.

**Calibration and how it differs from the paper.** The paper measured (not modelled) the Jetson; we could not
read its tables (only its abstract and summaries: 6.6x lower TTFT on a 500-token prompt, up to 3x throughput,
2x less energy). The one calibrated factor is ``GpuSpec.prefill_efficiency`` (45% of the fp32 CUDA-core peak),
set so the 370M / 500-token TTFT is near the paper's 659 ms; the precision (fp32, PyTorch's default) is our
assumption: with fp16 on the tensor cores the same efficiency would give ~8x less. Decode is not calibrated:
bandwidth-bound fp32 decode of 374M parameters gives ~30 tokens/s; a measured eager-PyTorch decode on the
Orin is usually slower, which would make the Loihi throughput ratio larger than ours. The board power is the
15 W mode's budget, an upper bound on what the module draws.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..config import ModelConfig
from .hardware import JETSON_ORIN_NANO, CostModelError, GpuSpec

# kernels outside the layers: embedding gather, final norm, LM head GEMM
EXTRA_KERNELS = 3
QK_AND_PV = 2  # matmuls per attention: Q K^T and P V
FLOPS_PER_MAC = 2
KV = 2  # a key and a value vector per token per layer
LLAMA_PROJECTIONS = 4  # q, k, v, o: d x d each
SWIGLU_MATRICES = 3  # gate, up, down: d x I each


@dataclass(frozen=True)
class TransformerShape:
    name: str
    hidden_size: int
    num_layers: int
    intermediate_size: int
    vocab_size: int
    num_heads: int

    @classmethod
    def like(cls, cfg: ModelConfig, gpu: GpuSpec = JETSON_ORIN_NANO) -> "TransformerShape":
        """The Llama-style baseline of the same size as a MatMul-free config."""
        if cfg.hidden_size % gpu.head_dim:
            heads = max(1, round(cfg.hidden_size / gpu.head_dim))
        else:
            heads = cfg.hidden_size // gpu.head_dim
        return cls(f"llama-style-{cfg.name}", cfg.hidden_size, cfg.num_layers, cfg.intermediate_size,
                   cfg.vocab_size, heads)

    @property
    def layer_params(self) -> int:
        d, I = self.hidden_size, self.intermediate_size
        return self.num_layers * (LLAMA_PROJECTIONS * d * d + SWIGLU_MATRICES * d * I)

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def params(self) -> int:
        """Total parameters (untied embedding and head; norms are negligible and left out)."""
        return self.layer_params + 2 * self.embedding_params

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "params": self.params, "layer_params": self.layer_params}


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
    f_att = QK_AND_PV * FLOPS_PER_MAC * L * square * d
    w_bytes = (shape.layer_params + shape.embedding_params) * b
    score_bytes = L * shape.num_heads * square * b * gpu.attention_score_passes
    t_lin = max(f_lin / compute, w_bytes / bw)
    t_att = f_att / compute + score_bytes / bw
    launches = L * gpu.kernels_per_layer + EXTRA_KERNELS
    t_launch = launches * gpu.kernel_launch_s
    return {"flops": f_lin + f_att, "attention_flops": f_att, "bytes": w_bytes + score_bytes,
            "t_projections_s": t_lin, "t_attention_s": t_att, "t_launch_s": t_launch,
            "total_s": t_lin + t_att + t_launch}


def decode_time(shape: TransformerShape, context: int, gpu: GpuSpec = JETSON_ORIN_NANO) -> dict[str, float]:
    """Seconds to generate one token with ``context`` tokens in the KV cache."""
    gpu.check()
    d, L = shape.hidden_size, shape.num_layers
    b = gpu.bytes_per_value
    weights = shape.layer_params + shape.embedding_params  # layers + LM head (one embedding row: negligible)
    kv_bytes = KV * L * d * context * b
    bytes_ = weights * b + kv_bytes
    flops = FLOPS_PER_MAC * weights + QK_AND_PV * FLOPS_PER_MAC * L * context * d
    t_mem = bytes_ / (gpu.memory_bandwidth_bps * gpu.memory_efficiency)
    t_cmp = flops / (gpu.peak_flops * gpu.prefill_efficiency)
    t_launch = (L * gpu.kernels_per_layer + EXTRA_KERNELS) * gpu.kernel_launch_s
    return {"bytes": bytes_, "kv_bytes": kv_bytes, "flops": flops, "t_memory_s": t_mem, "t_compute_s": t_cmp,
            "t_launch_s": t_launch, "total_s": max(t_mem, t_cmp) + t_launch}


def gpu_estimate(shape: TransformerShape, prompt_tokens: int, gpu: GpuSpec = JETSON_ORIN_NANO) -> dict[str, Any]:
    """TTFT, throughputs and energy per token at batch 1 for a prompt of ``prompt_tokens``."""
    p = prefill_time(shape, prompt_tokens, gpu)
    dcd = decode_time(shape, prompt_tokens, gpu)
    ttft = p["total_s"]
    weights_bytes = shape.params * gpu.bytes_per_value
    return {
        "weights_bytes": weights_bytes, "fits_in_memory": bool(weights_bytes + dcd["kv_bytes"]
                                                               <= gpu.memory_capacity_bytes),
        "prompt_tokens": prompt_tokens, "ttft_s": ttft, "prefill_tokens_per_s": prompt_tokens / ttft,
        "prefill_flops": p["flops"], "prefill_attention_flops": p["attention_flops"],
        "decode_token_s": dcd["total_s"], "decode_tokens_per_s": 1.0 / dcd["total_s"],
        "decode_bytes_per_token": dcd["bytes"],
        "power_w": gpu.board_power_w,
        "prefill_energy_per_token_j": gpu.board_power_w * ttft / prompt_tokens,
        "decode_energy_per_token_j": gpu.board_power_w * dcd["total_s"],
    }
