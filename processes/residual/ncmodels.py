"""NC model of the residual-stream neurons (Loihi 2): d neurons running microcode/residual.ucode.

The program is this project's open stand-in microcode; Intel's format is not public, so running on a chip
needs the program translated to Intel's microcode format and re-verified. The class exists only where
lava-loihi is installed (`lava.utils.loihi.is_installed()`), so model discovery elsewhere finds only the
Python models. In full: microcode/ISA.md, "The neuron programs of the model"; what the NC models share:
processes/ncmodel.py.
"""
from __future__ import annotations

from lava_matmulfree.microcode import bindings
from lava_matmulfree.processes import ncmodel
from lava_matmulfree.processes.residual.process import Residual

PROGRAM = Residual.PROGRAM
#: The neuron program this NC model carries.
UCODE = bindings.program_path(PROGRAM)

_nc = bindings.nc_support()
#: True where lava-loihi is installed and the NC model below is defined.
NC_AVAILABLE = _nc is not None

if NC_AVAILABLE:

    @_nc.implements(proc=Residual, protocol=_nc.LoihiProtocol)
    @_nc.requires(_nc.Loihi2NeuroCore)
    @_nc.tag("fixed_pt")
    @ncmodel.nc_types(_nc, Residual)
    class NcResidualModel(ncmodel.nc_base(_nc)):
        """Runs residual.ucode (see the module docstring)."""
