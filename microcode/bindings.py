"""Load-time binding of the neuron programs (the `.ucode` files in this folder) to a compiled network.

For each custom neuron process one function here builds a `Binding` from a `QuantisedNetwork` (and a layer):
which program, how many neurons, and every value the program leaves open. `binding.machine()` returns the
program's interpreter bound to those values, ready to `step()` once per Lava time step.

What is fixed when:

* assembly, `.const`:
  - algorithm constants of a program (the inverse-sqrt formats, the structural delays and queue depths
    they implement). They restate named Python constants (`fixed_point.INVSQRT_*`, `events.*`); `specialise`
    checks them on every load, so the program and the golden model cannot drift apart silently;
  - config-bound constants the ISA needs at assembly: LUT sizes and payload/clamp widths (`ACT_BITS`,
    `NORM_SQUARE_BITS`, `SIGMOID_LUT_SIZE`, `SEED_LUT_SIZE`). The program is *specialised*: re-assembled with
    these `.const` values taken from the network's FixedPointConfig. The values written in the files are those
    of the default config; instruction counts do not depend on them.
* load, `.imm` (per process): rescale shifts, format differences, scalar mantissas (the per-tensor
  requantisations of synaptic sums), the sigmoid LUT centre and the Newton-step enables of the aggregator.
* load, `.param` (per neuron): per-channel mantissas (norm weights, consumer gains) and the forget-gate lower
  bound.
* load, `.lut`: the sigmoid table and the inverse-sqrt seed table of the network.

Newton steps (rms_aggregator.ucode): the program unrolls the largest count the config accepts and each step is
enabled by an immediate `do_newtonK = [K <= invsqrt_newton_steps]`; a disabled step is skipped by one taken
branch, so the executed instructions follow the configured count (the static count is the worst case).
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from lava_matmulfree import events
from lava_matmulfree.errors import MicrocodeError
from lava_matmulfree.model.fixed_point import (INVSQRT_NORM_LO_BITS, INVSQRT_OUT_FRAC, INVSQRT_P_FRAC, INVSQRT_Q_FRAC,
                                         INVSQRT_Y_FRAC, lut_frac_bits)

from . import PROGRAM_DIR, PROGRAM_SUFFIX, isa, load_program
from .assembler import assemble
from .program import Program

#: Program names of the custom neurons (file stems in this folder).
RMS_AGGREGATOR = "rms_aggregator"
MLGRU = "mlgru"
GLU = "glu"
RESIDUAL = "residual"
FINAL_NORM = "final_norm"
NEURON_PROGRAMS = (RESIDUAL, MLGRU, GLU, RMS_AGGREGATOR, FINAL_NORM)

#: Name prefix of the aggregator's per-step Newton enable immediates (do_newton1, do_newton2, ...).
NEWTON_ENABLE_PREFIX = "do_newton"

#: Inverse-sqrt normalisation: even shifts bring n into [2^NORM_LO, 2^(NORM_LO + 2)), a range two bits wide;
#: the seed table's bins n >> (NORM_LO + 2 - seed_bits) therefore start at 2^(seed_bits - 2).
_NORM_RANGE_BITS = 2
_NORM_TOP_BITS = INVSQRT_NORM_LO_BITS + _NORM_RANGE_BITS
#: The constant 3 of the Newton step y (3 - n y^2) / 2.
_NEWTON_THREE = 3

#: Algorithm constants each program restates, with the Python values they must equal.
ALGORITHM_CONSTANTS = {
    RMS_AGGREGATOR: {
        "NORM_TOP": 1 << _NORM_TOP_BITS,
        "LIM1": 1 << INVSQRT_NORM_LO_BITS,
        "P_SHIFT": 2 * INVSQRT_Y_FRAC - INVSQRT_P_FRAC,
        "Q_SHIFT": INVSQRT_P_FRAC - INVSQRT_Q_FRAC,
        "Y_SHIFT": INVSQRT_Q_FRAC + 1,
        "THREE": _NEWTON_THREE << INVSQRT_Q_FRAC,
        "OUT_SHIFT": INVSQRT_Y_FRAC - INVSQRT_OUT_FRAC,
    },
    MLGRU: {"DELAY_R": events.AGGREGATOR_ROUND_TRIP},
    GLU: {"DELAY_R": events.AGGREGATOR_ROUND_TRIP},
    FINAL_NORM: {"DELAY_R": events.AGGREGATOR_ROUND_TRIP},
    RESIDUAL: {"DELAY_R": events.AGGREGATOR_ROUND_TRIP, "FIFO_DEPTH": events.MIXER_QUEUE_DEPTH},
}


def config_constants(net) -> dict:
    """The config-bound assembly-time constants of a network (each program uses those it declares)."""
    fp = net.fp
    return {
        "ACT_BITS": int(fp.act_bits),
        "NORM_SQUARE_BITS": int(fp.norm_square_bits),
        "SIGMOID_LUT_SIZE": int(np.asarray(net.sigmoid_lut).size),
        "SEED_LUT_SIZE": int(np.asarray(net.invsqrt_lut).size),
    }


# --------------------------------------------------------------------------------------- specialisation
def program_path(name: str):
    """The `.ucode` file of the shipped program `name` (an unknown name raises MicrocodeError)."""
    load_program(name)  # a clear error for an unknown name
    return PROGRAM_DIR / f"{name}{PROGRAM_SUFFIX}"


@lru_cache(maxsize=None)
def _specialise_cached(name: str, consts: tuple) -> Program:
    path = program_path(name)
    lines = path.read_text(encoding="utf-8").split("\n")
    for const, value in consts:
        pattern = re.compile(rf"^(\s*(?i:\.const)\s+{re.escape(const)}\s+)([^\s;#]+)")
        hits = [i for i, line in enumerate(lines) if pattern.match(line)]
        if len(hits) != 1:
            raise MicrocodeError(f"{path}: expected one '.const {const}' to specialise, found {len(hits)}")
        lines[hits[0]] = pattern.sub(lambda m: f"{m.group(1)}{value}", lines[hits[0]], count=1)
    program = assemble("\n".join(lines), str(path))  # same line numbers: errors still point into the file
    for const, want in ALGORITHM_CONSTANTS.get(name, {}).items():
        decl = program.consts.get(const)
        if decl is None or decl.value != want:
            where = f"{path}:{decl.line}" if decl is not None else str(path)
            got = "missing" if decl is None else decl.value
            raise MicrocodeError(f"{where}: constant {const} = {got}, but the golden model / events.py needs {want}")
    return program


def specialise(name: str, consts: dict | None = None) -> Program:
    """The shipped program `name` assembled with the given `.const` values (each must be declared once).

    Cached: the same specialisation is assembled once per OS process."""
    return _specialise_cached(name, tuple(sorted((consts or {}).items())))


# --------------------------------------------------------------------------------------- the binding
@dataclass(frozen=True)
class Binding:
    """One program bound to one process: `n` neurons and every value left open by the program."""

    program: str
    n: int
    consts: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    imms: dict = field(default_factory=dict)
    luts: dict = field(default_factory=dict)

    @property
    def path(self):
        """The `.ucode` file (what an NC model carries)."""
        return program_path(self.program)

    def assembled(self) -> Program:
        """The program specialised for this network's config."""
        return specialise(self.program, self.consts)

    def process_kwargs(self) -> dict:
        """The keyword arguments of the neuron process that runs this program (processes/neuron.py)."""
        return {"consts": dict(self.consts), **self.params, **self.imms, **self.luts}

    def machine(self):
        """The bound interpreter (vectorised over the `n` neurons), at the initial state."""
        return self.assembled().bind(self.n, params=self.params, imms=self.imms, luts=self.luts)


def _check_registers(net) -> None:
    if net.fp.state_bits != isa.REGISTER_BITS:
        raise MicrocodeError(f"the neuron programs run on {isa.REGISTER_BITS}-bit registers, but the network was "
                             f"compiled for state_bits={net.fp.state_bits}")


def _shift(k) -> int:
    """A rescale shift as an immediate, brought into the ISA's range without changing any result: every use
    here shifts a product of two 24-bit values (|p| < 2^47) right, or a 24-bit value, and saturates the result
    (in the program and in golden.py alike); a right shift by MAX_RSHIFT or more rounds all of these to 0,
    and a left shift by MAX_LSHIFT or more saturates every non-zero value."""
    return int(np.clip(int(k), -isa.MAX_LSHIFT, isa.MAX_RSHIFT))


def _consts(net, name: str) -> dict:
    declared = load_program(name).consts
    return {k: v for k, v in config_constants(net).items() if k in declared}


def _sigmoid_index_shift(net, v_frac: int) -> int:
    fp = net.fp
    return _shift(v_frac - lut_frac_bits(fp.sigmoid_lut_size, fp.sigmoid_lut_range))


def _sigmoid_imms(net) -> dict:
    return {"sig_mid": int(net.fp.sigmoid_lut_size) // 2, "gf": int(net.fp.gate_frac_bits)}


def _channel_norm(q, consumer: str) -> tuple[dict, dict]:
    """Params and imms of a norm's channel side with one consumer: u = w1 v, t = v r, a = G t."""
    params = {"w1_m": q.inner_m, "g_m": q.gain_m[consumer]}
    imms = {"w1_k": _shift(q.inner_k), "t_k": _shift(q.t_k), "g_k": _shift(q.gain_k[consumer])}
    return params, imms


def _ints(arrays: dict) -> dict:
    return {k: np.asarray(v, dtype=np.int64) for k, v in arrays.items()}


# --------------------------------------------------------------------------------------- per neuron type
def rms_aggregator(net) -> Binding:
    """The aggregator of any norm of `net` (one neuron; the norm only changes what it sums)."""
    _check_registers(net)
    fp = net.fp
    consts = _consts(net, RMS_AGGREGATOR)
    program = specialise(RMS_AGGREGATOR, consts)
    unrolled = sum(1 for name in program.imms if name.startswith(NEWTON_ENABLE_PREFIX))
    if fp.invsqrt_newton_steps > unrolled:
        raise MicrocodeError(f"{program.filename}: unrolls {unrolled} Newton steps, the config asks for "
                             f"{fp.invsqrt_newton_steps}")
    imms = {"seed_shift": _NORM_TOP_BITS - fp.invsqrt_seed_bits,
            "seed_base": 1 << (fp.invsqrt_seed_bits - _NORM_RANGE_BITS)}
    imms.update({f"{NEWTON_ENABLE_PREFIX}{k}": int(k <= fp.invsqrt_newton_steps) for k in range(1, unrolled + 1)})
    return Binding(RMS_AGGREGATOR, 1, consts, {}, imms, {"seed": net.invsqrt_lut})


def mlgru(net, layer: int) -> Binding:
    """The MLGRU neurons of `layer` (d neurons)."""
    _check_registers(net)
    q, gf = net.layers[layer], net.fp.gate_frac_bits
    params, imms = _channel_norm(q.gate, "o")
    one = 1 << gf
    lb = np.asarray(q.lb, dtype=np.int64)
    if lb.size and (lb.min() < 0 or lb.max() > one):
        raise MicrocodeError(f"layer {layer}: forget-gate lower bounds must lie in [0, 2^{gf}] (f and 1 - f then fit "
                             "their registers without saturating, as golden.py assumes)")
    params["lb"] = lb
    for p in ("i", "f", "g"):
        proj = getattr(q, p)
        imms[f"m_{p}"], imms[f"k_{p}"] = int(proj.out_m), _shift(proj.out_k)
    imms.update(_sigmoid_imms(net), one=one)
    imms.update(sig_k_i=_sigmoid_index_shift(net, q.pre_frac["i"]), sig_k_f=_sigmoid_index_shift(net, q.pre_frac["f"]),
                sig_k_h=_sigmoid_index_shift(net, q.h_frac),
                i_k=_shift(gf + q.pre_frac["i"] - q.h_frac), gz_k=_shift(q.pre_frac["g"] + q.h_frac - q.gz_frac))
    return Binding(MLGRU, net.cfg.hidden_size, _consts(net, MLGRU), _ints(params), imms,
                   {"sigmoid": net.sigmoid_lut})


def glu(net, layer: int) -> Binding:
    """The GLU neurons of `layer` (intermediate_size neurons; u and v arrive on two ports)."""
    _check_registers(net)
    q = net.layers[layer]
    params, imms = _channel_norm(q.down_norm, "down")
    imms.update(_sigmoid_imms(net))
    imms.update(u_m=int(q.u_m), u_k=_shift(q.u_k), v_m=int(q.v_m), v_k=_shift(q.v_k),
                sig_k_u=_sigmoid_index_shift(net, q.u_frac), y_k=_shift(q.u_frac + q.v_frac - q.y_frac))
    return Binding(GLU, net.cfg.intermediate_size, _consts(net, GLU), _ints(params), imms,
                   {"sigmoid": net.sigmoid_lut})


def residual(net, layer: int) -> Binding:
    """The residual-stream neurons of `layer` (d neurons)."""
    _check_registers(net)
    q = net.layers[layer]
    attn, mlp = q.attn, q.mlp
    params = {"w1a_m": attn.inner_m, "gi_m": attn.gain_m["i"], "gf_m": attn.gain_m["f"], "gg_m": attn.gain_m["g"],
              "w1m_m": mlp.inner_m, "gate_m": mlp.gain_m["gate"]}
    imms = {"w1a_k": _shift(attn.inner_k), "ta_k": _shift(attn.t_k),
            "gi_k": _shift(attn.gain_k["i"]), "gf_k": _shift(attn.gain_k["f"]), "gg_k": _shift(attn.gain_k["g"]),
            "o_m": int(q.o.out_m), "o_k": _shift(q.o.out_k),
            "w1m_k": _shift(mlp.inner_k), "tm_k": _shift(mlp.t_k), "gate_k": _shift(mlp.gain_k["gate"]),
            "dn_m": int(q.down.out_m), "dn_k": _shift(q.down.out_k)}
    return Binding(RESIDUAL, net.cfg.hidden_size, _consts(net, RESIDUAL), _ints(params), imms, {})


def final_norm(net) -> Binding:
    """The final-norm neurons (d neurons) feeding the LM head."""
    _check_registers(net)
    params, imms = _channel_norm(net.head, "lm_head")
    return Binding(FINAL_NORM, net.cfg.hidden_size, _consts(net, FINAL_NORM), _ints(params), imms, {})


# --------------------------------------------------------------------------------------- NC models (Loihi 2)
def nc_support():
    """The lava-loihi names the NC models need, or None where lava-loihi is not usable.

    None unless `lava.utils.loihi.is_installed()` and every NC module imports (the public lava-nc wheel ships
    no `lava.magma.core.model.nc`). The NC models (processes/*/ncmodels.py) define their classes only when
    this returns the names, so Lava's model discovery never sees a stub NC model."""
    try:
        from lava.utils.loihi import is_installed
    except ImportError:
        return None
    if not is_installed():
        return None
    try:
        from lava.magma.core.decorator import implements, requires, tag
        from lava.magma.core.model.nc.model import AbstractNcProcessModel
        from lava.magma.core.model.nc.ports import NcInPort, NcOutPort
        from lava.magma.core.model.nc.type import LavaNcType
        from lava.magma.core.model.nc.var import NcVar
        from lava.magma.core.resources import Loihi2NeuroCore
        from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
    except ImportError:
        return None
    return types.SimpleNamespace(
        implements=implements, requires=requires, tag=tag, AbstractNcProcessModel=AbstractNcProcessModel,
        NcInPort=NcInPort, NcOutPort=NcOutPort, LavaNcType=LavaNcType, NcVar=NcVar,
        Loihi2NeuroCore=Loihi2NeuroCore, LoihiProtocol=LoihiProtocol)


def nc_allocate(model, net, binding: Binding, state: dict, in_ports, out_ports) -> None:
    """Allocate `binding`'s program on a neuro core through lava-loihi's `NetL2` (called by the NC models'
    `allocate`, only where lava-loihi is installed).

    It follows the shape of public microcoded NC models: the program and its per-process values (immediates,
    LUTs) with `net.neurons_cfg.allocate_ucode`, the per-neuron values (parameters and the initial state
    registers; `state` maps Var-backed registers to the model's Vars) with `net.neurons.allocate_ucode`, and
    one output axon group per out port with the port's payload width. Untested here (no lava-loihi), and the
    program file is this project's `.ucode`, which needs translating to Intel's format first (ISA.md)."""
    program = binding.assembled()
    registers = {name: np.full(binding.n, decl.value, dtype=np.int32) for name, decl in program.state.items()}
    registers.update(state)
    per_process = {**binding.imms, **{f"lut_{k}": np.asarray(v, dtype=np.int32) for k, v in binding.luts.items()}}
    per_neuron = {**{k: np.asarray(v, dtype=np.int32) for k, v in binding.params.items()}, **registers}
    cfg = net.neurons_cfg.allocate_ucode(shape=(1,), ucode=str(binding.path), **per_process)
    neurons = net.neurons.allocate_ucode(shape=(binding.n,), **per_neuron)
    neurons.connect(cfg)
    for port in in_ports:
        getattr(model, port).connect(neurons)
    for port in out_ports:
        axons = net.ax_out.allocate(shape=(binding.n,), num_message_bits=program.out_ports[port].bits)
        neurons.connect(axons)
        axons.connect(getattr(model, port))
