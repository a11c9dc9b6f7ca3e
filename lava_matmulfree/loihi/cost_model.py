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
on the paper preset's anchors and :mod:`.report` sets every cell of the paper's table beside the model's, as
fitted or predicted; docs/cost_model.md explains each term and the README shows the table.

Multi-chip terms: the barrier grows by ``board_sync_s`` per level of the tree across boards; messages that
cross a chip boundary in a hop serialise on that link (a resource next to the cores); the host link carries the
injected embedding and, once per generated token, the output (logits or the last residual) plus a round trip;
every chip of the system (``MappingOptions.system_chips``) draws static power for the time a token occupies.
"""
from __future__ import annotations

import importlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from lava_matmulfree.config import ModelConfig
from lava_matmulfree.loihi.activity import resolve_activity
from lava_matmulfree.loihi.core_groups import BITS_PER_BYTE, HOST, NEURON_KINDS, LoihiMapping, MappingOptions
from lava_matmulfree.loihi.hardware import LOIHI2, CostModelError, Loihi2Spec
from lava_matmulfree.loihi.mapping import build_mapping


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
        # traffic (docs/activity.md): messages sent / received by the busiest core of each group, [group, hop],
        # and messages over each chip boundary, [boundary, hop] (the host link's are the inject and readout)
        self.sent = np.zeros_like(self.work)
        self.received = np.zeros_like(self.work)
        self.link_messages = np.zeros((max(0, mapping.chips - 1), len(mapping.hops)))
        self.activity = resolve_activity(mapping.options.activity)
        self.hop_costs = [self._hop(h) for h in mapping.hops]
        self.barrier_s = self.hw.barrier_s(mapping.chips)

    @property
    def resource_work(self) -> np.ndarray:
        """Seconds of work per resource (the busiest core of each group, each chip link, the host link) per
        hop: a step lasts as long as its busiest resource, plus the barrier."""
        return np.vstack([self.work, self.link_work])

    # ---- one hop
    def density(self, matrix: str, layer: int) -> float:
        """Fraction of a ternary connection's input messages that are non-zero graded spikes: the profile's
        measured density (per layer where it has the model's layers; docs/activity.md), else the scalar
        ``MappingOptions.activation_density`` (the dense assumption: 1.0)."""
        if self.activity is None:
            return self.mapping.options.activation_density
        return self.activity.density(matrix, layer, self.mapping.cfg.num_layers)

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
        updates: dict[str, float] = {}

        def upd(kind, n):
            updates[kind] = updates.get(kind, 0.0) + n

        def add_work(g, seconds):
            self.work[self.gindex[g.name], hi] += seconds

        def traffic(g, sent=0.0, received=0.0):
            self.sent[self.gindex[g.name], hi] += sent
            self.received[self.gindex[g.name], hi] += received

        dst_per_core = dst.neurons_per_core
        if h.kind == "synaptic":
            mats = dst.matrices
            # each matrix's measured input density (docs/activity.md); i, f, g share one input: a source
            # neuron sends when its spike is non-zero for any of them
            dens = [self.density(m.name, h.layer) for m in mats]
            density = max(dens)
            synops = sum(d * m.processed_per_input(hw) for d, m in zip(dens, mats))
            nz = sum(d * m.nonzeros for d, m in zip(dens, mats))
            dst_cores_reached = dst.cores // dst.fan_in_splits
            spm = spike_messages(opts.act_bits, hw)
            messages = h.n_src * density * dst_cores_reached * spm
            upd("requant", h.n_src)
            src_pc = src.neurons_per_core
            add_work(src, src_pc * (ins["requant"] * hw.instruction_time_s
                                    + density * dst_cores_reached * hw.spike_out_time_s))
            traffic(src, sent=src_pc * density * dst_cores_reached * spm)
            traffic(dst, received=h.n_src / dst.fan_in_splits * density * spm)
            syn_pc = dst.neurons_per_core * synops / dst.neurons / dst.fan_in_splits
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
            traffic(dst, sent=dst_per_core * (splits - 1), received=dst_per_core * (splits - 1))
            add_work(dst, dst_per_core * ((splits - 1) * (ins["requant"] * hw.instruction_time_s
                                                          + hw.spike_out_time_s + hw.synop_time_s)
                                          + ins[dst.neuron_kind] * hw.instruction_time_s))
        elif h.kind == "reduce":
            synops = nz = float(h.n_src)
            messages = float(h.n_src)
            upd("rms_aggregator", h.n_dst)
            add_work(src, src.neurons_per_core * hw.spike_out_time_s)
            traffic(src, sent=src.neurons_per_core)
            traffic(dst, received=math.ceil(h.n_src / dst.cores))
            add_work(dst, math.ceil(h.n_src / dst.cores) * hw.synop_time_s
                     + dst_per_core * ins["rms_aggregator"] * hw.instruction_time_s)
        elif h.kind == "broadcast":
            synops = nz = float(h.n_dst)
            messages = float(dst.cores)
            upd(dst.neuron_kind, h.n_dst)
            add_work(src, dst.cores * hw.spike_out_time_s)
            traffic(src, sent=dst.cores)
            traffic(dst, received=1.0)
            add_work(dst, dst_per_core * (hw.synop_time_s + ins[dst.neuron_kind] * hw.instruction_time_s))
        elif h.kind == "inject":
            synops = nz = float(h.n_dst)
            messages = float(h.n_dst)
            upd(dst.neuron_kind, h.n_dst)
            traffic(dst, received=dst_per_core)
            add_work(dst, dst_per_core * (hw.synop_time_s + ins[dst.neuron_kind] * hw.instruction_time_s))
        else:  # pragma: no cover
            raise CostModelError(f"unknown hop kind {h.kind}")

        host_s = value_bytes(opts.act_bits) / hw.host_link_bytes_per_s  # one value over the host link
        if h.kind == "inject":
            self.link_work[-1, hi] += h.n_dst * host_s
        elif self.mapping.chips > 1:
            crossing = _boundary_loads(self.coords, self._range(h.src), self._range(h.dst), self.mapping.chips,
                                       messages)
            self.link_messages[:, hi] += crossing
            self.link_work[:-1, hi] += hw.chip_link_message_s * crossing
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
            traffic(dst, sent=dst_per_core)
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

    def decode_in_flight(self, streams: int) -> dict[str, float]:
        """Generation with ``streams`` independent sequences in flight (1 <= streams <= D), each at its own hop,
        evenly spaced along the pipeline and moving one hop per step (docs/gpu_baselines.md, "Batch").

        A step lasts as long as the busiest resource's work summed over the occupied hops, plus the barrier
        (averaged over the D placements as the sequences advance); a sequence's token takes D steps, then its
        output crosses the host link and the host answers before its next token enters. One stream is
        :attr:`decode_token_s`; D streams fill the pipeline as a prompt does. Static power is shared by the
        tokens in flight; each token still costs its own dynamic energy. Each MLGRU neuron would have to hold
        one state per sequence (``state_bytes_per_sequence``): the paper's deployment does not."""
        D, S = self.pipeline_depth, int(streams)
        if not 1 <= S <= D:
            raise CostModelError(f"sequences in flight must be between 1 and the pipeline depth {D}, got {S}")
        w = self.resource_work
        occupied = np.floor(np.arange(S) * D / S).astype(int)
        busiest = [float(w[:, (occupied + j) % D].sum(axis=1).max()) for j in range(D)]
        cycle = D * (float(np.mean(busiest)) + self.barrier_s) + self.readout_s + self.hw.host_round_trip_s
        energy = self.dynamic_energy_per_token_j + self.static_power_w * cycle / S
        d = self.mapping.cfg.hidden_size
        return {"streams": S, "tokens_per_s": S / cycle, "tokens_per_s_per_stream": 1.0 / cycle,
                "mj_per_token": 1e3 * energy, "token_cycle_s": cycle,
                "state_bytes_per_sequence": self.mapping.cfg.num_layers * d * self.hw.neuron_state_bits / 8}

    # ---- energy
    @property
    def static_power_w(self) -> float:
        """Every chip of the system draws it, busy or not."""
        return self.mapping.system_chips * self.hw.static_power_per_chip_w

    @property
    def dynamic_energy_per_token_j(self) -> float:
        return float(sum(c.energy_total_j for c in self.hop_costs))

    def prefill_energy_j(self, prompt_tokens: int) -> float:
        """Energy of a whole prompt of T tokens: T tokens' dynamic energy and the system's static power for the
        TTFT (pipeline fill and drain, the output and the host's round trip included)."""
        return prompt_tokens * self.dynamic_energy_per_token_j + self.static_power_w * self.ttft_s(prompt_tokens)

    @property
    def prefill_steady_energy_per_token_j(self) -> float:
        """Energy per prompt token with the pipeline full (one step of static power per token): flat in T."""
        return self.dynamic_energy_per_token_j + self.static_power_w * self.prefill_step_s

    def headline(self, prompt_tokens: int) -> dict[str, float]:
        """The figures a platform is compared by (docs/cost_model.md, section 2). ``prefill_*``: the whole prompt
        of T tokens, as a GPU's prompt pass is counted: T / TTFT tokens/s, and its energy
        (:meth:`prefill_energy_j`) / T. ``prefill_steady_*``: the pipeline full, one step per token, flat in T
        (what the paper's prefill figures are). ``decode_*``: one generated token at batch 1."""
        T = int(prompt_tokens)
        ttft = self.ttft_s(T)
        return {"ttft_s": ttft, "prefill_tokens_per_s": T / ttft,
                "prefill_mj_per_token": 1e3 * self.prefill_energy_j(T) / T,
                "prefill_steady_tokens_per_s": 1.0 / self.prefill_step_s,
                "prefill_steady_mj_per_token": 1e3 * self.prefill_steady_energy_per_token_j,
                "decode_tokens_per_s": 1.0 / self.decode_token_s,
                "decode_mj_per_token": 1e3 * self.decode_energy_per_token_j}

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
        """The mapping's size, the schedule and the figures of a prompt of ``prompt_tokens``, named as the report
        prints them (:meth:`headline`): ``prefill_tokens_per_s`` and ``prefill_energy_per_token_j`` over the whole
        prompt, ``prefill_steady_*`` with the pipeline full."""
        m = self.mapping
        h = self.headline(prompt_tokens)
        return {
            "cores": m.cores, "min_cores": sum(g.min_cores for g in m.groups), "chips": m.chips,
            "memory_bytes": round(m.memory_bytes),
            "hops_per_layer": m.hops_per_layer, "head_hops": m.head_hops, "pipeline_depth": self.pipeline_depth,
            "prompt_tokens": prompt_tokens, "ttft_steps": prompt_tokens + self.pipeline_depth - 1,
            "prefill_step_s": self.prefill_step_s, "barrier_s": self.barrier_s,
            "ttft_s": h["ttft_s"], "prefill_tokens_per_s": h["prefill_tokens_per_s"],
            "prefill_steady_tokens_per_s": h["prefill_steady_tokens_per_s"],
            "decode_token_s": self.decode_token_s, "decode_tokens_per_s": h["decode_tokens_per_s"],
            "static_power_w": self.static_power_w,
            "prefill_energy_per_token_j": 1e-3 * h["prefill_mj_per_token"],
            "prefill_steady_energy_per_token_j": 1e-3 * h["prefill_steady_mj_per_token"],
            "decode_energy_per_token_j": self.decode_energy_per_token_j,
            **self.totals(),
        }


def estimate(cfg: ModelConfig | str, instructions: Mapping[str, int] | None = None, *, hw: Loihi2Spec = LOIHI2,
             options: MappingOptions = MappingOptions()) -> LoihiCostModel:
    """Map ``cfg`` (a ModelConfig, or a name as ``estimate --config`` takes it: ``370m``, ``demo``, a TOML path)
    onto Loihi 2 with ``options`` (default: this project's mapping) and the constants of ``hw`` as given (not
    fitted; ``report.build_report`` fits them and predicts a preset, as the ``estimate`` command prints), and cost
    it (instruction counts: see :func:`resolve_instruction_counts`)."""
    if not isinstance(cfg, ModelConfig):
        from lava_matmulfree.loihi.activity import model_config

        cfg = model_config(cfg)
    return LoihiCostModel(build_mapping(cfg, hw, options), instructions)
