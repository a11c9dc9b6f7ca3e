"""NC model of the residual-stream neurons (Loihi 2): d neurons running microcode/residual.ucode.

The program is this project's open stand-in microcode; Intel's format is not public, so running on a chip
needs the program translated to Intel's microcode format and re-verified. The class exists only where
lava-loihi is installed (`lava.utils.loihi.is_installed()`), so model discovery elsewhere finds only the
Python models. In full: microcode/ISA.md, "The neuron programs of the model".
"""
from __future__ import annotations

import numpy as np

from lava_matmulfree.microcode import bindings, isa, load_program

PROGRAM = bindings.RESIDUAL
#: The neuron program this NC model carries.
UCODE = bindings.program_path(PROGRAM)
#: Payload widths of the program's output ports (the default config's; allocate() uses the network's).
PORT_BITS = {port: decl.bits for port, decl in load_program(PROGRAM).out_ports.items()}

_nc = bindings.nc_support()
#: True where lava-loihi is installed and the NC model below is defined.
NC_AVAILABLE = _nc is not None

if NC_AVAILABLE:
    from lava_matmulfree.processes.neuron import binding_of
    from lava_matmulfree.processes.residual.process import Residual

    @_nc.implements(proc=Residual, protocol=_nc.LoihiProtocol)
    @_nc.requires(_nc.Loihi2NeuroCore)
    @_nc.tag("fixed_pt")
    class NcResidualModel(_nc.AbstractNcProcessModel):
        """Runs residual.ucode (see the module docstring)."""

        x_in: _nc.NcInPort = _nc.LavaNcType(_nc.NcInPort, np.int32, precision=isa.REGISTER_BITS)
        r_attn: _nc.NcInPort = _nc.LavaNcType(_nc.NcInPort, np.int32, precision=isa.REGISTER_BITS)
        o_in: _nc.NcInPort = _nc.LavaNcType(_nc.NcInPort, np.int32, precision=isa.REGISTER_BITS)
        r_mlp: _nc.NcInPort = _nc.LavaNcType(_nc.NcInPort, np.int32, precision=isa.REGISTER_BITS)
        down_in: _nc.NcInPort = _nc.LavaNcType(_nc.NcInPort, np.int32, precision=isa.REGISTER_BITS)
        sq_attn: _nc.NcOutPort = _nc.LavaNcType(_nc.NcOutPort, np.int32, precision=PORT_BITS["sq_attn"])
        a_i: _nc.NcOutPort = _nc.LavaNcType(_nc.NcOutPort, np.int32, precision=PORT_BITS["a_i"])
        a_f: _nc.NcOutPort = _nc.LavaNcType(_nc.NcOutPort, np.int32, precision=PORT_BITS["a_f"])
        a_g: _nc.NcOutPort = _nc.LavaNcType(_nc.NcOutPort, np.int32, precision=PORT_BITS["a_g"])
        sq_mlp: _nc.NcOutPort = _nc.LavaNcType(_nc.NcOutPort, np.int32, precision=PORT_BITS["sq_mlp"])
        a_gate: _nc.NcOutPort = _nc.LavaNcType(_nc.NcOutPort, np.int32, precision=PORT_BITS["a_gate"])
        x_out: _nc.NcOutPort = _nc.LavaNcType(_nc.NcOutPort, np.int32, precision=PORT_BITS["x_out"])
        x: _nc.NcVar = _nc.LavaNcType(_nc.NcVar, np.int32, precision=isa.REGISTER_BITS)
        r: _nc.NcVar = _nc.LavaNcType(_nc.NcVar, np.int32, precision=isa.REGISTER_BITS)

        def allocate(self, net):
            binding = binding_of(self, Residual)
            bindings.nc_allocate(self, net, binding, state={},
                                 in_ports=("x_in", "r_attn", "o_in", "r_mlp", "down_in"),
                                 out_ports=("sq_attn", "a_i", "a_f", "a_g", "sq_mlp", "a_gate", "x_out"))
