"""Assembler: each kind of malformed program gives a `file:line: message` MicrocodeError; fuzzing (random bytes,
random token sequences, mutated valid programs) never produces any other exception; instruction counting."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lava_matmulfree.errors import LmfError, MicrocodeError
from lava_matmulfree.microcode import assemble, assemble_file, isa

FILE = "bad.ucode"

HEADER = """\
.in      x_in
.out     y_out 8
.param   gain
.imm     k
.const   EIGHT 8
.lut     T 4
.state   h
.scratch a, b
"""  # lines 1-8; the case bodies below start at line 9


def body_error(body: str, message: str):
    """Assemble HEADER + body and expect a MicrocodeError `bad.ucode:<line>: <message>`."""
    with pytest.raises(MicrocodeError) as info:
        assemble(HEADER + body, FILE)
    text = str(info.value)
    assert re.match(rf"^{re.escape(FILE)}:\d+: ", text), text
    assert re.search(message, text), text
    return text


ERROR_CASES = [
    # (body, expected line, message pattern)
    ("mov a, b\nfrobnicate a, b\n", 10, r"unknown instruction 'frobnicate'"),
    ("add a, b\n", 9, r"'add' takes 3 operand\(s\) \(dst, src, src\), got 2"),
    ("add a, b, h, x_in\n", 9, r"'add' takes 3 operand\(s\)"),
    ("jmp\n", 9, r"'jmp' takes 1 operand\(s\) \(label\), got 0"),
    ("add a, , b\n", 9, r"empty operand in 'add'"),
    ("add a, b, 3x\n", 9, r"malformed operand '3x'"),
    ("add a, b, r[1]\n", 9, r"malformed operand 'r\[1\]'"),
    ("add zz, a, b\n", 9, r"undeclared register 'zz'"),
    ("add a, zz, b\n", 9, r"undeclared name 'zz'"),
    ("add a, b, 8388608\n", 9, r"immediate 8388608 out of the 24-bit range"),
    ("add a, b, -8388609\n", 9, r"immediate -8388609 out of the 24-bit range"),
    ("add a, b, 0x1000000\n", 9, r"immediate 16777216 out of the 24-bit range"),
    ("add a, b, 99999999999999999999999999999999999999999999999999999999999999999999999\n", 9, r"out of the 24-bit"),
    ("mul a, b, b, 49\n", 9, r"shift amount 49 out of range \[-24, 48\]"),
    ("shr a, b, -25\n", 9, r"shift amount -25 out of range \[-24, 48\]"),
    ("shl a, b, 25\n", 9, r"shift amount 25 out of range \[-48, 24\]"),
    ("clamp a, b, 25\n", 9, r"width 25 out of range \[1, 24\]"),
    ("clamp a, b, 0\n", 9, r"width 0 out of range"),
    ("clamp a, b, h\n", 9, r"width must be an integer literal or .const"),
    ("recv a, nope\n", 9, r"unknown input port 'nope'"),
    ("recv a, y_out\n", 9, r"unknown input port 'y_out' \('y_out' is an output port\)"),
    ("send nope, a\n", 9, r"unknown output port 'nope'"),
    ("send x_in, a\n", 9, r"unknown output port 'x_in' \('x_in' is an input port\)"),
    ("lut a, NOPE, b\n", 9, r"unknown LUT 'NOPE'"),
    ("lut a, gain, b\n", 9, r"unknown LUT 'gain' \('gain' is a per-neuron parameter"),
    ("add a, x_in, b\n", 9, r"'x_in' is an input port, not a value \(read it with recv\)"),
    ("add a, T, b\n", 9, r"'T' is a LUT, not a value"),
    ("mov gain, a\n", 9, r"cannot write to 'gain': it is a per-neuron parameter \(read-only\)"),
    ("mov k, a\n", 9, r"cannot write to 'k': it is a per-process immediate"),
    ("mov EIGHT, a\n", 9, r"cannot write to 'EIGHT': it is a constant"),
    ("mov x_in, a\n", 9, r"cannot write to 'x_in': it is an input port"),
    ("mov 5, a\n", 9, r"destination must be a register, got the literal '5'"),
    ("bz a, nowhere\n", 9, r"missing label 'nowhere'"),
    ("back:\nadd a, a, 1\nbnz a, back\n", 11, r"backward jump to label 'back' \(line 9\)"),
    ("self: jmp self\n", 9, r"backward jump to label 'self'"),
    ("jmp 12\n", 9, r"branch target must be a label, got '12'"),
    (".entry update\njmp later\n.entry other\nlater:\n", 10, r"label 'later' \(line 12\) is in entry 'other'"),
    ("add a a 1\n", 9, r"'add' takes 3 operand\(s\) \(dst, src, src\), got 1; operands are separated by commas"),
    ("x:\nx:\n", 10, r"duplicate label 'x' \(first defined at line 9\)"),
    ("a:\n", 9, r"label 'a': the name is declared at line 8 as a scratch register \(one namespace per program\)"),
    ("zz:\n.scratch zz\n", 10, r"'zz' is the name of the label at line 9 \(one namespace per program\)"),
    (".scratch a\n", 9, r"duplicate declaration of 'a' \(already declared at line 8 as a scratch register\)"),
    (".param h\n", 9, r"duplicate declaration of 'h' \(already declared at line 7 as a persistent state"),
    (".lut gain 2\n", 9, r"duplicate declaration of 'gain'"),
    (".in y_out\n", 9, r"duplicate declaration of 'y_out'"),
    (".entry e\n.entry e\n", 10, r"duplicate entry 'e' \(already begun at line 9\)"),
    ("mov a, b\n.entry update\n", 10, r"duplicate entry 'update' \(already begun implicitly"),
    (".bogus a\n", 9, r"unknown directive '.bogus'"),
    (".state\n", 9, r"'.state' expects: .state NAME \[INITIAL\]"),
    (".state s 1 2\n", 9, r"'.state' expects"),
    (".state s 8388608\n", 9, r"initial value 8388608 out of range"),
    (".state s zz\n", 9, r"initial value must be an integer, got 'zz'"),
    (".state 9s\n", 9, r"bad name '9s'"),
    (".scratch\n", 9, r"'.scratch' expects: .scratch NAME\[, NAME...\]"),
    (".out o 25\n", 9, r"payload width 25 out of range \[1, 24\]"),
    (".out o\n", 9, r"'.out' expects: .out NAME BITS"),
    (".lut L 0\n", 9, r"LUT size 0 out of range \[1, 4096\]"),
    (".lut L 4097\n", 9, r"LUT size 4097 out of range"),
    (".lut L 3 1 2\n", 9, r"LUT 'L' declares 3 entries but lists 2"),
    (".lut L 2 1 8388608\n", 9, r"LUT entry 8388608 out of range"),
    (".const C 8388608\n", 9, r"constant 8388608 out of range"),
    (".const C\n", 9, r"'.const' expects: .const NAME VALUE"),
    (".imm q 1 2\n", 9, r"'.imm' expects"),
    (".const SH 60\nshr a, b, SH\n", 10, r"shift amount 60 out of range"),
    (".imm big 60\nshr a, b, big\n", 10, r"shift amount 'big' \(default 60\) out of range"),
    (".entry 1x\n", 9, r"bad entry name '1x'"),
    ("mov a, b ; fine\n+++\n", 10, r"malformed instruction '\+\+\+'"),
    ("mov a, b\x00\n", 9, r"malformed operand 'b\\x00'"),
    ("mov a, b\r\nMOV a, ３\n", 10, r"malformed operand '３'"),
]


@pytest.mark.parametrize("body, line, message", ERROR_CASES)
def test_error_kinds_give_file_and_line(body, line, message):
    text = body_error(body, message)
    assert text.startswith(f"{FILE}:{line}: "), text


def test_valid_header_and_comments_assemble():
    program = assemble(HEADER + "# hash comment\n  ; semicolon comment\nmov a, gain ; trailing\n", FILE)
    assert program.static_count() == 1
    assert set(program.state) == {"h"} and set(program.scratch) == {"a", "b"}
    assert set(program.params) == {"gain"} and set(program.imms) == {"k"}
    assert program.consts["EIGHT"].value == 8 and program.luts["T"].size == 4
    assert program.in_ports.keys() == {"x_in"} and program.out_ports["y_out"].bits == 8


def test_declarations_may_follow_their_use_and_opcodes_are_case_insensitive():
    program = assemble("ADD d, d, ONE\nSend o, d\n.const ONE 1\n.scratch d\n.out o 8\n", "late.ucode")
    assert [ins.op for ins in program.entries["update"]] == ["add", "send"]
    res = program.bind(2).run()
    np.testing.assert_array_equal(res.outputs["o"], [1, 1])


def test_literal_forms():
    program = assemble(".scratch a, b, c, d\nmov a, 0x7FFFFF\nmov b, -0b101\nmov c, +007\nmov d, -0x800000\n", "l")
    res = program.bind(1).run()
    assert [int(res.scratch[r][0]) for r in "abcd"] == [2**23 - 1, -5, 7, -(2**23)]


def test_invalid_utf8_bytes_report_their_line():
    with pytest.raises(MicrocodeError, match=r"^bytes\.ucode:3: not valid UTF-8 text$"):
        assemble(b".scratch a\nmov a, 1\nmov a, \xff\n", "bytes.ucode")


def test_a_byte_order_mark_before_the_first_line_is_not_an_instruction(tmp_path):
    """Editors on Windows write a UTF-8 BOM first: it read as part of a malformed instruction ('\\ufeff.scratch a')."""
    body = ".scratch a\nmov a, 3\n"
    path = tmp_path / "bom.ucode"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    for program in (assemble_file(path), assemble("\ufeff" + body, "bom.ucode")):
        assert int(program.bind(1).run().scratch["a"][0]) == 3
    with pytest.raises(MicrocodeError, match=r"^mid\.ucode:2: "):  # one elsewhere is still malformed
        assemble(".scratch a\n\ufeffmov a, 3\n", "mid.ucode")


def test_non_text_input():
    with pytest.raises(MicrocodeError, match=r"^x\.ucode: program text must be str or bytes"):
        assemble(12, "x.ucode")


def test_assemble_file(tmp_path):
    path = tmp_path / "prog.ucode"
    path.write_text(".scratch a\nmov a, 1\nadd a, a\n")
    with pytest.raises(MicrocodeError, match=rf"^{re.escape(str(path))}:3: 'add' takes 3"):
        assemble_file(path)
    path.write_text(".scratch a\nmov a, 1\n")
    program = assemble_file(path)
    assert program.name == "prog" and program.static_count() == 1
    with pytest.raises(MicrocodeError, match=r"cannot read program"):
        assemble_file(tmp_path / "missing.ucode")


def test_microcode_error_is_an_lmf_error():
    assert issubclass(MicrocodeError, LmfError)


# --- instruction counting ----------------------------------------------------------------------------------------

def test_static_and_dynamic_counts():
    text = """
    .scratch a
    .entry update
        mov a, 1
        bnz a, end
        add a, a, 1
        add a, a, 1
    end:
    .entry other
        mov a, 2
    """
    program = assemble(text, "count.ucode")
    assert program.static_count() == program.instruction_count == 4
    assert program.static_count("other") == 1
    with pytest.raises(MicrocodeError, match=r"no entry 'missing'"):
        program.static_count("missing")
    res = program.bind(3).run()
    np.testing.assert_array_equal(res.executed, [2, 2, 2])
    assert res.static_count == 4
    assert "line" in program.listing()


# --- fuzzing --------------------------------------------------------------------------------------------------------

FUZZ_FILE = "fuzz.ucode"
_PREFIX = re.compile(rf"^{re.escape(FUZZ_FILE)}(:\d+)?: ")


def assemble_or_error(text):
    """The assembler must return a Program or raise MicrocodeError with a file[:line] prefix; nothing else."""
    try:
        return assemble(text, FUZZ_FILE)
    except MicrocodeError as exc:
        assert _PREFIX.match(str(exc)), str(exc)
        return None


def exercise(program) -> None:
    """Bind a fuzzed program with harmless values and run each entry: only MicrocodeError may escape."""
    if program is None:
        return
    n = 3
    params = {name: np.arange(n) - 1 for name in program.params}
    imms = {name: 0 for name in program.imms}
    luts = {name: np.zeros(d.size, dtype=np.int64) for name, d in program.luts.items() if d.values is None}
    inputs = {name: np.array([-(2**30), 0, 2**30]) for name in program.in_ports}
    try:
        machine = program.bind(n, params=params, imms=imms, luts=luts)
        for entry in program.entries:
            machine.step(inputs, entry=entry)
    except MicrocodeError as exc:
        assert _PREFIX.match(str(exc)), str(exc)
    program.listing()


FUZZ_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@FUZZ_SETTINGS
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data):
    exercise(assemble_or_error(data))


@FUZZ_SETTINGS
@given(st.text(max_size=300))
def test_fuzz_random_text(text):
    exercise(assemble_or_error(text))


VOCABULARY = (
    list(isa.OPCODES)
    + [".state", ".scratch", ".param", ".imm", ".const", ".lut", ".in", ".out", ".entry", ".", ".bogus"]
    + ["a", "b", "h", "x_in", "y_out", "gain", "k", "T", "EIGHT", "update", "lbl", "lbl:", "end:", "end"]
    + ["0", "1", "-1", "8", "24", "48", "49", "-24", "8388607", "8388608", "-8388608", "0x10", "0b11", "4096"]
    + [",", ",", ":", ";", "#", "\n", "\n", "\n", "\t", "\r", "\x00", "é", "(", "[", "-", "+"]
)


@FUZZ_SETTINGS
@given(st.lists(st.sampled_from(VOCABULARY), max_size=60), st.lists(st.sampled_from([" ", ", ", "\n", ""]),
                                                                  min_size=60, max_size=60))
def test_fuzz_random_token_sequences(tokens, separators):
    text = "".join(t + s for t, s in zip(tokens, separators))
    exercise(assemble_or_error(text))


VALID_PROGRAM = HEADER + """\
.lut     SQ 4 0, 1, 4, 9
.entry update
        recv   a, x_in
        mul    a, a, gain, k
        cmpgt  b, a, 0
        bz     b, skip
        lut    b, SQ, a
        add    h, h, b
        clamp  b, h, EIGHT
        send   y_out, b
skip:
        shr    a, a, 2
        sel    a, b, a, h
.entry reset
        mov    h, 0
        jmp    done
        neg    h, h
done:
"""


def test_valid_program_for_mutations_runs():
    program = assemble(VALID_PROGRAM, FUZZ_FILE)
    assert program.static_count() == 10 and program.static_count("reset") == 3
    exercise(program)


def _mutate(text: str, data) -> str:
    lines = text.split("\n")
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["delete_char", "insert", "swap_lines", "dup_line", "drop_line", "token"]))
        if kind in ("delete_char", "insert"):
            joined = "\n".join(lines)
            pos = data.draw(st.integers(0, len(joined)))
            if kind == "delete_char":
                joined = joined[:pos] + joined[pos + 1:]
            else:
                joined = joined[:pos] + data.draw(st.sampled_from(VOCABULARY + ["z", "9", " "])) + joined[pos:]
            lines = joined.split("\n")
        elif kind == "swap_lines":
            i = data.draw(st.integers(0, len(lines) - 1))
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "dup_line":
            i = data.draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
        elif kind == "drop_line" and len(lines) > 1:
            del lines[data.draw(st.integers(0, len(lines) - 1))]
        elif kind == "token":
            i = data.draw(st.integers(0, len(lines) - 1))
            words = re.split(r"(\s+|,)", lines[i])
            if words:
                w = data.draw(st.integers(0, len(words) - 1))
                words[w] = data.draw(st.sampled_from(VOCABULARY))
                lines[i] = "".join(words)
    return "\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(st.data())
def test_fuzz_mutated_valid_programs(data):
    exercise(assemble_or_error(_mutate(VALID_PROGRAM, data)))


@pytest.mark.parametrize("text", ["", "; only a comment\n", ".in x\n.out y 8\n.state h\n", ".entry update\n"])
def test_a_program_without_instructions_is_an_error(text):
    with pytest.raises(MicrocodeError, match=r"empty\.ucode: the program has no instructions"):
        assemble(text, "empty.ucode")
