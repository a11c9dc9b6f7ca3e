"""Vectorised interpreter of assembled microcode: one program, N neurons, numpy int64.

`Interpreter(program, n, params=..., imms=..., luts=...)` (or `program.bind(...)`) checks the load-time values
and pre-decodes every instruction into a closure once; `run()` then executes an entry point for all neurons at
once, one numpy operation per instruction. Forward branches are executed as predication: a neuron that takes a
branch is masked off until the branch target, and the instructions it skips are not counted for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from lava_matmulfree.errors import MicrocodeError

from . import isa
from .isa import IMM, LIT

_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max


@dataclass
class RunResult:
    """The result of one run of an entry point over all neurons.

    outputs:   port -> int64[N] payloads (0 where a neuron did not send);
    sent:      port -> bool[N], which neurons sent a message on the port;
    state:     the new persistent state, name -> int64[N] (fresh arrays);
    scratch:   the final scratch registers, name -> int64[N] (for probing; reset at the next run);
    overflows: int64[N], saturations to the 24-bit register range (arithmetic, shifts, recv);
    clamps:    int64[N], saturations to a narrower width (clamp, and send to a narrower port);
    executed:  int64[N], instructions executed per neuron (skipped instructions excluded);
    static_count: instructions in the entry (the worst case per neuron);
    overflow_sites: source line -> number of saturations (both kinds, all neurons) at that line.
    """

    outputs: dict
    sent: dict
    state: dict
    scratch: dict
    overflows: np.ndarray
    clamps: np.ndarray
    executed: np.ndarray
    static_count: int
    overflow_sites: dict


class _Context:
    """Mutable machine state of one run."""

    __slots__ = ("regs", "active", "skip", "inputs", "outputs", "sent", "overflows", "clamps", "sites", "n")

    def __init__(self, regs, inputs, outputs, sent, n, n_sites):
        self.regs = regs
        self.active = None          # None = every neuron active, else bool[N]
        self.skip = None            # None = no branch taken yet, else int[N]: resume index per neuron
        self.inputs = inputs
        self.outputs = outputs
        self.sent = sent
        self.n = n
        self.overflows = np.zeros(n, dtype=np.int64)
        self.clamps = np.zeros(n, dtype=np.int64)
        self.sites = np.zeros(n_sites, dtype=np.int64)


def _is_integer_array(array: np.ndarray) -> bool:
    return array.dtype.kind in "iu"


class Interpreter:
    """A program bound to `n` neurons and its load-time values, ready to run (see module docstring).

    params: name -> int array [n] (or a scalar, broadcast) for every `.param`;
    imms:   name -> int for every `.imm` without a default;
    luts:   name -> int array [size] for every `.lut` declared without inline values.
    """

    def __init__(self, program: "Program", n: int, params=None, imms=None, luts=None):
        self.program = program
        self._file = program.filename
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise MicrocodeError(f"{self._file}: the number of neurons must be a positive integer, got {n!r}")
        self.n = int(n)
        self._param_values = self._bind_params(dict(params or {}))
        self._imm_values = self._bind_imms(dict(imms or {}))
        self._lut_values = self._bind_luts(dict(luts or {}))

        # Register file: one row per state register, scratch register and parameter.
        self._state_names = list(program.state)
        self._scratch_names = list(program.scratch)
        self._rows: dict = {}
        for name in self._state_names + self._scratch_names + list(program.params):
            self._rows[name] = len(self._rows)
        self._regs = np.zeros((max(len(self._rows), 1), self.n), dtype=np.int64)
        for name, values in self._param_values.items():
            self._regs[self._rows[name]] = values
        self._state_rows = np.array([self._rows[s] for s in self._state_names], dtype=np.intp)
        self._scratch_rows = np.array([self._rows[s] for s in self._scratch_names], dtype=np.intp)

        self._code = {entry: self._decode(code) for entry, code in program.entries.items()}
        self.state = self.initial_state()

    # --- binding ------------------------------------------------------------------------------------------------
    def _decl_error(self, name: str, message: str) -> MicrocodeError:
        line = self.program.declarations[name].line
        return MicrocodeError(f"{self._file}:{line}: {message}")

    def _check_unknown(self, given: dict, declared: dict, what: str) -> None:
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise MicrocodeError(
                f"{self._file}: unknown {what} {', '.join(map(repr, unknown))} "
                f"(declared: {', '.join(declared) or 'none'})"
            )

    def _int_vector(self, name: str, value, length: int, what: str, allow_scalar: bool) -> np.ndarray:
        array = np.asarray(value)
        if not _is_integer_array(array):
            raise self._decl_error(name, f"{what} '{name}' must hold integers, got dtype {array.dtype}")
        if array.ndim == 0 and allow_scalar:
            array = np.full(length, array)
        if array.shape != (length,):
            raise self._decl_error(name, f"{what} '{name}' must have shape ({length},), got {array.shape}")
        if array.size and (array.min() < isa.REG_MIN or array.max() > isa.REG_MAX):
            raise self._decl_error(
                name, f"{what} '{name}' has values outside the 24-bit range [{isa.REG_MIN}, {isa.REG_MAX}]"
            )
        return array.astype(np.int64)

    def _given_vector(self, given: dict, name: str, length: int, what: str, keyword: str, allow_scalar: bool):
        """The array bound to ``name`` through the keyword argument ``keyword`` (params, luts), checked."""
        if name not in given:
            raise self._decl_error(name, f"{what} '{name}' was not bound (pass {keyword}={{'{name}': array}})")
        return self._int_vector(name, given[name], length, what, allow_scalar=allow_scalar)

    def _bind_params(self, params: dict) -> dict:
        declared = self.program.params
        self._check_unknown(params, declared, "param(s)")
        return {name: self._given_vector(params, name, self.n, "param", "params", allow_scalar=True)
                for name in declared}

    def _bind_imms(self, imms: dict) -> dict:
        declared = self.program.imms
        self._check_unknown(imms, declared, "immediate(s)")
        bound = {}
        for name, decl in declared.items():
            value = imms.get(name, decl.value)
            if value is None:
                raise self._decl_error(name, f"immediate '{name}' was not bound and has no default")
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise self._decl_error(name, f"immediate '{name}' must be an integer, got {value!r}")
            value = int(value)
            if not isa.REG_MIN <= value <= isa.REG_MAX:
                raise self._decl_error(name, f"immediate '{name}' = {value} is outside the 24-bit range")
            for use in self.program.imm_shift_uses.get(name, ()):
                if not use.low <= value <= use.high:
                    raise MicrocodeError(
                        f"{self._file}:{use.line}: shift amount '{name}' = {value} out of range "
                        f"[{use.low}, {use.high}]"
                    )
            bound[name] = value
        return bound

    def _bind_luts(self, luts: dict) -> dict:
        declared = self.program.luts
        self._check_unknown(luts, declared, "LUT(s)")
        bound = {}
        for name, decl in declared.items():
            if decl.values is not None:
                if name in luts:
                    raise self._decl_error(name, f"LUT '{name}' has inline values and cannot be bound at load")
                bound[name] = np.array(decl.values, dtype=np.int64)
            else:
                bound[name] = self._given_vector(luts, name, decl.size, "LUT", "luts", allow_scalar=False)
        return bound

    # --- state --------------------------------------------------------------------------------------------------
    def initial_state(self) -> dict:
        """The persistent registers at their declared initial values."""
        return {
            name: np.full(self.n, self.program.declarations[name].value, dtype=np.int64)
            for name in self._state_names
        }

    def reset(self) -> None:
        """Put `self.state` (used by `step`) back to the initial values."""
        self.state = self.initial_state()

    def _check_arrays(self, given: dict, declared, what: str, check_range: bool) -> dict:
        checked = {}
        for name, value in given.items():
            if name not in declared:
                raise MicrocodeError(
                    f"{self._file}: unknown {what} '{name}' (declared: {', '.join(declared) or 'none'})"
                )
            array = np.asarray(value)
            if not _is_integer_array(array):
                raise MicrocodeError(f"{self._file}: {what} '{name}' must hold integers, got dtype {array.dtype}")
            if array.ndim == 0:
                array = np.full(self.n, array)
            if array.shape != (self.n,):
                raise MicrocodeError(f"{self._file}: {what} '{name}' must have shape ({self.n},), got {array.shape}")
            low, high = (isa.REG_MIN, isa.REG_MAX) if check_range else (_INT64_MIN, _INT64_MAX)
            if array.min() < low or array.max() > high:
                raise MicrocodeError(f"{self._file}: {what} '{name}' has values outside [{low}, {high}]")
            checked[name] = array.astype(np.int64)
        return checked

    # --- running ------------------------------------------------------------------------------------------------
    def run(self, inputs: Optional[dict] = None, state: Optional[dict] = None,
            entry: str = isa.DEFAULT_ENTRY) -> RunResult:
        """Run `entry` once for every neuron.

        inputs: port -> int array [n] (the graded input summed this step; ports left out receive 0; values beyond
        24 bits saturate in `recv`); state: the persistent registers (default: their initial values). Pure: the
        arguments are not modified.
        """
        if entry not in self._code:
            raise MicrocodeError(
                f"{self._file}: no entry '{entry}' (entries: {', '.join(self._code) or 'none'})"
            )
        inputs = self._check_arrays(dict(inputs or {}), self.program.in_ports, "input port", check_range=False)
        for port in self.program.in_ports:
            inputs.setdefault(port, np.zeros(self.n, dtype=np.int64))
        if state is None:
            state = self.initial_state()
        state = self._check_arrays(dict(state), self._state_names, "state register", check_range=True)
        missing = [s for s in self._state_names if s not in state]
        if missing:
            raise MicrocodeError(f"{self._file}: state register(s) {', '.join(missing)} not given")

        regs = self._regs
        for name in self._state_names:
            regs[self._rows[name]] = state[name]
        if self._scratch_rows.size:
            regs[self._scratch_rows] = 0
        outputs = {p: np.zeros(self.n, dtype=np.int64) for p in self.program.out_ports}
        sent = {p: np.zeros(self.n, dtype=bool) for p in self.program.out_ports}
        code, targets, lines = self._code[entry]
        ctx = _Context(regs, inputs, outputs, sent, self.n, len(code))

        executed = np.zeros(self.n, dtype=np.int64)
        uniform = 0  # instructions executed while every neuron was active
        index = 0
        while index < len(code):
            if ctx.skip is not None and targets[index]:
                active = ctx.skip <= index
                ctx.active = None if active.all() else active
            if ctx.active is None:
                uniform += 1
            else:
                if not ctx.active.any():
                    # Nobody is active: fast-forward to the nearest target where a neuron resumes.
                    index = int(ctx.skip.min())
                    continue
                executed += ctx.active
            code[index](ctx)
            index += 1
        executed += uniform

        sites: dict = {}
        for line, count in zip(lines, ctx.sites):
            if count:
                sites[line] = sites.get(line, 0) + int(count)
        return RunResult(
            outputs=outputs,
            sent=sent,
            state={name: regs[self._rows[name]].copy() for name in self._state_names},
            scratch={name: regs[self._rows[name]].copy() for name in self._scratch_names},
            overflows=ctx.overflows,
            clamps=ctx.clamps,
            executed=executed,
            static_count=len(code),
            overflow_sites=sites,
        )

    def step(self, inputs: Optional[dict] = None, entry: str = isa.DEFAULT_ENTRY) -> RunResult:
        """Run `entry` on `self.state` and keep the new state there (one Lava time step)."""
        result = self.run(inputs, self.state, entry)
        self.state = {name: value.copy() for name, value in result.state.items()}
        return result

    # --- decoding -----------------------------------------------------------------------------------------------
    def _decode(self, code) -> tuple:
        closures = [self._closure(k, ins) for k, ins in enumerate(code)]
        targets = [False] * (len(code) + 1)
        for ins in code:
            if ins.op in isa.BRANCH_OPCODES:
                targets[ins.operands[-1].value] = True
        return closures, targets, [ins.line for ins in code]

    def _getter(self, operand, shift_kind: Optional[str] = None) -> Callable:
        """A function regs -> value (an int64 row or a Python int) for a source operand."""
        if operand.kind == LIT:
            value = operand.value
            return lambda regs: value
        if operand.kind == IMM:
            value = self._imm_values[operand.name]
            return lambda regs: value
        row = self._rows[operand.name]
        if shift_kind is None:
            return lambda regs: regs[row]
        return lambda regs: isa.clamp_shift(regs[row], shift_kind)

    def _closure(self, k: int, ins) -> Callable:
        op = ins.op
        ops = ins.operands
        n = self.n
        file, line = self._file, ins.line

        def write(ctx, row, value):
            target = ctx.regs[row]
            if ctx.active is None:
                target[...] = value
            else:
                np.copyto(target, value, where=ctx.active)

        def saturate(ctx, value, low, high, counter):
            """Saturate to [low, high]; count saturations of active neurons in `counter` and at this site."""
            value = np.asarray(value, dtype=np.int64)
            outside = (value < low) | (value > high)
            if outside.any():
                outside = np.broadcast_to(outside, (n,))
                if ctx.active is not None:
                    outside = outside & ctx.active
                counter += outside
                ctx.sites[k] += np.count_nonzero(outside)
                value = np.clip(value, low, high)
            return value

        def commit(compute):
            """Instruction whose raw result is saturated to 24 bits (counted) and written to the destination."""
            row = self._rows[ops[0].name]

            def run(ctx):
                write(ctx, row, saturate(ctx, compute(ctx.regs), isa.REG_MIN, isa.REG_MAX, ctx.overflows))

            return run

        def exact(compute):
            """Instruction whose result is always within 24 bits."""
            row = self._rows[ops[0].name]

            def run(ctx):
                write(ctx, row, compute(ctx.regs))

            return run

        if op in _BINARY_SATURATING or op in _BINARY_EXACT:
            a, b = self._getter(ops[1]), self._getter(ops[2])
            fn = {**_BINARY_SATURATING, **_BINARY_EXACT}[op]
            wrap = commit if op in _BINARY_SATURATING else exact
            return wrap(lambda regs: fn(a(regs), b(regs)))
        if op == "mov":
            a = self._getter(ops[1])
            return exact(a)
        if op == "neg":
            a = self._getter(ops[1])
            return commit(lambda regs: np.negative(a(regs)))
        if op == "abs":
            a = self._getter(ops[1])
            return commit(lambda regs: np.abs(a(regs)))
        if op == "mul":
            a, b = self._getter(ops[1]), self._getter(ops[2])
            shift = self._getter(ops[3], isa.RSHIFT)
            return commit(lambda regs: isa.rshift_round(np.multiply(a(regs), b(regs)), shift(regs)))
        if op == "shr":
            a, shift = self._getter(ops[1]), self._getter(ops[2], isa.RSHIFT)
            return commit(lambda regs: isa.rshift_round(a(regs), shift(regs)))
        if op == "sra":
            a, shift = self._getter(ops[1]), self._getter(ops[2], isa.RSHIFT)
            return commit(lambda regs: isa.rshift_floor(a(regs), shift(regs)))
        if op == "shl":
            a, shift = self._getter(ops[1]), self._getter(ops[2], isa.LSHIFT)
            return commit(lambda regs: isa.rshift_round(a(regs), np.negative(shift(regs))))
        if op == "sel":
            p, a, b = self._getter(ops[1]), self._getter(ops[2]), self._getter(ops[3])
            return exact(lambda regs: np.where(np.not_equal(p(regs), 0), a(regs), b(regs)))
        if op == "lut":
            table = self._lut_values[ops[1].name]
            top = table.size - 1
            idx = self._getter(ops[2])
            return exact(lambda regs: table[np.clip(idx(regs), 0, top)])
        if op == "clamp":
            a = self._getter(ops[1])
            low, high = isa.width_range(ops[2].value)
            row = self._rows[ops[0].name]

            def run_clamp(ctx):
                write(ctx, row, saturate(ctx, a(ctx.regs), low, high, ctx.clamps))

            return run_clamp
        if op == "recv":
            port = ops[1].name
            row = self._rows[ops[0].name]

            def run_recv(ctx):
                write(ctx, row, saturate(ctx, ctx.inputs[port], isa.REG_MIN, isa.REG_MAX, ctx.overflows))

            return run_recv
        if op == "send":
            port = ops[0].name
            low, high = isa.width_range(self.program.declarations[port].bits)
            a = self._getter(ops[1])

            def run_send(ctx):
                value = saturate(ctx, a(ctx.regs), low, high, ctx.clamps)
                active = np.ones(n, dtype=bool) if ctx.active is None else ctx.active
                sent = ctx.sent[port]
                twice = sent & active
                if twice.any():
                    neuron = int(np.flatnonzero(twice)[0])
                    raise MicrocodeError(
                        f"{file}:{line}: neuron {neuron} sends on port '{port}' a second time in one update"
                    )
                np.copyto(ctx.outputs[port], value, where=active)
                sent |= active

            return run_send
        if op in ("bz", "bnz", "jmp"):
            target = ops[-1].value
            cond = self._getter(ops[0]) if op != "jmp" else None
            taken_if_nonzero = op == "bnz"

            def run_branch(ctx):
                if cond is None:
                    take = np.ones(n, dtype=bool)
                else:
                    nonzero = np.broadcast_to(np.not_equal(cond(ctx.regs), 0), (n,))
                    take = nonzero if taken_if_nonzero else ~nonzero
                if ctx.active is not None:
                    take = take & ctx.active
                if not take.any():
                    return
                if ctx.skip is None:
                    ctx.skip = np.zeros(n, dtype=np.int64)
                ctx.skip[take] = target
                ctx.active = ~take if ctx.active is None else ctx.active & ~take

            return run_branch
        raise MicrocodeError(f"{file}:{line}: internal error: no semantics for '{op}'")  # pragma: no cover


def _compare(fn):
    return lambda a, b: fn(a, b).astype(np.int64)


_BINARY_SATURATING = {
    "add": np.add,
    "sub": np.subtract,
}

_BINARY_EXACT = {
    "min": np.minimum,
    "max": np.maximum,
    "and": np.bitwise_and,
    "or": np.bitwise_or,
    "xor": np.bitwise_xor,
    "cmpeq": _compare(np.equal),
    "cmpne": _compare(np.not_equal),
    "cmplt": _compare(np.less),
    "cmple": _compare(np.less_equal),
    "cmpgt": _compare(np.greater),
    "cmpge": _compare(np.greater_equal),
}
