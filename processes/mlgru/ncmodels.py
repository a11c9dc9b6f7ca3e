"""NC model of the MLGRU neurons (Loihi 2): d neurons running microcode/mlgru.ucode, h in their state.

The program is this project's open stand-in microcode; Intel's format is not public, so running on a chip
needs the program translated to Intel's microcode format and re-verified. The class exists only where
lava-loihi is installed (`lava.utils.loihi.is_installed()`), so model discovery elsewhere finds only the
Python models. In full: microcode/ISA.md, "The neuron programs of the model"; what the NC models share:
processes/ncmodel.py.
"""
from __future__ import annotations

from lava_matmulfree.microcode import bindings
from lava_matmulfree.processes import ncmodel
from lava_matmulfree.processes.mlgru.process import Mlgru

PROGRAM = Mlgru.PROGRAM
#: The neuron program this NC model carries.
UCODE = bindings.program_path(PROGRAM)

_nc = bindings.nc_support()
#: True where lava-loihi is installed and the NC model below is defined.
NC_AVAILABLE = _nc is not None

if NC_AVAILABLE:

    @_nc.implements(proc=Mlgru, protocol=_nc.LoihiProtocol)
    @_nc.requires(_nc.Loihi2NeuroCore)
    @_nc.tag("fixed_pt")
    @ncmodel.nc_types(_nc, Mlgru, state=("h",))
    class NcMlgruModel(ncmodel.nc_base(_nc)):
        """Runs mlgru.ucode (see the module docstring); h, the recurrent state, is a Var."""
