import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.model.golden_fast import FastGoldenModel
from lava_matmulfree.processes.activity import stack_layout
from lava_matmulfree.processes.fused import AbstractFusedLayers
from lava_matmulfree.processes.layer_stack.process import STACK_VARS, MMFreeStack
from lava_matmulfree.processes.precision import FIXED_BITS, I32, py_types


@implements(proc=MMFreeStack, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
@py_types(I32, precision=FIXED_BITS)
class PyFusedStackFixed(AbstractFusedLayers):
    """golden.py's layers, one after the other; each layer's probe points in a row of STACK_VARS. The counting
    twin (processes/activity.py) counts every layer as the golden model does (``stack_layout``)."""

    VARS = STACK_VARS
    COUNTS = False

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.arith = FastGoldenModel(self.net)

    def layers(self, x):
        g, x = self.arith, x.astype(np.int64)[None]
        g.probes = {}
        self.count_start()
        for l, q in enumerate(self.net.layers):
            self.x[l] = x[0]
            x, h = g.layer(q, x, self.h[l].astype(np.int64), l)
            self.h[l] = h
            self.r[l] = g.probes[f"l{l}.r"][0][0]
        self.count_add(*stack_layout(len(self.net.layers)))
        return x[0]
