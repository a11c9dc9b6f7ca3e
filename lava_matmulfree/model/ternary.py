"""Exact ternary synapse kernel: ``W @ x`` for a ternary ``W`` in {-1, 0, +1} and int8 or int16 graded spikes.

This is the synaptic accumulation of docs/fixed_point.md, used by the golden model and by the fused Lava
Python models. :class:`TernaryMatrix` is built once per weight matrix (validated, packed) and answers

* ``matvec(x)``: ``x`` int8 ``[in]``  -> int32 ``[out]``, equal to ``W.astype(int64) @ x.astype(int64)``;
* ``matmul(X)``: ``X`` int8 ``[T, in]`` -> int32 ``[T, out]``, row ``t`` equal to ``matvec(X[t])``.

Wide spikes (``act_bits`` 9..16, the paper's W8A16): ``x`` int16 is split into bytes,
``x = 256*hi + lo + 128`` with ``hi = x >> 8`` and ``lo = (x & 255) - 128``, both int8, so
``W @ x = 256*(W @ hi) + W @ lo + 128*rowsum(W)``: the same int8 kernels on a batch of ``2T`` rows (one pass
over the weights for both halves) plus a per-row constant, exact by algebra (and tested against int64).
The int32 result bounds the fan-in: ``|W @ x| <= 32768*in``, so ``in <= MAX_IN_WIDE`` (65535).

Storage: 2 bits per weight, see :func:`pack`. Field code ``c = w + 1`` in {0, 1, 2}. Rows are interleaved in
groups of ``GROUP_ROWS`` (32): a group's codes are one run of bytes, a sequence of ``BLOCK_BYTES`` (128-byte)
blocks, one per ``BLOCK_COLS`` (16) input columns; in block ``b`` row ``q`` of the group owns the 4-byte lane at
bytes ``4q .. 4q+3``, and bit pair ``k`` (0..3) of its byte ``m`` holds the weight of column ``16*b + 4*k + m``.
A 512-bit vector of codes thus holds 16 rows side by side, and field ``k`` of all of them meets the same four
spikes ``x[16*b + 4*k ...]``: one broadcast dword, no shuffles, and each row's sum grows in an int32 lane of its
own (no reductions across lanes). The codes array is ``[padded_out(out), padded_in(in) // 4]`` in C order; its
row ``r`` is the ``r``-th run of that many bytes, not weight row ``r`` (:func:`code_offset` finds a row's lane).
Rows are padded with zero weights to whole groups and columns to whole blocks (for the model shapes only the
tiny vocabulary's head, 259 -> 288 rows).

The kernels' machine code (the packed layout's constants, LLVM IR of the group dot products, the tile loop, the
compiled kernels) is ternary_kernels.py; this module packs, validates, chooses a kernel and holds the public names.

Kernels, chosen by measurement (``benchmarks/bench_ternary.py``: 370M shapes, 1 thread, 2 cores at load
0.8-1.0, medians of 7; speed-ups are against numpy in the same run; docs/performance.md):

=================  ===============================  ===============================  ================
whole 370M model   decode T = 1, ms per token       prefill T = 128, ms per token    weights
=================  ===============================  ===============================  ================
numpy int8->int32  257                              207                              325 MiB (int8)
float32 BLAS       45.7                             4.43                             1301 MiB
``"vnni"``         4.12 (62x numpy)                 1.76 (118x numpy)                81 MiB (2 bits)
``"generic"``      17.8                             15.9                             81 MiB
``"blas"``         275                              5.86                             81 MiB
=================  ===============================  ===============================  ================

(decode: one pass over all 145 distinct matrices of a token in layer order; prefill: per-shape medians
times their counts, divided by T.)

``"vnni"`` (used wherever the CPU has AVX-512 VNNI, as on the project's machines)
    ``sum_j c_j x_j`` by ``vpdpbusd`` (unsigned codes times signed int8 spikes, four products summed into
    each int32 lane: 64 multiply-adds per instruction), then ``y = sum_j c_j x_j - sum_j x_j`` as
    ``w = c - 1``. Decoding costs one AND per 64 weights: for one token field ``k`` is used in place, as
    ``4^k c``, in an accumulator of its own that is folded back by an exact shift; in a batch a shift and an AND
    per field are shared by ``TOKEN_BLOCK`` tokens. One token streams the 81 MiB of packed weights at 89 %
    of the machine's read bound over the same bytes (``benchmarks/bench_decode.py``: 6.26 ms for 85 MB, 13.6 GB/s,
    on one thread of an Intel host, the codes prefetched in software; docs/performance.md), and batches beat
    float32 BLAS, so one kernel serves both decode and prefill: keeping
    a float32 copy for BLAS would cost 16x the memory for a slower prefill.
``"avx2"`` (used wherever the CPU has AVX2 but not AVX-512 VNNI)
    ``vpmaddubsw`` multiplies 32 unsigned codes by 32 signed spikes and sums pairs into int16 lanes (exact:
    ``|lane| <= 512``); the int16 accumulators are widened into the int32 lane of their row by ``vpmaddwd``
    with ones every ``FLUSH_BLOCKS`` blocks, before they could overflow. Four tokens share each decode of the
    codes (prefill), one accumulator per vector and token.
``"generic"`` (fallback on any other CPU)
    The same layout and identity in plain numba code, auto-vectorised by LLVM across a group's rows.

The host kernel (mode ``"host"``, what golden_fast.py's whole-model kernel runs) compiles the group dot of
:func:`host_dot_mode`: VNNI, AVX2, or ``"portable"`` LLVM vector code (zero-extended codes times sign-extended
spikes in int16 lanes, the same flushes) that any CPU LLVM targets can run.
``"blas"``
    Row chunks decoded to float32 and multiplied by BLAS ``sgemm``, exact by the bound proved in
    :func:`blas_exact_max_in` (enforced). Without VNNI, ``"auto"`` uses it for batches of at least
    ``BLAS_MIN_TOKENS`` tokens, where it overtakes the generic kernel.

Exactness of the integer kernels: each product ``c*x`` lies in [-256, 254]; a vpdpbusd lane sums ``in/16``
of them (magnitude <= 16*in), the row total ``sum c*x`` is at most ``256*in`` and ``|y| <= 128*in``: all
within int32 for ``in <= MAX_IN`` (checked at construction), and integer addition in any order is exact
while nothing overflows. So results equal the int64 reference bit for bit (tests/test_ternary.py).

Threads: single-threaded by default. ``parallel=True`` splits row tiles over numba's threads; on a machine
shared with other busy processes (or inside a Lava run, where every process is its own OS process) each
parallel region waited ~8 ms for a core in our runs (1.1 s instead of 6 ms per token), so it is opt-in.
JIT: the first call compiles (~0.6 s for the VNNI kernel here, several s under heavy load); kernels are
cached on disk (``cache=True``, ``__pycache__``), after which the first call costs ~0.2 s.
"""
from __future__ import annotations

import copy

import numpy as np

# the kernels' public names are importable from here too (this is the module users import)
from lava_matmulfree.model.ternary_kernels import (  # noqa: F401
    AVX2_LANES_PER_ACC_PER_BLOCK, BITS_PER_BYTE, BLOCK_BYTES, BLOCK_COLS, DOT_MODES, FIELD_BITS, FIELD_MASK,
    FIELDS_PER_BYTE, FLUSH_BLOCKS, GROUP_ROWS, HOST_CPU, LANE_BYTES, MAX_ABS_MADDUBS_LANE, ROW_TILE, TOKEN_BLOCK,
    TOKEN_TILE, VNNI_FLUSH_BLOCKS, YMM_BYTES, ZERO_CODE, ZMM_BYTES, avx2_usable, code_offset, decode_rows_f32,
    host_dot_mode, host_rows, start_threads, vnni_usable)
from lava_matmulfree.model.ternary_kernels import INT_KERNELS as _INT_KERNELS

# ---- value ranges -----------------------------------------------------------------------------------------
X_MIN, X_MAX = int(np.iinfo(np.int8).min), int(np.iinfo(np.int8).max)   # graded spikes: int8
MAX_ABS_PRODUCT = max(abs(X_MIN), abs(X_MAX))                            # |w * x| <= 128 (w = -1, x = -128)
INT32_MAX = int(np.iinfo(np.int32).max)
FLOAT32_MANTISSA_BITS = int(np.finfo(np.float32).nmant)                   # 23 stored bits
FLOAT32_EXACT_INT = 1 << (FLOAT32_MANTISSA_BITS + 1)                      # every |n| <= 2**24 is exact
MAX_ABS_CODE_PRODUCT = (2 * MAX_ABS_PRODUCT)                              # |c * x| with c = w + 1 in {0,1,2}
MAX_IN = INT32_MAX // MAX_ABS_CODE_PRODUCT                                # int32 sum_j c_j x_j cannot overflow
X16_MIN, X16_MAX = int(np.iinfo(np.int16).min), int(np.iinfo(np.int16).max)  # wide graded spikes: int16
MAX_ABS_PRODUCT_WIDE = max(abs(X16_MIN), X16_MAX)                         # |w * x| <= 32768
MAX_IN_WIDE = INT32_MAX // MAX_ABS_PRODUCT_WIDE                           # int32 W @ x exact for int16 x
BYTE_RADIX = 1 << 8                                                       # x = BYTE_RADIX*hi + lo + LO_BIAS
LO_BIAS = 1 << 7                                                          # low byte 0..255 -> int8 lo - 128

# ---- policy -----------------------------------------------------------------------------------------------
KERNELS = ("auto", "vnni", "avx2", "generic", "blas")
BLAS_MIN_TOKENS = 64          # without VNNI, batches of >= this many tokens go to BLAS (measured crossover)
BLAS_CHUNK_BYTES = 4 << 20    # float32 rows decoded per sgemm call (a chunk stays in L2/L3)


def blas_exact_max_in() -> int:
    """Widest ``in`` for which float32 BLAS gives the exact integer ``W @ x``: 2**24 / 128 = 131072.

    Proof. ``w`` in {-1, 0, 1} and ``x`` in [-128, 127] are exact float32 values and each product
    ``w*x`` is an integer with ``|w*x| <= 128``, computed exactly (also inside an FMA). Whatever order,
    blocking or SIMD split the BLAS uses, every intermediate value is a sum of a subset of the ``in``
    products, hence an integer of magnitude ``<= 128*in``. Float32 represents every integer of magnitude
    ``<= 2**24`` exactly (24-bit significand), and an IEEE add/FMA whose exact result is representable
    returns that result without rounding. So by induction over the operations every partial sum, and the
    result, is exact while ``128*in <= 2**24``, i.e. ``in <= 131072``. (One more column and the 2**24+1
    partial sum of all-(-128) spikes against all-(-1) weights would round.)
    """
    return FLOAT32_EXACT_INT // MAX_ABS_PRODUCT


BLAS_MAX_IN = blas_exact_max_in()


# ---- packing ----------------------------------------------------------------------------------------------
def padded_in(n_in: int) -> int:
    """``n_in`` rounded up to whole blocks of BLOCK_COLS (16) columns."""
    return -(-n_in // BLOCK_COLS) * BLOCK_COLS


def padded_out(n_out: int) -> int:
    """``n_out`` rounded up to whole groups of GROUP_ROWS (32) rows."""
    return -(-n_out // GROUP_ROWS) * GROUP_ROWS


def pack(W: np.ndarray) -> np.ndarray:
    """Ternary ``[out, in]`` -> uint8 codes ``[padded_out(out), padded_in(in) // 4]``, C order, in the interleaved
    layout of the module docstring (padding rows and columns hold the code of 0)."""
    n_out, n_in = W.shape
    n_rows, n_cols = padded_out(n_out), padded_in(n_in)
    full = np.full((n_rows, n_cols), ZERO_CODE, dtype=np.uint8)
    full[:n_out, :n_in] = W + ZERO_CODE
    # [group, row in group q, block b, field k, byte m] -> byte [group, b, q, m] = sum_k code << (2k)
    fields = full.reshape(n_rows // GROUP_ROWS, GROUP_ROWS, n_cols // BLOCK_COLS, FIELDS_PER_BYTE, LANE_BYTES)
    codes = np.zeros((n_rows // GROUP_ROWS, GROUP_ROWS, n_cols // BLOCK_COLS, LANE_BYTES), dtype=np.uint8)
    for k in range(FIELDS_PER_BYTE):
        codes |= fields[:, :, :, k, :] << np.uint8(k * FIELD_BITS)
    return np.ascontiguousarray(codes.transpose(0, 2, 1, 3)).reshape(n_rows, n_cols // FIELDS_PER_BYTE)


def unpack(codes: np.ndarray, n_in: int, n_out: int | None = None) -> np.ndarray:
    """Inverse of :func:`pack`: int8 ``[n_out, n_in]`` (``n_out``: every row of ``codes`` when None)."""
    n_rows, n_bytes = codes.shape
    n_blocks = n_bytes // LANE_BYTES
    lanes = codes.reshape(n_rows // GROUP_ROWS, n_blocks, GROUP_ROWS, 1, LANE_BYTES).transpose(0, 2, 1, 3, 4)
    shifts = (np.arange(FIELDS_PER_BYTE, dtype=np.uint8) * FIELD_BITS).reshape(1, 1, 1, FIELDS_PER_BYTE, 1)
    fields = (lanes >> shifts) & np.uint8(FIELD_MASK)        # [group, q, block, k, m]: column 16 b + 4 k + m
    W = fields.reshape(n_rows, n_blocks * BLOCK_COLS)[:n_out, :n_in].astype(np.int8)
    return W - np.int8(ZERO_CODE)


# ---- validation -------------------------------------------------------------------------------------------
def _as_ternary(W) -> np.ndarray:
    W = np.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"ternary weights must be a 2-D [out, in] matrix, got {W.ndim}-D shape {W.shape}")
    if W.shape[0] == 0 or W.shape[1] == 0:
        raise ValueError(f"ternary weights must not be empty, got shape {W.shape}")
    if not (np.issubdtype(W.dtype, np.integer) or np.issubdtype(W.dtype, np.floating)):
        raise ValueError(f"ternary weights must be an integer (int8) array, got dtype {W.dtype}")
    bad = (W != -1) & (W != 0) & (W != 1)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"ternary weights must be -1, 0 or +1; found {W[r, c]!r} at [{r}, {c}] "
                         f"({int(bad.sum())} bad entries)")
    if W.shape[1] > MAX_IN:
        raise ValueError(f"in = {W.shape[1]} columns is too wide: the int32 accumulator is exact only "
                         f"for in <= {MAX_IN}")
    return W.astype(np.int8)


def _as_spikes(x, n_in: int, ndim: int, what: str) -> np.ndarray:
    """``x`` as int8 (values in the int8 range) or int16 (wider values up to the int16 range)."""
    x = np.asarray(x)
    if x.ndim != ndim or x.shape[-1] != n_in:
        want = f"[{n_in}]" if ndim == 1 else f"[T, {n_in}]"
        raise ValueError(f"{what} must have shape {want}, got {x.shape}")
    if x.dtype in (np.int8, np.int16):
        return x
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{what} must be int8 or int16 graded spikes, got dtype {x.dtype}")
    lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
    if lo < X16_MIN or hi > X16_MAX:
        raise ValueError(f"{what} must lie in the int16 range [{X16_MIN}, {X16_MAX}] (graded spikes of at most "
                         f"16 bits), got [{lo}, {hi}]")
    return x.astype(np.int8 if X_MIN <= lo and hi <= X_MAX else np.int16)


def split_bytes(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int16 ``X`` -> int8 ``(hi, lo)`` with ``X = BYTE_RADIX*hi + lo + LO_BIAS`` exactly."""
    X = X.astype(np.int16, copy=False)
    hi = (X >> 8).astype(np.int8)                                     # arithmetic shift: [-128, 127]
    lo = ((X & (BYTE_RADIX - 1)) - LO_BIAS).astype(np.int8)           # [0, 255] - 128 = [-128, 127]
    return hi, lo


# ---- the class --------------------------------------------------------------------------------------------
class TernaryMatrix:
    """A ternary weight matrix, packed once, with exact integer ``matvec`` / ``matmul``.

    ``kernel``: ``"auto"`` (VNNI if usable, else AVX2 if usable, else generic with BLAS for batches of >=
    ``BLAS_MIN_TOKENS`` tokens), or force ``"vnni"``, ``"avx2"``, ``"generic"`` or ``"blas"`` (``"blas"`` needs
    ``in <= BLAS_MAX_IN`` = 131072, see :func:`blas_exact_max_in`; ``"auto"`` never picks it beyond).
    ``parallel``: split rows over numba threads (module docstring: opt-in).
    """

    def __init__(self, W, *, kernel: str = "auto", parallel: bool = False):
        Wt = _as_ternary(W)
        self.n_out, self.n_in = Wt.shape
        self._set_kernel(kernel, parallel)
        self.codes = pack(Wt)
        self.row_sums = Wt.sum(axis=1, dtype=np.int64)   # the LO_BIAS term of wide spikes
        self.max_row_nnz = int(np.count_nonzero(Wt, axis=1).max())
        # |y_r| <= 128 * nnz(row r): lets a caller prove the fit in a 24-bit dendritic accumulator.
        self.max_abs_result = MAX_ABS_PRODUCT * self.max_row_nnz

    def _set_kernel(self, kernel: str, parallel: bool) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if kernel == "vnni" and not vnni_usable():
            raise ValueError("kernel='vnni' needs a CPU with AVX-512 VNNI (and numba compiling for the host)")
        if kernel == "avx2" and not avx2_usable():
            raise ValueError("kernel='avx2' needs a CPU with AVX2 (and numba compiling for the host)")
        if kernel == "blas" and self.n_in > BLAS_MAX_IN:
            raise ValueError(f"kernel='blas' is exact only for in <= {BLAS_MAX_IN} (float32 holds integers "
                             f"up to 2**24 and |w*x| <= {MAX_ABS_PRODUCT}); this matrix has in = {self.n_in}")
        self.kernel = kernel
        self.parallel = bool(parallel)

    def with_kernel(self, kernel: str, parallel: bool | None = None) -> "TernaryMatrix":
        """The same weights (storage shared, not copied) with another kernel / thread choice."""
        other = copy.copy(self)
        other._set_kernel(kernel, self.parallel if parallel is None else parallel)
        return other

    # -- properties --
    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_out, self.n_in)

    @property
    def nbytes(self) -> int:
        """Bytes of weight storage (the packed codes, padding included)."""
        return int(self.codes.nbytes)

    @property
    def bits_per_weight(self) -> float:
        """Storage bits per real weight: 2.0 when ``in`` is a multiple of 16 and ``out`` of 32, more with padding."""
        return BITS_PER_BYTE * self.nbytes / (self.n_out * self.n_in)

    def __repr__(self) -> str:
        return (f"TernaryMatrix(shape={self.shape}, kernel={self.kernel!r}, "
                f"bits_per_weight={self.bits_per_weight:.3f}, nbytes={self.nbytes})")

    def to_dense(self) -> np.ndarray:
        """The int8 ``[out, in]`` matrix back."""
        return unpack(self.codes, self.n_in, self.n_out)

    def kernel_for(self, n_tokens: int) -> str:
        """The kernel that ``matmul`` uses for a batch of ``n_tokens`` tokens."""
        if self.kernel != "auto":
            return self.kernel
        if vnni_usable():
            return "vnni"
        if avx2_usable():
            return "avx2"
        if n_tokens >= BLAS_MIN_TOKENS and self.n_in <= BLAS_MAX_IN:
            return "blas"
        return "generic"

    # -- products --
    def max_abs_result_for(self, act_bits: int) -> int:
        """Worst-case ``|W @ x|`` for spikes of ``act_bits`` bits (``|x| <= 2**(act_bits-1)``)."""
        return (1 << (act_bits - 1)) * self.max_row_nnz

    def matvec(self, x) -> np.ndarray:
        """int32 ``[out]`` = ``W @ x`` exactly, for int8 or int16 ``x`` ``[in]``."""
        x = _as_spikes(x, self.n_in, 1, "x")
        return self._matmul_any(x[np.newaxis, :])[0]

    def matmul(self, X) -> np.ndarray:
        """int32 ``[T, out]`` with row ``t`` = ``W @ X[t]`` exactly, for int8 or int16 ``X`` ``[T, in]``."""
        return self._matmul_any(_as_spikes(X, self.n_in, 2, "X"))

    def _matmul_any(self, X: np.ndarray) -> np.ndarray:
        if X.dtype == np.int8:
            return self._matmul(X)
        return self._matmul_wide(X)

    def _matmul_wide(self, X: np.ndarray) -> np.ndarray:
        """int16 spikes: both bytes through the int8 kernel as one batch of 2T rows (module docstring)."""
        if self.n_in > MAX_IN_WIDE:
            raise ValueError(f"in = {self.n_in} columns is too wide for int16 spikes: the int32 result is "
                             f"exact only for in <= {MAX_IN_WIDE}")
        n_tok = X.shape[0]
        hi, lo = split_bytes(X)
        rows = [hi, lo]
        if self.kernel_for(2 * n_tok) in ("vnni", "avx2") and 2 * n_tok % TOKEN_BLOCK:
            # zero rows up to whole TOKEN_BLOCKs: one decode of the codes then serves both bytes (decode: T = 1)
            rows.append(np.zeros((TOKEN_BLOCK - 2 * n_tok % TOKEN_BLOCK, self.n_in), np.int8))
        both = self._matmul(np.concatenate(rows, axis=0)).astype(np.int64)
        out = BYTE_RADIX * both[:n_tok] + both[n_tok:2 * n_tok] + LO_BIAS * self.row_sums
        return out.astype(np.int32)   # |W @ x| <= 32768 * in < 2**31 (in <= MAX_IN_WIDE)

    def _matmul(self, X: np.ndarray) -> np.ndarray:
        n_tok = X.shape[0]
        kernel = self.kernel_for(n_tok)
        if kernel == "blas":
            return self._matmul_blas(X)
        n_pad = padded_in(self.n_in)
        if n_pad == self.n_in:                    # every model shape: no copy
            xpad = np.ascontiguousarray(X)
        else:
            xpad = np.zeros((n_tok, n_pad), dtype=np.int8)
            xpad[:, :self.n_in] = X
        xsum = X.sum(axis=1, dtype=np.int32)      # |sum| <= 128 * in: fits int32 (in <= MAX_IN)
        out = np.empty((n_tok, self.n_out), dtype=np.int32)
        if self.parallel:
            start_threads()
        _INT_KERNELS[(kernel, self.parallel)](self.codes, xpad, xsum, out)
        return out

    def _matmul_blas(self, X: np.ndarray) -> np.ndarray:
        n_tok, n_pad = X.shape[0], padded_in(self.n_in)
        xf = np.zeros((n_tok, n_pad), dtype=np.float32)
        xf[:, :self.n_in] = X
        out = np.empty((n_tok, self.n_out), dtype=np.int32)
        rows = max(1, BLAS_CHUNK_BYTES // (n_pad * np.dtype(np.float32).itemsize))
        wf = np.empty((min(rows, self.n_out), n_pad), dtype=np.float32)
        for r0 in range(0, self.n_out, rows):
            r1 = min(self.n_out, r0 + rows)
            chunk = wf[:r1 - r0]
            decode_rows_f32(self.codes, r0, chunk)
            # exact integers (blas_exact_max_in): the float32 -> int32 cast loses nothing
            out[:, r0:r1] = xf @ chunk.T
        return out


class PackedTernary(np.lib.mixins.NDArrayOperatorsMixin):
    """A ternary weight matrix held only packed (2 bits per weight, a :class:`TernaryMatrix`), standing in for the
    int8 ``[out, in]`` array: ``shape``, ``dtype`` (int8), numpy conversion (``np.asarray``, ufuncs, indexing,
    array methods) unpack a temporary int8 copy, while the synapse kernels (``float_model.ternary_matrix``) use
    the packed codes directly. ``QuantisedNetwork.pack_weights`` puts these in place of a network's int8 arrays,
    so the weights live once, packed."""

    ndim = 2
    dtype = np.dtype(np.int8)

    def __init__(self, matrix: TernaryMatrix):
        self.matrix = matrix

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def size(self) -> int:
        return self.matrix.n_out * self.matrix.n_in

    def __len__(self) -> int:
        return self.matrix.n_out

    def __array__(self, dtype=None, copy=None):
        w = self.matrix.to_dense()
        return w if dtype is None else w.astype(dtype)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(np.asarray(x) if isinstance(x, PackedTernary) else x for x in inputs)
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __getitem__(self, key):
        return np.asarray(self)[key]

    def __getattr__(self, name):
        if name.startswith("__") or name == "matrix":
            raise AttributeError(name)
        return getattr(np.asarray(self), name)  # any other ndarray attribute (T, sum, astype, ...) on the int8 copy

    def __repr__(self) -> str:
        return f"PackedTernary({self.matrix!r})"
