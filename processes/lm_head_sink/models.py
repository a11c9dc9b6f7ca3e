import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.processes.lm_head_sink.process import LmHeadSink
from lava_matmulfree.sampling import Sampler

I32 = np.int32


class AbstractPyLmHeadSink(PyLoihiProcessModel):
    """Records logits and samples the next token (undecorated base; see embedding/models.py)."""

    logits_in = None
    token_out = None
    tokens = None
    logits = None
    DTYPE = None

    def __init__(self, proc_params):
        super().__init__(proc_params)
        p = proc_params
        self.schedule, self.scale = p["schedule"], self.logit_scale(p)
        self.sampler = Sampler(p["temperature"], p["top_k"], p["seed"])
        self.record_logits = p["record_logits"]
        self.out = np.zeros(1, dtype=self.DTYPE)

    @staticmethod
    def logit_scale(p) -> float:
        raise NotImplementedError

    def run_spk(self):
        self.token_out.send(self.out)
        logits = self.logits_in.recv()
        k = self.schedule.token_at(self.time_step, self.schedule.sink_offset)
        if k < 0:
            return
        if self.record_logits:
            self.logits[k] = logits
        P = self.schedule.prompt_len
        if k >= P - 1:
            # greedy on the integers; sampling on the real-valued logits (host-side arithmetic)
            tok = self.sampler(logits.astype(np.float64) * self.scale)
            self.tokens[k - (P - 1)] = tok
            self.out = np.array([tok], dtype=self.DTYPE)


@implements(proc=LmHeadSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLmHeadSinkFixed(AbstractPyLmHeadSink):
    logits_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    token_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    tokens: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    logits: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    DTYPE = I32

    @staticmethod
    def logit_scale(p) -> float:
        return p["net"].logit_scale  # integer logits in units of logit_scale


@implements(proc=LmHeadSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyLmHeadSinkFloat(AbstractPyLmHeadSink):
    """Float logits from the float graph; the same sampler on them."""

    logits_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    token_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    tokens: np.ndarray = LavaPyType(np.ndarray, float)
    logits: np.ndarray = LavaPyType(np.ndarray, float)
    DTYPE = float

    @staticmethod
    def logit_scale(p) -> float:
        return 1.0
