"""Assembler of the neuron microcode: `.ucode` text -> `Program` (program.py).

Every malformed input raises `MicrocodeError` whose message starts with `file:line:` (the syntax and the
semantics are in ISA.md). The assembler works in two passes: the first reads directives, labels and the raw
instructions (so names may be declared after their first use), the second resolves and checks every operand.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional, Union

from lava_matmulfree.errors import MicrocodeError

from . import isa
from .isa import IMM, LIT, PARAM, REG  # noqa: F401  operand kinds, also read as assembler.IMM ...
from .program import Declaration, Instruction, Operand, Program, ShiftUse

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z", re.ASCII)
_LABEL_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*:(.*)\Z", re.ASCII | re.DOTALL)
_INSTRUCTION_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\s+(.*))?\Z", re.ASCII | re.DOTALL)
_INT_RE = re.compile(r"([+-]?)(0[xX][0-9a-fA-F]+|0[bB][01]+|[0-9]+)\Z", re.ASCII)
_DIRECTIVE_SPLIT_RE = re.compile(r"[\s,]+")
_COMMENT_CHARS = (";", "#")
_HEX_PREFIX_LEN = 2
_RADIX = {"x": 16, "b": 2}
_DECIMAL = 10
_SHOW_LIMIT = 40  # characters of an offending token quoted in an error message


_KIND_WORDS = {
    "state": "a persistent state register",
    "scratch": "a scratch register",
    "param": "a per-neuron parameter (read-only)",
    "imm": "a per-process immediate (read-only)",
    "const": "a constant (read-only)",
    "lut": "a LUT",
    "in": "an input port",
    "out": "an output port",
}


# --- parsing helpers -------------------------------------------------------------------------------------------

class _Source:
    """Error helper bound to one file name."""

    def __init__(self, filename: str):
        self.filename = filename

    def error(self, line: int, message: str) -> MicrocodeError:
        return MicrocodeError(f"{self.filename}:{line}: {message}")


def _show(token: str, limit: int = _SHOW_LIMIT) -> str:
    """A token quoted for an error message, shortened and with control characters escaped."""
    text = token if len(token) <= limit else token[:limit] + "..."
    return repr(text)


def _parse_int(token: str) -> Optional[int]:
    """The value of an integer literal (decimal, 0x hex, 0b binary, optional sign), or None if not a literal."""
    match = _INT_RE.match(token)
    if match is None:
        return None
    sign, digits = match.group(1), match.group(2)
    if len(digits) > isa.MAX_LITERAL_DIGITS:
        # Far outside every range; report a value that fails every range check.
        magnitude = 1 << isa.MAX_LITERAL_DIGITS
    elif digits[:1] == "0" and len(digits) > 1 and digits[1] in "xXbB":
        magnitude = int(digits[_HEX_PREFIX_LEN:], _RADIX[digits[1].lower()])
    else:
        magnitude = int(digits, _DECIMAL)
    return -magnitude if sign == "-" else magnitude


def _strip_comment(text: str) -> str:
    cut = len(text)
    for char in _COMMENT_CHARS:
        position = text.find(char)
        if position != -1:
            cut = min(cut, position)
    return text[:cut]


@dataclass
class _RawInstruction:
    op: str
    tokens: list
    line: int
    entry: str
    index: int


class _Assembler:
    def __init__(self, text: str, filename: str):
        self.src = _Source(filename)
        self.text = text
        self.program = Program(name=_program_name(filename), filename=filename)
        self.raw: list = []
        self.current_entry: Optional[str] = None

    # pass 1 -------------------------------------------------------------------------------------------------
    def run(self) -> Program:
        for number, raw_line in enumerate(self.text.split("\n"), start=1):
            self._line(number, raw_line)
        for raw in self.raw:
            self._resolve(raw)
        self._check_const_shift_defaults()
        self.program.entries = {name: tuple(code) for name, code in self.program.entries.items()}
        if not any(self.program.entries.values()):
            raise MicrocodeError(f"{self.program.filename}: the program has no instructions (a neuron program needs at least "
                                 f"one in its '{isa.DEFAULT_ENTRY}' entry)")
        return self.program

    def _line(self, number: int, raw_line: str) -> None:
        text = _strip_comment(raw_line).strip()
        while text:
            label = _LABEL_RE.match(text)
            if label is None:
                break
            self._label(number, label.group(1))
            text = label.group(2).strip()
        if not text:
            return
        if text.startswith("."):
            self._directive(number, text)
        else:
            self._instruction(number, text)

    def _open_entry(self) -> str:
        if self.current_entry is None:
            # Instructions before any .entry belong to the implicit per-time-step entry.
            self.current_entry = isa.DEFAULT_ENTRY
            self.program.entries[isa.DEFAULT_ENTRY] = []
            self.program.entry_lines[isa.DEFAULT_ENTRY] = 0
        return self.current_entry

    def _label(self, number: int, name: str) -> None:
        if name in self.program.labels:
            first = self.program.labels[name][2]
            raise self.src.error(number, f"duplicate label '{name}' (first defined at line {first})")
        declared = self.program.declarations.get(name)
        if declared is not None:  # ISA.md: one namespace per program
            raise self.src.error(number, f"label '{name}': the name is declared at line {declared.line} as "
                                         f"{_KIND_WORDS[declared.kind]} (one namespace per program)")
        entry = self._open_entry()
        self.program.labels[name] = (entry, len(self.program.entries[entry]), number)

    def _instruction(self, number: int, text: str) -> None:
        match = _INSTRUCTION_RE.match(text)
        if match is None:
            raise self.src.error(number, f"malformed instruction {_show(text)}")
        op = match.group(1).lower()
        if op not in isa.OPCODES:
            raise self.src.error(number, f"unknown instruction {_show(match.group(1))}")
        rest = (match.group(2) or "").strip()
        tokens = [t.strip() for t in rest.split(",")] if rest else []
        signature = isa.OPCODES[op]
        if len(tokens) != len(signature):
            hint = ("; operands are separated by commas" if len(rest.replace(",", " ").split()) == len(signature)
                    else "")
            raise self.src.error(
                number,
                f"'{op}' takes {len(signature)} operand(s) ({', '.join(signature) or 'none'}), got {len(tokens)}"
                f"{hint}",
            )
        for token in tokens:
            if not token:
                raise self.src.error(number, f"empty operand in '{op}'")
            if _NAME_RE.match(token) is None and _INT_RE.match(token) is None:
                raise self.src.error(number, f"malformed operand {_show(token)} (expected a name or an integer)")
        entry = self._open_entry()
        code = self.program.entries[entry]
        self.raw.append(_RawInstruction(op, tokens, number, entry, len(code)))
        code.append(None)  # placeholder, filled in pass 2

    # directives ------------------------------------------------------------------------------------------------
    def _directive(self, number: int, text: str) -> None:
        parts = [p for p in _DIRECTIVE_SPLIT_RE.split(text) if p]
        word = parts[0].lower()
        args = parts[1:]
        handler = _DIRECTIVES.get(word)
        if handler is None:
            raise self.src.error(number, f"unknown directive {_show(parts[0])}")
        handler(self, number, word, args)

    def _declare(self, decl: Declaration) -> None:
        if _NAME_RE.match(decl.name) is None:
            raise self.src.error(decl.line, f"bad name {_show(decl.name)} (letters, digits and '_', not first digit)")
        if decl.name in self.program.labels:  # ISA.md: one namespace per program
            raise self.src.error(decl.line, f"'{decl.name}' is the name of the label at line "
                                            f"{self.program.labels[decl.name][2]} (one namespace per program)")
        previous = self.program.declarations.get(decl.name)
        if previous is not None:
            raise self.src.error(
                decl.line,
                f"duplicate declaration of '{decl.name}' (already declared at line {previous.line} "
                f"as {_KIND_WORDS[previous.kind]})",
            )
        self.program.declarations[decl.name] = decl

    def _need(self, number: int, word: str, args: list, low: int, high: int, usage: str) -> None:
        if not low <= len(args) <= high:
            raise self.src.error(number, f"'{word}' expects: {word} {usage}")

    def _int_arg(self, number: int, token: str, what: str, low: int, high: int) -> int:
        value = _parse_int(token)
        if value is None:
            const = self.program.declarations.get(token)
            if const is not None and const.kind == "const":
                value = const.value
            else:
                raise self.src.error(number, f"{what} must be an integer, got {_show(token)}")
        if not low <= value <= high:
            raise self.src.error(number, f"{what} {value} out of range [{low}, {high}]")
        return value

    def _d_state(self, number, word, args):
        self._need(number, word, args, 1, 2, "NAME [INITIAL]")
        init = self._int_arg(number, args[1], "initial value", isa.REG_MIN, isa.REG_MAX) if len(args) == 2 else 0
        self._declare(Declaration(args[0], "state", number, value=init))

    def _d_imm(self, number, word, args):
        self._need(number, word, args, 1, 2, "NAME [DEFAULT]")
        default = self._int_arg(number, args[1], "default", isa.REG_MIN, isa.REG_MAX) if len(args) == 2 else None
        self._declare(Declaration(args[0], "imm", number, value=default))

    def _d_const(self, number, word, args):
        self._need(number, word, args, 2, 2, "NAME VALUE")
        value = self._int_arg(number, args[1], "constant", isa.REG_MIN, isa.REG_MAX)
        self._declare(Declaration(args[0], "const", number, value=value))

    def _d_lut(self, number, word, args):
        if len(args) < 2:
            raise self.src.error(number, f"'{word}' expects: {word} NAME SIZE [VALUE, ...]")
        size = self._int_arg(number, args[1], "LUT size", 1, isa.MAX_LUT_SIZE)
        values = None
        if len(args) > 2:
            if len(args) - 2 != size:
                raise self.src.error(number, f"LUT '{args[0]}' declares {size} entries but lists {len(args) - 2}")
            values = tuple(self._int_arg(number, t, "LUT entry", isa.REG_MIN, isa.REG_MAX) for t in args[2:])
        self._declare(Declaration(args[0], "lut", number, size=size, values=values))

    def _d_out(self, number, word, args):
        self._need(number, word, args, 2, 2, "NAME BITS")
        bits = self._int_arg(number, args[1], "payload width", isa.MIN_WIDTH_BITS, isa.MAX_PAYLOAD_BITS)
        self._declare(Declaration(args[0], "out", number, bits=bits))

    def _d_entry(self, number, word, args):
        self._need(number, word, args, 1, 1, "NAME")
        name = args[0]
        if _NAME_RE.match(name) is None:
            raise self.src.error(number, f"bad entry name {_show(name)}")
        if name in self.program.entries:
            first = self.program.entry_lines[name]
            where = f"at line {first}" if first else "implicitly by the instructions before the first .entry"
            raise self.src.error(number, f"duplicate entry '{name}' (already begun {where})")
        self.program.entries[name] = []
        self.program.entry_lines[name] = number
        self.current_entry = name

    # pass 2 ----------------------------------------------------------------------------------------------------
    def _resolve(self, raw: _RawInstruction) -> None:
        signature = isa.OPCODES[raw.op]
        operands = tuple(self._operand(raw, kind, token) for kind, token in zip(signature, raw.tokens))
        self.program.entries[raw.entry][raw.index] = Instruction(raw.op, operands, raw.line)

    def _operand(self, raw: _RawInstruction, kind: str, token: str) -> Operand:
        line = raw.line
        literal = _parse_int(token)
        decl = self.program.declarations.get(token)
        if kind == isa.DST:
            if literal is not None:
                raise self.src.error(line, f"destination must be a register, got the literal {_show(token)}")
            if decl is None:
                raise self.src.error(line, f"undeclared register '{token}'")
            if decl.kind not in ("state", "scratch"):
                raise self.src.error(line, f"cannot write to '{token}': it is {_KIND_WORDS[decl.kind]}")
            return Operand(REG, token)
        if kind in (isa.SRC, isa.RSHIFT, isa.LSHIFT):
            return self._source(raw, kind, token, literal, decl)
        if kind == isa.BITS:
            if literal is None and (decl is None or decl.kind != "const"):
                raise self.src.error(line, f"width must be an integer literal or .const, got {_show(token)}")
            value = literal if literal is not None else decl.value
            if not isa.MIN_WIDTH_BITS <= value <= isa.REGISTER_BITS:
                raise self.src.error(
                    line, f"width {value} out of range [{isa.MIN_WIDTH_BITS}, {isa.REGISTER_BITS}]"
                )
            return Operand(LIT, None if literal is not None else token, value)
        if kind == isa.LABEL:
            return self._label_operand(raw, token)
        # named resources: LUT, input port, output port
        wanted = {isa.LUT: "lut", isa.IN_PORT: "in", isa.OUT_PORT: "out"}[kind]
        if decl is None or decl.kind != wanted:
            what = {"lut": "LUT", "in": "input port", "out": "output port"}[wanted]
            extra = f" ('{token}' is {_KIND_WORDS[decl.kind]})" if decl is not None else ""
            raise self.src.error(line, f"unknown {what} {_show(token)}{extra}")
        return Operand(kind, token)

    def _source(self, raw, kind, token, literal, decl) -> Operand:
        line = raw.line
        shift_range = isa.SHIFT_RANGES.get(kind)
        if literal is not None or (decl is not None and decl.kind == "const"):
            value = literal if literal is not None else decl.value
            if shift_range is not None:
                if not shift_range[0] <= value <= shift_range[1]:
                    raise self.src.error(
                        line, f"shift amount {value} out of range [{shift_range[0]}, {shift_range[1]}]"
                    )
            elif not isa.REG_MIN <= value <= isa.REG_MAX:
                raise self.src.error(
                    line, f"immediate {value} out of the 24-bit range [{isa.REG_MIN}, {isa.REG_MAX}]"
                )
            return Operand(LIT, None if literal is not None else token, value)
        if decl is None:
            raise self.src.error(line, f"undeclared name '{token}'")
        if decl.kind in ("state", "scratch"):
            return Operand(REG, token)
        if decl.kind == "param":
            return Operand(PARAM, token)
        if decl.kind == "imm":
            if shift_range is not None:
                self.program.imm_shift_uses.setdefault(token, []).append(ShiftUse(line, *shift_range))
            return Operand(IMM, token)
        hint = {"in": " (read it with recv)", "out": " (write it with send)", "lut": " (read it with lut)"}
        raise self.src.error(line, f"'{token}' is {_KIND_WORDS[decl.kind]}, not a value{hint[decl.kind]}")

    def _label_operand(self, raw: _RawInstruction, token: str) -> Operand:
        line = raw.line
        if _NAME_RE.match(token) is None:
            raise self.src.error(line, f"branch target must be a label, got {_show(token)}")
        target = self.program.labels.get(token)
        if target is None:
            raise self.src.error(line, f"missing label '{token}'")
        entry, index, label_line = target
        if entry != raw.entry:
            raise self.src.error(
                line, f"label '{token}' (line {label_line}) is in entry '{entry}', not in '{raw.entry}'"
            )
        if index <= raw.index:
            raise self.src.error(
                line, f"backward jump to label '{token}' (line {label_line}): only forward skips are allowed"
            )
        return Operand(isa.LABEL, token, index)

    def _check_const_shift_defaults(self) -> None:
        """A per-process immediate with a default used as a shift: check the default now."""
        for name, uses in self.program.imm_shift_uses.items():
            default = self.program.declarations[name].value
            for use in uses:
                if default is not None and not use.low <= default <= use.high:
                    raise self.src.error(
                        use.line,
                        f"shift amount '{name}' (default {default}) out of range [{use.low}, {use.high}]",
                    )


def _names_directive(kind: str):
    """Handler of a directive that only declares names (.scratch, .param, .in)."""

    def handler(self: _Assembler, number: int, word: str, args: list) -> None:
        if not args:
            raise self.src.error(number, f"'{word}' expects: {word} NAME[, NAME...]")
        for name in args:
            self._declare(Declaration(name, kind, number))

    return handler


_DIRECTIVES = {
    ".state": _Assembler._d_state,
    ".scratch": _names_directive("scratch"),
    ".param": _names_directive("param"),
    ".in": _names_directive("in"),
    ".imm": _Assembler._d_imm,
    ".const": _Assembler._d_const,
    ".lut": _Assembler._d_lut,
    ".out": _Assembler._d_out,
    ".entry": _Assembler._d_entry,
}


def _program_name(filename: str) -> str:
    base = os.path.basename(str(filename))
    return base[: -len(".ucode")] if base.endswith(".ucode") else base


# --- public API ------------------------------------------------------------------------------------------------

def assemble(text: Union[str, bytes], filename: str = "<string>") -> Program:
    """Assemble program text (str, or UTF-8 bytes) into a `Program`; errors raise `MicrocodeError` `file:line: ...`."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            line = bytes(text)[: exc.start].count(b"\n") + 1
            raise MicrocodeError(f"{filename}:{line}: not valid UTF-8 text") from None
    if not isinstance(text, str):
        raise MicrocodeError(f"{filename}: program text must be str or bytes, got {type(text).__name__}")
    return _Assembler(text.removeprefix("\ufeff"), filename).run()  # a byte-order mark some editors write first


def assemble_file(path) -> Program:
    """Assemble a `.ucode` file."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise MicrocodeError(f"{path}: cannot read program: {exc.strerror}") from None
    return assemble(data, str(path))
