"""Neuron programs (microcode) of the MatMul-free LM: an open, documented instruction set (ISA.md), its assembler
and a vectorised fixed-point interpreter, and the `.ucode` programs shipped in this folder.

    from lava_matmulfree.microcode import load_program
    program = load_program("requant")
    machine = program.bind(n=1024, imms={"m": 181, "k": 10})
    result = machine.run({"x_in": x})          # result.outputs["y_out"], result.overflows, result.executed
"""

from __future__ import annotations

from pathlib import Path

from lava_matmulfree.errors import MicrocodeError

from .assembler import assemble, assemble_file
from .interpreter import Interpreter, RunResult
from .isa import DEFAULT_ENTRY
from .program import Instruction, Operand, Program

__all__ = [
    "Instruction",
    "Interpreter",
    "Operand",
    "Program",
    "RunResult",
    "assemble",
    "assemble_file",
    "instruction_counts",
    "load_program",
    "program_names",
    "PROGRAM_DIR",
    "PROGRAM_SUFFIX",
]

#: Folder holding the shipped programs (this package's folder).
PROGRAM_DIR = Path(__file__).resolve().parent
#: File name suffix of a microcode program.
PROGRAM_SUFFIX = ".ucode"


def program_names() -> list:
    """Names (file stems) of the shipped programs, sorted."""
    return sorted(path.stem for path in PROGRAM_DIR.glob(f"*{PROGRAM_SUFFIX}"))


def load_program(name: str) -> Program:
    """Assemble the shipped program `name` (the file `<name>.ucode` in this package)."""
    path = PROGRAM_DIR / f"{name}{PROGRAM_SUFFIX}"
    if not isinstance(name, str) or path.parent != PROGRAM_DIR or not path.is_file():
        raise MicrocodeError(
            f"no microcode program named {name!r} (available: {', '.join(program_names()) or 'none'})"
        )
    return assemble_file(path)


def instruction_counts() -> dict:
    """{program name: instructions per update} for every shipped program: the static length of its `update`
    entry, which is the worst case per neuron and time step (programs have no loops; see ISA.md, cost model)."""
    return {name: load_program(name).static_count(DEFAULT_ENTRY) for name in program_names()}
