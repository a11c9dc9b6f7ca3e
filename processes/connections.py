"""The model's connections are Lava's own ``Dense`` processes (docs/graph.md, "Connections").

Every connection carries the token lane (events.py) as one more synapse of weight 1 from the sender's lane to the
receiver's lane, so the lane arrives in the same step as the data.

Ternary weights through Lava's bit-accurate Dense model (``PyDenseModelBitAcc``, tags ``bit_accurate_loihi``,
``fixed_pt``): that model keeps 8-bit weight mantissas and truncates low bits of mixed-sign matrices, which turns
``W`` in {-1, 0, +1} into {-2, 0, 0}. Stored as ``2 W`` with ``weight_exp = -1`` the sums are exact: ``2 W a`` is
even and the final right shift by one is exact (tests/test_connections.py proves it on every matrix of a random
network). Aggregator fan-in (all ones, d -> 1) and broadcast (1 -> d) are Dense connections of the same form.

``PyTernaryDenseModel`` is a faster Python model of Lava's ``Dense`` for the same integers: weights in
{-2, 0, 2} (ternary) go through the packed 2-bit kernel of ternary.py, others through an exact int64 product.
Spikes of up to 16 bits (act_bits) take the kernel's int8 or int16 path. It equals Lava's bit-accurate model
on every weight that model keeps as given (ternary 2W; mixed-sign weights are even in -256..254, Lava drops their
lowest bit) wherever that model's int32 accumulator does not wrap (tested), and saturates to the int32 range where
it would. A run config selects it (``exception_proc_model_map={Dense: ...}``).
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.dense.process import Dense

#: Ternary weights are stored doubled with this weight exponent: exact through Lava's 8-bit weight mantissas.
TERNARY_WEIGHT_SCALE = 2
TERNARY_WEIGHT_EXP = -1
#: Payload bits of the graded messages: spikes into a ternary matrix (act_bits at most 8 here) and the 24-bit
#: messages of the norms (u^2 and inverse RMS).
SPIKE_MESSAGE_BITS = 8
NORM_MESSAGE_BITS = 24
_INT32, _INT16, _INT8 = np.iinfo(np.int32), np.iinfo(np.int16), np.iinfo(np.int8)


def _with_lane(w: np.ndarray, lane_weight) -> np.ndarray:
    """``w`` [n_out, n_in] with one more row and column: the lane synapse at the corner."""
    n_out, n_in = w.shape
    out = np.zeros((n_out + 1, n_in + 1), dtype=w.dtype)
    out[:n_out, :n_in] = w
    out[n_out, n_in] = lane_weight
    return out


def ternary_connection(w, *, scale: float | None = None, message_bits: int = SPIKE_MESSAGE_BITS,
                       name: str | None = None) -> Dense:
    """A ternary matrix ``w`` [n_out, n_in] as Lava's Dense, with the token lane.

    Fixed point (``scale`` None): weights ``2 w``, ``weight_exp = -1``: out = w a exactly. floating_pt
    (``scale`` = 1/s of the BitLinear): float weights ``scale * w``, out = (w a) / s."""
    w = np.asarray(w)
    if w.ndim != 2 or not np.isin(w, (-1, 0, 1)).all():
        raise ValueError(f"{name or 'connection'}: a ternary matrix must be 2-D with entries -1, 0, +1")
    if scale is None:
        # int8 holds 2w: the initial value stays in this process (and every forked worker) for the whole run
        return Dense(weights=_with_lane(TERNARY_WEIGHT_SCALE * w.astype(np.int8), TERNARY_WEIGHT_SCALE),
                     weight_exp=TERNARY_WEIGHT_EXP, num_message_bits=message_bits, name=name)
    return Dense(weights=_with_lane(scale * w.astype(float), 1.0), num_message_bits=message_bits, name=name)


def fan_in(n: int, *, floating: bool = False, name: str | None = None) -> Dense:
    """n channel neurons -> one aggregator neuron, weights all one: the dendrite sums u_j^2."""
    return ternary_connection(np.ones((1, n), dtype=np.int8), scale=1.0 if floating else None,
                              message_bits=NORM_MESSAGE_BITS, name=name)


def broadcast(n: int, *, floating: bool = False, name: str | None = None) -> Dense:
    """One aggregator neuron -> n channel neurons, weights all one: every channel receives the inverse RMS."""
    return ternary_connection(np.ones((n, 1), dtype=np.int8), scale=1.0 if floating else None,
                              message_bits=NORM_MESSAGE_BITS, name=name)


def identity(n: int, *, floating: bool = False, message_bits: int = NORM_MESSAGE_BITS,
             name: str | None = None) -> Dense:
    """n -> n one-to-one synapses (one step of delay on a neuron-to-neuron link)."""
    return ternary_connection(np.eye(n, dtype=np.int8), scale=1.0 if floating else None,
                              message_bits=message_bits, name=name)


def connection_ternary(weights: np.ndarray) -> np.ndarray | None:
    """The ternary matrix (without the lane) a fixed-point Dense of this module holds, or None."""
    w = np.asarray(weights)
    if not np.isin(w, (-TERNARY_WEIGHT_SCALE, 0, TERNARY_WEIGHT_SCALE)).all():
        return None
    return (w[:-1, :-1] // TERNARY_WEIGHT_SCALE).astype(np.int8)


@implements(proc=Dense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "packed_ternary")
class PyTernaryDenseModel(PyLoihiProcessModel):
    """Lava's Dense, computed exactly with the packed 2-bit ternary kernel (see the module docstring).

    Same delay as Lava's: the step's output is the previous step's accumulation."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    # int16 holds every weight Lava's 8-bit Dense takes (-256..255, lava.utils.weightutils.clip_weights), at half
    # of int32's memory: the LM head's copy in this worker is V x d
    weights: np.ndarray = LavaPyType(np.ndarray, np.int16, precision=8)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._kernel = None

    def _prepare(self):
        from lava_matmulfree.model.ternary import TernaryMatrix

        w = np.asarray(self.weights)
        self._exp = int(self.proc_params.get("weight_exp", 0))
        ternary = connection_ternary(w) if self._exp == TERNARY_WEIGHT_EXP else None
        # the data part through the packed kernel when the spikes fit int8; the lane (and anything else) exactly
        self._kernel = (TernaryMatrix(ternary), w[:, -1].astype(np.int64)) if ternary is not None else False

    def run_spk(self):
        if self._kernel is None:
            self._prepare()
        self.a_out.send(self.a_buff)
        s = self.s_in.recv().astype(np.int64)
        if not s.any():
            self.a_buff = np.zeros_like(self.a_buff)
            return
        peak = np.abs(s[:-1]).max()
        if self._kernel and peak <= _INT16.max:
            tm, lane_col = self._kernel
            spikes = s[:-1].astype(np.int8 if peak <= _INT8.max else np.int16)  # act_bits up to 16
            acc = np.empty(self.weights.shape[0], dtype=np.int64)
            acc[:-1] = tm.matvec(spikes).astype(np.int64) * TERNARY_WEIGHT_SCALE
            acc[-1] = 0
            acc += lane_col * s[-1]
        else:  # wide spikes or general weights: exact, without keeping a 64-bit copy of the matrix
            acc = np.asarray(self.weights).astype(np.int64) @ s
        acc = acc << self._exp if self._exp > 0 else acc >> -self._exp
        self.a_buff = np.clip(acc, _INT32.min, _INT32.max).astype(np.int32)
