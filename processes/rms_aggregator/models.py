import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.golden import GoldenModel
from lava_matmulfree.processes.rms_aggregator.process import RmsAggregator


@implements(proc=RmsAggregator, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRmsAggregatorFixed(PyLoihiProcessModel):
    sq_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    r_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    sum_sq: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    inv_rms: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.arith = GoldenModel(proc_params["net"])
        self.stage = proc_params["stage"]

    def run_spk(self):
        self.r_out.send(self.inv_rms.copy())
        self.sum_sq[:] = self.arith.aggregate(self.sq_in.recv().astype(np.int64), self.stage)
        self.inv_rms[:] = self.arith.inv_rms(self.sum_sq.astype(np.int64), self.stage)
