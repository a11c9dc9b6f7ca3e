"""Loihi 2 cost model of the mapped graph: work per time step, latency, throughput, energy (DESIGN.md 6).

Per hop of a token (one Lava time step, see :mod:`.mapping`) we count

- **synaptic operations**: every stored weight crossed by an active input in the dense encoding, only the
  non-zero ones in the sparse encoding (zero weights skipped); aggregator links and broadcasts are weight-1
  synapses (one op per message per target neuron);
- **neuron updates** of the receiving neurons, each costing the microcode instructions of its type
  (``'residual'``, ``'mlgru'``, ``'glu'``, ``'rms_aggregator'``), plus one ``'requant'`` program per neuron that
  emits int8 graded spikes into a ternary matrix (and per logit neuron, per partial-sum relay);
- **messages** (graded spikes): one per source neuron per destination core; each costs a spike-out, the mesh
  hops between the two cores (Manhattan distance on the chips' 8 x 16 meshes laid side by side) and the chip
  links crossed.

Latency: a core's work in a hop is synops x t_synop + instructions x t_instr + messages sent x t_spike_out,
plus the transit of the farthest message. **Time step = slowest core + barrier synchronisation.**

- *Prefill* streams one token per step: at step k the hops of tokens k, k-1, ... are all active, so each core
  does the work of every hop it takes part in; with the pipeline full the step lasts max over cores of that sum.
  TTFT for T tokens is the sum over the T + D - 1 steps (D = pipeline depth in hops = 1 + L x hops_per_layer +
  3 head hops), i.e. ``T + L*hops_per_layer + 3`` steps, which is linear in T.
- *Decode*: a token must leave the head before the next enters, so its D hops run one after the other and a
  step lasts as long as the slowest core *of that hop*.
- *Energy* per token: the dynamic energy of all its hops plus static power (per chip) x the time it occupies:
  one full step in prefill (the pipeline is shared), its whole pipeline traversal in decode.

The microcode instruction counts per neuron type are an input: pass them, or they are read from
``lava_matmulfree.microcode.instruction_counts()`` if the microcode package provides it; otherwise
:class:`~.hardware.CostModelError` says so. Nothing is silently defaulted.

Comparison with the paper (Abreu et al. 2025, arXiv:2503.18002)
---------------------------------------------------------------
What the paper reports (from its abstract and summaries; its tables were not readable from this workplace,
so their exact values and measurement protocol are not checked here): a 370M MatMul-free model on Loihi 2,
batch 1, against transformer LLMs of similar size on a Jetson Orin Nano: "up to 3x higher throughput with 2x
less energy", "6.6x lower time-to-first-token on a 500-token input" (99 ms vs 659 ms, DESIGN.md 6); the
figures are called preliminary, from hardware runs; one secondary summary of the body quotes ~405 mJ per
token on Loihi 2.

Ours for 370M (``benchmarks/cost_estimate.py``): TTFT 104 ms on 8 chips vs 99 ms (+5%), not calibrated: it
follows from the memory-bound partition (2-bit dense weights in 128 KB cores put ~400K weights on the busiest
core), 0.4 ns per synaptic op (Loihi 1's 4 ns / 10), zero weights skipped, and 12 hops per layer. The Jetson's
675 ms vs 659 ms (+2%) *is* calibrated (``GpuSpec.prefill_efficiency``). Where we differ:

- decode: ~98 tokens/s on Loihi 2 vs ~26 on the Jetson (3.8x, the paper "up to 3x"). A decode token crosses
  292 hops, but only the 4 synaptic hops per layer take ~100+ us; aggregator hops take ~1-2 us. A real chip's
  per-step overheads (host I/O, barrier across boards: ``host_token_loop_s`` is 0 here) would lower it.
- energy: ~83 mJ per generated token (8 chips x 1 W static x 10 ms + ~2.6 mJ of operations) vs 577 mJ on the
  Jetson at its 15 W budget: 7x, where the paper says 2x. If the ~405 mJ/token is right, the measured Loihi
  system draws ~5x more per token than our static power model: with Hala Point's 2.26 W per chip (a variant in
  the report) we get 185 mJ. Static power per chip is the least known constant and dominates decode energy.
- prefill energy per token is small on Loihi 2 (~3.5 mJ) because the pipeline shares the static power among
  ~290 tokens in flight; dynamic energy (synops at Hala Point's 6.8 pJ/op upper bound) is ~2.5 mJ per token.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..config import ModelConfig, load_config
from .hardware import (GAUSSIAN_ZERO_FRACTION, LOIHI2, CostModelError, GpuSpec, Loihi2Spec,
                       const, load_hardware, provenance, with_overrides)
from .mapping import HOST, NEURON_KINDS, LoihiMapping, MappingOptions, build_mapping

DEFAULT_PROMPT_LENGTHS = (16, 32, 64, 128, 256, 500, 1024, 2048, 4096)


@dataclass(frozen=True)
class PaperAnchors:
    """The figures of the paper this model is checked against (370M, batch 1)."""

    prompt_tokens: int = const(500, "paper", "high", "prompt length of the TTFT comparison")
    ttft_loihi_s: float = const(0.099, "design", "high", "TTFT on Loihi 2, 500-token prompt (DESIGN.md 6)")
    ttft_jetson_s: float = const(0.659, "design", "high", "TTFT of a Llama-style transformer on the Jetson")
    ttft_ratio: float = const(6.6, "paper", "high", "'6.6x lower time-to-first-token on a 500-token input'")
    throughput_ratio: float = const(3.0, "paper", "high", "'up to 3x higher throughput' (abstract)")
    energy_ratio: float = const(2.0, "paper", "high", "'with 2x less energy' (abstract)")
    tolerance: float = const(0.25, "assumed", "high", "accepted relative deviation from the anchors")


PAPER = PaperAnchors()


# ------------------------------------------------------------------------------------------- inputs
def resolve_instruction_counts(instructions: Mapping[str, int] | None = None) -> tuple[dict[str, int], str]:
    """The microcode instructions per neuron update, and where they came from.

    Given explicitly: validated and used. Else: ``lava_matmulfree.microcode.instruction_counts()`` if that
    function exists. Else a :class:`CostModelError`: there is no default."""
    source = "passed by the caller"
    if instructions is None:
        try:
            mc = importlib.import_module("lava_matmulfree.microcode")
        except ImportError as e:  # pragma: no cover - the package ships with the project
            raise CostModelError(f"microcode instruction counts were not given and the microcode package does "
                                 f"not import ({e})") from None
        fn = getattr(mc, "instruction_counts", None)
        if fn is None:
            raise CostModelError(
                "the cost model needs microcode instruction counts per neuron update for "
                f"{', '.join(NEURON_KINDS)}: pass them (instructions={{...}}, or a TOML/JSON file) or provide "
                "lava_matmulfree.microcode.instruction_counts(); it does not exist yet")
        # static (worst-case) counts of every shipped program; the final-norm neurons are costed with the
        # (larger) residual program in the mapping, so programs the mapping does not name are left out
        instructions = {k: v for k, v in fn().items() if k in NEURON_KINDS}
        source = "lava_matmulfree.microcode.instruction_counts()"
    if isinstance(instructions, (str, Path)):
        p = Path(instructions)
        if not p.exists():
            raise CostModelError(f"{p}: no such instruction-count file")
        text = p.read_text()
        if p.suffix == ".json":
            instructions = json.loads(text)
        else:
            import tomli

            instructions = tomli.loads(text)
            instructions = instructions.get("instructions", instructions)
        source = str(p)
    missing = [k for k in NEURON_KINDS if k not in instructions]
    unknown = [k for k in instructions if k not in NEURON_KINDS]
    if missing or unknown:
        raise CostModelError(f"instruction counts: missing {missing}, unknown {unknown} (need exactly "
                             f"{', '.join(NEURON_KINDS)})")
    out = {}
    for k in NEURON_KINDS:
        v = instructions[k]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise CostModelError(f"instruction count for {k!r} must be an integer >= 0, got {v!r}")
        out[k] = int(v)
    return out, source


# ------------------------------------------------------------------------------------------- per hop
@dataclass
class HopCost:
    index: int
    name: str
    layer: int
    kind: str
    synops: float
    nonzero_synops: float
    messages: float
    mesh_hops: float  # summed over messages
    chip_crossings: float  # summed over messages
    neuron_updates: dict[str, float]
    instructions: float
    energy_j: dict[str, float]
    latency_s: float  # decode: slowest core of this hop (without barrier)

    @property
    def energy_total_j(self) -> float:
        return sum(self.energy_j.values())


def _distances(coords: np.ndarray, a: range | None, b: range) -> tuple[float, float, float, float]:
    """(mean mesh hops, max mesh hops, mean chip crossings, max chip crossings) between the cores of a and b;
    ``a=None`` is the host, attached to chip 0's corner through one link."""
    cb = coords[b.start:b.stop]
    if a is None:
        ca = np.zeros((1, 3), dtype=coords.dtype)
        extra = 1
    else:
        ca = coords[a.start:a.stop]
        extra = 0
    dx = np.abs(ca[:, None, 1] - cb[None, :, 1]) + np.abs(ca[:, None, 2] - cb[None, :, 2])
    dc = np.abs(ca[:, None, 0] - cb[None, :, 0]) + extra
    return float(dx.mean()), float(dx.max()), float(dc.mean()), float(dc.max())


class LoihiCostModel:
    """Costs of one mapping for given microcode instruction counts."""

    def __init__(self, mapping: LoihiMapping, instructions: Mapping[str, int] | None = None):
        self.mapping = mapping
        self.hw: Loihi2Spec = mapping.hw
        self.instructions, self.instructions_source = resolve_instruction_counts(instructions)
        self.groups = mapping.groups
        self.gindex = {g.name: i for i, g in enumerate(self.groups)}
        self.coords = mapping.core_coords()
        self.work = np.zeros((len(self.groups), len(mapping.hops)))  # seconds per core, [group, hop]
        self.hop_costs = [self._hop(h) for h in mapping.hops]
        self.barrier_s = self.hw.barrier_s(mapping.chips)

    # ---- one hop
    def _range(self, name: str) -> range | None:
        if name == HOST:
            return None
        g = self.mapping.by_name[name]
        return range(g.first_core, g.first_core + g.cores)

    def _hop(self, h) -> HopCost:
        hw, ins, opts = self.hw, self.instructions, self.mapping.options
        by = self.mapping.by_name
        dst = by[h.dst]
        src = by.get(h.src)
        hi = h.index
        density = opts.activation_density
        updates: dict[str, float] = {}

        def upd(kind, n):
            updates[kind] = updates.get(kind, 0.0) + n

        def add_work(g, seconds):
            self.work[self.gindex[g.name], hi] += seconds

        dst_per_core = dst.neurons_per_core
        if h.kind == "synaptic":
            mats = dst.matrices
            synops = density * sum(m.processed_per_input(hw) for m in mats)
            nz = density * sum(m.nonzeros for m in mats)
            dst_cores_reached = dst.cores // dst.fan_in_splits
            messages = h.n_src * density * dst_cores_reached
            upd("requant", h.n_src)
            src_pc = src.neurons_per_core
            add_work(src, src_pc * (ins["requant"] * hw.instruction_time_s
                                    + density * dst_cores_reached * hw.spike_out_time_s))
            syn_pc = density * dst.neurons_per_core * sum(m.processed_per_input(hw) for m in mats) \
                / dst.neurons / dst.fan_in_splits
            work = syn_pc * hw.synop_time_s
            if dst.fan_in_splits == 1:
                upd(dst.neuron_kind, h.n_dst)
                work += dst_per_core * ins[dst.neuron_kind] * hw.instruction_time_s
            add_work(dst, work)
        elif h.kind == "partial":
            relays = h.n_src
            synops = nz = float(relays)
            messages = float(relays)
            upd("requant", relays)
            upd(dst.neuron_kind, h.n_dst)
            splits = dst.fan_in_splits
            add_work(dst, dst_per_core * ((splits - 1) * (ins["requant"] * hw.instruction_time_s
                                                          + hw.spike_out_time_s + hw.synop_time_s)
                                          + ins[dst.neuron_kind] * hw.instruction_time_s))
        elif h.kind == "reduce":
            synops = nz = float(h.n_src)
            messages = float(h.n_src)
            upd("rms_aggregator", h.n_dst)
            add_work(src, src.neurons_per_core * hw.spike_out_time_s)
            add_work(dst, math.ceil(h.n_src / dst.cores) * hw.synop_time_s
                     + dst_per_core * ins["rms_aggregator"] * hw.instruction_time_s)
        elif h.kind == "broadcast":
            synops = nz = float(h.n_dst)
            messages = float(dst.cores)
            upd(dst.neuron_kind, h.n_dst)
            add_work(src, dst.cores * hw.spike_out_time_s)
            add_work(dst, dst_per_core * (hw.synop_time_s + ins[dst.neuron_kind] * hw.instruction_time_s))
        elif h.kind == "inject":
            synops = nz = float(h.n_dst)
            messages = float(h.n_dst)
            upd(dst.neuron_kind, h.n_dst)
            add_work(dst, dst_per_core * (hw.synop_time_s + ins[dst.neuron_kind] * hw.instruction_time_s))
        else:  # pragma: no cover
            raise CostModelError(f"unknown hop kind {h.kind}")

        mean_h, max_h, mean_c, max_c = _distances(self.coords, self._range(h.src), self._range(h.dst))
        energy_msg = hw.spike_out_energy_j if h.kind != "inject" else 0.0
        e_messages = messages * (energy_msg + mean_h * hw.hop_energy_j + mean_c * hw.chip_link_energy_per_message_j)
        mesh = messages * mean_h
        cross = messages * mean_c
        transit = max_h * hw.hop_time_s + max_c * hw.chip_link_latency_s
        if h.readout:
            # logits leave the chip for the host's sink
            r_mean_h, r_max_h, r_mean_c, r_max_c = _distances(self.coords, None, self._range(h.dst))
            e_messages += h.readout * (hw.spike_out_energy_j + r_mean_h * hw.hop_energy_j
                                       + r_mean_c * hw.chip_link_energy_per_message_j)
            messages += h.readout
            mesh += h.readout * r_mean_h
            cross += h.readout * r_mean_c
            add_work(dst, dst_per_core * hw.spike_out_time_s)
            transit += r_max_h * hw.hop_time_s + r_max_c * hw.chip_link_latency_s
        add_work(dst, transit)
        instr = sum(n * self.instructions[k] for k, n in updates.items())
        energy = {"synops": synops * hw.synop_energy_j, "neurons": instr * hw.instruction_energy_j,
                  "messages": e_messages}
        latency = float(self.work[:, hi].max())
        return HopCost(hi, h.name, h.layer, h.kind, synops, nz, messages, mesh, cross, updates, instr, energy,
                       latency)

    # ---- time
    @property
    def pipeline_depth(self) -> int:
        return len(self.mapping.hops)

    @property
    def prefill_step_s(self) -> float:
        """Time step with the pipeline full: the busiest core does the work of all its hops, then the barrier."""
        return float(self.work.sum(axis=1).max()) + self.barrier_s

    def step_times(self, prompt_tokens: int) -> np.ndarray:
        """Duration of each of the T + D - 1 steps of a prefill of T tokens (pipeline fill and drain included)."""
        T, D = int(prompt_tokens), self.pipeline_depth
        if T < 1:
            raise CostModelError(f"prompt length must be >= 1, got {T}")
        P = np.concatenate([np.zeros((len(self.groups), 1)), np.cumsum(self.work, axis=1)], axis=1)
        k = np.arange(T + D - 1)
        a = np.maximum(0, k - T + 1)
        b = np.minimum(k, D - 1)
        return (P[:, b + 1] - P[:, a]).max(axis=0) + self.barrier_s

    def ttft_s(self, prompt_tokens: int) -> float:
        """Time to first token: the last prompt token leaves the head after T + D - 1 steps."""
        T, D = int(prompt_tokens), self.pipeline_depth
        if T <= 2 * D:
            return float(self.step_times(T).sum())
        # long prompts: the middle steps all have the full pipeline; sum ramp-up + full + ramp-down exactly
        ramp = self.step_times(2 * D)
        full = self.prefill_step_s
        return float(ramp.sum() + (T - 2 * D) * full)

    @property
    def decode_token_s(self) -> float:
        """One generated token: its D hops in sequence (each as long as that hop's slowest core) + host loop."""
        return float(sum(c.latency_s for c in self.hop_costs) + self.pipeline_depth * self.barrier_s
                     + self.hw.host_token_loop_s)

    # ---- energy
    @property
    def static_power_w(self) -> float:
        return self.mapping.chips * self.hw.static_power_per_chip_w

    @property
    def dynamic_energy_per_token_j(self) -> float:
        return float(sum(c.energy_total_j for c in self.hop_costs))

    def prefill_energy_j(self, prompt_tokens: int) -> float:
        return prompt_tokens * self.dynamic_energy_per_token_j + self.static_power_w * self.ttft_s(prompt_tokens)

    @property
    def decode_energy_per_token_j(self) -> float:
        return self.dynamic_energy_per_token_j + self.static_power_w * self.decode_token_s

    # ---- counts
    def totals(self) -> dict[str, Any]:
        upd: dict[str, float] = {}
        for c in self.hop_costs:
            for k, n in c.neuron_updates.items():
                upd[k] = upd.get(k, 0.0) + n
        e = {k: sum(c.energy_j[k] for c in self.hop_costs) for k in ("synops", "neurons", "messages")}
        return {
            "synops_per_token": sum(c.synops for c in self.hop_costs),
            "ternary_synops_per_token": sum(c.synops for c in self.hop_costs if c.kind == "synaptic"),
            "nonzero_synops_per_token": sum(c.nonzero_synops for c in self.hop_costs),
            "neuron_updates_per_token": upd,
            "instructions_per_token": sum(c.instructions for c in self.hop_costs),
            "messages_per_token": sum(c.messages for c in self.hop_costs),
            "mesh_hops_per_token": sum(c.mesh_hops for c in self.hop_costs),
            "chip_crossings_per_token": sum(c.chip_crossings for c in self.hop_costs),
            "dynamic_energy_per_token_j": e,
        }

    def summary(self, prompt_tokens: int) -> dict[str, Any]:
        m = self.mapping
        ttft = self.ttft_s(prompt_tokens)
        return {
            "cores": m.cores, "min_cores": sum(g.min_cores for g in m.groups), "chips": m.chips,
            "memory_bytes": round(m.memory_bytes),
            "hops_per_layer": m.hops_per_layer, "head_hops": m.head_hops, "pipeline_depth": self.pipeline_depth,
            "prompt_tokens": prompt_tokens, "ttft_steps": prompt_tokens + self.pipeline_depth - 1,
            "prefill_step_s": self.prefill_step_s, "barrier_s": self.barrier_s,
            "ttft_s": ttft, "prefill_tokens_per_s": 1.0 / self.prefill_step_s,
            "decode_token_s": self.decode_token_s, "decode_tokens_per_s": 1.0 / self.decode_token_s,
            "static_power_w": self.static_power_w,
            "prefill_energy_per_token_j": self.prefill_energy_j(prompt_tokens) / prompt_tokens,
            "prefill_steady_energy_per_token_j": self.dynamic_energy_per_token_j
            + self.static_power_w * self.prefill_step_s,
            "decode_energy_per_token_j": self.decode_energy_per_token_j,
            **self.totals(),
        }


def estimate(cfg: ModelConfig, instructions: Mapping[str, int] | None = None, *, hw: Loihi2Spec = LOIHI2,
             options: MappingOptions = MappingOptions()) -> LoihiCostModel:
    """Map ``cfg`` onto Loihi 2 and cost it (instruction counts: see :func:`resolve_instruction_counts`)."""
    return LoihiCostModel(build_mapping(cfg, hw, options), instructions)


# ------------------------------------------------------------------------------------------- report
def _split_overrides(overrides: Mapping[str, Any]):
    """Route keyword overrides to MappingOptions, Loihi2Spec or GpuSpec fields by name."""
    targets = {"options": {f.name for f in fields(MappingOptions)},
               "loihi2": {f.name for f in fields(Loihi2Spec)},
               "gpu": {f.name for f in fields(GpuSpec)}}
    out: dict[str, dict[str, Any]] = {k: {} for k in targets}
    for k, v in overrides.items():
        key = k
        where = [t for t, names in targets.items() if k in names]
        if k.startswith("gpu_") and k[4:] in targets["gpu"]:
            where, key = ["gpu"], k[4:]
        if not where:
            raise CostModelError(f"unknown override {k!r}: not a MappingOptions, Loihi2Spec or GpuSpec field")
        if len(where) > 1:
            raise CostModelError(f"override {k!r} is ambiguous ({where})")
        out[where[0]][key] = v
    return out


def _variants(cfg, instructions, hw, options, T) -> list[dict[str, Any]]:
    """What mapping choices (and the two most uncertain hardware assumptions) change: each variant re-mapped
    and re-costed at prompt length T."""
    specs = [
        ("baseline", {}, {}),
        ("no dual-RMSNorm fold (18 hops/layer)", {"fold_norms": False}, {}),
        ("all matrices dense", {"encoding": "dense"}, {}),
        ("all matrices sparse", {"encoding": "sparse"}, {}),
        ("packed (spare cores idle)", {"allocation": "packed"}, {}),
        ("128 cores per chip (brief)", {}, {"cores_per_chip": 128}),
        ("half the weights per core", {"max_synapses_per_core": -1}, {}),
        ("assumption: dense encoding walks zero weights", {}, {"dense_skips_zero_weights": False}),
        (f"assumption: {hw.hala_point_power_w / hw.hala_point_chips:.2f} W static per chip (Hala Point max)", {},
         {"static_power_per_chip_w": hw.hala_point_power_w / hw.hala_point_chips}),
    ]
    rows = []
    base_cm = None
    for label, o, h in specs:
        o = dict(o)
        if o.get("max_synapses_per_core") == -1:
            busiest = max(g.rows_per_neuron * g.d_in_per_core * g.neurons_per_core
                          for g in base_cm.mapping.groups if g.role == "synapses")
            o["max_synapses_per_core"] = busiest // 2
            label = f"max {o['max_synapses_per_core']} weights per core (half)"
        try:
            cm = LoihiCostModel(build_mapping(cfg, dataclasses.replace(hw, **h), dataclasses.replace(options, **o)),
                                instructions)
        except CostModelError as e:
            rows.append({"variant": label, "error": str(e)})
            continue
        if base_cm is None:
            base_cm = cm
        s = cm.summary(T)
        rows.append({"variant": label, "cores": s["cores"], "chips": s["chips"],
                     "memory_bytes": s["memory_bytes"], "hops_per_layer": s["hops_per_layer"],
                     "pipeline_depth": s["pipeline_depth"], "prefill_step_s": s["prefill_step_s"],
                     "ttft_s": s["ttft_s"], "decode_tokens_per_s": s["decode_tokens_per_s"],
                     "synops_per_token": s["synops_per_token"],
                     "prefill_energy_per_token_j": s["prefill_energy_per_token_j"],
                     "decode_energy_per_token_j": s["decode_energy_per_token_j"]})
    return rows


def build_report(config_name: str, prompt_lengths: Sequence[int] = DEFAULT_PROMPT_LENGTHS,
                 **overrides) -> dict[str, Any]:
    """Everything ``estimate_main`` prints and saves, as a JSON-ready dict.

    Overrides: ``instructions`` (mapping or file), ``hw_file`` (TOML with [loihi2]/[jetson]), ``anchor_tokens``,
    and any field of MappingOptions, Loihi2Spec or GpuSpec (GpuSpec fields may be prefixed ``gpu_``)."""
    from .gpu_baseline import TransformerShape, gpu_estimate

    overrides = dict(overrides)
    instructions, instr_source = resolve_instruction_counts(overrides.pop("instructions", None))
    if "instructions_source" in overrides:
        instr_source = overrides.pop("instructions_source")
    hw, gpu = load_hardware(overrides.pop("hw_file", None))
    T = int(overrides.pop("anchor_tokens", PAPER.prompt_tokens))
    parts = _split_overrides(overrides)
    hw = with_overrides(hw, parts["loihi2"], "overrides")
    gpu = with_overrides(gpu, parts["gpu"], "overrides")
    options = dataclasses.replace(MappingOptions(), **parts["options"])
    options.check()
    cfg = load_config(config_name).model

    cm = LoihiCostModel(build_mapping(cfg, hw, options), instructions)
    m = cm.mapping
    shape = TransformerShape.like(cfg, gpu)
    g = gpu_estimate(shape, T, gpu)
    s = cm.summary(T)
    lengths = sorted({int(t) for t in prompt_lengths} | {T})
    sweep = []
    for t in lengths:
        ge = gpu_estimate(shape, t, gpu)
        sweep.append({"prompt_tokens": t, "loihi_ttft_s": cm.ttft_s(t), "gpu_ttft_s": ge["ttft_s"],
                      "loihi_prefill_energy_per_token_j": cm.prefill_energy_j(t) / t,
                      "gpu_prefill_energy_per_token_j": ge["prefill_energy_per_token_j"],
                      "loihi_decode_energy_per_token_j": cm.decode_energy_per_token_j,
                      "gpu_decode_energy_per_token_j": ge["decode_energy_per_token_j"],
                      "loihi_decode_tokens_per_s": 1.0 / cm.decode_token_s,
                      "gpu_decode_tokens_per_s": ge["decode_tokens_per_s"]})
    comparison = {
        "prompt_tokens": T,
        "ttft_ratio_gpu_over_loihi": g["ttft_s"] / s["ttft_s"],
        "decode_throughput_ratio_loihi_over_gpu": s["decode_tokens_per_s"] / g["decode_tokens_per_s"],
        "prefill_throughput_ratio_loihi_over_gpu": s["prefill_tokens_per_s"] / g["prefill_tokens_per_s"],
        "decode_energy_ratio_gpu_over_loihi": g["decode_energy_per_token_j"] / s["decode_energy_per_token_j"],
        "prefill_energy_ratio_gpu_over_loihi": g["prefill_energy_per_token_j"] / s["prefill_energy_per_token_j"],
    }
    anchor = None
    if cfg.hidden_size == 1024 and cfg.num_layers == 24:
        anchor = {
            "paper_ttft_loihi_s": PAPER.ttft_loihi_s, "ours_ttft_loihi_s": cm.ttft_s(PAPER.prompt_tokens),
            "paper_ttft_jetson_s": PAPER.ttft_jetson_s,
            "ours_ttft_jetson_s": gpu_estimate(shape, PAPER.prompt_tokens, gpu)["ttft_s"],
            "tolerance": PAPER.tolerance,
        }
        anchor["loihi_rel_error"] = anchor["ours_ttft_loihi_s"] / PAPER.ttft_loihi_s - 1
        anchor["jetson_rel_error"] = anchor["ours_ttft_jetson_s"] / PAPER.ttft_jetson_s - 1
        anchor["within_tolerance"] = bool(abs(anchor["loihi_rel_error"]) <= PAPER.tolerance
                                          and abs(anchor["jetson_rel_error"]) <= PAPER.tolerance)
    layers = [{"layer": l, "rows": m.layer_table(l), "totals": m.layer_totals(l)}
              for l in range(-1, cfg.num_layers + 1)]
    return {
        "config": config_name,
        "model": dataclasses.asdict(cfg),
        "options": dataclasses.asdict(options),
        "instructions": instructions, "instructions_source": instr_source,
        "loihi": s,
        "per_hop_layer0": [_hop_row(c) for c in cm.hop_costs if c.layer in (-1, 0)],
        "per_hop_head": [_hop_row(c) for c in cm.hop_costs if c.layer == cfg.num_layers],
        "layers": layers,
        "matrices": m.matrix_table(),
        "gpu": {"spec": gpu.name, "dtype": gpu.dtype, "shape": shape.as_dict(), **g},
        "comparison": comparison,
        "paper_anchor": anchor,
        "sweep": sweep,
        "variants": _variants(cfg, instructions, hw, options, T),
        "derived_constants": {
            "synop_time_s": hw.synop_time_s, "hala_point_synop_time_s": hw.hala_point_synop_time_s,
            "synop_energy_j": hw.synop_energy_j, "instruction_time_s": hw.instruction_time_s,
            "instruction_energy_j": hw.instruction_energy_j, "spike_out_energy_j": hw.spike_out_energy_j,
            "hop_energy_j": hw.hop_energy_j, "energy_scale_loihi1_to_2": hw.energy_scale,
            "sparse_bits_per_nonzero": hw.sparse_bits_per_nonzero,
            "gaussian_zero_fraction": GAUSSIAN_ZERO_FRACTION, "gpu_peak_flops": gpu.peak_flops,
        },
        "constants": provenance(hw) + provenance(gpu) + provenance(PAPER),
    }


def _hop_row(c: HopCost) -> dict[str, Any]:
    return {"hop": c.index, "layer": c.layer, "name": c.name, "kind": c.kind, "synops": c.synops,
            "messages": c.messages, "instructions": c.instructions, "latency_s": c.latency_s,
            "energy_j": c.energy_total_j}


# ------------------------------------------------------------------------------------------- printing
def _fmt_bytes(b: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if b < 1024 or unit == "GB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return f"{b:.1f} GB"  # pragma: no cover


def _fmt_t(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.1f} us"


def _fmt_e(j: float) -> str:
    if j >= 1:
        return f"{j:.2f} J"
    if j >= 1e-3:
        return f"{j * 1e3:.1f} mJ"
    return f"{j * 1e6:.1f} uJ"


def format_report(r: dict[str, Any]) -> str:
    lines = []
    mc = r["model"]
    lines.append(f"== Loihi 2 mapping: {r['config']} (L={mc['num_layers']}, d={mc['hidden_size']}, "
                 f"I={mc['intermediate_size']}, V={mc['vocab_size']}); fold={r['options']['fold_norms']}, "
                 f"encoding={r['options']['encoding']}, allocation={r['options']['allocation']}, "
                 f"zero fraction {r['options']['zero_fraction']:.3f}")
    lines.append(f"{'group':<14}{'content':<58}{'neurons':>8}{'synapses':>11}{'enc':>7}{'cores':>6}"
                 f"{'memory':>11}")
    shown = [-1, 0, mc["num_layers"]]
    for lay in r["layers"]:
        if lay["layer"] not in shown:
            continue
        for row in lay["rows"]:
            lines.append(f"{row['group']:<14}{row['description'][:57]:<58}{row['neurons']:>8}"
                         f"{row['synapses']:>11}{row['encoding']:>7}{row['cores']:>6}"
                         f"{_fmt_bytes(row['memory_bytes']):>11}")
        t = lay["totals"]
        lines.append(f"{'':<14}{'layer total' if 0 <= lay['layer'] < mc['num_layers'] else 'total':<58}"
                     f"{t['neurons']:>8}{t['synapses']:>11}{'':>7}{t['cores']:>6}{_fmt_bytes(t['memory_bytes']):>11}")
    if mc["num_layers"] > 1:
        lines.append(f"(layers 1..{mc['num_layers'] - 1} as layer 0)")
    s = r["loihi"]
    cpc = next(c["value"] for c in r["constants"] if c["name"] == "Loihi2Spec.cores_per_chip")
    lines.append(f"totals: {s['cores']} cores ({s['min_cores']} needed, the rest of the last chip spread over the "
                 f"busiest groups) on {s['chips']} chips ({cpc} cores/chip), "
                 f"{_fmt_bytes(s['memory_bytes'])} on chip; {s['hops_per_layer']} hops/layer, pipeline depth "
                 f"{s['pipeline_depth']} hops")
    reasons = sorted({mm["reason"] for mm in r["matrices"]})
    for why in reasons[:4]:
        lines.append(f"  encoding: {why}")
    lines.append(f"per token: {s['synops_per_token']:.3g} synops ({s['nonzero_synops_per_token']:.3g} non-zero), "
                 f"{s['instructions_per_token']:.3g} microcode instructions, {s['messages_per_token']:.3g} messages, "
                 f"{s['mesh_hops_per_token']:.3g} mesh hops, {s['chip_crossings_per_token']:.3g} chip crossings "
                 f"(instructions: {r['instructions_source']})")
    g = r["gpu"]
    c = r["comparison"]
    T = c["prompt_tokens"]
    lines.append("")
    lines.append(f"== Loihi 2 vs {g['spec']} ({g['dtype']}, Llama-style {g['shape']['params'] / 1e6:.0f}M), "
                 f"batch 1, {T}-token prompt")
    lines.append(f"{'':<34}{'Loihi 2':>14}{'Jetson':>14}{'ratio':>10}")
    rows = [
        ("time to first token", _fmt_t(s["ttft_s"]), _fmt_t(g["ttft_s"]), c["ttft_ratio_gpu_over_loihi"]),
        ("prefill throughput (tokens/s)", f"{s['prefill_tokens_per_s']:.0f}", f"{g['prefill_tokens_per_s']:.0f}",
         c["prefill_throughput_ratio_loihi_over_gpu"]),
        ("decode throughput (tokens/s)", f"{s['decode_tokens_per_s']:.1f}", f"{g['decode_tokens_per_s']:.1f}",
         c["decode_throughput_ratio_loihi_over_gpu"]),
        ("prefill energy / token", _fmt_e(s["prefill_energy_per_token_j"]), _fmt_e(g["prefill_energy_per_token_j"]),
         c["prefill_energy_ratio_gpu_over_loihi"]),
        ("decode energy / token", _fmt_e(s["decode_energy_per_token_j"]), _fmt_e(g["decode_energy_per_token_j"]),
         c["decode_energy_ratio_gpu_over_loihi"]),
    ]
    for name, a, b, ratio in rows:
        lines.append(f"{name:<34}{a:>14}{b:>14}{ratio:>9.2f}x")
    if not g["fits_in_memory"]:
        lines.append(f"NOTE: the {g['dtype']} weights ({_fmt_bytes(g['weights_bytes'])}) do not fit in the Jetson's "
                     f"memory: its figures are what the roofline gives if they did (use gpu_dtype='fp16')")
    lines.append(f"(Loihi: step {_fmt_t(s['prefill_step_s'])} incl. barrier {_fmt_t(s['barrier_s'])}, "
                 f"{s['ttft_steps']} steps to the first token; static {s['static_power_w']:.1f} W. Ratios: "
                 "Jetson/Loihi for time and energy, Loihi/Jetson for throughput)")
    a = r.get("paper_anchor")
    if a:
        lines.append(f"paper anchor (370M, {PAPER.prompt_tokens} tokens): Loihi TTFT {_fmt_t(a['ours_ttft_loihi_s'])} vs "
                     f"{_fmt_t(a['paper_ttft_loihi_s'])} ({100 * a['loihi_rel_error']:+.0f}%), Jetson "
                     f"{_fmt_t(a['ours_ttft_jetson_s'])} vs {_fmt_t(a['paper_ttft_jetson_s'])} "
                     f"({100 * a['jetson_rel_error']:+.0f}%): "
                     f"{'within' if a['within_tolerance'] else 'OUTSIDE'} +/-{100 * a['tolerance']:.0f}%")
    lines.append("")
    lines.append(f"== What the mapping choices change ({T}-token prompt)")
    lines.append(f"{'variant':<54}{'cores':>6}{'chips':>6}{'hops/L':>7}{'step':>10}{'TTFT':>10}{'dec tok/s':>10}"
                 f"{'synops/tok':>12}{'E dec/tok':>11}")
    for v in r["variants"]:
        if "error" in v:
            lines.append(f"{v['variant']:<54}  does not map: {v['error']}")
            continue
        lines.append(f"{v['variant'][:53]:<54}{v['cores']:>6}{v['chips']:>6}{v['hops_per_layer']:>7}"
                     f"{_fmt_t(v['prefill_step_s']):>10}{_fmt_t(v['ttft_s']):>10}{v['decode_tokens_per_s']:>10.1f}"
                     f"{v['synops_per_token']:>12.3g}{_fmt_e(v['decode_energy_per_token_j']):>11}")
    return "\n".join(lines)


def estimate_main(config_name: str, out_dir: Path, prompt_lengths: Sequence[int] = DEFAULT_PROMPT_LENGTHS,
                  **overrides) -> dict[str, Any]:
    """Map and cost ``config_name`` on Loihi 2 and the Jetson baseline: print the tables, write
    ``<out_dir>/cost_<name>.json`` and the plots ``ttft_<name>.png`` and ``energy_<name>.png``; return the report.

    ``overrides``: see :func:`build_report` (``instructions=`` is required unless the microcode package
    provides ``instruction_counts()``)."""
    from .cost_plots import plot_energy, plot_ttft

    report = build_report(config_name, prompt_lengths, **overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(config_name).stem if str(config_name).endswith(".toml") else str(config_name)
    report["files"] = {"json": str(out / f"cost_{name}.json"), "ttft_png": str(out / f"ttft_{name}.png"),
                       "energy_png": str(out / f"energy_{name}.png")}
    plot_ttft(report, report["files"]["ttft_png"])
    plot_energy(report, report["files"]["energy_png"])
    Path(report["files"]["json"]).write_text(json.dumps(report, indent=1, default=_json_default))
    print(format_report(report))
    print(f"\nwrote {report['files']['json']}, {report['files']['ttft_png']}, {report['files']['energy_png']}")
    return report


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))
