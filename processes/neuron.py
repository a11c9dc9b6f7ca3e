"""What the custom neuron processes share: their program of microcode/ and the event convention (docs/graph.md).

A custom neuron process is a population of ``n`` neurons running one program of ``microcode/`` (the source of
truth of its behaviour). Its interface follows from the program:

* one InPort per program input ``P`` (a ``P_tok`` input of the program is that port's token lane), one OutPort per
  program output; every port carries ``n + 1`` integers, the last being the token lane (events.py);
* one Var per value the program leaves open: ``.param`` (shape ``(n,)``), ``.imm`` (shape ``(1,)``), ``.lut``
  (its size) and ``.state`` register (shape ``(n,)``, e.g. the MLGRU's ``h``), so that a user reads, sets and
  probes them as Lava Vars; plus the probe Vars a process names (scratch registers such as the residual's ``x``).

``PyMicrocodedFixedModel`` is the fixed-point Python model of every such process: it runs the program through
the interpreter each step (receive, compute, send in the same step, Lava's neuron convention), feeds it the
lanes of its inputs and sets the lane of each output to whether the program sent on it.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from lava_matmulfree import events
from lava_matmulfree.errors import BackendError
from lava_matmulfree.microcode import bindings, isa
from lava_matmulfree.processes import activity, float_model_of
from lava_matmulfree.processes.connections import CheckedInPort

#: Suffix of a program input that is the token lane of the port named before it.
LANE_SUFFIX = "_tok"
I32 = np.int32


def program_ports(program) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(in ports, out ports) of a neuron process running ``program``: the program's inputs without the lanes,
    and its outputs."""
    ins = tuple(p for p in program.in_ports if not p.endswith(LANE_SUFFIX))
    return ins, tuple(program.out_ports)


def program_vars(program) -> dict:
    """Var name -> kind ('param', 'imm', 'lut', 'state') of every value a program leaves open or keeps."""
    out = {}
    for kind in ("param", "imm", "lut", "state"):
        out.update({name: kind for name in program._names(kind)})
    return out


class MicrocodedNeurons(AbstractProcess):
    """Base of the processes whose neurons run a program of microcode/ (see the module docstring).

    Subclasses set ``PROGRAM`` (the program's name) and ``PROBES`` (probe Var -> (the scratch register it shows,
    the input port whose token defines it): the Var takes the register's value in a step that token arrives and
    holds it until the next, as a fused model's Var holds its token's value), pass their own
    parameters and the program's ``values`` to this ``__init__`` (which declares the program's Vars) and declare
    their ports after it with ``in_port()`` / ``out_port()`` (Lava's convention: the interface is visible in
    process.py). A test checks that the declared ports are the program's.
    """

    PROGRAM: str = ""
    PROBES: dict = {}
    QUEUE_COUNTS: tuple = ()  # state registers counting a program's queue entries (checked against their depth)

    def __init__(self, *, shape, consts: dict, values: dict, **params):
        """``shape`` (n,): the population; ``params``: the process's own parameters (name, layer, ...), kept in
        proc_params after shape and consts; ``values``: the program's open values and initial state."""
        n = int(shape[0])
        super().__init__(shape=(n,), consts=dict(consts), **params)
        self._declare_program_vars(n, consts, values)

    def _declare_program_vars(self, n: int, consts: dict, values: dict) -> None:
        program = bindings.specialise(self.PROGRAM, consts)
        wanted = program_vars(program)
        given = dict(values)
        missing = [k for k, kind in wanted.items() if kind != "state" and k not in given]
        unknown = [k for k in given if k not in wanted]
        if missing or unknown:
            raise ValueError(f"{type(self).__name__}: program {self.PROGRAM} needs {', '.join(missing) or 'nothing'} "
                             f"more; unknown: {', '.join(unknown) or 'none'}")
        for name, kind in wanted.items():
            if kind == "state":
                init = np.full(n, program.declarations[name].value, dtype=np.int64)
                init = given.get(name, init)
            else:
                init = given[name]
            shape = {"param": (n,), "imm": (1,), "lut": (np.asarray(init).size,), "state": (n,)}[kind]
            setattr(self, name, Var(shape=shape, init=np.asarray(init, dtype=np.int64).reshape(shape)))
        for var in self.PROBES:
            setattr(self, var, Var(shape=(n,), init=0))

    def in_port(self) -> InPort:
        """An input of the population: one value per neuron and the token lane (a ``CheckedInPort``: a Lava Dense
        whose weights Lava's bit-accurate model would truncate gives a warning when connected)."""
        return CheckedInPort(shape=(self.proc_params["shape"][0] + 1,))

    def out_port(self) -> OutPort:
        """An output of the population: one value per neuron and the token lane."""
        return OutPort(shape=(self.proc_params["shape"][0] + 1,))


def lava_types(process_cls, dtype=I32, precision: int = isa.REGISTER_BITS):
    """Class decorator: the LavaPyType of every port and Var a ``MicrocodedNeurons`` subclass declares (Lava's
    builder looks them up by name on the model class)."""

    def decorate(model_cls):
        program = bindings.specialise(process_cls.PROGRAM)
        ins, outs = program_ports(program)
        for p in ins:
            setattr(model_cls, p, LavaPyType(PyInPort.VEC_DENSE, dtype, precision=precision))
        for p in outs:
            setattr(model_cls, p, LavaPyType(PyOutPort.VEC_DENSE, dtype, precision=precision))
        for v in list(program_vars(program)) + list(process_cls.PROBES):
            setattr(model_cls, v, LavaPyType(np.ndarray, np.int64 if dtype is I32 else dtype, precision=precision))
        model_cls.IN_PORTS, model_cls.OUT_PORTS, model_cls.PROCESS = ins, outs, process_cls
        return model_cls

    return decorate


class PyMicrocodedFixedModel(PyLoihiProcessModel):
    """Runs the process's program over its n neurons each step (fixed_pt; bit for bit the golden model).

    The program is bound lazily at the first step, from the process's Vars (Lava assigns them after the model's
    constructor). Persistent registers are read from and written back to their Vars every step, so ``Var.set``
    takes effect and probes see them. A step in which no input lane carries a token and whose delay lines have
    emptied is a no-op of the program (nothing arrives, nothing is sent, no state changes), so it is skipped."""

    IN_PORTS: tuple = ()
    OUT_PORTS: tuple = ()
    PROCESS = None  # the MicrocodedNeurons subclass (set by lava_types)
    COUNTS = False  # True in the counting twin (processes/activity.py), which has an ``activity`` Var

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._machine = None
        self._silent_steps = events.AGGREGATOR_ROUND_TRIP  # the delay lines start empty

    def _bind(self):
        proc_cls = self.PROCESS
        program = bindings.specialise(proc_cls.PROGRAM, self.proc_params["consts"])
        kinds = program_vars(program)
        vals = {k: np.asarray(getattr(self, k)).astype(np.int64) for k in kinds}
        self._state_names = [k for k, kind in kinds.items() if kind == "state"]
        self._probes = proc_cls.PROBES
        self._lanes = {p: p + LANE_SUFFIX in program.in_ports for p in self.IN_PORTS}
        self._n = int(np.prod(self.proc_params["shape"]))
        self._machine = program.bind(
            self._n, params={k: v for k, v in vals.items() if kinds[k] == "param"},
            imms={k: int(v.reshape(-1)[0]) for k, v in vals.items() if kinds[k] == "imm"},
            luts={k: v.reshape(-1) for k, v in vals.items() if kinds[k] == "lut"})
        self._fifo_counts = list(proc_cls.QUEUE_COUNTS)

    def _count(self, lanes: dict) -> None:
        """Activity: an update per neuron and input phase whose lane is set; a round per inverse RMS (or, in an
        aggregator, per sum) that arrives (processes/activity.py)."""
        name = self.PROCESS.__name__
        phases = sum(any(lanes[p] for p in group) for group in activity.PHASES[name])
        rounds = sum(lanes[p] for p in activity.ROUND_PORTS[name])
        self.activity[:] = self.activity + np.array([self._n * phases, rounds])

    def run_spk(self):
        if self._machine is None:
            self._bind()
        inputs, any_token, lanes = {}, False, {}
        for p in self.IN_PORTS:
            msg = getattr(self, p).recv()
            data, present = events.split(msg)
            inputs[p] = data.astype(np.int64)
            if self._lanes[p]:
                inputs[p + LANE_SUFFIX] = np.int64(present)
            any_token |= present
            lanes[p] = bool(present)
        if self.COUNTS and any_token:
            self._count(lanes)
        if not any_token and self._silent_steps >= events.AGGREGATOR_ROUND_TRIP:
            for q in self.OUT_PORTS:
                getattr(self, q).send(events.silence(self._n))
            return
        self._silent_steps = 0 if any_token else self._silent_steps + 1
        self._machine.state = {s: np.asarray(getattr(self, s)).astype(np.int64) for s in self._state_names}
        res = self._machine.step(inputs)
        for s in self._state_names:
            getattr(self, s)[:] = res.state[s]
        for var, (reg, port) in self._probes.items():  # MicrocodedNeurons.PROBES
            if lanes[port]:
                getattr(self, var)[:] = res.scratch[reg]
        for s in self._fifo_counts:
            if not 0 <= res.state[s].min() <= res.state[s].max() <= events.MIXER_QUEUE_DEPTH:
                raise BackendError(f"{self.PROCESS.__name__}: queue {s} out of range "
                                   f"[0, {events.MIXER_QUEUE_DEPTH}] (more tokens in flight than it holds)")
        for q in self.OUT_PORTS:
            sent = res.sent[q]
            getattr(self, q).send(events.message(res.outputs[q], bool(sent.any())))


class PyFloatNeuronModel(PyLoihiProcessModel):
    """Base of the floating_pt models of the custom neurons (the float reference, same events and latencies as
    the fixed-point program; ``float_model`` in the process's parameters). Each step ``run_spk`` receives every
    input's (data, present), takes the outputs of the step from ``dynamics`` and sends each with its lane set,
    silence on the others (receive, compute, send in the same step, Lava's neuron convention)."""

    IN_PORTS: tuple = ()
    OUT_PORTS: tuple = ()

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.n = int(proc_params["shape"][0])

    def float_layer(self, what: str):
        """The layer of the folded float model the process computes (one clear error naming ``what`` without)."""
        return float_model_of(self.proc_params, what).layers[self.proc_params["layer"]]

    def round_trip_line(self) -> DelayLine:
        """A delay line of one value per neuron, as long as the aggregator's round trip (its answer's lag)."""
        return DelayLine(events.AGGREGATOR_ROUND_TRIP, self.n)

    def dynamics(self, received: dict) -> dict:
        """The outputs of this step (port -> data) from each input's (data, present)."""
        raise NotImplementedError

    def run_spk(self):
        self.emit(self.dynamics(self.receive()))

    def receive(self) -> dict:
        return {p: events.split(getattr(self, p).recv()) for p in self.IN_PORTS}

    def emit(self, outputs: dict) -> None:
        """Send ``outputs`` (port -> data) with the lane set; the other ports send silence."""
        for q in self.OUT_PORTS:
            if q in outputs:
                getattr(self, q).send(events.message(outputs[q], True, dtype=float))
            else:
                getattr(self, q).send(events.silence(self.n, dtype=float))


class DelayLine:
    """The values of the last ``depth`` steps (a structural latency inside a neuron; advanced every step)."""

    def __init__(self, depth: int, n: int, dtype=float):
        self.ring = [np.zeros(n, dtype=dtype) for _ in range(depth)]

    def push(self, value) -> np.ndarray:
        """Advance one step with this step's value; return the value of ``depth`` steps ago."""
        self.ring.append(np.asarray(value))
        return self.ring.pop(0)


def binding_of(model, process_cls) -> "bindings.Binding":
    """The program binding of a neuron process from its model's Vars (what an NC model allocates)."""
    program = bindings.specialise(process_cls.PROGRAM, model.proc_params["consts"])
    kinds = program_vars(program)
    vals = {k: np.asarray(getattr(model, k)).astype(np.int64) for k, kind in kinds.items() if kind != "state"}
    n = int(np.prod(model.proc_params["shape"]))
    return bindings.Binding(process_cls.PROGRAM, n, dict(model.proc_params["consts"]),
                            {k: v.reshape(-1) for k, v in vals.items() if kinds[k] == "param"},
                            {k: int(v.reshape(-1)[0]) for k, v in vals.items() if kinds[k] == "imm"},
                            {k: v.reshape(-1) for k, v in vals.items() if kinds[k] == "lut"})
