"""What a Loihi 2 mapping is made of (docs/cost_model.md): the mapping options, the ternary matrices, the core
groups that hold them with their neurons, the hops of a token, and the memory each group takes on its cores.

:class:`LoihiMapping` is the result of :func:`~.mapping.build_mapping` (the placement rules are there); here
are what it holds, the per-layer and per-matrix tables the report prints, and the core coordinates the cost
model measures distances with.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from lava_matmulfree.config import ModelConfig
from lava_matmulfree.loihi.activity import resolve_activity
from lava_matmulfree.loihi.hardware import GAUSSIAN_ZERO_FRACTION, CostModelError, Loihi2Spec, check_types

NEURON_KINDS = ("residual", "mlgru", "glu", "rms_aggregator", "requant")
ENCODINGS = ("auto", "dense", "sparse")
ALLOCATIONS = ("balanced", "packed")
HOST = "host"
BITS_PER_BYTE = 8


#: Spike widths the fixed point supports (FixedPointConfig.act_bits).
MIN_ACT_BITS, MAX_ACT_BITS = 2, 16


@dataclass(frozen=True)
class MappingOptions:
    """The mapping choices a user can change (docs/architecture.md)."""

    fold_norms: bool = True  # dual-RMSNorm fold: 12 hops per layer instead of 18, 4 aggregators instead of 7
    encoding: str = "auto"  # per-matrix synapse encoding: 'auto' | 'dense' | 'sparse'
    allocation: str = "balanced"  # spare cores of the last chip: 'balanced' (spread) | 'packed' (idle)
    zero_fraction: float = GAUSSIAN_ZERO_FRACTION  # fraction of zero ternary weights (0.31 for Gaussian W)
    activation_density: float = 1.0  # fraction of neurons sending a non-zero int8 graded spike per hop
    max_synapses_per_core: int = 0  # cap on weights per core (trades cores for step time); 0 = memory only
    cores_per_block: int = 0  # cores given to each block (layer), blocks aligned to it; 0 = packed in a row
    head_on_chip: bool = True  # final norm + ternary LM head on chip; False: the host gets the last residual
    system_chips: int = 0  # chips of the system (all draw static power), at least the mapping's; 0: the mapping's
    act_bits: int = 8  # graded spikes into ternary synapses (FixedPointConfig.act_bits; the paper's W8A16: 16)
    # a measured activity profile (path, ActivityProfile or None): its density per connection type and layer
    # replaces activation_density on the ternary connections (docs/activity.md); None or 'dense': the scalar
    activity: Any = None

    def check(self) -> None:
        check_types(self)  # a value of the wrong type is one line naming the option, not a TypeError
        if self.encoding not in ENCODINGS:
            raise CostModelError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        if self.allocation not in ALLOCATIONS:
            raise CostModelError(f"allocation must be one of {ALLOCATIONS}, got {self.allocation!r}")
        if not 0.0 <= self.zero_fraction <= 1.0:
            raise CostModelError(f"zero_fraction must be in [0, 1], got {self.zero_fraction}")
        if not 0.0 <= self.activation_density <= 1.0:
            raise CostModelError(f"activation_density must be in [0, 1], got {self.activation_density}")
        if not MIN_ACT_BITS <= self.act_bits <= MAX_ACT_BITS:
            raise CostModelError(f"act_bits must be in [{MIN_ACT_BITS}, {MAX_ACT_BITS}], got {self.act_bits}")
        resolve_activity(self.activity)  # a bad profile is one line naming the file and key
        for k in ("max_synapses_per_core", "cores_per_block", "system_chips"):
            if getattr(self, k) < 0:
                raise CostModelError(f"{k} must be >= 0, got {getattr(self, k)}")


# ------------------------------------------------------------------------------------------- data
@dataclass
class MatrixMap:
    """One ternary matrix [rows=out, cols=in] and its encoding."""

    name: str
    rows: int
    cols: int
    zero_fraction: float
    encoding: str = "dense"
    reason: str = ""

    @property
    def weights(self) -> int:
        return self.rows * self.cols

    @property
    def nonzeros(self) -> float:
        return self.weights * (1.0 - self.zero_fraction)

    def weight_bits(self, hw: Loihi2Spec, encoding: str | None = None) -> float:
        """Bits of the weights alone (no per-core overhead) in an encoding."""
        enc = encoding or self.encoding
        if enc == "dense":
            return float(self.weights * hw.dense_weight_bits)
        return self.nonzeros * hw.sparse_bits_per_nonzero

    def processed_per_input(self, hw: Loihi2Spec) -> float:
        """Synaptic operations per fully active input vector: every stored weight in the dense encoding
        (unless the hardware skips zeros), only non-zeros in the sparse one."""
        if self.encoding == "sparse" or hw.dense_skips_zero_weights:
            return self.nonzeros
        return float(self.weights)


@dataclass
class CoreGroup:
    """Cores holding one neuron population and the matrices that end on it (or aggregator neurons)."""

    name: str
    layer: int  # -1: input / head
    role: str  # 'synapses' | 'aggregator' | 'input'
    neuron_kind: str
    neurons: int
    rows_per_neuron: int = 0
    d_in: int = 0
    matrices: list[MatrixMap] = field(default_factory=list)
    aggregators: list[tuple[str, int]] = field(default_factory=list)  # (name, fan-in) on aggregator cores
    fan_in_splits: int = 1
    cores: int = 0
    min_cores: int = 0
    first_core: int = 0
    fanout_cores: int = 0  # destination cores per neuron (for the fan-out limit)
    padding: int = 0  # idle cores after this group (to align the next block with cores_per_block)
    description: str = ""

    @property
    def cores_per_split(self) -> int:
        return self.cores // self.fan_in_splits

    @property
    def neurons_per_core(self) -> int:
        """Neurons on the busiest core (destination neurons live on the cores of the first input range)."""
        return math.ceil(self.neurons / max(1, self.cores_per_split))

    @property
    def d_in_per_core(self) -> int:
        return math.ceil(self.d_in / self.fan_in_splits) if self.d_in else 0

    @property
    def weights(self) -> int:
        return sum(m.weights for m in self.matrices)

    @property
    def nonzeros(self) -> float:
        return sum(m.nonzeros for m in self.matrices)


@dataclass
class Hop:
    """One Lava time step of a token's path: spikes from ``src`` reach ``dst`` (through ``matrix`` if any)."""

    index: int
    layer: int
    name: str
    kind: str  # 'inject' | 'reduce' | 'broadcast' | 'synaptic' | 'partial'
    src: str  # group name or HOST
    dst: str
    src_kind: str  # neuron kind of the senders
    dst_kind: str  # neuron kind updated on arrival
    n_src: int
    n_dst: int
    matrix: str = ""  # names of the matrices crossed, '+'-joined
    readout: int = 0  # values sent to the host at the end of this hop (logits)


@dataclass
class LoihiMapping:
    cfg: ModelConfig
    hw: Loihi2Spec
    options: MappingOptions
    groups: list[CoreGroup]
    hops: list[Hop]

    def __post_init__(self):
        self.by_name = {g.name: g for g in self.groups}

    @property
    def cores(self) -> int:
        """Cores in use."""
        return sum(g.cores for g in self.groups)

    @property
    def core_positions(self) -> int:
        """Cores in use plus the idle ones that align blocks (cores_per_block)."""
        return sum(g.cores + g.padding for g in self.groups)

    @property
    def chips(self) -> int:
        """Chips the mapping occupies."""
        return math.ceil(self.core_positions / self.hw.cores_per_chip)

    @property
    def system_chips(self) -> int:
        """Chips of the system, all drawing static power: ``options.system_chips``, at least the mapping's chips
        (a preset's system grows with a larger model; ``estimate --set system_chips=N`` below the mapping's chips
        is refused by :func:`~.report.build_report`)."""
        return max(self.chips, self.options.system_chips)

    @property
    def hops_per_layer(self) -> int:
        return sum(1 for h in self.hops if h.layer == 0)

    @property
    def head_hops(self) -> int:
        """Hops after the last layer (final norm, LM head -> sink)."""
        return sum(1 for h in self.hops if h.layer == self.cfg.num_layers)

    @property
    def pipeline_depth(self) -> int:
        """Hops a token crosses from injection to the logits leaving the chip."""
        return len(self.hops)

    def matrices(self) -> list[tuple[CoreGroup, MatrixMap]]:
        return [(g, m) for g in self.groups for m in g.matrices]

    def group_memory_bytes(self, g: CoreGroup) -> float:
        return group_memory_bytes(g, self.hw)

    @property
    def memory_bytes(self) -> float:
        return sum(self.group_memory_bytes(g) for g in self.groups)

    def core_coords(self) -> np.ndarray:
        """(cores, 3) array of (chip, global x, y) per core; chips side by side in a row."""
        idx = np.arange(self.core_positions)
        chip = idx // self.hw.cores_per_chip
        pos = idx % self.hw.cores_per_chip
        x = chip * self.hw.mesh_width + pos % self.hw.mesh_width
        y = pos // self.hw.mesh_width
        return np.stack([chip, x, y], axis=1)

    def layer_table(self, layer: int) -> list[dict]:
        """Rows of the per-layer table (layer -1: input residual; num_layers: head)."""
        rows = []
        for g in self.groups:
            if g.layer != layer:
                continue
            rows.append({
                "group": g.name, "role": g.role, "neurons": g.neurons, "neuron_kind": g.neuron_kind,
                "description": g.description,
                "synapses": self.group_synapses(g), "ternary_weights": g.weights,
                "nonzero_weights": round(g.nonzeros),
                "encoding": "+".join(sorted({m.encoding for m in g.matrices})) or "-",
                "fan_in_splits": g.fan_in_splits,
                "cores": g.cores, "memory_bytes": round(self.group_memory_bytes(g)),
                "neurons_per_core": g.neurons_per_core if g.role != "aggregator" else g.neurons,
            })
        return rows

    @staticmethod
    def group_synapses(g: CoreGroup) -> int:
        """Ternary weights of a synapse group; weight-1 input synapses of aggregators (their fan-in) and of
        the input residual (the injected embedding)."""
        if g.role == "synapses":
            return g.weights
        if g.role == "aggregator":
            return sum(f for _, f in g.aggregators)
        return g.neurons

    def layer_totals(self, layer: int) -> dict:
        gs = [g for g in self.groups if g.layer == layer]
        return {"layer": layer, "neurons": sum(g.neurons for g in gs),
                "synapses": sum(self.group_synapses(g) for g in gs),
                "weights": sum(g.weights for g in gs), "cores": sum(g.cores for g in gs),
                "min_cores": sum(g.min_cores for g in gs),
                "memory_bytes": round(sum(self.group_memory_bytes(g) for g in gs))}

    def matrix_table(self) -> list[dict]:
        out = []
        for g, m in self.matrices():
            dense = m.weight_bits(self.hw, "dense") / BITS_PER_BYTE
            sparse = m.weight_bits(self.hw, "sparse") / BITS_PER_BYTE
            out.append({"group": g.name, "matrix": m.name, "shape": [m.rows, m.cols], "weights": m.weights,
                        "nonzeros": round(m.nonzeros), "dense_bytes": round(dense),
                        "sparse_bytes": round(sparse), "sparse_over_dense": sparse / dense if dense else None,
                        "encoding": m.encoding, "reason": m.reason})
        return out


# ------------------------------------------------------------------------------------------- memory
def per_neuron_bits(g: CoreGroup, hw: Loihi2Spec, encodings: Iterable[str] | None = None) -> float:
    """Weight bits of one destination neuron's rows on one core, plus its state."""
    encs = list(encodings) if encodings is not None else [m.encoding for m in g.matrices]
    bits = float(hw.neuron_state_bits)
    d_seg = g.d_in_per_core
    for m, enc in zip(g.matrices, encs):
        rows_per_neuron = m.rows // g.neurons
        if enc == "dense":
            bits += rows_per_neuron * d_seg * hw.dense_weight_bits
        else:
            bits += rows_per_neuron * d_seg * (1.0 - m.zero_fraction) * hw.sparse_bits_per_nonzero
    return bits


def core_overhead_bits(g: CoreGroup, hw: Loihi2Spec) -> float:
    """Per-core fixed memory: microcode reserve and one synapse-map entry per input axon."""
    return hw.microcode_reserve_bytes * BITS_PER_BYTE + g.d_in_per_core * hw.dense_axon_overhead_bits


def group_memory_bytes(g: CoreGroup, hw: Loihi2Spec) -> float:
    """Memory used on all cores of a group (weights + state + per-core overhead)."""
    if g.role == "aggregator":
        axons = sum(f for _, f in g.aggregators)
        return g.cores * hw.microcode_reserve_bytes + (g.neurons * hw.neuron_state_bits
                                                       + axons * hw.dense_axon_overhead_bits) / BITS_PER_BYTE
    if g.role == "input":
        return g.cores * hw.microcode_reserve_bytes + g.neurons * hw.neuron_state_bits / BITS_PER_BYTE
    neuron_bits = g.neurons * per_neuron_bits(g, hw) * g.fan_in_splits
    return (neuron_bits + g.cores * core_overhead_bits(g, hw)) / BITS_PER_BYTE
