"""Map the MatMul-free LM's process graph onto Loihi 2 neuro cores and chips (docs/graph.md, docs/cost_model.md).

Placement rules (what a Loihi 2 compiler does, simplified):

- **Synapses live on the core of their destination neuron.** A ternary matrix is therefore partitioned by
  output rows together with the neurons it feeds: the i, f, g matrices sit on the MLGRU neurons' cores (three
  rows per neuron), o on the mid-layer residual neurons' cores, gate (2I x d, rows u and v) on the GLU neurons'
  cores, down on the next layer's input residual neurons' cores, the LM head on V logit neurons' cores. Such a
  bundle of one neuron population plus the matrices ending on it is a :class:`~.core_groups.CoreGroup`.
- Per core: neurons <= ``neurons_per_core``; weights + one synapse-map entry per input axon + neuron state +
  microcode reserve <= ``core_memory_bytes``; input axons <= ``max_fan_in`` (a matrix with more inputs is split
  by input range over several cores whose partial sums a relay neuron forwards: one extra hop);
  neurons x destination cores <= ``max_fan_out``.
- **Aggregators** (one neuron per RMSNorm) are packed first-fit per layer onto cores by input-axon count.
- **Embedding**: the V x d full-precision table stays in the **host**; the host injects the d int8 graded
  spikes of each token into the first residual population (on chip it would need V input axons, 8x the fan-in
  limit, and ~V*d*8 bits of synapse memory, ~2 chips for the 370M, to replace one table lookup). The sink
  (argmax / sampling over V logits) is also the host's: the logit neurons send their values off chip.
- Cores are numbered in pipeline order and filled chip by chip (``cores_per_chip`` each, row-major on the
  8 x 16 mesh); chips form a chain. ``allocation='balanced'`` then spreads the spare cores of the last chip over
  the synapse groups with the most work per core (a time step lasts as long as the slowest core);
  ``'packed'`` leaves them idle.

Per matrix the encoding is chosen (``encoding='auto'``) as the one that needs fewer cores; on a tie, sparse if
it saves synaptic ops (only when ``Loihi2Spec.dense_skips_zero_weights`` is False), else the one with fewer
bits. ``'dense'`` / ``'sparse'`` force it. The reason is a sentence in the report. Dense costs
``dense_weight_bits`` (2) per weight; sparse costs ``sparse_bits_per_nonzero`` (22.5, derived from the paper's
7.5x for a 1024x1024 matrix with 1/3 zeros) per non-zero: sparse only pays off in memory above 1 - 2/22.5 = 91%
zeros, so with absmean ternary weights (31% zeros) every matrix is dense. Forcing sparse spreads the same work
over ~7.5x the cores: shorter time steps, ~6x the chips.
"""
from __future__ import annotations

import heapq
import math
from typing import Iterable

from lava_matmulfree.config import ModelConfig
from lava_matmulfree.loihi.core_groups import (BITS_PER_BYTE, HOST, CoreGroup, Hop, LoihiMapping, MappingOptions,
                                               MatrixMap, core_overhead_bits, per_neuron_bits)
from lava_matmulfree.loihi.hardware import LOIHI2, CostModelError, Loihi2Spec


# ------------------------------------------------------------------------------------------- cores per group
def _max_neurons_per_core(g: CoreGroup, hw: Loihi2Spec, opts: MappingOptions,
                          encodings: Iterable[str] | None = None) -> int:
    free_bits = hw.core_memory_bytes * BITS_PER_BYTE - core_overhead_bits(g, hw)
    if free_bits <= 0:
        raise CostModelError(f"{g.name}: the per-core overhead ({core_overhead_bits(g, hw) / BITS_PER_BYTE:.0f} B) "
                             f"exceeds core_memory_bytes={hw.core_memory_bytes}")
    n = min(hw.neurons_per_core, int(free_bits // per_neuron_bits(g, hw, encodings)))
    if opts.max_synapses_per_core:
        n = min(n, opts.max_synapses_per_core // max(1, g.rows_per_neuron * g.d_in_per_core))
    if n < 1:
        one = per_neuron_bits(g, hw, encodings) / BITS_PER_BYTE
        raise CostModelError(f"{g.name}: one neuron's synapses ({one:.0f} B) do not fit in a core; raise "
                             f"core_memory_bytes or max_synapses_per_core")
    return n


def _cores_for(g: CoreGroup, hw: Loihi2Spec, opts: MappingOptions, encodings=None) -> int:
    return math.ceil(g.neurons / _max_neurons_per_core(g, hw, opts, encodings)) * g.fan_in_splits


def _choose_encodings(g: CoreGroup, hw: Loihi2Spec, opts: MappingOptions) -> None:
    """Per matrix: forced, or (auto) the encoding needing fewer cores for the group. On a tie the sparse
    encoding wins if it saves synaptic ops (the dense one walks zeros), else the one with fewer bits."""
    for i, m in enumerate(g.matrices):
        dense_b = m.weight_bits(hw, "dense")
        sparse_b = m.weight_bits(hw, "sparse")
        ratio = sparse_b / dense_b if dense_b else float("inf")
        stats = (f"{100 * m.zero_fraction:.0f}% zeros: dense {hw.dense_weight_bits:.1f} b/weight, sparse "
                 f"{sparse_b / m.weights:.2f} b/weight ({ratio:.2f}x)")
        saves = "" if hw.dense_skips_zero_weights else f" and skips the {100 * m.zero_fraction:.0f}% zero synaptic ops"
        if opts.encoding != "auto":
            m.encoding = opts.encoding
            m.reason = f"{opts.encoding}: forced by encoding='{opts.encoding}' ({stats})"
            continue
        encs = [mm.encoding for mm in g.matrices]
        encs[i] = "dense"
        c_dense = _cores_for(g, hw, opts, encs)
        encs[i] = "sparse"
        c_sparse = _cores_for(g, hw, opts, encs)
        tie_sparse = c_sparse == c_dense and (not hw.dense_skips_zero_weights or sparse_b < dense_b)
        if c_sparse < c_dense or tie_sparse:
            m.encoding = "sparse"
            m.reason = (f"sparse: {stats}; needs {c_sparse} cores for the group vs {c_dense} dense{saves}")
        else:
            m.encoding = "dense"
            gain = (f"to skip {100 * m.zero_fraction:.0f}% of the synaptic ops" if not hw.dense_skips_zero_weights
                    else "and save no synaptic op (zero weights are skipped in both encodings)")
            cost = (f"{c_sparse} cores instead of {c_dense}" if c_sparse > c_dense else
                    f"as many cores ({c_dense}) and {ratio:.2f}x the weight memory")
            m.reason = f"dense: {stats}; for {m.name} sparse would take {cost} {gain}"


# ------------------------------------------------------------------------------------------- graph
def _pack_aggregators(name: str, layer: int, aggs: list[tuple[str, int]], hw: Loihi2Spec) -> list[CoreGroup]:
    """First-fit packing of aggregator neurons onto cores by input-axon count (fan-in)."""
    bins: list[list[tuple[str, int]]] = []
    for a, fan_in in aggs:
        if fan_in > hw.max_fan_in:
            raise CostModelError(f"aggregator {a} has fan-in {fan_in} > max_fan_in={hw.max_fan_in}; a tree of "
                                 "aggregators is not modelled")
        for b in bins:
            if sum(f for _, f in b) + fan_in <= hw.max_fan_in and len(b) < hw.neurons_per_core:
                b.append((a, fan_in))
                break
        else:
            bins.append([(a, fan_in)])
    return [CoreGroup(name=f"{name}{i}", layer=layer, role="aggregator", neuron_kind="rms_aggregator",
                      neurons=len(b), aggregators=b, cores=1, min_cores=1,
                      description="RMS aggregators: " + ", ".join(a for a, _ in b)) for i, b in enumerate(bins)]


def _synapse_group(name, layer, kind, neurons, mats: list[tuple[str, int, int]], opts, hw, desc) -> CoreGroup:
    d_in = mats[0][2]
    g = CoreGroup(name=name, layer=layer, role="synapses", neuron_kind=kind, neurons=neurons,
                  rows_per_neuron=sum(r for _, r, _ in mats) // neurons, d_in=d_in,
                  matrices=[MatrixMap(n, r, c, opts.zero_fraction) for n, r, c in mats],
                  fan_in_splits=math.ceil(d_in / hw.max_fan_in), description=desc)
    return g


def build_mapping(cfg: ModelConfig, hw: Loihi2Spec = LOIHI2, options: MappingOptions = MappingOptions()
                  ) -> LoihiMapping:
    """Partition the whole graph onto cores and chips; hops list the time steps of one token."""
    hw.check()
    options.check()
    d, I, V, L = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.num_layers
    fold = options.fold_norms
    groups: list[CoreGroup] = []
    hops: list[Hop] = []

    def hop(layer, name, kind, src, dst, src_kind, dst_kind, n_src, n_dst, matrix="", readout=0):
        hops.append(Hop(len(hops), layer, name, kind, src, dst, src_kind, dst_kind, n_src, n_dst, matrix,
                        readout))

    def agg_group(layer, agg):
        for g in groups:
            if g.layer == layer and g.role == "aggregator" and any(a == agg for a, _ in g.aggregators):
                return g.name
        raise KeyError(agg)

    tree: dict[tuple[int, str], CoreGroup] = {}

    def add_aggregators(prefix, layer, aggs):
        """Aggregators of one layer; one whose fan-in exceeds max_fan_in becomes a two-level tree: k partial
        aggregators (one core each) feeding a root (one extra hop)."""
        packed = []
        for label, fan_in in aggs:
            k = math.ceil(fan_in / hw.max_fan_in)
            if k > 1:
                part = CoreGroup(name=f"{prefix}.part.{label}", layer=layer, role="aggregator",
                                 neuron_kind="rms_aggregator", neurons=k, cores=k, min_cores=k,
                                 aggregators=[(f"{label}.part{i}", math.ceil(fan_in / k)) for i in range(k)],
                                 description=f"partial RMS aggregators of {label} (fan-in {fan_in} > "
                                             f"{hw.max_fan_in})")
                groups.append(part)
                tree[(layer, label)] = part
                packed.append((label, k))
            else:
                packed.append((label, fan_in))
        groups.extend(_pack_aggregators(prefix, layer, packed, hw))

    def norm(layer, label, src, src_kind, n):
        """A norm round trip: [src -> aggregator] then [aggregator -> src] (2 hops; 3 through a tree)."""
        a = agg_group(layer, label)
        part = tree.get((layer, label))
        if part is None:
            hop(layer, f"{src_kind}->agg({label})", "reduce", src, a, src_kind, "rms_aggregator", n, 1)
        else:
            hop(layer, f"{src_kind}->partial agg({label})", "reduce", src, part.name, src_kind, "rms_aggregator",
                n, part.neurons)
            hop(layer, f"partial agg->agg({label})", "reduce", part.name, a, "rms_aggregator", "rms_aggregator",
                part.neurons, 1)
        hop(layer, f"agg({label})->{src_kind}", "broadcast", a, src, "rms_aggregator", src_kind, 1, n)

    inp = CoreGroup(name="input.resid", layer=-1, role="input", neuron_kind="residual", neurons=d,
                    description="residual neurons of layer 0 (embedding injected by the host)")
    groups.append(inp)
    hop(-1, "host->resid (embedding)", "inject", HOST, inp.name, "host", "residual", d, d)

    resid_in = inp.name
    for l in range(L):
        # aggregators of this layer: with the fold, each block norm shares one aggregator with the BitLinear
        # norm after it; without, the BitLinear norms of i/f/g, o and gate need their own (docs/model.md)
        aggs = [("attn_norm", d), ("g_norm", d), ("mlp_norm", d), ("down_norm", I)]
        if not fold:
            aggs = [("attn_norm", d), ("ifg_bitlinear_norm", d), ("g_norm", d), ("o_bitlinear_norm", d),
                    ("mlp_norm", d), ("gate_bitlinear_norm", d), ("down_norm", I)]
        add_aggregators(f"L{l}.agg", l, aggs)
        ifg = _synapse_group(f"L{l}.ifg", l, "mlgru", d, [("i_proj", d, d), ("f_proj", d, d), ("g_proj", d, d)],
                             options, hw, "ternary synapses i, f, g + MLGRU neurons (stateful h)")
        o = _synapse_group(f"L{l}.o", l, "residual", d, [("o_proj", d, d)], options, hw,
                           "ternary synapses o + residual neurons")
        gate = _synapse_group(f"L{l}.gate", l, "glu", I, [("gate_proj", 2 * I, d)], options, hw,
                              "ternary synapses gate (u, v) + GLU neurons")
        down = _synapse_group(f"L{l}.down", l, "residual", d, [("down_proj", d, I)], options, hw,
                              "ternary synapses down + residual neurons (next layer's input)")
        groups.extend([ifg, o, gate, down])

        norm(l, "attn_norm", resid_in, "residual", d)
        if not fold:
            norm(l, "ifg_bitlinear_norm", resid_in, "residual", d)
        _synaptic(hop, l, resid_in, ifg, "residual", "i_proj+f_proj+g_proj", d)
        norm(l, "g_norm", ifg.name, "mlgru", d)
        if not fold:
            norm(l, "o_bitlinear_norm", ifg.name, "mlgru", d)
        _synaptic(hop, l, ifg.name, o, "mlgru", "o_proj", d)
        norm(l, "mlp_norm", o.name, "residual", d)
        if not fold:
            norm(l, "gate_bitlinear_norm", o.name, "residual", d)
        _synaptic(hop, l, o.name, gate, "residual", "gate_proj", d)
        norm(l, "down_norm", gate.name, "glu", I)
        _synaptic(hop, l, gate.name, down, "glu", "down_proj", I)
        resid_in = down.name

    if options.head_on_chip:
        # head: final norm (+ the LM head's BitLinear norm, folded or not), ternary LM head, logits to the host
        head_aggs = [("final_norm", d)] if fold else [("final_norm", d), ("head_bitlinear_norm", d)]
        add_aggregators("head.agg", L, head_aggs)
        lm = _synapse_group("head.lm", L, "requant", V, [("lm_head", V, d)], options, hw,
                            "ternary LM head synapses + logit neurons (logits to the host sink)")
        groups.append(lm)
        norm(L, "final_norm", resid_in, "residual", d)
        if not fold:
            norm(L, "head_bitlinear_norm", resid_in, "residual", d)
        _synaptic(hop, L, resid_in, lm, "residual", "lm_head", d, readout=V)
    else:
        # the host runs the final norm and the LM head: the last residual leaves the chip on the last hop
        hops[-1].readout = d

    mapping = LoihiMapping(cfg, hw, options, groups, hops)
    _allocate(mapping)
    return mapping


def _synaptic(hop, layer, src, dst: CoreGroup, src_kind, matrix, n_src, readout=0):
    hop(layer, f"{src_kind}->syn({matrix})->{dst.neuron_kind}", "synaptic", src, dst.name, src_kind,
        dst.neuron_kind, n_src, dst.neurons, matrix, 0 if dst.fan_in_splits > 1 else readout)
    if dst.fan_in_splits > 1:
        # partial sums of the other input ranges are forwarded by relay neurons to the destination neuron
        hop(layer, f"partial sums ({matrix})->{dst.neuron_kind}", "partial", dst.name, dst.name, "requant",
            dst.neuron_kind, (dst.fan_in_splits - 1) * dst.neurons, dst.neurons, "", readout)


# ------------------------------------------------------------------------------------------- allocation
def _fanout(mapping: LoihiMapping, g: CoreGroup) -> int:
    """Destination cores a neuron of ``g`` sends to, over all hops it is the source of."""
    total = 0
    for h in mapping.hops:
        if h.src != g.name or h.kind == "partial":
            continue
        dst = mapping.by_name[h.dst]
        if h.kind == "broadcast":
            continue  # one aggregator neuron -> each core; checked separately, never binding
        total += dst.cores // dst.fan_in_splits if dst.role == "synapses" else dst.cores
    return total


def _fanout_need(mapping: LoihiMapping, g: CoreGroup) -> int:
    """Cores a (non-aggregator) group needs for its own limits and the fan-out of its neurons."""
    hw, opts = mapping.hw, mapping.options
    fan = _fanout(mapping, g)
    if fan > hw.max_fan_out:
        raise CostModelError(f"{g.name}: one neuron sends to {fan} cores > max_fan_out={hw.max_fan_out}")
    per_core = hw.max_fan_out // fan if fan else hw.neurons_per_core
    if g.role == "synapses":
        per_core = min(per_core, _max_neurons_per_core(g, hw, opts))
        return math.ceil(g.neurons / per_core) * g.fan_in_splits
    return math.ceil(g.neurons / min(per_core, hw.neurons_per_core))


def _allocate(mapping: LoihiMapping) -> None:
    hw, opts = mapping.hw, mapping.options
    syn = [g for g in mapping.groups if g.role == "synapses"]
    for g in syn:
        _choose_encodings(g, hw, opts)
    for g in mapping.groups:
        if g.role == "input":
            g.cores = math.ceil(g.neurons / hw.neurons_per_core)
        elif g.role == "synapses":
            g.cores = _cores_for(g, hw, opts)
    # fan-out limit: neurons x destination cores per core <= max_fan_out; more destination cores raise the
    # sources' fan-out, so iterate to a fixed point (core counts only grow)
    _fix_fanout(mapping)
    for g in mapping.groups:
        g.min_cores = g.cores
    if opts.cores_per_block:
        for layer in range(mapping.cfg.num_layers):
            block = [g for g in mapping.groups if g.layer == layer or (layer == 0 and g.layer == -1)]
            used = sum(g.cores for g in block)
            # a block that does not fit its budget takes as many budgets as it needs
            budget = opts.cores_per_block * math.ceil(used / opts.cores_per_block)
            spare = budget - used
            if opts.allocation == "balanced":
                spare = _spread(mapping, [g for g in block if g.role == "synapses"], spare)
            block[-1].padding = spare
        if opts.allocation == "balanced":
            head = [g for g in syn if g.layer == mapping.cfg.num_layers]
            _spread(mapping, head, mapping.chips * hw.cores_per_chip - mapping.core_positions)
    elif opts.allocation == "balanced":
        _spread(mapping, syn, mapping.chips * hw.cores_per_chip - mapping.cores)
    for g in mapping.groups:
        if g.role != "aggregator":
            g.fanout_cores = _fanout(mapping, g)
    first = 0
    for g in mapping.groups:
        g.first_core = first
        first += g.cores + g.padding


def _spread(mapping: LoihiMapping, syn: list[CoreGroup], spare: int) -> int:
    """Give ``spare`` cores, one at a time, to the synapse group with the most work on its busiest core (a
    time step lasts as long as the slowest core); returns the cores left over."""
    hw = mapping.hw
    sources = {g.name: _synaptic_sources(mapping, g) for g in syn}
    heap = [(-_load(g, hw), i) for i, g in enumerate(syn)]
    heapq.heapify(heap)
    while heap:
        _, i = heapq.heappop(heap)
        g = syn[i]
        if g.fan_in_splits > spare or g.cores_per_split >= g.neurons:
            continue
        g.cores += g.fan_in_splits
        # more destination cores raise the sources' fan-out: they take spare cores too, or g stays as it is
        extra = {s.name: _fanout_need(mapping, s) - s.cores for s in sources[g.name]}
        extra = {k: v for k, v in extra.items() if v > 0}
        if g.fan_in_splits + sum(extra.values()) > spare:
            g.cores -= g.fan_in_splits
            continue
        for k, v in extra.items():
            mapping.by_name[k].cores += v
        touched = [mapping.by_name[k] for k in extra] + [g]
        if any(_fanout_need(mapping, t) > t.cores for t in touched) or any(
                _fanout_need(mapping, src) > src.cores for t in touched
                for src in _synaptic_sources(mapping, t)):
            for k, v in extra.items():  # the extra cores would break another limit: undo
                mapping.by_name[k].cores -= v
            g.cores -= g.fan_in_splits
            continue
        spare -= g.fan_in_splits + sum(extra.values())
        heapq.heappush(heap, (-_load(g, hw), i))
    return spare


def _synaptic_sources(mapping: LoihiMapping, g: CoreGroup) -> list[CoreGroup]:
    return [mapping.by_name[h.src] for h in mapping.hops
            if h.dst == g.name and h.src in mapping.by_name and h.kind == "synaptic"]


def _fix_fanout(mapping: LoihiMapping) -> None:
    for _ in range(50):
        changed = False
        for g in mapping.groups:
            if g.role == "aggregator":
                continue
            need = _fanout_need(mapping, g)
            if need > g.cores:
                g.cores, changed = need, True
        if not changed:
            return
    raise CostModelError("fan-out constraints did not settle")  # pragma: no cover


def _load(g: CoreGroup, hw: Loihi2Spec) -> float:
    """Synaptic operations per token on the busiest core of a synapse group."""
    per_neuron = sum(m.processed_per_input(hw) for m in g.matrices) / g.neurons / g.fan_in_splits
    return g.neurons_per_core * per_neuron
