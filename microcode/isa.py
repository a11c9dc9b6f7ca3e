"""The instruction set of the neuron microcode: widths, limits, opcode signatures and the fixed-point primitives.

This module is the single place where the numeric contract of the ISA lives (see ISA.md). The assembler uses the
opcode table to check programs; the interpreter uses the primitives below to execute them, vectorised over neurons
with numpy int64 arrays.
"""

from __future__ import annotations

import numpy as np

# --- register and payload widths -------------------------------------------------------------------------------

#: Width of every register, parameter, immediate and LUT entry (Loihi 2 neuron state is 24-bit).
REGISTER_BITS = 24
#: Smallest and largest value of a register.
REG_MIN = -(1 << (REGISTER_BITS - 1))
REG_MAX = (1 << (REGISTER_BITS - 1)) - 1

#: Widest graded-spike payload an output port may declare. Loihi 2 carries up to 32-bit payloads in hardware; Lava
#: practice (and our 24-bit registers) use 24.
MAX_PAYLOAD_BITS = REGISTER_BITS
#: Narrowest signed width accepted by `clamp` and `.out` ports (a signed 1-bit value is in [-1, 0]).
MIN_WIDTH_BITS = 1

# --- shifts ----------------------------------------------------------------------------------------------------

#: Width of the exact product inside `mul` (two 24-bit operands).
PRODUCT_BITS = 2 * REGISTER_BITS
#: Largest right shift. Any right shift by PRODUCT_BITS or more of a product (|p| <= 2^46) rounds to 0, so larger
#: amounts would not change any result.
MAX_RSHIFT = PRODUCT_BITS
#: Largest left shift. Any non-zero value shifted left by REGISTER_BITS saturates, so larger amounts would not
#: change any result either.
MAX_LSHIFT = REGISTER_BITS
#: Before a left shift, values are clipped to +-LSHIFT_GUARD: this keeps the shifted value inside int64 and leaves
#: every saturated result (and overflow count) unchanged, since |LSHIFT_GUARD| already exceeds the register range.
LSHIFT_GUARD = 1 << REGISTER_BITS

# --- look-up tables --------------------------------------------------------------------------------------------

#: Most entries one LUT may hold: 4096 x 24 bit = 12 KiB, a tenth of the ~128 KB a neuro core shares between
#: synapses, state and microcode (see ISA.md; the core memory figure itself is of low confidence).
MAX_LUT_SIZE = 4096

# --- program structure -----------------------------------------------------------------------------------------

#: Name of the entry point run once per time step (and the one `instruction_counts()` reports).
DEFAULT_ENTRY = "update"

#: Maximum number of decimal/hex/binary digits an integer literal may have before it is rejected outright
#: (any literal this long is far outside the 24-bit range anyway; this keeps Python's int() away from huge strings).
MAX_LITERAL_DIGITS = 64

# Operand kinds of the opcode signatures.
DST = "dst"          # a writable register (.state or .scratch)
SRC = "src"          # a register, a per-neuron .param, an integer literal, a .const or a per-process .imm
RSHIFT = "rshift"    # a SRC used as a right-shift amount: constants must lie in [-MAX_LSHIFT, MAX_RSHIFT]
LSHIFT = "lshift"    # a SRC used as a left-shift amount: constants must lie in [-MAX_RSHIFT, MAX_LSHIFT]
BITS = "bits"        # a literal or .const width in [MIN_WIDTH_BITS, REGISTER_BITS]
LUT = "lut"          # a declared LUT name
IN_PORT = "in"       # a declared input port
OUT_PORT = "out"     # a declared output port
LABEL = "label"      # a label further down in the same entry

#: Allowed constant range of each shift-amount kind (right shifts: negative = left).
SHIFT_RANGES = {RSHIFT: (-MAX_LSHIFT, MAX_RSHIFT), LSHIFT: (-MAX_RSHIFT, MAX_LSHIFT)}

_BINARY = (DST, SRC, SRC)

#: opcode -> operand signature. The semantics are in ISA.md and in the interpreter.
OPCODES: dict[str, tuple[str, ...]] = {
    "mov": (DST, SRC),
    "add": _BINARY,
    "sub": _BINARY,
    "neg": (DST, SRC),
    "abs": (DST, SRC),
    "min": _BINARY,
    "max": _BINARY,
    "mul": (DST, SRC, SRC, RSHIFT),
    "shr": (DST, SRC, RSHIFT),
    "sra": (DST, SRC, RSHIFT),
    "shl": (DST, SRC, LSHIFT),
    "and": _BINARY,
    "or": _BINARY,
    "xor": _BINARY,
    "cmpeq": _BINARY,
    "cmpne": _BINARY,
    "cmplt": _BINARY,
    "cmple": _BINARY,
    "cmpgt": _BINARY,
    "cmpge": _BINARY,
    "sel": (DST, SRC, SRC, SRC),
    "clamp": (DST, SRC, BITS),
    "lut": (DST, LUT, SRC),
    "recv": (DST, IN_PORT),
    "send": (OUT_PORT, SRC),
    "bz": (SRC, LABEL),
    "bnz": (SRC, LABEL),
    "jmp": (LABEL,),
}

#: Opcodes that transfer control (forward only).
BRANCH_OPCODES = frozenset({"bz", "bnz", "jmp"})


# --- fixed-point primitives (numpy int64, vectorised) ----------------------------------------------------------

def width_range(bits: int) -> tuple[int, int]:
    """The signed range [-2^(bits-1), 2^(bits-1)-1] of a `bits`-wide value."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def rshift_round(x, k):
    """Rounding arithmetic shift: k>0: (x + 2^(k-1)) >> k (round half up); k == 0: x; k<0: x << -k.

    `x` is an int64 array or scalar with |x| <= 2^PRODUCT_BITS; `k` an int or an int64 array (per neuron) within
    [-MAX_LSHIFT, MAX_RSHIFT]. No saturation here: the caller saturates (and counts) the result. Left shifts clip
    their input to +-LSHIFT_GUARD first, which cannot change a saturated result.
    """
    x = np.asarray(x, dtype=np.int64)
    if np.ndim(k) == 0:
        k = int(k)
        if k > 0:
            return (x + (1 << (k - 1))) >> k
        if k == 0:
            return x
        return np.clip(x, -LSHIFT_GUARD, LSHIFT_GUARD) << -k
    k = np.asarray(k, dtype=np.int64)
    right = np.maximum(k, 0)
    half = np.where(right > 0, np.left_shift(1, np.maximum(right - 1, 0)), 0)
    shifted_right = (x + half) >> right
    shifted_left = np.clip(x, -LSHIFT_GUARD, LSHIFT_GUARD) << np.maximum(-k, 0)
    return np.where(k < 0, shifted_left, shifted_right)


def rshift_floor(x, k):
    """Truncating (floor) arithmetic shift: k>0: x >> k; k == 0: x; k<0: x << -k (same input contract as above)."""
    x = np.asarray(x, dtype=np.int64)
    if np.ndim(k) == 0:
        k = int(k)
        if k >= 0:
            return x >> k
        return np.clip(x, -LSHIFT_GUARD, LSHIFT_GUARD) << -k
    k = np.asarray(k, dtype=np.int64)
    shifted_right = x >> np.maximum(k, 0)
    shifted_left = np.clip(x, -LSHIFT_GUARD, LSHIFT_GUARD) << np.maximum(-k, 0)
    return np.where(k < 0, shifted_left, shifted_right)


def clamp_shift(k, kind: str):
    """Clamp per-neuron (register) shift amounts into the kind's range. As explained at MAX_RSHIFT/MAX_LSHIFT,
    this never changes a result: it only keeps numpy's shifts well defined."""
    low, high = SHIFT_RANGES[kind]
    return np.clip(k, low, high)


# Operand kinds after resolution.
REG = "reg"        # a .state or .scratch register (row in the register file)
PARAM = "param"    # a per-neuron read-only parameter bound at load
LIT = "lit"        # an integer known at assembly (literal or .const)
IMM = "imm"        # a per-process immediate bound at load
