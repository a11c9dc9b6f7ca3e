"""NC model of the RMS aggregator (Loihi 2): one neuron running microcode/rms_aggregator.ucode.

The program is this project's open microcode (microcode/ISA.md), a documented stand-in within Loihi 2's
published limits: Intel's own microcode format and instruction set are not public, so running this model on
a chip needs the program translated to Intel's microcode format (by hand or by a translator written with
lava-loihi) and re-verified bit for bit against microcode/interpreter.py, which the Python model runs and
tests/test_microcode_neurons.py checks against the golden model.

The class exists only where Intel's lava-loihi is installed (`lava.utils.loihi.is_installed()`) and its NC
modules import (`bindings.nc_support()`): anywhere else this module defines no model at all, so Lava's model
discovery, which executes every module next to process.py, finds only the Python models.

Open point: the process receives the n messages u_j^2 on one port; on the chip their sum is the
dendrite of the single neuron, i.e. an all-ones n -> 1 synapse in front of it, still to be allocated.
"""
from __future__ import annotations

import numpy as np

from lava_matmulfree.microcode import bindings, isa, load_program

PROGRAM = bindings.RMS_AGGREGATOR
#: The neuron program this NC model carries.
UCODE = bindings.program_path(PROGRAM)
#: Payload widths of the program's output ports (the default config's; allocate() uses the network's).
PORT_BITS = {port: decl.bits for port, decl in load_program(PROGRAM).out_ports.items()}

_nc = bindings.nc_support()
#: True where lava-loihi is installed and the NC model below is defined.
NC_AVAILABLE = _nc is not None

if NC_AVAILABLE:
    from lava_matmulfree.processes.rms_aggregator.process import RmsAggregator

    @_nc.implements(proc=RmsAggregator, protocol=_nc.LoihiProtocol)
    @_nc.requires(_nc.Loihi2NeuroCore)
    @_nc.tag("fixed_pt")
    class NcRmsAggregatorModel(_nc.AbstractNcProcessModel):
        """Runs rms_aggregator.ucode (see the module docstring)."""

        sq_in: _nc.NcInPort = _nc.LavaNcType(_nc.NcInPort, np.int32, precision=isa.REGISTER_BITS)
        r_out: _nc.NcOutPort = _nc.LavaNcType(_nc.NcOutPort, np.int32, precision=PORT_BITS["r_out"])
        sum_sq: _nc.NcVar = _nc.LavaNcType(_nc.NcVar, np.int32, precision=isa.REGISTER_BITS)
        inv_rms: _nc.NcVar = _nc.LavaNcType(_nc.NcVar, np.int32, precision=isa.REGISTER_BITS)

        def allocate(self, net):
            binding = bindings.rms_aggregator(self.proc_params["net"])
            bindings.nc_allocate(self, net, binding, state={},
                                 in_ports=("sq_in",),
                                 out_ports=("r_out",))
