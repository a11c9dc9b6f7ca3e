import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.golden import synapses
from lava_matmulfree.processes.ternary_synapses.process import TernarySynapses


@implements(proc=TernarySynapses, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyTernarySynapsesFixed(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=8)
    acc_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    weights: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=2)

    def run_spk(self):
        self.acc_out.send(synapses(self.weights, self.a_in.recv()).astype(np.int32))


@implements(proc=TernarySynapses, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyTernarySynapsesFloat(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    acc_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    weights: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=2)

    def run_spk(self):
        a = self.a_in.recv()
        self.acc_out.send(self.proc_params["scale"] * (self.weights.astype(float) @ a))
