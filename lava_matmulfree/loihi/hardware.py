"""Named hardware constants of the cost model: Loihi 2 (structure, memory, per-operation time and energy, the
multi-chip system and its host) and the GPUs (NVIDIA Jetson Orin Nano 8 GB, H100 SXM, H200 SXM).

Every number the mapping and the cost model use is a field of a frozen dataclass below, with its public
source and a confidence (``high``: read in a primary source; ``medium``: primary source but for a related
chip/mode, or a secondary source; ``low``: an assumption or a value derived under stated assumptions;
``fitted``: fitted on named anchors of the paper or named cells of the H200 measurement, see :mod:`.calibration`;
sources: :mod:`.sources`). Change one with
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
from typing import Any, Callable, Iterable, Mapping

import tomli

from lava_matmulfree.errors import LmfError
from lava_matmulfree.loihi.sources import SRC


class CostModelError(LmfError):
    """A mapping or cost-model input is missing or impossible (e.g. no microcode instruction counts)."""


# the public sources every constant cites (sources.py)

def short_name(name: str) -> str:
    """A platform's or model's name without its parenthesised detail, for tables: 'Jetson Orin Nano 8GB'."""
    return name.split(" (")[0]


CONFIDENCES = ("high", "medium", "low", "fitted")
USER_SET = "user-set"  # the confidence :func:`provenance` gives a constant the user set (--set, a hardware file)
USER_SOURCE = "user"  # its source key (sources.py)


def const(value, source: str, confidence: str, note: str = ""):
    """A dataclass field carrying its provenance in the field metadata."""
    if source not in SRC:
        raise KeyError(f"unknown source key {source!r}")
    if confidence not in CONFIDENCES:
        raise ValueError(confidence)
    return field(default=value, metadata={"source": source, "confidence": confidence, "note": note})


def provenance(obj, prefix: str | None = None, notes: Mapping[str, tuple[str, str, str]] | None = None,
               user_set: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Every field of a hardware dataclass: name, value, source, confidence, note (for reports and docs).
    ``notes`` replaces (source, confidence, note) of fields whose value differs from the class default's;
    ``user_set`` names the fields the user set: their source and confidence say so (:data:`USER_SET`), their
    note keeps what the default was and where it came from."""
    out = []
    user_set = set(user_set)
    for f in fields(obj):
        md = f.metadata
        src, conf, note = md.get("source", ""), md.get("confidence", ""), md.get("note", "")
        if notes and f.name in notes:
            src, conf, note = notes[f.name]
        if f.name in user_set:
            note = f"replaces the default, {conf} (source {src})" + (f": {note}" if note else "")
            src, conf = USER_SOURCE, USER_SET
        out.append({"name": f"{prefix or type(obj).__name__}.{f.name}", "value": getattr(obj, f.name),
                    "source": SRC.get(src, src), "confidence": conf, "note": note})
    return out


def _require(spec, names, ok: Callable[[Any], bool], rule: str) -> None:
    """A CostModelError naming the first field of ``spec`` among ``names`` whose value breaks ``rule``."""
    for k in names:
        v = getattr(spec, k)
        if not ok(v):
            raise CostModelError(f"{type(spec).__name__}.{k} must be {rule}, got {v}")


def _loihi2_time(loihi1_s: Callable[[Any], float]) -> property:
    """A Loihi 2 latency: the Loihi 1 figure ``loihi1_s(spec)`` divided by ``loihi2_speedup``."""
    return property(lambda self: loihi1_s(self) / self.loihi2_speedup)


def _loihi2_energy(loihi1_j: Callable[[Any], float]) -> property:
    """A Loihi 2 energy: the Loihi 1 figure ``loihi1_j(spec)`` times ``energy_scale``."""
    return property(lambda self: loihi1_j(self) * self.energy_scale)


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
        2, "sparse_design", "medium", "the dense encoding (2-bit ternary) the sparse/dense ratio is taken against")
    dense_axon_overhead_bits: int = const(
        32, "assumed", "low", "dense encoding: one synapse-map entry per input axon per core (pointer + length)")
    sparse_to_dense_ratio: float = const(
        7.5, "sparse_design", "low", "a 1024-input ternary matrix with 1/3 zeros takes 7.5x the 2-bit dense "
        "encoding's memory in the sparse one: 22.5 bits per non-zero (10-bit input index, 8-bit weight, ~4.5 bits "
        "of list bookkeeping: assumed) x 2/3 / 2 bits; sparse_bits_per_nonzero is derived from it")
    sparse_reference_zero_fraction: float = const(
        1.0 / 3.0, "sparse_design", "medium", "the 1/3 zeros (absmean ternary weights: about 0.31) the ratio is "
                                              "taken at")
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

    # Loihi 1's per-op figures scaled to Loihi 2 (times by the speed-up, energies by the synaptic ops' ratio)
    synop_time_s = _loihi2_time(lambda s: s.loihi1_synop_time_s)
    instruction_time_s = _loihi2_time(lambda s: s.loihi1_neuron_update_time_s / s.lif_reference_instructions)
    instruction_energy_j = _loihi2_energy(
        lambda s: s.loihi1_neuron_update_energy_j / s.lif_reference_instructions)
    spike_out_time_s = _loihi2_time(lambda s: s.loihi1_spike_out_time_s)
    spike_out_energy_j = _loihi2_energy(lambda s: s.loihi1_spike_out_energy_j)
    hop_time_s = _loihi2_time(lambda s: s.loihi1_hop_time_s)
    hop_energy_j = _loihi2_energy(lambda s: s.loihi1_hop_energy_j)

    @property
    def hala_point_synop_time_s(self) -> float:
        """Cross-check of synop_time_s: Hala Point's synaptic-op rate per neuro core, inverted."""
        return self.hala_point_cores / self.hala_point_synops_per_s

    @property
    def sparse_bits_per_nonzero(self) -> float:
        """Bits per non-zero weight of the sparse encoding, derived so that a matrix with the reference zero
        fraction costs sparse_to_dense_ratio times its dense encoding (weight bits only):
        b * (1 - z_ref) = ratio * dense_bits  ->  b = 7.5 * 2 / (2/3) = 22.5 bits
        (a 10-bit input index for d=1024, an 8-bit weight field and ~4.5 bits of list bookkeeping: the
        derivation in docs/cost_model.md, section 1, "The sparse encoding")."""
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
        check_types(self)
        numbers = [f.name for f in fields(self) if isinstance(getattr(self, f.name), (int, float))
                   and not isinstance(getattr(self, f.name), bool)]
        _require(self, numbers, lambda v: v >= 0 and math.isfinite(v), "a finite number >= 0")
        _require(self, ("cores_per_chip", "neurons_per_core", "core_memory_bytes", "max_fan_in", "max_fan_out",
                        "dense_weight_bits", "loihi2_speedup", "lif_reference_instructions", "chips_per_board",
                        "host_link_bytes_per_s"), lambda v: v > 0, "positive")
        if self.cores_per_chip > self.mesh_width * self.mesh_height:
            raise CostModelError(f"Loihi2Spec.cores_per_chip={self.cores_per_chip} exceeds the "
                                 f"{self.mesh_width}x{self.mesh_height} mesh")
        if not 0 <= self.sparse_reference_zero_fraction < 1:
            raise CostModelError("Loihi2Spec.sparse_reference_zero_fraction must be in [0, 1)")


# ------------------------------------------------------------------------------------------- GPUs
# Eager attention's traffic over the T x T score matrix (source ``hf_eager``), per step, in passes: one read or
# one write of the matrix in fp16 (an fp32 read or write is two). Per layer the matrix is heads x T^2 x 2 bytes
# (8 MB at T = 500 for 16 heads), larger than the GPU's L2 cache, so every pass goes to DRAM. The T x T mask is
# broadcast over the heads: one more pass per head where it does not fit in the L2 (gpu_baseline.eager_attention).
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
    """A GPU (or a Jetson module) running a model in PyTorch: its peaks, what kernels reach of them, its host's
    dispatch time, and its power (docs/gpu_baselines.md).

    Time (:mod:`.gpu_runtimes`): every kernel takes ``kernel_floor_s`` plus its roofline time (FLOPs at a
    fraction of the peak, bytes at a fraction of the bandwidth); in eager PyTorch the host dispatches every op
    (``host_op_overhead_s`` each) and the GPU cannot run ahead of it. Power (:mod:`.gpu_power`): ``idle_power_w``
    always, up to ``power_w`` while the kernels run at their roofline rate."""

    name: str = const("Jetson Orin Nano 8GB (15 W)", "orin", "high", "")
    dtype: str = const("fp16", "paper", "high", "the paper's baselines run in FP16; 'fp32' is PyTorch's default")
    peak_fp16_flops: float = const(
        10.0e12, "orin", "medium", "dense FP16 on the tensor cores: 40 sparse INT8 TOPS / 2 (dense) / 2 (FP16); "
        "= 32 tensor cores x 625 MHz x 512 FLOP/clock")
    peak_fp32_flops: float = const(1.28e12, "orin", "high", "1024 CUDA cores x 2 FLOP x 625 MHz")
    memory_bandwidth_bps: float = const(68e9, "orin", "high", "LPDDR5 128-bit, 68 GB/s (102 GB/s on 'Super')")
    memory_capacity_bytes: float = const(8e9, "orin", "high", "8 GB LPDDR5 shared by CPU and GPU")
    l2_cache_bytes: float = const(
        2.0 * 2**20, "assumed", "low", "GPU L2 cache: a T x T attention mask larger than this is read from DRAM "
        "once per head (the Orin Nano datasheet does not give its GPU's L2)")
    power_w: float = const(
        15.0, "orin", "medium", "power limit: the 15 W power mode's budget (the paper's 719-1,200 mJ/token at "
        "12.6-15.4 tokens/s is 11-15 W)")
    idle_power_w: float = const(
        3.0, "jetson_idle", "low", "module power with nothing running: 2.18 W measured on a module stripped of its "
        "peripherals (the forum thread), a stock module somewhat more; 3 W assumed")
    host_on_board: bool = const(
        True, "nvml", "medium", "the host CPU that dispatches the ops is inside the measured power (a Jetson's "
        "VDD_IN holds CPU, GPU and memory): while it dispatches, the module counts as busy. False for a discrete "
        "board, whose NVML energy leaves the host out")
    prefill_efficiency: float = const(
        0.05864, "fitted", "fitted",
        "fraction of the FP16 peak that GEMMs reach (eager PyTorch: small GEMMs on the Orin). FITTED on the "
        "paper's Jetson TTFT (659 ms, 500 tokens) for the Llama-style baseline")
    fused_attention_efficiency: float = const(
        0.5, "fa2", "low", "fraction of the FP16 peak a fused attention kernel (FlashAttention-2) reaches: 50-73% "
        "on the A100 (Ampere, as the Orin's GPU); the lower end")
    memory_efficiency: float = const(
        0.7, "assumed", "medium", "achievable fraction of peak DRAM bandwidth for streaming reads (STREAM-like)")
    host_op_overhead_s: float = const(
        45e-6, "dispatch", "low", "host CPU time per PyTorch op: 15 us (middle of the 5-25 us quoted for a server "
        "CPU) x 3 for the Orin's 1.5 GHz Cortex-A78AE cores (assumed single-thread ratio)")
    kernel_floor_s: float = const(
        4.9e-6, "assumed", "low", "GPU time of a kernel beyond its roofline work (launch, ramp-up, tail): the "
        "H200's fitted 1.52 us x 3.2, the ratio of their GPU clocks (1,980 / 625 MHz)")
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
        check_types(self)
        if self.dtype not in ("fp32", "fp16"):
            raise CostModelError(f"GpuSpec.dtype must be 'fp32' or 'fp16', got {self.dtype!r}")
        _require(self, ("prefill_efficiency", "memory_efficiency", "fused_attention_efficiency"),
                 lambda v: 0 < v <= 1, "in (0, 1]")
        _require(self, ("peak_fp16_flops", "peak_fp32_flops", "memory_bandwidth_bps", "memory_capacity_bytes",
                        "power_w"), lambda v: v > 0, "positive")
        _require(self, ("host_op_overhead_s", "kernel_floor_s", "l2_cache_bytes", "idle_power_w"),
                 lambda v: v >= 0, ">= 0")
        if self.idle_power_w > self.power_w:
            raise CostModelError(f"GpuSpec.idle_power_w={self.idle_power_w} W exceeds power_w={self.power_w} W")


LOIHI2 = Loihi2Spec()
JETSON_ORIN_NANO = GpuSpec()
# Hopper: the H200 from its datasheet and the measurement (two constants fitted on named cells of it,
# calibration.fit_h200); the H100 SXM from its datasheet, the rest as the H200 (same GH100 die and board)
H200_SXM = dataclasses.replace(
    GpuSpec(), name="H200 SXM (700 W)", peak_fp16_flops=989e12, peak_fp32_flops=67e12,
    memory_bandwidth_bps=4.8e12, memory_capacity_bytes=141e9, l2_cache_bytes=50.0 * 2**20, power_w=700.0,
    idle_power_w=120.0, host_on_board=False, prefill_efficiency=0.8, fused_attention_efficiency=0.35,
    memory_efficiency=0.8, host_op_overhead_s=13.378e-6, kernel_floor_s=1.519e-6)
HOPPER_NOTES = {
    "peak_fp16_flops": ("h200", "high", "989 TFLOPS dense FP16 tensor (1,979 with 2:4 sparsity)"),
    "peak_fp32_flops": ("h100", "high", "67 TFLOPS FP32"),
    "l2_cache_bytes": ("hopper_wp", "medium", "50 MB (H100 SXM5; the H200 is the same GH100 die)"),
    "power_w": ("h200", "high", "power limit 700 W"),
    "host_on_board": ("nvml", "high", "NVML measures the board; the host CPU is not on it"),
    "prefill_efficiency": ("fa2", "medium", "optimized GEMMs reach up to 80-90% of the peak: 80%"),
    "fused_attention_efficiency": ("fa3", "medium", "FlashAttention-2 reaches 35% of the H100's peak"),
    "memory_efficiency": ("assumed", "medium", "achievable fraction of HBM bandwidth"),
}
H200_NOTES = {
    **HOPPER_NOTES,
    "name": ("h200", "high", ""),
    "memory_bandwidth_bps": ("h200", "high", "HBM3e 4.8 TB/s"),
    "memory_capacity_bytes": ("h200", "high", "141 GB HBM3e"),
    "idle_power_w": ("h200_measured", "high", "idle board power measured 116-123 W"),
    "host_op_overhead_s": ("fitted_h200", "fitted", "host time per dispatched op. FITTED on the measured "
                           "prompt passes of 16, 128 and 512 tokens (eager and sdpa: host-bound), tokens/s"),
    "kernel_floor_s": ("fitted_h200", "fitted", "GPU time of a kernel beyond its roofline work. FITTED on the "
                       "measured CUDA-graph decode (contexts 500 and 2,048), tokens/s"),
}
H100_SXM = dataclasses.replace(
    H200_SXM, name="H100 SXM (700 W)", memory_bandwidth_bps=3.35e12, memory_capacity_bytes=80e9)
H100_NOTES = {
    **HOPPER_NOTES,
    "name": ("h100", "high", ""),
    "peak_fp16_flops": ("h100", "high", "989 TFLOPS dense FP16 tensor (1,979 with 2:4 sparsity)"),
    "memory_bandwidth_bps": ("h100", "high", "HBM3 3.35 TB/s"),
    "memory_capacity_bytes": ("h100", "high", "80 GB"),
    "power_w": ("h100", "high", "power limit 700 W"),
    "idle_power_w": ("h200_measured", "low", "the H200's measured idle (same die and board, one HBM stack "
                                             "fewer)"),
    "host_op_overhead_s": ("h200_measured", "low", "the H200's fitted value: the host, not the GPU, sets it"),
    "kernel_floor_s": ("h200_measured", "medium", "the H200's fitted value (same GH100 die and clocks)"),
}
GPU_NOTES = {"jetson": None, "h100": H100_NOTES, "h200": H200_NOTES}


def gaussian_absmean_zero_fraction() -> float:
    """Fraction of zeros after absmean ternarisation of Gaussian weights (docs/model.md: Wt = clip(round(W/m)),
    m = mean|W|). A weight rounds to 0 when |W| < m/2. For W ~ N(0, s^2), m = s*sqrt(2/pi), so
    P(|W| < m/2) = erf(m / (2 s sqrt 2)) = erf(1 / (2 sqrt(pi))) = 0.3101 (about 1/3)."""
    return math.erf(1.0 / (2.0 * math.sqrt(math.pi)))


GAUSSIAN_ZERO_FRACTION = gaussian_absmean_zero_fraction()


# ------------------------------------------------------------------------------------------- overrides
# the sections of a hardware file and of ``estimate --set SECTION.NAME=VALUE``, with their default specs
DEFAULT_SPECS: dict[str, Any] = {"loihi2": LOIHI2, "jetson": JETSON_ORIN_NANO, "h100": H100_SXM,
                                 "h200": H200_SXM}
HW_SECTIONS = {k: type(v) for k, v in DEFAULT_SPECS.items()}
GPU_SECTIONS = tuple(k for k, v in DEFAULT_SPECS.items() if isinstance(v, GpuSpec))


# the words a boolean constant or option accepts from text (estimate --set NAME=VALUE), case-insensitive
BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
# per declared type: what a value must be, and the test of a Python value
_KINDS = {"bool": ("true or false (or yes/no, 1/0)", lambda x: isinstance(x, bool)),
          "int": ("an integer", lambda x: isinstance(x, int) and not isinstance(x, bool)),
          "float": ("a finite number", lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)
                    and math.isfinite(x)),
          "str": ("a string", lambda x: isinstance(x, str))}


def _kind(f, obj) -> str | None:
    """A dataclass field's declared type ('bool', 'int', 'float', 'str'; else its value's); None: not checked."""
    return next((t for t in (f.type, type(getattr(obj, f.name)).__name__) if t in _KINDS), None)


def coerce(kind: str | None, v: Any, what: str) -> Any:
    """``v`` as a value of ``kind`` (:func:`_kind`): a Python value of that type as is (an int for a float), or
    text (``--set NAME=VALUE``) parsed as one; else a CostModelError naming ``what``. Booleans take the words of
    :data:`BOOL_WORDS` only, integers no fraction, numbers nothing infinite or NaN."""
    if kind is None:
        return v
    if isinstance(v, str) and kind != "str":
        text = v.strip()
        try:
            v = BOOL_WORDS[text.lower()] if kind == "bool" else int(text) if kind == "int" else float(text)
        except (KeyError, ValueError):
            raise CostModelError(f"{what} must be {_KINDS[kind][0]}, got {text!r}") from None
    if not _KINDS[kind][1](v):
        raise CostModelError(f"{what} must be {_KINDS[kind][0]}, got {v!r}")
    return float(v) if kind == "float" else v


def check_types(obj) -> None:
    """A CostModelError naming the first field of a dataclass whose value is not of its declared type."""
    for f in fields(obj):
        coerce(_kind(f, obj), getattr(obj, f.name), f"{type(obj).__name__}.{f.name}")


def with_overrides(obj, values: Mapping[str, Any], source: str = "<overrides>"):
    """``dataclasses.replace`` with each value checked against its field's type (text parsed: :func:`coerce`),
    the result's own :meth:`check`, and a clear error for unknown names."""
    known = {f.name: f for f in fields(obj)}
    changes = {}
    for k, v in values.items():
        if k not in known:
            raise CostModelError(f"{source}: unknown {type(obj).__name__} field {k!r} "
                                 f"(known: {', '.join(sorted(known))})")
        changes[k] = coerce(_kind(known[k], obj), v, f"{source}: {type(obj).__name__}.{k}")
    new = dataclasses.replace(obj, **changes)
    try:
        new.check()
    except CostModelError as e:
        raise CostModelError(f"{source}: {e}") from None
    return new


def load_hardware(path: str | Path | None = None) -> dict[str, Any]:
    """The default specs ``{"loihi2", "jetson", "h100", "h200"}``, with the TOML file's tables of those names
    applied."""
    specs = dict(DEFAULT_SPECS)
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
