import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.microcode import bindings
from lava_matmulfree.processes.rms_aggregator.process import RmsAggregator

I64 = np.int64


@implements(proc=RmsAggregator, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRmsAggregatorFixed(PyLoihiProcessModel):
    """Runs microcode/rms_aggregator.ucode: the dendrite (all-ones synapses into one neuron) sums the u^2
    messages, the program saturates the sum and computes the inverse RMS."""

    sq_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    r_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    sum_sq: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    inv_rms: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.machine = bindings.rms_aggregator(proc_params["net"]).machine()

    def run_spk(self):
        self.r_out.send(self.inv_rms.copy())
        dendrite = np.sum(self.sq_in.recv(), dtype=I64)  # exact; the program's recv saturates it to 24 bits
        res = self.machine.step({"sq_in": dendrite})
        self.sum_sq[:] = res.scratch["s"]
        self.inv_rms[:] = res.outputs["r_out"]


@implements(proc=RmsAggregator, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyRmsAggregatorFloat(PyLoihiProcessModel):
    sq_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    r_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    sum_sq: np.ndarray = LavaPyType(np.ndarray, float)
    inv_rms: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self):
        self.r_out.send(self.inv_rms.copy())
        self.sum_sq[:] = np.sum(self.sq_in.recv())
        self.inv_rms[:] = 1.0 / np.sqrt(self.sum_sq / self.proc_params["n"] + self.proc_params["eps_const"])
