"""Named hardware constants of the cost model: Loihi 2 (structure, memory, per-operation time and energy) and
the edge-GPU baseline (NVIDIA Jetson Orin Nano 8 GB).

Every number the mapping and the cost model use is a field of a frozen dataclass below, with its public
source and a confidence (``high``: read in a primary source; ``medium``: primary source but for a related
chip/mode, or a secondary source; ``low``: an assumption or a value derived under stated assumptions).
Change one with ``dataclasses.replace(LOIHI2, cores_per_chip=128)`` or from a TOML file
(:func:`load_hardware`, ``configs/loihi2_hw.toml``). :func:`provenance` lists every field with its source,
and the JSON report carries that list.

Loihi 2 per-operation energies and latencies are not published. We take the Loihi 1 figures of Davies et al.
2018 (as recalibrated on hardware in the SANA-FE simulator) and scale them: time by Intel's "up to 10x faster"
(cross-checked against Hala Point's synaptic-op rate per core), energy by the ratio of Hala Point's upper
bound in pJ per synaptic op to Loihi 1's synaptic-op energy. Both factors are low confidence.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import tomli

from ..errors import LmfError


class CostModelError(LmfError):
    """A mapping or cost-model input is missing or impossible (e.g. no microcode instruction counts)."""


# ------------------------------------------------------------------------------------------- sources
SRC = {
    "paper": "Abreu, Shrestha, Zhu, Eshraghian 2025, 'Neuromorphic Principles for Efficient Large Language "
             "Models on Intel Loihi 2', arXiv:2503.18002 (ICLR 2025 SCOPE workshop)",
    "brief": "Intel Labs 2021, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', technology brief",
    "press_mem": "press coverage of the Loihi 2 launch (e.g. fbhtechinfo.com, 'Intel's new Loihi-2 chip uses "
                 "1 million neurons'): 128 KB of local SRAM per core, flexibly partitioned",
    "davies": "Davies et al. 2018, 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', IEEE Micro "
              "38(1), Table of energy/performance figures",
    "sanafe": "SANA-FE simulator, SLAM-Lab/SANA-FE arch/loihi.yaml: Loihi 1 per-event energy/latency from Davies "
              "et al. 2018, recalibrated against Loihi hardware (Boyle et al.)",
    "hala": "Intel newsroom 2024, 'Intel Builds World's Largest Neuromorphic System' (Hala Point): 1,152 Loihi 2 "
            "chips, 140,544 neuro cores, up to 2,600 W, 380 trillion 8-bit synaptic ops/s",
    "onm": "open-neuromorphic.org, 'Loihi 2 - Intel' hardware page (summary of Intel material): ~1 W per chip",
    "orin": "NVIDIA Jetson Orin Nano series data sheet / module specifications (Orin Nano 8 GB: 1024 CUDA cores, "
            "32 tensor cores, GPU up to 625 MHz, 40 sparse INT8 TOPS, 68 GB/s LPDDR5, 7-15 W)",
    "design": "DESIGN.md section 4 (project design reference, quoting the paper)",
    "derived": "derived in this module from the fields named in the note",
    "assumed": "modelling assumption of this project (no public figure found)",
}


def const(value, source: str, confidence: str, note: str = ""):
    """A dataclass field carrying its provenance in the field metadata."""
    if source not in SRC:
        raise KeyError(f"unknown source key {source!r}")
    if confidence not in ("high", "medium", "low"):
        raise ValueError(confidence)
    return field(default=value, metadata={"source": source, "confidence": confidence, "note": note})


def provenance(obj) -> list[dict[str, Any]]:
    """Every field of a hardware dataclass: name, value, source, confidence, note (for reports and docs)."""
    out = []
    for f in fields(obj):
        md = f.metadata
        out.append({"name": f"{type(obj).__name__}.{f.name}", "value": getattr(obj, f.name),
                    "source": SRC.get(md.get("source", ""), md.get("source", "")),
                    "confidence": md.get("confidence", ""), "note": md.get("note", "")})
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
    dense_weight_bits: int = const(2, "assumed", "medium", "ternary weight in the dense encoding: 2 bits")
    dense_axon_overhead_bits: int = const(
        32, "assumed", "low", "dense encoding: one synapse-map entry per input axon per core (pointer + length)")
    sparse_to_dense_ratio: float = const(
        7.5, "design", "medium",
        "paper (via DESIGN.md 4): a 1024x1024 ternary matrix in the sparse encoding takes ~7.5x the memory of "
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

    # --- barrier synchronisation, chip links, static power, host
    barrier_base_s: float = const(
        0.6e-6, "sanafe", "medium", "Loihi 1 time-step barrier on one chip (SANA-FE sync table, measured)")
    barrier_per_chip_doubling_s: float = const(
        0.4e-6, "sanafe", "low", "SANA-FE table 0.6/1.0/1.4 us for 1/2/4 chips (1.8 us for 29): +0.4 us per "
        "doubling; not scaled to Loihi 2")
    chip_link_latency_s: float = const(
        0.2e-6, "assumed", "low", "extra latency of a message crossing one chip-to-chip link")
    chip_link_energy_per_message_j: float = const(
        320e-12, "assumed", "low", "a 64-bit graded-spike packet at ~5 pJ/bit on an off-chip parallel link")
    static_power_per_chip_w: float = const(
        1.0, "onm", "low", "chip power at run time independent of activity (leakage, clocks, idle cores, I/O); "
        "Hala Point's maximum is 2600 W / 1152 = 2.26 W per chip including the system")
    host_token_loop_s: float = const(
        0.0, "assumed", "low", "decode: host time to read the logits, sample and inject the next embedding; "
        "not modelled (0): set it to include the host round trip")

    # --- derived per-operation figures of Loihi 2
    @property
    def energy_scale(self) -> float:
        """Loihi 1 -> Loihi 2 energy factor: Hala Point's pJ/synop (an upper bound: it includes static power and
        everything else at full load) over Loihi 1's synaptic-op energy. ~0.29."""
        return (self.hala_point_power_w / self.hala_point_synops_per_s) / self.loihi1_synop_energy_j

    @property
    def synop_time_s(self) -> float:
        return self.loihi1_synop_time_s / self.loihi2_speedup

    @property
    def synop_energy_j(self) -> float:
        return self.loihi1_synop_energy_j * self.energy_scale

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
        return self.sparse_to_dense_ratio * self.dense_weight_bits / (1.0 - self.sparse_reference_zero_fraction)

    def barrier_s(self, chips: int) -> float:
        """Time-step barrier synchronisation across ``chips`` chips."""
        return self.barrier_base_s + self.barrier_per_chip_doubling_s * math.log2(max(1, chips))

    def check(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool):
                continue
            if isinstance(v, (int, float)) and (v < 0 or not math.isfinite(v)):
                raise CostModelError(f"Loihi2Spec.{f.name} must be a finite number >= 0, got {v}")
        for k in ("cores_per_chip", "neurons_per_core", "core_memory_bytes", "max_fan_in", "max_fan_out",
                  "dense_weight_bits", "loihi2_speedup", "lif_reference_instructions"):
            if getattr(self, k) <= 0:
                raise CostModelError(f"Loihi2Spec.{k} must be positive, got {getattr(self, k)}")
        if self.cores_per_chip > self.mesh_width * self.mesh_height:
            raise CostModelError(f"Loihi2Spec.cores_per_chip={self.cores_per_chip} exceeds the "
                                 f"{self.mesh_width}x{self.mesh_height} mesh")
        if not 0 <= self.sparse_reference_zero_fraction < 1:
            raise CostModelError("Loihi2Spec.sparse_reference_zero_fraction must be in [0, 1)")


# ------------------------------------------------------------------------------------------- Jetson
@dataclass(frozen=True)
class GpuSpec:
    """NVIDIA Jetson Orin Nano 8 GB in its 15 W mode, running a Llama-style transformer with PyTorch at batch 1.

    Roofline: prefill is compute-bound (GEMMs of T tokens, plus attention that grows as T^2), decode is
    memory-bandwidth-bound (all weights and the KV cache are read once per generated token); each kernel
    launch adds a fixed host overhead. The efficiency factors are the only free parameters."""

    name: str = const("Jetson Orin Nano 8GB (15 W)", "orin", "high", "")
    cuda_cores: int = const(1024, "orin", "high", "")
    gpu_clock_hz: float = const(625e6, "orin", "medium", "maximum GPU clock of the 8 GB module (original, 15 W)")
    int8_sparse_tops: float = const(40.0, "orin", "high", "40 INT8 TOPS with 2:4 sparsity (original module)")
    memory_bandwidth_bps: float = const(68e9, "orin", "high", "LPDDR5 128-bit, 68 GB/s (102 GB/s on 'Super')")
    memory_capacity_bytes: float = const(8e9, "orin", "high", "8 GB LPDDR5 shared by CPU and GPU")
    board_power_w: float = const(
        15.0, "orin", "medium", "the 15 W power mode's budget, taken as the module power during inference "
        "(an upper bound: the paper measured the board; its figure is not in the text we could read)")
    dtype: str = const("fp32", "assumed", "low",
                       "PyTorch's default dtype; 'fp16' uses the tensor cores (8x the fp32 peak here)")
    prefill_efficiency: float = const(
        0.45, "paper", "low",
        "fraction of peak FLOP/s reached in prefill. CALIBRATED: the one factor set so that the 370M, 500-token "
        "TTFT lands near the paper's 659 ms; it absorbs eager-mode PyTorch and small (d=1024) GEMMs")
    memory_efficiency: float = const(
        0.7, "assumed", "medium", "achievable fraction of peak DRAM bandwidth for streaming reads (STREAM-like)")
    kernel_launch_s: float = const(
        20e-6, "assumed", "low", "host overhead per kernel launch in eager PyTorch on the Orin's Cortex-A78AE")
    kernels_per_layer: int = const(
        16, "assumed", "medium", "Llama block in eager PyTorch: 2 RMSNorm, q/k/v/o GEMMs, rotary, QK^T, mask+"
        "softmax, PV, gate/up GEMMs, SiLU*mul, down GEMM, 2 residual adds (counted)")
    attention_full_square: bool = const(
        True, "assumed", "medium", "eager attention computes the full T x T score matrix, then masks it")
    attention_score_passes: int = const(
        4, "assumed", "low", "memory passes over the T x T scores per head: write QK^T, softmax read+write, read "
                             "for PV")
    logits_for_all_positions: bool = const(
        True, "assumed", "medium", "a Hugging Face forward computes logits for every prompt position")
    head_dim: int = const(64, "assumed", "medium", "Llama-style head size for d=1024 (16 heads)")

    @property
    def bytes_per_value(self) -> int:
        return {"fp32": 4, "fp16": 2}[self.dtype]

    @property
    def peak_flops(self) -> float:
        """fp32: 2 FLOPs (one FMA) per CUDA core per clock = 1.28 TFLOP/s. fp16 on the tensor cores: the INT8
        dense rate (half the sparse TOPS) halved again = 10 TFLOP/s."""
        if self.dtype == "fp32":
            return 2.0 * self.cuda_cores * self.gpu_clock_hz
        return self.int8_sparse_tops * 1e12 / 2.0 / 2.0

    def check(self) -> None:
        if self.dtype not in ("fp32", "fp16"):
            raise CostModelError(f"GpuSpec.dtype must be 'fp32' or 'fp16', got {self.dtype!r}")
        for k in ("prefill_efficiency", "memory_efficiency"):
            v = getattr(self, k)
            if not 0 < v <= 1:
                raise CostModelError(f"GpuSpec.{k} must be in (0, 1], got {v}")
        for k in ("cuda_cores", "gpu_clock_hz", "memory_bandwidth_bps", "board_power_w", "head_dim"):
            if getattr(self, k) <= 0:
                raise CostModelError(f"GpuSpec.{k} must be positive, got {getattr(self, k)}")


LOIHI2 = Loihi2Spec()
JETSON_ORIN_NANO = GpuSpec()


def gaussian_absmean_zero_fraction() -> float:
    """Fraction of zeros after absmean ternarisation of Gaussian weights (DESIGN.md 2: Wt = clip(round(W/m)),
    m = mean|W|). A weight rounds to 0 when |W| < m/2. For W ~ N(0, s^2), m = s*sqrt(2/pi), so
    P(|W| < m/2) = erf(m / (2 s sqrt 2)) = erf(1 / (2 sqrt(pi))) = 0.3101 (about 1/3)."""
    return math.erf(1.0 / (2.0 * math.sqrt(math.pi)))


GAUSSIAN_ZERO_FRACTION = gaussian_absmean_zero_fraction()


# ------------------------------------------------------------------------------------------- overrides
HW_SECTIONS = {"loihi2": Loihi2Spec, "jetson": GpuSpec}


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


def load_hardware(path: str | Path | None = None) -> tuple[Loihi2Spec, GpuSpec]:
    """The default specs, with the ``[loihi2]`` and ``[jetson]`` tables of a TOML file applied on top."""
    loihi, gpu = LOIHI2, JETSON_ORIN_NANO
    if path is None:
        return loihi, gpu
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
    loihi = with_overrides(loihi, raw.get("loihi2", {}), str(p))
    gpu = with_overrides(gpu, raw.get("jetson", {}), str(p))
    return loihi, gpu
