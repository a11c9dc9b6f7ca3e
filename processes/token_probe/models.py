import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import events
from lava_matmulfree.processes.token_probe.process import PortProbe, VarProbe


class AbstractPyPortProbe(PyLoihiProcessModel):
    """Keeps the messages with the lane set (undecorated base: lava's tags add up over inheritance)."""

    a_in = None
    records = None
    count: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def run_spk(self):
        data, present = events.split(self.a_in.recv())
        k = int(self.count[0])
        if present and k < self.records.shape[0]:
            self.records[k] = data
            self.count[0] = k + 1


@implements(proc=PortProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyPortProbeFixed(AbstractPyPortProbe):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    records: np.ndarray = LavaPyType(np.ndarray, np.int32)


@implements(proc=PortProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyPortProbeFloat(AbstractPyPortProbe):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    records: np.ndarray = LavaPyType(np.ndarray, float)


class AbstractPyVarProbe(PyLoihiProcessModel):
    """Reads the Var in the management phase of the steps a token is due (Lava's RefPort, as lava.proc.io.sink.Read
    does at a fixed interval)."""

    lane_in = None
    var_ref = None
    records = None
    count: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.due: list[int] = []  # the steps at which tokens in flight reach the Var (a delay line)

    def run_spk(self):
        _, present = events.split(self.lane_in.recv())
        if present:
            self.due.append(self.time_step + self.proc_params["latency"])

    def post_guard(self):
        return bool(self.due) and self.due[0] == self.time_step

    def run_post_mgmt(self):
        self.due.pop(0)
        k = int(self.count[0])
        if k < self.records.shape[0]:
            self.records[k] = self.var_ref.read()
            self.count[0] = k + 1


@implements(proc=VarProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyVarProbeFixed(AbstractPyVarProbe):
    lane_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    var_ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32)
    records: np.ndarray = LavaPyType(np.ndarray, np.int32)


@implements(proc=VarProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyVarProbeFloat(AbstractPyVarProbe):
    lane_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    var_ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)
    records: np.ndarray = LavaPyType(np.ndarray, float)
