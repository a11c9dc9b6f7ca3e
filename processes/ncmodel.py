"""What the NC models (Loihi 2) of the custom neuron processes share: each carries its process's program of
microcode/ and allocates it on a neuro core with the values bound from the process's Vars.

An NC model exists only where lava-loihi is installed, so its names (``AbstractNcProcessModel``, ``LavaNcType``,
...) come from ``bindings.nc_support()`` when a processes/<name>/ncmodels.py is imported; the base and the types
below are made from those names on demand, and no NC class exists elsewhere. As the Python models' ``lava_types``,
``nc_types`` gives an NC model the LavaNcType of every port of its program (and of the Vars it exposes), so a
process folder's ncmodels.py holds only its decorated class. In full: microcode/ISA.md, "The neuron programs of
the model".
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from lava_matmulfree.microcode import bindings, isa, load_program
from lava_matmulfree.processes.neuron import binding_of, program_ports, program_vars


@lru_cache(maxsize=None)
def _base(nc_process_model):
    class AbstractNcMicrocodedModel(nc_process_model):
        """Allocates the program of ``PROCESS`` (set by ``nc_types``) with the values of the model's Vars;
        ``STATE`` names the state registers backed by a Var (their current values go to the chip)."""

        PROCESS = None
        IN_PORTS: tuple = ()
        OUT_PORTS: tuple = ()
        STATE: tuple = ()

        def allocate(self, net):
            bindings.nc_allocate(self, net, binding_of(self, self.PROCESS),
                                 state={s: getattr(self, s) for s in self.STATE},
                                 in_ports=self.IN_PORTS, out_ports=self.OUT_PORTS)

    return AbstractNcMicrocodedModel


def nc_base(nc):
    """The undecorated base of the NC models, on lava-loihi's ``nc.AbstractNcProcessModel``."""
    return _base(nc.AbstractNcProcessModel)


def nc_types(nc, process_cls, state: tuple = ()):
    """Class decorator: the LavaNcType of every port of ``process_cls``'s program (inputs at register width,
    outputs at their payload width, the default config's; allocate() uses the network's) and of every Var the
    process declares: the program's (allocate() binds them) and the probes'. ``state``: the state registers whose
    current values go to the chip."""

    def decorate(model_cls):
        program = load_program(process_cls.PROGRAM)
        ins, outs = program_ports(program)
        for p in ins:
            setattr(model_cls, p, nc.LavaNcType(nc.NcInPort, np.int32, precision=isa.REGISTER_BITS))
        for p in outs:
            setattr(model_cls, p, nc.LavaNcType(nc.NcOutPort, np.int32, precision=program.out_ports[p].bits))
        for v in (*program_vars(program), *process_cls.PROBES):
            setattr(model_cls, v, nc.LavaNcType(nc.NcVar, np.int32, precision=isa.REGISTER_BITS))
        model_cls.PROCESS, model_cls.IN_PORTS, model_cls.OUT_PORTS = process_cls, ins, outs
        model_cls.STATE = tuple(state)
        return model_cls

    return decorate
