"""The shipped microcode programs: requant.ucode against a numpy reference, instruction counts, load_program, and
that ISA.md documents every opcode."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lava_matmulfree.errors import MicrocodeError
from lava_matmulfree.microcode import PROGRAM_DIR, instruction_counts, isa, load_program, program_names

LO = -(2**23)
HI = 2**23 - 1
INT8_LO, INT8_HI = -128, 127
REQUANT_INSTRUCTIONS = 4


def requant_reference(x: np.ndarray, m: int, k: int):
    """saturate_int8(saturate24(rshift_round(saturate24(x) * m, k))) with exact Python integers (numpy object
    arrays); returns (y, 24-bit overflows per neuron, int8 clamps per neuron)."""
    x = x.astype(object)
    x24 = np.clip(x, LO, HI)
    recv_overflow = (x24 != x).astype(np.int64)
    product = x24 * m
    if k > 0:
        # round half up of product / 2^k  ==  floor((2 * product + 2^k) / 2^(k+1))
        shifted = (2 * product + 2**k) // 2 ** (k + 1)
    else:
        shifted = product * 2 ** (-k)
    y24 = np.clip(shifted, LO, HI)
    mul_overflow = (y24 != shifted).astype(np.int64)
    y8 = np.clip(y24, INT8_LO, INT8_HI)
    clamps = (y8 != y24).astype(np.int64)
    return y8.astype(np.int64), recv_overflow + mul_overflow, clamps


def _inputs(rng, n):
    x = rng.integers(LO, HI + 1, n)
    edges = np.array([LO, LO + 1, -1, 0, 1, HI - 1, HI, HI + 1, LO - 1, 2**40])
    count = min(n, edges.size)
    x[:count] = edges[:count]
    return x


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("n", [1, 7, 333, 1001])
def test_requant_matches_reference(seed, n):
    rng = np.random.default_rng(seed * 7919 + n)
    program = load_program("requant")
    cases = [(181, 10), (1, 0), (-1, 0), (HI, 23), (LO, 46), (3, -5)]
    cases += [(int(rng.integers(LO, HI + 1)), int(rng.integers(-24, 49))) for _ in range(4)]
    cases += [(int(rng.integers(1, 2**12)), int(rng.integers(4, 20))) for _ in range(4)]  # typical scales
    for m, k in cases:
        x = _inputs(rng, n)
        result = program.bind(n, imms={"m": m, "k": k}).run({"x_in": x})
        y, overflows, clamps = requant_reference(x, m, k)
        np.testing.assert_array_equal(result.outputs["y_out"], y, err_msg=f"m={m} k={k}")
        np.testing.assert_array_equal(result.overflows, overflows, err_msg=f"m={m} k={k}")
        np.testing.assert_array_equal(result.clamps, clamps, err_msg=f"m={m} k={k}")
        assert result.sent["y_out"].all()
        np.testing.assert_array_equal(result.executed, np.full(n, REQUANT_INSTRUCTIONS))
        assert result.state == {}


def test_requant_typical_values_do_not_saturate():
    """A realistic scale (x ~ +-d_in*127, y = x * 181 / 2^14) stays inside int8 without clamps."""
    rng = np.random.default_rng(11)
    x = rng.integers(-11000, 11001, 513)
    result = load_program("requant").bind(513, imms={"m": 181, "k": 14}).run({"x_in": x})
    y, _, _ = requant_reference(x, 181, 14)
    np.testing.assert_array_equal(result.outputs["y_out"], y)
    assert not result.clamps.any() and not result.overflows.any()


def test_requant_shift_checked_at_load():
    with pytest.raises(MicrocodeError, match=r"^.*requant\.ucode:\d+: shift amount 'k' = 49 out of range"):
        load_program("requant").bind(3, imms={"m": 1, "k": 49})
    with pytest.raises(MicrocodeError, match=r"requant\.ucode:\d+: immediate 'm' was not bound"):
        load_program("requant").bind(3, imms={"k": 1})


def test_instruction_counts():
    counts = instruction_counts()
    assert set(counts) == set(program_names())
    assert counts["requant"] == REQUANT_INSTRUCTIONS
    assert all(isinstance(v, int) and v >= 0 for v in counts.values())
    for name in counts:
        assert load_program(name).static_count() == counts[name]


def test_load_program_unknown_name():
    with pytest.raises(MicrocodeError, match=r"no microcode program named 'nope' \(available: .*requant"):
        load_program("nope")
    with pytest.raises(MicrocodeError, match=r"no microcode program named"):
        load_program("../microcode/requant")


def test_isa_doc_lists_every_opcode_and_limit():
    doc = (PROGRAM_DIR / "ISA.md").read_text()
    for op in isa.OPCODES:
        assert re.search(rf"`{op} ", doc) or re.search(rf"/ `{op}`", doc), op
    assert "not public" in doc
    assert str(isa.MAX_LUT_SIZE) in doc
