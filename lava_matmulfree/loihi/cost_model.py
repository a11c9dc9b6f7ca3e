"""Loihi 2 cost model of the mapped graph: work per time step, latency, throughput, energy (docs/cost_model.md).

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

Comparison with the paper (Abreu et al. 2025, arXiv:2503.18002): :mod:`.calibration` fits three constants
on the paper preset's anchors and reports every cell of the paper's table as fitted or predicted;
docs/cost_model.md explains each term and the README shows the table.

Multi-chip terms: the barrier grows by ``board_sync_s`` per level of the tree across boards; messages that
cross a chip boundary in a hop serialise on that link (a resource next to the cores); the host link carries the
injected embedding and, once per generated token, the output (logits or the last residual) plus a round trip;
every chip of the system (``MappingOptions.system_chips``) draws static power for the time a token occupies.
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

from lava_matmulfree.config import ModelConfig, load_config
from lava_matmulfree.loihi.gpu_baseline import gpu_estimate
from lava_matmulfree.loihi.hardware import (GAUSSIAN_ZERO_FRACTION, LOIHI2, CostModelError, GpuSpec, Loihi2Spec, load_hardware, short_name,
                       provenance, with_overrides)
from lava_matmulfree.loihi.mapping import BITS_PER_BYTE, HOST, NEURON_KINDS, LoihiMapping, MappingOptions, build_mapping

DEFAULT_PROMPT_LENGTHS = (16, 64, 256, 500, 1024, 2048, 4096, 8192, 16384)


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


def value_bytes(act_bits: int) -> int:
    """Bytes one activation of ``act_bits`` bits takes on the host link (the paper's A16: 2)."""
    return math.ceil(act_bits / BITS_PER_BYTE)


def spike_messages(act_bits: int, hw: Loihi2Spec) -> int:
    """Messages one graded spike of ``act_bits`` bits takes (one up to the payload width)."""
    return math.ceil(act_bits / hw.graded_payload_bits)


def _distances(coords: np.ndarray, a: range | None, b: range, mesh_width: int
               ) -> tuple[float, float, float, float]:
    """(mean mesh hops, max mesh hops, mean chip crossings, max chip crossings) between the cores of a and b;
    ``a=None`` is the host, reaching each chip at its mesh corner over the host link (no chip link crossed)."""
    cb = coords[b.start:b.stop]
    if a is None:
        dx = (cb[:, 1] - cb[:, 0] * mesh_width) + cb[:, 2]
        return float(dx.mean()), float(dx.max()), 0.0, 0.0
    ca = coords[a.start:a.stop]
    dx = np.abs(ca[:, None, 1] - cb[None, :, 1]) + np.abs(ca[:, None, 2] - cb[None, :, 2])
    dc = np.abs(ca[:, None, 0] - cb[None, :, 0])
    return float(dx.mean()), float(dx.max()), float(dc.mean()), float(dc.max())


def _boundary_loads(coords: np.ndarray, a: range, b: range, chips: int, messages: float) -> np.ndarray:
    """Messages crossing each of the chips - 1 chip boundaries (chips in a row) when ``messages`` go from the
    cores of a to the cores of b, spread evenly over the source and destination cores."""
    if chips <= 1:
        return np.zeros(0)
    ps = np.bincount(coords[a.start:a.stop, 0], minlength=chips) / len(a)
    pd = np.bincount(coords[b.start:b.stop, 0], minlength=chips) / len(b)
    cs, cd = np.cumsum(ps)[:-1], np.cumsum(pd)[:-1]
    return messages * (cs * (1 - cd) + (1 - cs) * cd)


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
        # seconds per link, [chip boundary..., host link], hop: messages serialise on the link they cross
        self.link_work = np.zeros((max(0, mapping.chips - 1) + 1, len(mapping.hops)))
        self.readout_s = 0.0  # host link time of one token's output (logits, or the last residual)
        self.hop_costs = [self._hop(h) for h in mapping.hops]
        self.barrier_s = self.hw.barrier_s(mapping.chips)

    @property
    def resource_work(self) -> np.ndarray:
        """Seconds of work per resource (the busiest core of each group, each chip link, the host link) per
        hop: a step lasts as long as its busiest resource, plus the barrier."""
        return np.vstack([self.work, self.link_work])

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
            messages = h.n_src * density * dst_cores_reached * spike_messages(opts.act_bits, hw)
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

        host_s = value_bytes(opts.act_bits) / hw.host_link_bytes_per_s  # one value over the host link
        if h.kind == "inject":
            self.link_work[-1, hi] += h.n_dst * host_s
        elif self.mapping.chips > 1:
            self.link_work[:-1, hi] += hw.chip_link_message_s * _boundary_loads(
                self.coords, self._range(h.src), self._range(h.dst), self.mapping.chips, messages)
        mean_h, max_h, mean_c, max_c = _distances(self.coords, self._range(h.src), self._range(h.dst),
                                                  hw.mesh_width)
        energy_msg = hw.spike_out_energy_j if h.kind != "inject" else 0.0
        e_messages = messages * (energy_msg + mean_h * hw.hop_energy_j + mean_c * hw.chip_link_energy_per_message_j)
        mesh = messages * mean_h
        cross = messages * mean_c
        transit = max_h * hw.hop_time_s + max_c * hw.chip_link_latency_s
        if h.readout:
            # logits leave the chip for the host's sink
            r_mean_h, r_max_h, r_mean_c, r_max_c = _distances(self.coords, None, self._range(h.dst), hw.mesh_width)
            # only the last prompt token's and each generated token's output is read: not a per-step cost
            self.readout_s += h.readout * host_s
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
        latency = float(max(self.work[:, hi].max(), self.link_work[:, hi].max()))
        return HopCost(hi, h.name, h.layer, h.kind, synops, nz, messages, mesh, cross, updates, instr, energy,
                       latency)

    # ---- time
    @property
    def pipeline_depth(self) -> int:
        return len(self.mapping.hops)

    @property
    def prefill_step_s(self) -> float:
        """Time step with the pipeline full: the busiest core does the work of all its hops, then the barrier."""
        return float(self.resource_work.sum(axis=1).max()) + self.barrier_s

    def step_times(self, prompt_tokens: int) -> np.ndarray:
        """Duration of each of the T + D - 1 steps of a prefill of T tokens (pipeline fill and drain included)."""
        T, D = int(prompt_tokens), self.pipeline_depth
        if T < 1:
            raise CostModelError(f"prompt length must be >= 1, got {T}")
        w = self.resource_work
        P = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(w, axis=1)], axis=1)
        k = np.arange(T + D - 1)
        a = np.maximum(0, k - T + 1)
        b = np.minimum(k, D - 1)
        return (P[:, b + 1] - P[:, a]).max(axis=0) + self.barrier_s

    def ttft_s(self, prompt_tokens: int) -> float:
        """Time to first token: the last prompt token leaves the head after T + D - 1 steps; then its output
        crosses the host link and the host answers (one round trip, as for every generated token)."""
        T, D = int(prompt_tokens), self.pipeline_depth
        host = self.readout_s + self.hw.host_round_trip_s
        if T <= 2 * D:
            return float(self.step_times(T).sum()) + host
        # long prompts: the middle steps all have the full pipeline; sum ramp-up + full + ramp-down exactly
        ramp = self.step_times(2 * D)
        full = self.prefill_step_s
        return float(ramp.sum() + (T - 2 * D) * full) + host

    @property
    def decode_token_s(self) -> float:
        """One generated token: its D hops in sequence (each as long as that hop's busiest resource, plus the
        barrier) and the host's round trip."""
        return float(sum(c.latency_s for c in self.hop_costs) + self.pipeline_depth * self.barrier_s
                     + self.readout_s + self.hw.host_round_trip_s)

    # ---- energy
    @property
    def static_power_w(self) -> float:
        """Every chip of the system draws it, busy or not."""
        return self.mapping.system_chips * self.hw.static_power_per_chip_w

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
GPU_PLATFORMS = {"jetson": "Jetson Orin Nano 8 GB", "h100": "H100 SXM"}


def _split_overrides(overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Route ``NAME=VALUE`` overrides to MappingOptions, Loihi2Spec or a GPU by field name; ``loihi2.NAME``,
    ``jetson.NAME``, ``h100.NAME`` and ``options.NAME`` say where explicitly (GPU fields need it)."""
    targets = {"options": {f.name for f in fields(MappingOptions)},
               "loihi2": {f.name for f in fields(Loihi2Spec)},
               "jetson": {f.name for f in fields(GpuSpec)}, "h100": {f.name for f in fields(GpuSpec)}}
    out: dict[str, dict[str, Any]] = {k: {} for k in targets}
    for k, v in overrides.items():
        section, _, name = k.rpartition(".")
        if section:
            if section not in targets or name not in targets[section]:
                raise CostModelError(f"unknown override {k!r}: no field {name!r} in {section!r} "
                                     f"(sections: {', '.join(targets)})")
            out[section][name] = v
            continue
        where = [t for t in ("options", "loihi2") if k in targets[t]]
        if not where:
            hint = " (GPU fields need jetson.NAME or h100.NAME)" if k in targets["jetson"] else ""
            raise CostModelError(f"unknown override {k!r}: not a MappingOptions or Loihi2Spec field{hint}")
        out[where[0]][k] = v
    return out


def loihi_platform(cm: LoihiCostModel, T: int) -> dict[str, Any]:
    """The per-platform figures of the JSON report (steady-state prefill: flat in T, as the paper measured)."""
    return {"ttft_s": cm.ttft_s(T), "prefill_tokens_per_s": 1.0 / cm.prefill_step_s,
            "decode_tokens_per_s": 1.0 / cm.decode_token_s,
            "prefill_mj_per_token": 1e3 * (cm.dynamic_energy_per_token_j + cm.static_power_w * cm.prefill_step_s),
            "decode_mj_per_token": 1e3 * cm.decode_energy_per_token_j,
            "chips": cm.mapping.chips, "system_chips": cm.mapping.system_chips, "cores": cm.mapping.cores,
            "boards": cm.hw.boards(cm.mapping.chips), "barrier_s": cm.barrier_s,
            "pipeline_depth": cm.pipeline_depth, "static_power_w": cm.static_power_w,
            "dynamic_mj_per_token": 1e3 * cm.dynamic_energy_per_token_j}


def gpu_platform(shape, T: int, gpu: GpuSpec) -> dict[str, Any]:
    e = gpu_estimate(shape, T, gpu)
    return {"ttft_s": e["ttft_s"], "prefill_tokens_per_s": e["prefill_tokens_per_s"],
            "decode_tokens_per_s": e["decode_tokens_per_s"],
            "prefill_mj_per_token": 1e3 * e["prefill_energy_per_token_j"],
            "decode_mj_per_token": 1e3 * e["decode_energy_per_token_j"], "chips": None,
            "gpu": gpu.name, "model": shape.name, "params": shape.params, "dtype": gpu.dtype,
            "power_w": gpu.power_w, "fits_in_memory": e["fits_in_memory"], "peak_bytes": e["peak_bytes"],
            "prefill_bound": e["prefill_bound"],
            "decode_bound": e["decode_bound"]}


def build_report(config_name: str, prompt_lengths: Sequence[int] = DEFAULT_PROMPT_LENGTHS, preset: str = "paper",
                 **overrides) -> dict[str, Any]:
    """Everything ``estimate_main`` prints and saves, as a JSON-ready dict.

    The three fitted constants are fitted on the paper preset (:mod:`.calibration`), with the overrides applied
    to everything else; an override of a fitted constant keeps it as given. Then ``preset`` is predicted.
    Overrides: ``instructions`` (mapping or file), ``hw_file`` (TOML with [loihi2]/[jetson]/[h100]),
    ``anchor_tokens``, and any field of MappingOptions, Loihi2Spec (plain or ``loihi2.NAME``) or a GPU
    (``jetson.NAME``, ``h100.NAME``)."""
    from lava_matmulfree.loihi.calibration import PAPER, PRESETS, VARIANTS, anchor_table, apply, calibrate, loihi_model, resolve_options
    from lava_matmulfree.loihi.gpu_baseline import BASELINES, baselines_for

    overrides = dict(overrides)
    instructions, instr_source = resolve_instruction_counts(overrides.pop("instructions", None))
    if "instructions_source" in overrides:
        instr_source = overrides.pop("instructions_source")
    specs = load_hardware(overrides.pop("hw_file", None))
    T = int(overrides.pop("anchor_tokens", PAPER.prompt_tokens))
    parts = _split_overrides(overrides)
    hw = with_overrides(specs["loihi2"], parts["loihi2"], "overrides")
    gpus = {k: with_overrides(specs[k], parts[k], "overrides") for k in GPU_PLATFORMS}
    if preset not in PRESETS:
        raise CostModelError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    cfg = load_config(config_name).model
    is_paper_model = cfg.hidden_size == 1024 and cfg.num_layers == 24 and cfg.vocab_size == 32000

    # 1. calibration: on the paper preset of the 370M model (the anchors are its figures)
    fixed = set(parts["loihi2"]) | {f"jetson.{k}" for k in parts["jetson"]}
    cal_cfg = cfg if is_paper_model else load_config("370m").model
    hw, gpus["jetson"], fitted = calibrate(cal_cfg, hw, gpus["jetson"], instructions, fixed)

    def model(change, cfg_=cfg):
        h, o = apply(hw, MappingOptions(), change)
        h = with_overrides(h, parts["loihi2"], "overrides")
        o = dataclasses.replace(o, **parts["options"])
        return loihi_model(cfg_, h, o, instructions)

    # 2. the anchors: the paper preset's predictions next to the paper's figures
    paper_cm = model(PRESETS["paper"], cal_cfg)
    gpu_at_anchor = {f"{g}/{k}": gpu_platform(shape, PAPER.prompt_tokens, gpus[g])
                     for g in GPU_PLATFORMS for k, shape in BASELINES.items()}
    fitted_on = {a for r in fitted for a in r["anchors"]}
    if any(r["constant"] == "jetson.prefill_efficiency" for r in fitted):
        # the Llama baseline's prefill rate and energy follow from its fitted TTFT (T / TTFT, power x TTFT / T)
        name = short_name(BASELINES["llama370m"].name)
        fitted_on |= {f"Jetson prefill tokens/s ({name})", f"Jetson prefill mJ/token ({name})"}
    anchors = anchor_table(loihi_platform(paper_cm, PAPER.prompt_tokens), gpu_at_anchor, fitted_on)

    # 3. the chosen preset
    cm = model(PRESETS[preset])
    m = cm.mapping
    platforms = {"loihi2": loihi_platform(cm, T)}
    compared = baselines_for(cfg)
    for g in GPU_PLATFORMS:
        for k, shape in compared.items():
            platforms[f"{g}/{k}"] = gpu_platform(shape, T, gpus[g])
    lengths = sorted({int(t) for t in prompt_lengths} | {T})
    sweep = []
    for t in lengths:
        row = {"prompt_tokens": t, "loihi2": {"ttft_s": cm.ttft_s(t),
                                              "prefill_mj_per_token": 1e3 * cm.prefill_energy_j(t) / t,
                                              "decode_mj_per_token": 1e3 * cm.decode_energy_per_token_j,
                                              "decode_tokens_per_s": 1.0 / cm.decode_token_s}}
        for g in GPU_PLATFORMS:
            for k, shape in compared.items():
                p = gpu_platform(shape, t, gpus[g])
                row[f"{g}/{k}"] = {q: p[q] for q in ("ttft_s", "prefill_mj_per_token", "decode_mj_per_token",
                                                     "decode_tokens_per_s", "fits_in_memory")}
        sweep.append(row)
    variants = []
    for label, change, why in VARIANTS:
        merged = {"loihi2": {**PRESETS["paper"]["loihi2"], **change.get("loihi2", {})},
                  "options": {**PRESETS["paper"]["options"], **change.get("options", {})}}
        try:
            v = model(merged)
        except CostModelError as e:
            variants.append({"variant": label, "error": str(e), "reason": why})
            continue
        variants.append({"variant": label, "reason": why, **loihi_platform(v, T),
                         "by_length": [{"prompt_tokens": t, "ttft_s": v.ttft_s(t),
                                        "decode_mj_per_token": 1e3 * v.decode_energy_per_token_j}
                                       for t in lengths]})
    layers = [{"layer": l, "rows": m.layer_table(l), "totals": m.layer_totals(l)}
              for l in range(-1, cfg.num_layers + 1)]
    from lava_matmulfree.loihi.hardware import H100_NOTES

    return {
        "config": config_name, "preset": preset, "preset_description": PRESETS[preset]["description"],
        "prompt_tokens": T,
        "model": dataclasses.asdict(cfg),
        "options": dataclasses.asdict(resolve_options(m.options, m.hw, cfg)),
        "instructions": instructions, "instructions_source": instr_source,
        "platforms": platforms,
        "calibration": {"fitted": fitted, "anchors": anchors, "tolerance": PAPER.tolerance,
                        "calibrated_on": cal_cfg.name},
        "loihi": {**cm.summary(T), "dense_weight_bits": m.hw.dense_weight_bits},
        "per_hop_layer0": [_hop_row(c) for c in cm.hop_costs if c.layer in (-1, 0)],
        "per_hop_head": [_hop_row(c) for c in cm.hop_costs if c.layer == cfg.num_layers],
        "layers": layers,
        "matrices": m.matrix_table(),
        "sweep": sweep,
        "variants": variants,
        "derived_constants": {
            "synop_time_s": hw.synop_time_s, "hala_point_synop_time_s": hw.hala_point_synop_time_s,
            "synop_energy_j": hw.synop_energy_j, "instruction_time_s": hw.instruction_time_s,
            "instruction_energy_j": hw.instruction_energy_j, "spike_out_energy_j": hw.spike_out_energy_j,
            "hop_energy_j": hw.hop_energy_j, "energy_scale_loihi1_to_2": hw.energy_scale,
            "sparse_bits_per_nonzero": hw.sparse_bits_per_nonzero,
            "gaussian_zero_fraction": GAUSSIAN_ZERO_FRACTION,
        },
        "constants": (provenance(hw, "loihi2") + provenance(gpus["jetson"], "jetson")
                      + provenance(gpus["h100"], "h100", H100_NOTES) + provenance(PAPER, "paper")),
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


def _fmt_paper(v, unit: str) -> str:
    def one(x):
        return _fmt_t(x) if unit == "s" else f"{x:,.1f}" if x < 100 else f"{x:,.0f}"
    return f"{one(v[0])}-{one(v[1])}" if isinstance(v, tuple) else one(v)


def format_report(r: dict[str, Any]) -> str:
    lines = []
    mc = r["model"]
    o = r["options"]
    lines.append(f"== Loihi 2 mapping: {r['config']} (L={mc['num_layers']}, d={mc['hidden_size']}, "
                 f"I={mc['intermediate_size']}, V={mc['vocab_size']}), preset '{r['preset']}': "
                 f"{r['preset_description']}")
    lines.append(f"   {r['loihi']['dense_weight_bits']}-bit dense weights, encoding={o['encoding']}, "
                 f"cores_per_block={o['cores_per_block'] or 'packed'}, head_on_chip={o['head_on_chip']}, "
                 f"fold={o['fold_norms']}, zero fraction {o['zero_fraction']:.3f}")
    lines.append(f"{'group':<14}{'content':<58}{'neurons':>8}{'synapses':>11}{'enc':>7}{'cores':>6}"
                 f"{'memory':>11}")
    for lay in r["layers"]:
        if lay["layer"] not in (-1, 0, mc["num_layers"]) or not lay["rows"]:
            continue
        for row in lay["rows"]:
            lines.append(f"{row['group']:<14}{row['description'][:57]:<58}{row['neurons']:>8}"
                         f"{row['synapses']:>11}{row['encoding']:>7}{row['cores']:>6}"
                         f"{_fmt_bytes(row['memory_bytes']):>11}")
    if mc["num_layers"] > 1:
        lines.append(f"(layers 1..{mc['num_layers'] - 1} as layer 0)")
    s = r["loihi"]
    lp = r["platforms"]["loihi2"]
    lines.append(f"totals: {s['cores']} cores on {lp['chips']} chips ({lp['boards']} board(s)) of a "
                 f"{lp['system_chips']}-chip system, {_fmt_bytes(s['memory_bytes'])} on chip; {s['hops_per_layer']} "
                 f"hops/layer, pipeline depth {s['pipeline_depth']}; barrier {_fmt_t(lp['barrier_s'])} per step; "
                 f"static {lp['static_power_w']:.1f} W")
    for why in sorted({mm["reason"] for mm in r["matrices"]})[:3]:
        lines.append(f"  encoding: {why}")
    lines.append("")
    T = r["prompt_tokens"]
    lines.append(f"== Platforms, batch 1, {T}-token prompt (prefill figures steady-state on Loihi 2)")
    lines.append(f"{'platform':<52}{'chips':>6}{'TTFT':>10}{'prefill tok/s':>15}{'gen tok/s':>11}"
                 f"{'prefill mJ/tok':>16}{'gen mJ/tok':>12}")
    for name, p in r["platforms"].items():
        label = "Loihi 2" if name == "loihi2" else f"{short_name(p['gpu'])}, {short_name(p['model'])} ({p['dtype']})"
        lines.append(f"{label:<52}{p['chips'] if p['chips'] else '-':>6}{_fmt_t(p['ttft_s']):>10}"
                     f"{p['prefill_tokens_per_s']:>15,.0f}{p['decode_tokens_per_s']:>11.1f}"
                     f"{p['prefill_mj_per_token']:>16.2f}{p['decode_mj_per_token']:>12.1f}")
    cal = r["calibration"]
    lines.append("")
    lines.append(f"== Calibration (paper preset, {cal['calibrated_on']}): fitted constants")
    for f in cal["fitted"]:
        lines.append(f"  {f['constant']} = {f['value']:.4g} {f['unit']}   fitted on: {', '.join(f['anchors'])}")
    lines.append(f"{'anchor':<70}{'paper':>14}{'model':>12}{'error':>9}  status")
    for a in cal["anchors"]:
        model = _fmt_t(a["model"]) if a["unit"] == "s" else _fmt_paper(a["model"], a["unit"])
        lines.append(f"{a['anchor'][:69]:<70}{_fmt_paper(a['paper'], a['unit']):>14}{model:>12}"
                     f"{100 * a['error']:>+8.0f}%  {a['status']}")
    lines.append("(error: model/paper - 1; for a range, 0 inside it, else the distance to the nearest bound)")
    lines.append("")
    lines.append(f"== Beyond the paper: variants of the paper deployment, same constants ({T}-token prompt)")
    lines.append(f"{'variant':<48}{'chips':>6}{'TTFT':>10}{'prefill tok/s':>15}{'gen tok/s':>11}"
                 f"{'prefill mJ':>12}{'gen mJ':>9}")
    for v in r["variants"]:
        if "error" in v:
            lines.append(f"{v['variant']:<48}  does not map: {v['error']}")
            continue
        lines.append(f"{v['variant'][:47]:<48}{v['chips']:>6}{_fmt_t(v['ttft_s']):>10}"
                     f"{v['prefill_tokens_per_s']:>15,.0f}{v['decode_tokens_per_s']:>11.1f}"
                     f"{v['prefill_mj_per_token']:>12.2f}{v['decode_mj_per_token']:>9.1f}")
    return "\n".join(lines)


def estimate_main(config_name: str, out_dir: Path | None = None,
                  prompt_lengths: Sequence[int] = DEFAULT_PROMPT_LENGTHS, preset: str = "paper",
                  json_path: Path | None = None, plots: bool = True, **overrides) -> dict[str, Any]:
    """Map and cost ``config_name`` on Loihi 2 and the GPU baselines: print the tables; write the JSON report
    (``json_path``, else ``<out_dir>/cost_<name>_<preset>.json``) and, with ``out_dir``, the plots
    ``ttft_<name>_<preset>.png`` and ``energy_<name>_<preset>.png``; return the report. The files are written
    only once everything is computed (nothing partial on an error).

    ``overrides``: see :func:`build_report`."""
    report = build_report(config_name, prompt_lengths, preset=preset, **overrides)
    name = Path(config_name).stem if str(config_name).endswith(".toml") else str(config_name)
    files = {}
    if out_dir is not None:
        out = Path(out_dir)
        files = {"json": str(out / f"cost_{name}_{preset}.json"),
                 "ttft_png": str(out / f"ttft_{name}_{preset}.png"),
                 "energy_png": str(out / f"energy_{name}_{preset}.png")}
    if json_path is not None:
        files["json"] = str(json_path)
    report["files"] = files
    text = json.dumps(report, indent=1, default=_json_default)
    if out_dir is not None and plots:
        from lava_matmulfree.loihi.cost_plots import plot_energy, plot_ttft

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        plot_ttft(report, files["ttft_png"])
        plot_energy(report, files["energy_png"])
    if "json" in files:
        Path(files["json"]).parent.mkdir(parents=True, exist_ok=True)
        Path(files["json"]).write_text(text)
    print(format_report(report))
    if files:
        print(f"\nwrote {', '.join(files.values())}")
    return report


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))
