import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import events
from lava_matmulfree.processes.precision import py_types
from lava_matmulfree.processes.token_probe.process import PortProbe, VarProbe


class AbstractPyTokenProbe(PyLoihiProcessModel):
    """What both probes share: ``records`` (typed at the precision of what they record) filled row by row,
    ``count`` the rows filled (undecorated; see processes/precision.py)."""

    VARS = ("records",)
    count: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def full(self) -> bool:
        return int(self.count[0]) >= self.records.shape[0]

    def record(self, value) -> None:
        """Keep ``value`` as the next row (callers check ``full()`` first)."""
        k = int(self.count[0])
        self.records[k] = value
        self.count[0] = k + 1


class AbstractPyPortProbe(AbstractPyTokenProbe):
    """Keeps the messages with the lane set."""

    IN_PORTS = ("a_in",)

    def run_spk(self):
        data, present = events.split(self.a_in.recv())
        if present and not self.full():
            self.record(data)


@implements(proc=PortProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
@py_types(np.int32)
class PyPortProbeFixed(AbstractPyPortProbe):
    """Records integer messages."""


@implements(proc=PortProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
@py_types(float)
class PyPortProbeFloat(AbstractPyPortProbe):
    """Records float messages."""


class AbstractPyVarProbe(AbstractPyTokenProbe):
    """Reads the Var in the management phase of the steps a token is due (Lava's RefPort, as lava.proc.io.sink.Read
    does at a fixed interval)."""

    IN_PORTS, REF_PORTS = ("lane_in",), ("var_ref",)

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
        if not self.full():  # a full probe reads nothing more
            self.record(self.var_ref.read())


@implements(proc=VarProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
@py_types(np.int32)
class PyVarProbeFixed(AbstractPyVarProbe):
    """Records an integer Var."""


@implements(proc=VarProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
@py_types(float)
class PyVarProbeFloat(AbstractPyVarProbe):
    """Records a float Var."""
