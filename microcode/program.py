"""What an assembled neuron program is: its declarations, entries of resolved instructions and labels
(`Program`), as the assembler (assembler.py) builds it from `.ucode` text and the interpreter (interpreter.py)
runs it. The syntax and the semantics are in ISA.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from lava_matmulfree.errors import MicrocodeError

from . import isa


def _declared(kind: str) -> property:
    """A read-only view of the program's declarations of ``kind`` (in ISA.md's directive names)."""
    return property(lambda self: self._names(kind), doc=f"The `.{kind}` declarations, name -> Declaration.")


@dataclass(frozen=True)
class Operand:
    """One resolved operand: kind (reg/param/lit/imm/lut/in/out/label), the name it was written with, and the
    integer value of a literal/const or the entry-local instruction index of a label."""

    kind: str
    name: Optional[str] = None
    value: Optional[int] = None

    def __str__(self) -> str:
        return str(self.value) if self.name is None else self.name


@dataclass(frozen=True)
class Instruction:
    op: str
    operands: tuple
    line: int

    def __str__(self) -> str:
        return f"{self.op} " + ", ".join(str(o) for o in self.operands) if self.operands else self.op


@dataclass(frozen=True)
class Declaration:
    """A declared name: its kind (state/scratch/param/imm/const/lut/in/out), line, and kind-specific data:
    `value` is the initial value (state), default (imm, or None) or value (const); `size`/`values` describe a
    LUT (values None when bound at load); `bits` is an output port's payload width."""

    name: str
    kind: str
    line: int
    value: Optional[int] = None
    size: Optional[int] = None
    values: Optional[tuple] = None
    bits: Optional[int] = None


@dataclass(frozen=True)
class ShiftUse:
    """A per-process immediate used as a shift amount: bind() checks its value against [low, high]."""

    line: int
    low: int
    high: int


@dataclass
class Program:
    """An assembled program. `entries` maps each entry point to its instructions (in order)."""

    name: str
    filename: str
    entries: dict = field(default_factory=dict)
    declarations: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)        # label -> (entry, index, line)
    entry_lines: dict = field(default_factory=dict)   # entry -> line of its .entry (0 when implicit)
    imm_shift_uses: dict = field(default_factory=dict)  # imm name -> [ShiftUse]

    def _names(self, kind: str) -> dict:
        return {n: d for n, d in self.declarations.items() if d.kind == kind}

    # the declarations of one kind, name -> Declaration, in the order of the source
    state = _declared("state")
    scratch = _declared("scratch")
    params = _declared("param")
    imms = _declared("imm")
    consts = _declared("const")
    luts = _declared("lut")
    in_ports = _declared("in")
    out_ports = _declared("out")

    def static_count(self, entry: str = isa.DEFAULT_ENTRY) -> int:
        """Instructions of one run of `entry`: the worst case per neuron (no loops; skipped ones cost nothing)."""
        if entry not in self.entries:
            raise MicrocodeError(f"{self.filename}: no entry '{entry}' (entries: {', '.join(self.entries) or 'none'})")
        return len(self.entries[entry])

    @property
    def instruction_count(self) -> int:
        """Static instruction count of the per-time-step entry (`update`)."""
        return self.static_count(isa.DEFAULT_ENTRY)

    def listing(self) -> str:
        """The program as text, one instruction per line with its source line."""
        out = []
        for entry, code in self.entries.items():
            out.append(f".entry {entry}")
            out.extend(f"  {i:3d}  {ins}    ; line {ins.line}" for i, ins in enumerate(code))
        return "\n".join(out)

    def bind(self, n: int, params=None, imms=None, luts=None):
        """Bind load-time values (per-neuron params, per-process immediates, LUT contents) for `n` neurons and
        return an `Interpreter` ready to run."""
        from .interpreter import Interpreter

        return Interpreter(self, n, params=params, imms=imms, luts=luts)
