"""NC model of the MLGRU neurons (Loihi 2): d neurons running microcode/mlgru.ucode, h in their state.

The program is this project's open stand-in microcode; Intel's format is not public, so running on a chip
needs the program translated to Intel's microcode format and re-verified. The class exists only where
lava-loihi is installed (`lava.utils.loihi.is_installed()`), so model discovery elsewhere finds only the
Python models. In full: microcode/ISA.md, "The neuron programs of the model".
"""
from __future__ import annotations

import numpy as np

from lava_matmulfree.microcode import bindings, isa, load_program

PROGRAM = bindings.MLGRU
#: The neuron program this NC model carries.
UCODE = bindings.program_path(PROGRAM)
#: Payload widths of the program's output ports (the default config's; allocate() uses the network's).
PORT_BITS = {port: decl.bits for port, decl in load_program(PROGRAM).out_ports.items()}

_nc = bindings.nc_support()
#: True where lava-loihi is installed and the NC model below is defined.
NC_AVAILABLE = _nc is not None

if NC_AVAILABLE:
    from lava_matmulfree.processes.neuron import binding_of
    from lava_matmulfree.processes.mlgru.process import Mlgru

    @_nc.implements(proc=Mlgru, protocol=_nc.LoihiProtocol)
    @_nc.requires(_nc.Loihi2NeuroCore)
    @_nc.tag("fixed_pt")
    class NcMlgruModel(_nc.AbstractNcProcessModel):
        """Runs mlgru.ucode (see the module docstring)."""

        acc_i: _nc.NcInPort = _nc.LavaNcType(_nc.NcInPort, np.int32, precision=isa.REGISTER_BITS)
        acc_f: _nc.NcInPort = _nc.LavaNcType(_nc.NcInPort, np.int32, precision=isa.REGISTER_BITS)
        acc_g: _nc.NcInPort = _nc.LavaNcType(_nc.NcInPort, np.int32, precision=isa.REGISTER_BITS)
        r_in: _nc.NcInPort = _nc.LavaNcType(_nc.NcInPort, np.int32, precision=isa.REGISTER_BITS)
        sq_out: _nc.NcOutPort = _nc.LavaNcType(_nc.NcOutPort, np.int32, precision=PORT_BITS["sq_out"])
        a_out: _nc.NcOutPort = _nc.LavaNcType(_nc.NcOutPort, np.int32, precision=PORT_BITS["a_out"])
        h: _nc.NcVar = _nc.LavaNcType(_nc.NcVar, np.int32, precision=isa.REGISTER_BITS)

        def allocate(self, net):
            binding = binding_of(self, Mlgru)
            bindings.nc_allocate(self, net, binding, state={"h": self.h},
                                 in_ports=("acc_i", "acc_f", "acc_g", "r_in"),
                                 out_ports=("sq_out", "a_out"))
