"""NC model of the GLU neurons (Loihi 2): intermediate_size neurons running microcode/glu.ucode.

The program is this project's open microcode (microcode/ISA.md), a documented stand-in within Loihi 2's
published limits: Intel's own microcode format and instruction set are not public, so running this model on
a chip needs the program translated to Intel's microcode format (by hand or by a translator written with
lava-loihi) and re-verified bit for bit against microcode/interpreter.py, which the Python model runs and
tests/test_microcode_neurons.py checks against the golden model.

The class exists only where Intel's lava-loihi is installed (`lava.utils.loihi.is_installed()`) and its NC
modules import (`bindings.nc_support()`): anywhere else this module defines no model at all, so Lava's model
discovery, which executes every module next to process.py, finds only the Python models.

Open point: the process receives u and v on one port of 2 I values; on the chip neuron j has two
dendrites (u_in, v_in) fed by gate_proj rows j and I + j.
"""
from __future__ import annotations

import numpy as np

from lava_matmulfree.microcode import bindings, isa, load_program

PROGRAM = bindings.GLU
#: The neuron program this NC model carries.
UCODE = bindings.program_path(PROGRAM)
#: Payload widths of the program's output ports (the default config's; allocate() uses the network's).
PORT_BITS = {port: decl.bits for port, decl in load_program(PROGRAM).out_ports.items()}

_nc = bindings.nc_support()
#: True where lava-loihi is installed and the NC model below is defined.
NC_AVAILABLE = _nc is not None

if NC_AVAILABLE:
    from lava_matmulfree.processes.glu.process import Glu

    @_nc.implements(proc=Glu, protocol=_nc.LoihiProtocol)
    @_nc.requires(_nc.Loihi2NeuroCore)
    @_nc.tag("fixed_pt")
    class NcGluModel(_nc.AbstractNcProcessModel):
        """Runs glu.ucode (see the module docstring)."""

        acc_uv: _nc.NcInPort = _nc.LavaNcType(_nc.NcInPort, np.int32, precision=isa.REGISTER_BITS)
        r_in: _nc.NcInPort = _nc.LavaNcType(_nc.NcInPort, np.int32, precision=isa.REGISTER_BITS)
        sq_out: _nc.NcOutPort = _nc.LavaNcType(_nc.NcOutPort, np.int32, precision=PORT_BITS["sq_out"])
        a_out: _nc.NcOutPort = _nc.LavaNcType(_nc.NcOutPort, np.int32, precision=PORT_BITS["a_out"])
        y: _nc.NcVar = _nc.LavaNcType(_nc.NcVar, np.int32, precision=isa.REGISTER_BITS)

        def allocate(self, net):
            binding = bindings.glu(self.proc_params["net"], self.proc_params["layer"])
            bindings.nc_allocate(self, net, binding, state={},
                                 in_ports=("acc_uv", "r_in"),
                                 out_ports=("sq_out", "a_out"))
