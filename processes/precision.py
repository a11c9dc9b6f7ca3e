"""The two precisions of the Python models (docs/graph.md): ``fixed_pt`` (int32 messages holding 24-bit values;
tagged ``bit_accurate_loihi`` too, Lava's tag for bit-exact models) and ``floating_pt`` (float). A process with a
model at each precision keeps what both share in one undecorated base (Lava's tags add up over inheritance, so
only the precision subclasses are decorated, as in lava's own Dense) and names there the ports and Vars whose
type depends on the precision; ``py_types`` declares them on a subclass.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.model.py.ports import PyInPort, PyOutPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType

from lava_matmulfree.microcode import isa

I32 = np.int32
#: Bits of the fixed-point messages and Vars: the neurons' registers.
FIXED_BITS = isa.REGISTER_BITS


def py_types(dtype, precision: int | None = None):
    """Class decorator: the LavaPyType (``dtype``, ``precision``) of every port and Var the model's base names in
    ``IN_PORTS``, ``OUT_PORTS``, ``REF_PORTS`` and ``VARS`` (Lava's builder looks them up by name on the model
    class); ``DTYPE`` is set to ``dtype`` for the messages the model makes."""

    def decorate(model_cls):
        kinds = {"IN_PORTS": PyInPort.VEC_DENSE, "OUT_PORTS": PyOutPort.VEC_DENSE, "REF_PORTS": PyRefPort.VEC_DENSE,
                 "VARS": np.ndarray}
        for names, kind in kinds.items():
            for name in getattr(model_cls, names, ()):
                setattr(model_cls, name, LavaPyType(kind, dtype, precision=precision))
        model_cls.DTYPE = dtype
        return model_cls

    return decorate

