"""The model's connections are Lava's own ``Dense`` processes (docs/graph.md, "Lava's conventions").

Every connection carries the token lane (events.py) as one more synapse from the sender's lane to the receiver's
lane, so the lane arrives in the same step as the data.

Ternary weights through Lava's bit-accurate Dense model (``PyDenseModelBitAcc``, tags ``bit_accurate_loihi``,
``fixed_pt``): that model keeps 8-bit weight mantissas and truncates low bits of mixed-sign matrices, which turns
``W`` in {-1, 0, +1} into {-2, 0, 0}. Stored as ``2 W`` with ``weight_exp = -1`` the sums are exact: ``2 W a`` is
even and the final right shift by one is exact. Aggregator fan-in (all ones, d -> 1) and broadcast (1 -> d) are
Dense connections of the same form. A Lava ``Dense`` whose weights that model would change, connected into one of
the project's processes (a ``CheckedInPort``), gets a ``TruncatedWeightsWarning`` naming the connection.

``PyTernaryDenseModel`` is a faster Python model of Lava's ``Dense`` with exactly the semantics of Lava's
bit-accurate model (docs/graph.md, "The packed model of Dense"): the weights it computes with are the given ones
clipped to 8 bits and truncated by sign mode and ``num_weight_bits`` (``lava_weights``); the sum is exact, then
held in the accumulator Lava's model uses (int32 for graded messages of up to 32 bits, so it wraps where Lava's
wraps; int64 for binary spikes), shifted by ``weight_exp`` and sent as int32. Weights in {-2, 0, 2} after that go
through the packed 2-bit kernel of ternary.py, others through an exact int64 product. What it cannot match it
refuses with one clear error: weights beyond the int16 range its ``weights`` Var holds, ``num_weight_bits`` that
Lava's model would shift by a negative count, non-integer messages. A run config selects it
(``exception_proc_model_map={Dense: ...}``).
"""
from __future__ import annotations

import warnings

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.dense.process import Dense
from lava.utils.weightutils import SignMode, determine_sign_mode

from lava_matmulfree.microcode import isa
from lava_matmulfree.utils.memory import release_freed_memory

#: Ternary weights are stored doubled with this weight exponent: exact through Lava's 8-bit weight mantissas.
TERNARY_WEIGHT_SCALE = 2
TERNARY_WEIGHT_EXP = -1
#: Payload bits of the graded messages: spikes into a ternary matrix (the default; a network's projections take
#: its act_bits, up to 16) and the 24-bit messages of the norms (u^2 and inverse RMS).
SPIKE_MESSAGE_BITS = 8
NORM_MESSAGE_BITS = isa.MAX_PAYLOAD_BITS
#: Bits of the weight mantissas of Lava's Dense (its default num_weight_bits).
LAVA_WEIGHT_BITS = 8
_INT32, _INT16, _INT8 = np.iinfo(np.int32), np.iinfo(np.int16), np.iinfo(np.int8)
RULE = "store 2W with weight_exp=-1 (processes/connections.ternary_connection; docs/graph.md, \"Lava's conventions\")"


class TruncatedWeightsWarning(UserWarning):
    """A Lava Dense connected into one of the project's processes holds weights that Lava's bit-accurate model
    changes (truncated low bits or clipped to 8 bits): the process would receive other sums than the weights say."""


# ------------------------------------------------------------------------------------ Lava's weight rule
def weight_range(sign_mode) -> tuple[int, int]:
    """The weights Lava's bit-accurate Dense keeps, by sign mode: mixed -256..255, inhibitory -255..0, else
    0..255 (8-bit mantissas; the sign of a mixed matrix takes one more bit)."""
    if sign_mode == SignMode.MIXED:
        return -(1 << LAVA_WEIGHT_BITS), (1 << LAVA_WEIGHT_BITS) - 1
    if sign_mode == SignMode.INHIBITORY:
        return -(1 << LAVA_WEIGHT_BITS) + 1, 0
    return 0, (1 << LAVA_WEIGHT_BITS) - 1


def dropped_bits(sign_mode, num_weight_bits: int) -> int:
    """Low bits Lava's bit-accurate Dense clears in every weight: 8 - num_weight_bits, one more for mixed signs."""
    n = LAVA_WEIGHT_BITS - int(num_weight_bits) + int(sign_mode == SignMode.MIXED)
    if n < 0:
        raise ValueError(f"num_weight_bits={num_weight_bits}: Lava's bit-accurate Dense keeps at most "
                         f"{LAVA_WEIGHT_BITS} bits of weight mantissa (its model would shift by {n})")
    return n


def lava_weights(weights, sign_mode=None, num_weight_bits: int = LAVA_WEIGHT_BITS) -> np.ndarray:
    """The weights Lava's bit-accurate Dense model computes with, from integer ``weights`` (int16 range): clipped to
    ``weight_range`` and their ``dropped_bits`` cleared; an inhibitory matrix is truncated towards zero, the others
    towards minus infinity. ``sign_mode`` None: from the weights' signs, as Lava's model decides it. int16."""
    w = np.asarray(weights)
    sign_mode = sign_mode or determine_sign_mode(w)
    lo, hi = weight_range(sign_mode)
    n = dropped_bits(sign_mode, num_weight_bits)
    w = np.clip(w, lo, hi).astype(np.int16)
    if n and sign_mode == SignMode.INHIBITORY:
        return -((-w >> n) << n)
    return (w >> n) << n if n else w


def truncation(weights, sign_mode=None, num_weight_bits: int = LAVA_WEIGHT_BITS) -> str | None:
    """What Lava's bit-accurate Dense changes in integer-valued ``weights`` (None: nothing), in words; without
    copying the matrix wider than it is."""
    w = np.asarray(weights)
    if not w.size:
        return None
    sign_mode = sign_mode or determine_sign_mode(w)
    lo, hi = weight_range(sign_mode)
    wlo, whi = w.min(), w.max()
    if wlo < lo or whi > hi:
        return f"weights in [{wlo:g}, {whi:g}] are clipped to [{lo}, {hi}]"
    n = dropped_bits(sign_mode, num_weight_bits)
    if w.dtype.kind in "iu" and np.iinfo(w.dtype).max < (1 << n):
        w = w.astype(np.int32)  # a mask wider than the weights' own type
    if n and np.any(w % (1 << n)):
        what = "odd weights lose their lowest bit" if n == 1 else f"weights lose their {n} lowest bits"
        example = ": W in {-1, 0, 1} becomes {-2, 0, 0}" if n == 1 and sign_mode == SignMode.MIXED else ""
        return f"{what} ({sign_mode.name.lower()} signs, num_weight_bits={num_weight_bits}{example})"
    return None


def dense_truncation(dense: Dense) -> str | None:
    """``truncation`` of a Dense process's initial weights with its own parameters; None also for float weights
    that are not integers (a floating_pt connection)."""
    w = np.asarray(dense.weights.init)
    if w.dtype.kind == "f" and not np.array_equal(w, np.round(w)):
        return None
    p = dense.proc_params
    return truncation(w, p.get("sign_mode"), p.get("num_weight_bits", LAVA_WEIGHT_BITS))


class CheckedInPort(InPort):
    """An InPort of the project's processes: a Lava ``Dense`` connected to it whose weights Lava's bit-accurate
    model would change gives a ``TruncatedWeightsWarning`` naming the connection and the ``2W, weight_exp=-1``
    rule (floating_pt processes, built with a float model, take float weights and are not checked).

    Parameters
    ----------
    shape : tuple
        As Lava's InPort.
    """

    def _add_inputs(self, inputs):
        super()._add_inputs(inputs)
        receiver = self.process
        if receiver is not None and receiver.proc_params.get("float_model") is not None:
            return
        for port in inputs:
            sender = getattr(port, "process", None)
            if type(sender) is not Dense:
                continue
            why = dense_truncation(sender)
            if why:
                to = f"{getattr(receiver, 'name', '?')}.{self.name}"
                warnings.warn(f"Dense {sender.name} -> {to}: Lava's bit-accurate Dense model changes its weights "
                              f"({why}); {RULE}", TruncatedWeightsWarning, stacklevel=4)


# ------------------------------------------------------------------------------------ the model's connections
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


# ------------------------------------------------------------------------------------ the packed model of Dense
@implements(proc=Dense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi", "packed_ternary")
class PyTernaryDenseModel(PyLoihiProcessModel):
    """Lava's Dense with exactly the semantics of Lava's bit-accurate model, computed with the packed 2-bit
    ternary kernel where the weights allow (see the module docstring).

    Same delay as Lava's: the step's output is the previous step's accumulation."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    # int16 holds every weight Lava's 8-bit Dense keeps (-256..255) at half of int32's memory: the LM head's copy
    # in this worker is V x d; wider initial weights are refused (see _prepare)
    weights: np.ndarray = LavaPyType(np.ndarray, np.int16, precision=8)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)

    COUNTS = False  # True in the counting twin (processes/activity.py), which has an ``activity`` Var

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._kernel = None  # TernaryMatrix of weights / 2, or False: the exact int64 product
        self._col_nnz = None  # activity: non-zero weights per input column (lane excluded)

    def _fail(self, what: str):
        raise ValueError(f"Dense {self.proc_params.get('name')}: {what}; PyTernaryDenseModel refuses what it cannot "
                         "compute as Lava's PyDenseModelBitAcc does (select that model for it)")

    def _prepare(self):
        from lava_matmulfree.model.ternary import TernaryMatrix

        given = self.proc_params.get("weights")
        if given is not None and np.size(given):
            lo, hi = np.min(given), np.max(given)
            if lo < _INT16.min or hi > _INT16.max:
                self._fail(f"initial weights in [{lo:g}, {hi:g}] lie beyond the int16 range of this model's "
                           "weights Var")
        try:
            w = lava_weights(self.weights, self.proc_params.get("sign_mode"),
                             self.proc_params.get("num_weight_bits", LAVA_WEIGHT_BITS))
        except ValueError as e:
            self._fail(str(e))
        self._kernel = False
        if np.isin(w, (-TERNARY_WEIGHT_SCALE, 0, TERNARY_WEIGHT_SCALE)).all():
            try:
                self._kernel = TernaryMatrix((w // TERNARY_WEIGHT_SCALE).astype(np.int8))
            except ValueError:  # wider than the kernel's exact int32 accumulator
                self._kernel = False
        # As Lava's model: the Var holds the weights it computes with from the first step on. Where those are the
        # initial weights (nothing truncated: every ternary connection), the Var is the building process's array
        # itself, read copy-on-write, instead of this worker's int16 copy (docs/graph.md, "Memory"); a set()
        # of the Var widens it to int16 first (_set_var).
        if (self._kernel and isinstance(given, np.ndarray) and given.shape == w.shape
                and given.dtype.kind in "iu" and np.array_equal(given, w)):
            w = given
        self.weights = w
        del w
        release_freed_memory()  # the builder's int16 copy and the temporaries above (glibc keeps freed heap)

    def _set_var(self):
        """Lava's set of a Var: the weights, if they are the shared initial array, become this worker's int16 copy
        first (the Var's declared type, which every weight Lava's Dense keeps fits; Lava's runtime service says
        which Var is set only inside this call)."""
        if isinstance(self.weights, np.ndarray) and self.weights.dtype != np.int16:
            self.weights = self.weights.astype(np.int16)
        super()._set_var()

    def _exact_sum(self, s: np.ndarray) -> np.ndarray:
        """weights @ s, exactly (int64)."""
        lo, hi = (int(s.min()), int(s.max())) if s.size else (0, 0)
        if self._kernel and _INT16.min <= lo and hi <= _INT16.max:
            try:
                return self._kernel.matvec(s).astype(np.int64) * TERNARY_WEIGHT_SCALE
            except ValueError:  # int16 spikes into a matrix too wide for them: the exact product below
                pass
        return self.weights.astype(np.int64) @ s.astype(np.int64)

    def _count(self, s: np.ndarray) -> None:
        """Activity of a message whose token lane (the last channel) is set: messages, spikes, bits, synops of
        the data channels (processes/activity.py)."""
        if not s.size or s[-1] == 0:
            return
        if self._col_nnz is None:
            self._col_nnz = np.count_nonzero(np.asarray(self.weights)[:-1, :-1], axis=0).astype(np.int64)
        nz = np.asarray(s[:-1]) != 0
        spikes = int(nz.sum())
        bits = int(np.asarray(self.num_message_bits).reshape(-1)[0])
        self.activity[:] = self.activity + np.array([nz.size, spikes, spikes * bits, int(self._col_nnz[nz].sum())])

    def run_spk(self):
        if self._kernel is None:
            self._prepare()
        self.a_out.send(self.a_buff)
        s = self.s_in.recv()
        if self.COUNTS:
            self._count(s)
        if int(np.asarray(self.num_message_bits).reshape(-1)[0]) > 0:  # graded messages
            if s.dtype.kind not in "biu":
                self._fail(f"received {s.dtype} messages (Lava's bit-accurate Dense shifts integer sums only)")
            acc_type = np.result_type(np.int32, s.dtype)  # Lava's accumulator: int32 for int32 messages
        else:  # binary spikes: a synapse counts when its input is not zero; Lava sums them in int64
            s = s != 0
            acc_type = np.int64
        if not s.any():
            self.a_buff = np.zeros_like(self.a_buff)
            return
        acc = self._exact_sum(s.astype(np.int64) if s.dtype == bool else s).astype(acc_type)  # wraps as Lava's
        exp = int(self.proc_params.get("weight_exp", 0))
        acc = np.left_shift(acc, exp) if exp > 0 else np.right_shift(acc, -exp)
        self.a_buff = acc.astype(np.int32)  # a_out carries int32: wider sums wrap as in Lava's port
