"""Named hardware constants of the cost model: Loihi 2 (structure, memory, per-operation time and energy, the
multi-chip system and its host) and the GPU baselines (NVIDIA Jetson Orin Nano 8 GB, NVIDIA H100 SXM).

Every number the mapping and the cost model use is a field of a frozen dataclass below, with its public
source and a confidence (``high``: read in a primary source; ``medium``: primary source but for a related
chip/mode, or a secondary source; ``low``: an assumption or a value derived under stated assumptions;
``fitted``: fitted on a named anchor of the paper, see :mod:`.calibration`). Change one with
``dataclasses.replace(LOIHI2, cores_per_chip=128)``, from a TOML file (:func:`load_hardware`,
``configs/loihi2_hw.toml``) or ``estimate --set NAME=VALUE``. :func:`provenance` lists every field with its
source, and the JSON report carries that list. The model and its terms: docs/cost_model.md.

Loihi 2 per-operation energies and latencies are not published. Latencies: Loihi 1's (Davies et al. 2018, as
recalibrated in SANA-FE) divided by Intel's "up to 10x faster", cross-checked against Hala Point's synaptic-op
rate per core. Dynamic energy: Hala Point's maximum power minus the static power of its 1,152 chips, per
synaptic op at its peak rate; the other per-op energies scale with it from Loihi 1's ratios.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import tomli

from lava_matmulfree.errors import LmfError


class CostModelError(LmfError):
    """A mapping or cost-model input is missing or impossible (e.g. no microcode instruction counts)."""


# ------------------------------------------------------------------------------------------- sources
SRC = {
    "paper": "Abreu, Shrestha, Zhu, Eshraghian 2025, 'Neuromorphic Principles for Efficient Large Language "
             "Models on Intel Loihi 2', arXiv:2503.18002 (ICLR 2025 SCOPE workshop); Tables 1-3 as publicly "
             "transcribed",
    "brief": "Intel Labs 2021, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', technology brief",
    "press_mem": "press coverage of the Loihi 2 launch (e.g. fbhtechinfo.com, 'Intel's new Loihi-2 chip uses "
                 "1 million neurons'): 128 KB of local SRAM per core, flexibly partitioned; Kapoho Point board "
                 "with eight Loihi 2 chips",
    "kapoho": "Intel Kapoho Point board (8 Loihi 2 chips per board, stackable; connected to its host PC over "
              "Ethernet), as shown in Intel's Kapoho Point / QUBO material",
    "davies": "Davies et al. 2018, 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', IEEE Micro "
              "38(1), Table of energy/performance figures",
    "sanafe": "SANA-FE simulator, SLAM-Lab/SANA-FE arch/loihi.yaml: Loihi 1 per-event energy/latency from Davies "
              "et al. 2018, recalibrated against Loihi hardware (Boyle et al.)",
    "hala": "Intel newsroom 2024, 'Intel Builds World's Largest Neuromorphic System' (Hala Point): 1,152 Loihi 2 "
            "chips, 140,544 neuro cores, up to 2,600 W, 380 trillion 8-bit synaptic ops/s",
    "onm": "open-neuromorphic.org, 'Loihi 2 - Intel' hardware page (summary of Intel material): ~1 W per chip",
    "orin": "NVIDIA Jetson Orin Nano series data sheet / module specifications (Orin Nano 8 GB: 1024 CUDA cores, "
            "32 tensor cores, GPU up to 625 MHz, 40 sparse INT8 TOPS, 68 GB/s LPDDR5, 7-15 W)",
    "h100": "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM: 1,979 TFLOPS FP16 tensor with sparsity = 989 dense, "
            "67 TFLOPS FP32, 80 GB HBM3 at 3.35 TB/s, up to 700 W)",
    "dispatch": "public explanations of PyTorch eager dispatch (e.g. 'From PyTorch op to kernel launch', "
                "jiahuanglin.xyz GPU-kernel-serving lesson 18): ~5-25 us of host CPU work per op on a server "
                "CPU, independent of the op's size",
    "hf": "Hugging Face transformers LlamaDecoderLayer / Qwen2DecoderLayer eager forward, counted: per layer "
          "2 RMSNorms (~8 ops each), q/k/v/o, 3 view+transpose, rotary (~7 ops each for q and k), cache update, "
          "attention (8 ops eager: matmul, scale, mask slice+add, softmax, cast, dropout, matmul; see hf_eager), "
          "reshape, 2 residual adds, gate/up/act/mul/down, and the contiguous copies between them: ~60 host ops",
    "hf_generate": "Hugging Face transformers GenerationMixin.generate, since v4.45 (pull request #31292, 'Reducing "
                   "memory usage: removing useless logits computation in generate()'): it passes logits_to_keep=1 "
                   "(num_logits_to_keep before v4.50) to every model whose forward takes it, LlamaForCausalLM and "
                   "Qwen2ForCausalLM among them, so the prompt's forward applies the LM head to the last position "
                   "only",
    "hf_eager": "Hugging Face transformers eager_attention_forward (LlamaAttention / Qwen2Attention eager path; the "
                "same steps inline before v4.48): scores = matmul(q, k^T) * scaling; scores + causal_mask; "
                "softmax(scores, dim=-1, dtype=float32).to(fp16); dropout (in eval it returns its input); "
                "matmul(probabilities, v). PyTorch aten/src/ATen/native/SoftMax.cpp: softmax of a CUDA half "
                "tensor with dtype=float runs one fused kernel (half_to_float) that reads half and writes float",
    "qwen": "Qwen2.5-0.5B config.json (Qwen team 2024): hidden 896, 24 layers, 14 heads, 2 KV heads, "
            "intermediate 4864, vocabulary 151,936, tied embeddings (494M parameters)",
    "zhu": "Zhu et al. 2024, 'Scalable MatMul-free Language Modeling': the Transformer++ (Llama-style) baseline "
           "of each MMfreeLM size has the same d, L, I and V",
    "lava": "lava-nc 0.10.0, lava/proc/graded (graded-spike processes with 24-bit payloads, precision=24) and "
            "lava/proc/dense (num_message_bits)",
    "design": "docs/cost_model.md (project documentation, quoting the paper)",
    "derived": "derived in this module from the fields named in the note",
    "assumed": "modelling assumption of this project (no public figure found)",
    "fitted": "fitted on the paper's anchors by lava_matmulfree.loihi.calibration (docs/cost_model.md); the "
              "default is the result of that fit, the report re-fits it",
}

def short_name(name: str) -> str:
    """A platform's or model's name without its parenthesised detail, for tables: 'Jetson Orin Nano 8GB'."""
    return name.split(" (")[0]


CONFIDENCES = ("high", "medium", "low", "fitted")


def const(value, source: str, confidence: str, note: str = ""):
    """A dataclass field carrying its provenance in the field metadata."""
    if source not in SRC:
        raise KeyError(f"unknown source key {source!r}")
    if confidence not in CONFIDENCES:
        raise ValueError(confidence)
    return field(default=value, metadata={"source": source, "confidence": confidence, "note": note})


def provenance(obj, prefix: str | None = None, notes: Mapping[str, tuple[str, str, str]] | None = None
               ) -> list[dict[str, Any]]:
    """Every field of a hardware dataclass: name, value, source, confidence, note (for reports and docs).
    ``notes`` replaces (source, confidence, note) of fields whose value differs from the class default's."""
    out = []
    for f in fields(obj):
        md = f.metadata
        src, conf, note = md.get("source", ""), md.get("confidence", ""), md.get("note", "")
        if notes and f.name in notes:
            src, conf, note = notes[f.name]
        out.append({"name": f"{prefix or type(obj).__name__}.{f.name}", "value": getattr(obj, f.name),
                    "source": SRC.get(src, src), "confidence": conf, "note": note})
    return out


# ------------------------------------------------------------------------------------------- Loihi 2
@dataclass(frozen=True)
class Loihi2Spec:
    """Loihi 2: chip structure, per-core limits, synapse encodings, per-operation time/energy, power."""

    # --- structure
    cores_per_chip: int = const(
        120, "paper", "medium",
        "usable neuro cores per chip as the paper counts them; the chip has 128 (brief, 8x16 mesh); Hala Point "
        "gives 140,544 / 1,152 = 122. Set 128 to use the brief's figure")
    mesh_width: int = const(8, "brief", "high", "neuro-core mesh of one chip is 8 x 16")
    mesh_height: int = const(16, "brief", "high", "")
    neurons_per_core: int = const(
        8192, "brief", "medium", "1M neurons per chip / 128 cores; an upper bound, memory binds first for us")
    core_memory_bytes: int = const(
        128 * 1024, "press_mem", "low",
        "SRAM per neuro core shared by synapses, neuron state and routing tables (secondary sources)")
    microcode_reserve_bytes: int = const(
        2048, "assumed", "low", "memory per core kept for the neuron microcode program and its constants")
    neuron_state_bits: int = const(
        72, "assumed", "low", "per neuron: three 24-bit registers (state, input accumulator, scratch)")
    max_fan_in: int = const(
        4096, "davies", "low", "input axons per core on Loihi 1 (4096); Loihi 2's limit is not published")
    max_fan_out: int = const(
        4096, "davies", "low", "output axon (destination core) entries per core on Loihi 1; Loihi 2 unknown")

    # --- synapse encodings
    dense_weight_bits: int = const(
        2, "assumed", "medium", "bits per weight in the dense encoding: 2 for a packed ternary weight; the "
        "paper's deployment stores 8-bit weights (W8A16), the 'paper' preset sets 8")
    sparse_reference_dense_bits: int = const(
        2, "design", "medium", "the dense encoding (2-bit ternary) the 7.5x sparse/dense ratio refers to")
    dense_axon_overhead_bits: int = const(
        32, "assumed", "low", "dense encoding: one synapse-map entry per input axon per core (pointer + length)")
    sparse_to_dense_ratio: float = const(
        7.5, "design", "medium",
        "paper (see docs/graph.md): a 1024x1024 ternary matrix in the sparse encoding takes ~7.5x the memory of "
        "the dense one; sparse_bits_per_nonzero is derived from it")
    sparse_reference_zero_fraction: float = const(
        1.0 / 3.0, "design", "medium", "the '~1/3 zeros' at which the 7.5x was quoted")
    dense_skips_zero_weights: bool = const(
        True, "paper", "low",
        "a zero weight costs no synaptic op in either encoding ('zero weights save energy by skipping work'); "
        "the sparse encoding only adds not storing them. False: the dense encoding walks every stored weight")

    # --- Loihi 1 per-operation figures (Davies 2018 / SANA-FE) and the scaling to Loihi 2
    loihi1_synop_energy_j: float = const(
        23.6e-12, "davies", "high", "Loihi 1 synaptic spike op; SANA-FE's recalibrations give 21.1-35.5 pJ")
    loihi1_synop_time_s: float = const(4.0e-9, "sanafe", "high", "Loihi 1 synaptic op latency")
    loihi1_neuron_update_energy_j: float = const(
        72.8e-12, "sanafe", "high", "Loihi 1 active neuron (compartment) update; 47.5-51 pJ when inactive")
    loihi1_neuron_update_time_s: float = const(9.7e-9, "sanafe", "high", "Loihi 1 active neuron update")
    loihi1_spike_out_energy_j: float = const(
        76.8e-12, "sanafe", "medium", "Loihi 1 spike output (axon) energy; Davies' table 40.8 pJ")
    loihi1_spike_out_time_s: float = const(7.6e-9, "sanafe", "high", "")
    loihi1_hop_energy_j: float = const(
        3.6e-12, "davies", "high", "mesh hop energy, mean of east-west 3.0 pJ and north-south 4.2 pJ")
    loihi1_hop_time_s: float = const(5.3e-9, "davies", "high", "mesh hop latency, mean of 4.1 ns and 6.5 ns")
    lif_reference_instructions: int = const(
        6, "assumed", "low",
        "microcode-instruction equivalent of Loihi 1's fixed-function CUBA LIF update (decay u, add input, decay "
        "v, add u, compare, reset): converts the per-update figures above into per-instruction ones")
    loihi2_speedup: float = const(
        10.0, "brief", "low",
        "Loihi 2 'up to 10x faster' than Loihi 1, applied to every per-op latency; cross-check: Hala Point's "
        "380e12 synops/s over 140,544 cores is 0.37 ns per synop per core, vs 4.0 ns / 10 = 0.40 ns")
    hala_point_synops_per_s: float = const(380e12, "hala", "high", "")
    hala_point_power_w: float = const(2600.0, "hala", "high", "maximum system power")
    hala_point_cores: int = const(140_544, "hala", "high", "")
    hala_point_chips: int = const(1152, "hala", "high", "")

    # --- synchronisation, chip links, boards, host, static power
    barrier_base_s: float = const(
        0.6e-6, "sanafe", "medium", "Loihi 1 time-step barrier on one chip (SANA-FE sync table, measured)")
    barrier_per_chip_doubling_s: float = const(
        0.4e-6, "sanafe", "low", "SANA-FE table 0.6/1.0/1.4 us for 1/2/4 chips (1.8 us for 29): +0.4 us per "
        "doubling of chips on one board; not scaled to Loihi 2")
    chips_per_board: int = const(8, "kapoho", "high", "Loihi 2 chips per Kapoho Point board")
    board_sync_s: float = const(
        43.91e-6, "fitted", "fitted",
        "per-step synchronisation added per level of the barrier tree across boards (ceil(log2(boards)) "
        "levels; 0 on one board). FITTED on the paper's generation and prefill throughputs (41.5 and 6,632 "
        "tokens/s) together: the geometric-mean fit, their product reproduced")
    chip_link_latency_s: float = const(
        0.2e-6, "assumed", "low", "extra latency of a message crossing one chip-to-chip link")
    chip_link_message_s: float = const(
        1.0e-9, "assumed", "low", "time one graded-spike message occupies a chip-to-chip link (a 32-bit packet "
        "at ~32 Gb/s over a chip edge's parallel I/O); messages crossing a boundary in a step serialise on it")
    chip_link_energy_per_message_j: float = const(
        320e-12, "assumed", "low", "a 64-bit graded-spike packet at ~5 pJ/bit on an off-chip parallel link")
    host_link_bytes_per_s: float = const(
        125e6, "kapoho", "medium", "host <-> system link: 1 Gb/s Ethernet (Kapoho Point's host interface)")
    graded_payload_bits: int = const(
        24, "lava", "medium", "payload bits one graded-spike message carries (Lava's graded processes use 24; the "
        "chip's packets up to 32): a spike of up to this many bits is one message, a wider one takes more")
    host_round_trip_s: float = const(
        100e-6, "assumed", "low", "per generated token: one request/response between the host and the system "
        "through the host's software stack (Ethernet latency and driver), beyond the bytes moved")
    static_power_per_chip_w: float = const(
        0.4346, "fitted", "fitted",
        "power per chip of the system independent of activity (leakage, clocks, idle cores, board share), "
        "drawn by every chip of the system whether busy or not. FITTED on the paper's generation energy "
        "(405 mJ/token). Secondary sources: ~1 W per chip (open-neuromorphic.org; a 16-chip VPX system "
        "measured 16 W static); Hala Point's maximum is 2.26 W per chip, dynamic power included")

    # --- derived per-operation figures of Loihi 2
    @property
    def synop_energy_j(self) -> float:
        """Dynamic energy of one synaptic op: Hala Point's maximum power less the static power of its chips,
        per op at its peak rate (the maximum power is reached at the peak rate; static power is not an op's)."""
        dynamic_w = self.hala_point_power_w - self.hala_point_chips * self.static_power_per_chip_w
        if dynamic_w <= 0:
            raise CostModelError(f"static_power_per_chip_w={self.static_power_per_chip_w} W leaves no dynamic "
                                 f"power in Hala Point's {self.hala_point_power_w} W for "
                                 f"{self.hala_point_chips} chips")
        return dynamic_w / self.hala_point_synops_per_s

    @property
    def energy_scale(self) -> float:
        """Loihi 1 -> Loihi 2 factor applied to every per-op energy: the synaptic ops' ratio."""
        return self.synop_energy_j / self.loihi1_synop_energy_j

    @property
    def synop_time_s(self) -> float:
        return self.loihi1_synop_time_s / self.loihi2_speedup

    @property
    def instruction_time_s(self) -> float:
        return self.loihi1_neuron_update_time_s / self.lif_reference_instructions / self.loihi2_speedup

    @property
    def instruction_energy_j(self) -> float:
        return self.loihi1_neuron_update_energy_j / self.lif_reference_instructions * self.energy_scale

    @property
    def spike_out_time_s(self) -> float:
        return self.loihi1_spike_out_time_s / self.loihi2_speedup

    @property
    def spike_out_energy_j(self) -> float:
        return self.loihi1_spike_out_energy_j * self.energy_scale

    @property
    def hop_time_s(self) -> float:
        return self.loihi1_hop_time_s / self.loihi2_speedup

    @property
    def hop_energy_j(self) -> float:
        return self.loihi1_hop_energy_j * self.energy_scale

    @property
    def hala_point_synop_time_s(self) -> float:
        """Cross-check of synop_time_s: Hala Point's synaptic-op rate per neuro core, inverted."""
        return self.hala_point_cores / self.hala_point_synops_per_s

    @property
    def sparse_bits_per_nonzero(self) -> float:
        """Bits per non-zero weight of the sparse encoding, derived so that a matrix with the reference zero
        fraction costs sparse_to_dense_ratio times its dense encoding (weight bits only):
        b * (1 - z_ref) = ratio * dense_bits  ->  b = 7.5 * 2 / (2/3) = 22.5 bits
        (about a 10-bit input index for d=1024, an 8-bit weight field and ~4.5 bits of list bookkeeping)."""
        return (self.sparse_to_dense_ratio * self.sparse_reference_dense_bits
                / (1.0 - self.sparse_reference_zero_fraction))

    def boards(self, chips: int) -> int:
        return math.ceil(max(1, chips) / self.chips_per_board)

    def board_levels(self, chips: int) -> int:
        """Levels of the barrier tree across the boards holding ``chips`` chips (0 on one board)."""
        return math.ceil(math.log2(self.boards(chips)))

    def barrier_s(self, chips: int) -> float:
        """Time-step barrier synchronisation across ``chips`` chips: on the board (SANA-FE's Loihi 1 figures)
        plus ``board_sync_s`` per level of the tree across boards."""
        on_board = min(max(1, chips), self.chips_per_board)
        return (self.barrier_base_s + self.barrier_per_chip_doubling_s * math.log2(on_board)
                + self.board_sync_s * self.board_levels(chips))

    def check(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool):
                continue
            if isinstance(v, (int, float)) and (v < 0 or not math.isfinite(v)):
                raise CostModelError(f"Loihi2Spec.{f.name} must be a finite number >= 0, got {v}")
        for k in ("cores_per_chip", "neurons_per_core", "core_memory_bytes", "max_fan_in", "max_fan_out",
                  "dense_weight_bits", "loihi2_speedup", "lif_reference_instructions", "chips_per_board",
                  "host_link_bytes_per_s"):
            if getattr(self, k) <= 0:
                raise CostModelError(f"Loihi2Spec.{k} must be positive, got {getattr(self, k)}")
        if self.cores_per_chip > self.mesh_width * self.mesh_height:
            raise CostModelError(f"Loihi2Spec.cores_per_chip={self.cores_per_chip} exceeds the "
                                 f"{self.mesh_width}x{self.mesh_height} mesh")
        if not 0 <= self.sparse_reference_zero_fraction < 1:
            raise CostModelError("Loihi2Spec.sparse_reference_zero_fraction must be in [0, 1)")


# ------------------------------------------------------------------------------------------- GPUs
# Eager attention's traffic over the T x T score matrix (source ``hf_eager``), per step, in passes: one read or
# one write of the matrix in fp16 (an fp32 read or write is two). Per layer the matrix is heads x T^2 x 2 bytes
# (8 MB at T = 500 for 16 heads), assumed larger than the GPU's L2 cache, so every pass goes to DRAM. The T x T
# mask is broadcast over the heads and is left out (one matrix, read once per head: assumed to stay in the L2).
EAGER_SCORE_PASSES = {
    "Q K^T writes the scores": 1,
    "x scaling: read, write": 2,
    "+ causal mask: read, write": 2,
    "softmax(dtype=float32): read fp16, write fp32": 1 + 2,
    ".to(fp16): read fp32, write fp16": 2 + 1,
    "P V reads the probabilities": 1,
}
# bytes per score of the float32 softmax output that eager attention keeps beside its fp16 input
SOFTMAX_OUTPUT_BYTES = 4


@dataclass(frozen=True)
class GpuSpec:
    """A GPU running a Hugging Face transformer in eager PyTorch at batch 1 (one roofline for every GPU).

    Prefill is compute-bound (GEMMs of T tokens, plus attention that grows as T^2), decode is memory-bandwidth-
    bound (all weights and the KV cache read once per generated token); the host issues every op, and the GPU
    cannot run faster than the host issues them (``host_ops_per_layer`` x ``host_op_overhead_s``)."""

    name: str = const("Jetson Orin Nano 8GB (15 W)", "orin", "high", "")
    dtype: str = const("fp16", "paper", "high", "the paper's baselines run in FP16; 'fp32' is PyTorch's default")
    peak_fp16_flops: float = const(
        10.0e12, "orin", "medium", "dense FP16 on the tensor cores: 40 sparse INT8 TOPS / 2 (dense) / 2 (FP16); "
        "= 32 tensor cores x 625 MHz x 512 FLOP/clock")
    peak_fp32_flops: float = const(1.28e12, "orin", "high", "1024 CUDA cores x 2 FLOP x 625 MHz")
    memory_bandwidth_bps: float = const(68e9, "orin", "high", "LPDDR5 128-bit, 68 GB/s (102 GB/s on 'Super')")
    memory_capacity_bytes: float = const(8e9, "orin", "high", "8 GB LPDDR5 shared by CPU and GPU")
    power_w: float = const(
        15.0, "orin", "medium", "the 15 W power mode's budget, taken as the module power during inference (an "
        "upper bound; the paper's 719-1,200 mJ/token at 12.6-15.4 tokens/s is 11-15 W)")
    prefill_efficiency: float = const(
        0.05452, "fitted", "fitted",
        "fraction of the FP16 peak reached by prefill (eager PyTorch, small GEMMs, attention and softmax "
        "kernels). FITTED on the paper's Jetson TTFT (659 ms, 500 tokens) for the Llama-style baseline")
    memory_efficiency: float = const(
        0.7, "assumed", "medium", "achievable fraction of peak DRAM bandwidth for streaming reads (STREAM-like)")
    host_op_overhead_s: float = const(
        45e-6, "dispatch", "low", "host CPU time per PyTorch op: 15 us (middle of the 5-25 us quoted for a server "
        "CPU) x 3 for the Orin's 1.5 GHz Cortex-A78AE cores (assumed single-thread ratio)")
    host_ops_per_layer: int = const(60, "hf", "medium", "")
    host_ops_outside_layers: int = const(
        12, "hf", "low", "embedding, final norm, LM head, sampling and the generate loop's bookkeeping")
    attention_full_square: bool = const(
        True, "assumed", "medium", "eager attention computes the full T x T score matrix, then masks it")
    attention_score_passes: int = const(
        sum(EAGER_SCORE_PASSES.values()), "hf_eager", "medium",
        "memory passes over the T x T scores per head, in fp16 reads or writes of the whole matrix, counted step "
        "by step in EAGER_SCORE_PASSES; medium: the paper does not say which attention its baselines used")
    logits_for_all_positions: bool = const(
        False, "hf_generate", "medium", "generate() asks the prompt's forward for the last position's logits "
        "only (True: a plain forward, which computes every position's); medium: the paper does not say how "
        "its baselines were driven")

    @property
    def bytes_per_value(self) -> int:
        return {"fp32": 4, "fp16": 2}[self.dtype]

    @property
    def peak_flops(self) -> float:
        return self.peak_fp16_flops if self.dtype == "fp16" else self.peak_fp32_flops

    def check(self) -> None:
        if self.dtype not in ("fp32", "fp16"):
            raise CostModelError(f"GpuSpec.dtype must be 'fp32' or 'fp16', got {self.dtype!r}")
        for k in ("prefill_efficiency", "memory_efficiency"):
            v = getattr(self, k)
            if not 0 < v <= 1:
                raise CostModelError(f"GpuSpec.{k} must be in (0, 1], got {v}")
        for k in ("peak_fp16_flops", "peak_fp32_flops", "memory_bandwidth_bps", "memory_capacity_bytes", "power_w"):
            if getattr(self, k) <= 0:
                raise CostModelError(f"GpuSpec.{k} must be positive, got {getattr(self, k)}")
        for k in ("host_op_overhead_s", "host_ops_per_layer", "host_ops_outside_layers", "attention_score_passes"):
            if getattr(self, k) < 0:
                raise CostModelError(f"GpuSpec.{k} must be >= 0, got {getattr(self, k)}")


LOIHI2 = Loihi2Spec()
JETSON_ORIN_NANO = GpuSpec()
# the same roofline from the H100's public specifications; nothing here is fitted to any result
H100_SXM = dataclasses.replace(
    GpuSpec(), name="H100 SXM (700 W)", peak_fp16_flops=989e12, peak_fp32_flops=67e12,
    memory_bandwidth_bps=3.35e12, memory_capacity_bytes=80e9, power_w=700.0, prefill_efficiency=0.5,
    memory_efficiency=0.8, host_op_overhead_s=15e-6)
H100_NOTES = {
    "peak_fp16_flops": ("h100", "high", "989 TFLOPS dense FP16 tensor (1,979 with 2:4 sparsity)"),
    "peak_fp32_flops": ("h100", "high", "67 TFLOPS FP32"),
    "memory_bandwidth_bps": ("h100", "high", "HBM3 3.35 TB/s"),
    "memory_capacity_bytes": ("h100", "high", "80 GB"),
    "power_w": ("h100", "medium", "TDP: an upper bound on the power at batch 1"),
    "prefill_efficiency": ("assumed", "low", "half the dense FP16 peak for prefill GEMMs (not fitted)"),
    "memory_efficiency": ("assumed", "medium", "achievable fraction of HBM3 bandwidth"),
    "host_op_overhead_s": ("dispatch", "low", "15 us per op on the server CPU (middle of 5-25 us)"),
}


def gaussian_absmean_zero_fraction() -> float:
    """Fraction of zeros after absmean ternarisation of Gaussian weights (docs/model.md: Wt = clip(round(W/m)),
    m = mean|W|). A weight rounds to 0 when |W| < m/2. For W ~ N(0, s^2), m = s*sqrt(2/pi), so
    P(|W| < m/2) = erf(m / (2 s sqrt 2)) = erf(1 / (2 sqrt(pi))) = 0.3101 (about 1/3)."""
    return math.erf(1.0 / (2.0 * math.sqrt(math.pi)))


GAUSSIAN_ZERO_FRACTION = gaussian_absmean_zero_fraction()


# ------------------------------------------------------------------------------------------- overrides
HW_SECTIONS = {"loihi2": Loihi2Spec, "jetson": GpuSpec, "h100": GpuSpec}


def with_overrides(obj, values: Mapping[str, Any], source: str = "<overrides>"):
    """``dataclasses.replace`` with type checks and a clear error for unknown names."""
    known = {f.name: f for f in fields(obj)}
    changes = {}
    for k, v in values.items():
        if k not in known:
            raise CostModelError(f"{source}: unknown {type(obj).__name__} field {k!r} "
                                 f"(known: {', '.join(sorted(known))})")
        cur = getattr(obj, k)
        if isinstance(cur, bool):
            ok = isinstance(v, bool)
        elif isinstance(cur, int):
            ok = isinstance(v, int) and not isinstance(v, bool)
        elif isinstance(cur, float):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            v = float(v) if ok else v
        else:
            ok = isinstance(v, type(cur))
        if not ok:
            raise CostModelError(f"{source}: {type(obj).__name__}.{k} must be of type {type(cur).__name__}, "
                                 f"got {v!r}")
        changes[k] = v
    new = dataclasses.replace(obj, **changes)
    new.check()
    return new


def load_hardware(path: str | Path | None = None) -> dict[str, Any]:
    """The default specs ``{"loihi2", "jetson", "h100"}``, with the TOML file's tables of those names applied."""
    specs: dict[str, Any] = {"loihi2": LOIHI2, "jetson": JETSON_ORIN_NANO, "h100": H100_SXM}
    if path is None:
        return specs
    p = Path(path)
    if not p.exists():
        raise CostModelError(f"{p}: no such hardware file")
    try:
        raw = tomli.loads(p.read_text())
    except tomli.TOMLDecodeError as e:
        raise CostModelError(f"{p}: not valid TOML: {e}") from None
    for sec in raw:
        if sec not in HW_SECTIONS:
            raise CostModelError(f"{p}: unknown section [{sec}] (known: {', '.join(HW_SECTIONS)})")
    return {k: with_overrides(v, raw.get(k, {}), str(p)) for k, v in specs.items()}
