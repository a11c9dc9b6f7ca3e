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

Storage: 2 bits per weight, see :func:`pack`. Field code ``c = w + 1`` in {0, 1, 2}; byte ``q`` (< 64) of
64-byte block ``b`` of a row holds in its bit pair ``k`` (0..3) the weight of column ``256*b + 64*k + q``.
One 64-byte vector of codes thus meets four *contiguous* 64-byte slices of ``x``: no shuffles, and ``x``
only needs zero-padding to whole 256-column blocks (none for the model shapes: d, I are multiples of 256).

Kernels, chosen by measurement (``benchmarks/bench_ternary.py --parallel``: 370M shapes, 2 cores shared
with other jobs at load 3-8, medians of 7; two runs shown as "quieter / busier"; speed-ups are against
numpy in the same run):

=================  ===============================  ===============================  ================
whole 370M model   decode T = 1, ms per token       prefill T = 128, ms per token    weights
=================  ===============================  ===============================  ================
numpy int8->int32  301 / 460                        300 / 360                        325 MiB (int8)
float32 BLAS       90 / 155                         10.0 / 9.5                       1301 MiB
``"vnni"``         6.1 / 13.9 (49x / 33x numpy)     3.1 / 2.7 (97x / 132x numpy)     81 MiB (2 bits)
``"generic"``      17.6 / 46                        27 / 22                          81 MiB
``"blas"``         82 / 220                         16 / 15                          81 MiB
=================  ===============================  ===============================  ================

(decode: one pass over all 145 distinct matrices of a token in layer order; prefill: per-shape medians
times their counts, divided by T.)

``"vnni"`` (used wherever the CPU has AVX-512 VNNI, as on the project's machines)
    ``sum_j c_j x_j`` by ``vpdpbusd`` (unsigned codes times signed int8 spikes, four products summed into
    each int32 lane: 64 multiply-adds per instruction), then ``y = sum_j c_j x_j - sum_j x_j`` as
    ``w = c - 1``. Decoding costs one shift and one AND per 64 weights, shared by ``TOKEN_BLOCK`` tokens in
    a batch. One token then streams the 81 MiB of packed weights at close to memory bandwidth (about
    19 GB/s here: 85 MB, so >= 4.5 ms per token), and batches beat float32 BLAS, so one kernel serves both
    decode and prefill: keeping a float32 copy for BLAS would cost 16x the memory for a slower prefill.
``"avx2"`` (used wherever the CPU has AVX2 but not AVX-512 VNNI)
    ``vpmaddubsw`` multiplies 32 unsigned codes by 32 signed spikes and sums pairs into int16 lanes (exact:
    ``|lane| <= 512``); the int16 accumulators are widened into int32 by ``vpmaddwd`` with ones every
    ``FLUSH_BLOCKS`` blocks, before they could overflow. Two rows share each load of the spikes (decode), four
    tokens each decode of the codes (prefill), one accumulator per row and token, and the weight stream is
    prefetched ``PREFETCH_AHEAD_BYTES`` ahead. Measured in ``benchmarks/bench_decode.py`` (370M, an idle 2-core
    AMD EPYC, load ~1): the 85 MB of a decode token in 6.71 ms on 1 thread and 4.00 ms on 2, i.e. 102% and 93%
    of the machine's read bound in the same run (a plain read loop: 12.5 / 22.9 GB/s); the generic kernel
    took 32-47 ms.
``"generic"`` (fallback on any other CPU)
    The same layout and identity in plain numba code, auto-vectorised by LLVM on int32 lanes.

The host kernel (``_matmul_host``, what golden_fast.py's whole-model kernel calls) compiles the row dot of
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
import functools

import numba
import numpy as np
from llvmlite import ir
import llvmlite.binding as llvm
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

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

# ---- packed layout ----------------------------------------------------------------------------------------
FIELD_BITS = 2                                  # one weight = one 2-bit field
FIELD_MASK = (1 << FIELD_BITS) - 1
BITS_PER_BYTE = 8
FIELDS_PER_BYTE = BITS_PER_BYTE // FIELD_BITS   # 4 weights per byte
ZERO_CODE = 1                                   # field code = w + 1: {-1, 0, +1} -> {0, 1, 2}
BLOCK_BYTES = 64                                # one 512-bit vector of codes
BLOCK_COLS = BLOCK_BYTES * FIELDS_PER_BYTE      # 256 input columns per block
ROW_TILE = 64                                   # rows per tile in the kernels (a tile's codes stay in L1)
TOKEN_BLOCK = 4                                 # tokens sharing one decode of the codes (VNNI batched kernel)
TOKEN_TILE = 64                                 # tokens per pass over the rows (their spikes stay in L2)

# ---- policy -----------------------------------------------------------------------------------------------
KERNELS = ("auto", "vnni", "avx2", "generic", "blas")
BLAS_MIN_TOKENS = 64          # without VNNI, batches of >= this many tokens go to BLAS (measured crossover)
BLAS_CHUNK_BYTES = 4 << 20    # float32 rows decoded per sgemm call (a chunk stays in L2/L3)

HOST_CPU = "host"                                 # numba's NUMBA_CPU_NAME for "this machine"
_VNNI_INTRINSIC = "llvm.x86.avx512.vpdpbusd.512"
_REDUCE_ADD = "llvm.vector.reduce.add.v16i32"
_I32_BYTES = np.dtype(np.int32).itemsize
_I32_LANES = BLOCK_BYTES // _I32_BYTES
# AVX2: vpmaddubsw (unsigned codes x signed spikes, pairs summed into int16 lanes), vpmaddwd (int16 pairs -> int32)
_MADDUBS_INTRINSIC = "llvm.x86.avx2.pmadd.ub.sw"
_MADDWD_INTRINSIC = "llvm.x86.avx2.pmadd.wd"
_PREFETCH = "llvm.prefetch.p0i8"
YMM_BYTES = 32                                  # one 256-bit AVX2 vector
_I16_BYTES = np.dtype(np.int16).itemsize
# exactness of the int16 stage: a vpmaddubsw lane is c0*x0 + c1*x1 with c in {0, 1, 2}, x in [-128, 127]:
# |lane| <= 2 * 2 * 128 = 512, so vpmaddubsw never saturates; one int16 accumulator receives at most
# 2 * YMM_PRODUCTS_PER_BLOCK_PER_ACC such lanes per block and is widened to int32 (vpmaddwd by ones) every
# FLUSH_BLOCKS blocks, before |sum| could pass int16's 32767.
MAX_ABS_MADDUBS_LANE = 2 * 2 * MAX_ABS_PRODUCT
AVX2_LANES_PER_ACC_PER_BLOCK = (BLOCK_BYTES // YMM_BYTES) * FIELDS_PER_BYTE   # one accumulator per token (batched)
FLUSH_BLOCKS = 4
assert FLUSH_BLOCKS * AVX2_LANES_PER_ACC_PER_BLOCK * MAX_ABS_MADDUBS_LANE <= int(np.iinfo(np.int16).max)
PREFETCH_AHEAD_BYTES = 1024                     # software prefetch distance in the packed weight stream


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


@functools.lru_cache(maxsize=None)
def vnni_usable() -> bool:
    """True when numba compiles for this host and the host has AVX-512 VNNI + BW (vpdpbusd on zmm)."""
    if (numba.config.CPU_NAME or HOST_CPU) != HOST_CPU or numba.config.CPU_FEATURES:
        return False                                          # compiling for another (portable) target
    feats = llvm.get_host_cpu_features()
    return bool(feats.get("avx512vnni", False) and feats.get("avx512bw", False))


@functools.lru_cache(maxsize=None)
def avx2_usable() -> bool:
    """True when numba compiles for this host and the host has AVX2 (vpmaddubsw / vpmaddwd on ymm)."""
    if (numba.config.CPU_NAME or HOST_CPU) != HOST_CPU or numba.config.CPU_FEATURES:
        return False
    return bool(llvm.get_host_cpu_features().get("avx2", False))


_THREADS_STARTED = False


def start_threads() -> None:
    """Start numba's threading layer (before any parallel kernel) without fixing multiprocessing's start method.

    numba's first parallel launch asks multiprocessing for its start method, which fixes it; lava then fails at
    import (it calls ``set_start_method('fork')``, see progress.py). The default is left unset again, so lava
    can still be imported after a parallel kernel ran."""
    global _THREADS_STARTED
    if _THREADS_STARTED:
        return
    import multiprocessing
    from numba.np.ufunc import parallel

    unset = multiprocessing.get_start_method(allow_none=True) is None
    parallel._launch_threads()
    if unset:
        multiprocessing.context._default_context._actual_context = None
    _THREADS_STARTED = True


# ---- row kernels ------------------------------------------------------------------------------------------
def _vnni_codegen(n_tok: int):
    """LLVM IR for ``sum_j c_j * x[t0 + i, j]``, i < n_tok, over one packed row (vpdpbusd).

    Each 64-byte vector of codes is loaded and decoded (shift, AND) once and used for ``n_tok`` tokens;
    vpdpbusd multiplies unsigned bytes (codes 0..2) by signed bytes (spikes), summing four products into
    each of 16 int32 lanes. Only compiled when :func:`vnni_usable` (LLVM cannot lower it otherwise).
    """
    def codegen(context, builder, signature, args):
        row_ty, x_ty = signature.args[0], signature.args[1]
        crow = context.make_array(row_ty)(context, builder, args[0])
        xarr = context.make_array(x_ty)(context, builder, args[1])
        intp = crow.nitems.type
        if x_ty.ndim == 2:
            x_stride = cgutils.unpack_tuple(builder, xarr.strides, 2)[0]
            x_rows = [builder.gep(xarr.data, [builder.mul(builder.add(args[2], ir.Constant(intp, i)), x_stride)])
                      for i in range(n_tok)]
        else:
            x_rows = [xarr.data]
        i8, i32 = ir.IntType(BITS_PER_BYTE), ir.IntType(BITS_PER_BYTE * _I32_BYTES)
        v8 = ir.VectorType(i8, BLOCK_BYTES)
        v32 = ir.VectorType(i32, _I32_LANES)
        dpbusd = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(v32, [v32, v32, v32]), _VNNI_INTRINSIC)
        reduce_add = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i32, [v32]), _REDUCE_ADD)
        n_blocks = builder.udiv(crow.nitems, ir.Constant(intp, BLOCK_BYTES))
        acc_ptrs = [cgutils.alloca_once_value(builder, ir.Constant(v32, [0] * _I32_LANES)) for _ in x_rows]
        mask = ir.Constant(v8, [FIELD_MASK] * BLOCK_BYTES)
        with cgutils.for_range(builder, n_blocks) as loop:
            blk = loop.index
            cptr = builder.gep(crow.data, [builder.mul(blk, ir.Constant(intp, BLOCK_BYTES))])
            codes = builder.load(builder.bitcast(cptr, v8.as_pointer()), align=1)
            accs = [builder.load(p) for p in acc_ptrs]
            xbase = builder.mul(blk, ir.Constant(intp, BLOCK_COLS))
            for k in range(FIELDS_PER_BYTE):
                shift = ir.Constant(v8, [k * FIELD_BITS] * BLOCK_BYTES)
                field = builder.bitcast(builder.and_(builder.lshr(codes, shift), mask), v32)
                xoff = builder.add(xbase, ir.Constant(intp, k * BLOCK_BYTES))
                for i, xrow in enumerate(x_rows):
                    xv = builder.load(builder.bitcast(builder.gep(xrow, [xoff]), v8.as_pointer()), align=1)
                    accs[i] = builder.call(dpbusd, [accs[i], field, builder.bitcast(xv, v32)])
            for p, a in zip(acc_ptrs, accs):
                builder.store(a, p)
        sums = [builder.call(reduce_add, [builder.load(p)]) for p in acc_ptrs]
        if x_ty.ndim == 1:
            return sums[0]
        return context.make_tuple(builder, signature.return_type, sums)

    return codegen


def _byte_array(ty, ndim: int) -> bool:
    return isinstance(ty, types.Array) and ty.ndim == ndim and ty.dtype in (types.uint8, types.int8)


@intrinsic
def _row_dot_vnni(typingctx, row, xpad):
    """``sum_j c_j * xpad[j]`` over one packed row (int32). Both arrays must be unit-stride."""
    if not (_byte_array(row, 1) and _byte_array(xpad, 1)):
        return None
    return types.int32(row, xpad), _vnni_codegen(1)


@intrinsic
def _row_dot_vnni_block(typingctx, row, xpad2d, t0):
    """The tuple of ``sum_j c_j * xpad2d[t0 + i, j]``, i < TOKEN_BLOCK (one decode for TOKEN_BLOCK tokens).

    ``row`` and each row of ``xpad2d`` must be unit-stride; ``t0`` is an intp index.
    """
    if not (_byte_array(row, 1) and _byte_array(xpad2d, 2) and t0 == types.intp):
        return None
    return types.UniTuple(types.int32, TOKEN_BLOCK)(row, xpad2d, t0), _vnni_codegen(TOKEN_BLOCK)


DOT_MODES = ("vnni", "avx2", "portable")


def host_dot_mode() -> str:
    """The row-dot code the host kernel (``_matmul_host``) compiles to on this CPU."""
    return "vnni" if vnni_usable() else "avx2" if avx2_usable() else "portable"


def _dot_codegen(mode: str, n_tok: int, n_rows: int):
    """LLVM IR for ``sum_j c[r0 + q, j] * x[t0 + i, j]``, q < n_rows, i < n_tok, over packed rows.

    Each vector of codes is decoded (shift, AND) once and meets the spikes of ``n_tok`` tokens; ``n_rows``
    rows share each load of the spikes; one accumulator per (row, token) keeps that many dependency chains in
    flight; the weight stream is prefetched PREFETCH_AHEAD_BYTES ahead. ``mode``:

    ``"avx2"``      256-bit: vpmaddubsw into int16 lanes (exact, MAX_ABS_MADDUBS_LANE), widened into int32 by
                    vpmaddwd with ones every FLUSH_BLOCKS blocks;
    ``"vnni"``      512-bit: vpdpbusd straight into int32 lanes (AVX-512 VNNI);
    ``"portable"``  256-bit codes, plain LLVM vector ops (zero-extended codes times sign-extended spikes in int16
                    lanes, |c*x| <= 256, widened every FLUSH_BLOCKS blocks): any CPU LLVM targets.
    """
    vec_bytes = BLOCK_BYTES if mode == "vnni" else YMM_BYTES

    def codegen(context, builder, signature, args):
        codes_ty, x_ty = signature.args[0], signature.args[1]
        carr = context.make_array(codes_ty)(context, builder, args[0])
        xarr = context.make_array(x_ty)(context, builder, args[1])
        r0, t0 = args[2], args[3]
        intp = context.get_value_type(types.intp)
        c_stride = cgutils.unpack_tuple(builder, carr.strides, 2)[0]
        row_bytes = cgutils.unpack_tuple(builder, carr.shape, 2)[1]
        x_stride = cgutils.unpack_tuple(builder, xarr.strides, 2)[0]
        rows = [builder.gep(carr.data, [builder.mul(builder.add(r0, ir.Constant(intp, q)), c_stride)])
                for q in range(n_rows)]
        xrows = [builder.gep(xarr.data, [builder.mul(builder.add(t0, ir.Constant(intp, i)), x_stride)])
                 for i in range(n_tok)]
        i8, i16, i32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
        v8 = ir.VectorType(i8, vec_bytes)
        mod = builder.module
        if mode == "avx2":
            v16 = ir.VectorType(i16, vec_bytes // _I16_BYTES)
            v32 = ir.VectorType(i32, vec_bytes // _I32_BYTES)
            maddubs = cgutils.get_or_insert_function(mod, ir.FunctionType(v16, [v8, v8]), _MADDUBS_INTRINSIC)
            maddwd = cgutils.get_or_insert_function(mod, ir.FunctionType(v32, [v16, v16]), _MADDWD_INTRINSIC)
            ones16 = ir.Constant(v16, [1] * (vec_bytes // _I16_BYTES))

            def mac(acc, f, x):
                return builder.add(acc, builder.call(maddubs, [f, x]))

            def widen(acc32, acc16):
                return builder.add(acc32, builder.call(maddwd, [acc16, ones16]))
        elif mode == "portable":
            v16 = ir.VectorType(i16, vec_bytes)
            v32 = ir.VectorType(i32, vec_bytes)

            def mac(acc, f, x):
                return builder.add(acc, builder.mul(builder.zext(f, v16), builder.sext(x, v16)))

            def widen(acc32, acc16):
                return builder.add(acc32, builder.sext(acc16, v32))
        else:
            v16 = None
            v32 = ir.VectorType(i32, vec_bytes // _I32_BYTES)
            dpbusd = cgutils.get_or_insert_function(mod, ir.FunctionType(v32, [v32, v32, v32]), _VNNI_INTRINSIC)

            def mac(acc, f, x):
                return builder.call(dpbusd, [acc, builder.bitcast(f, v32), builder.bitcast(x, v32)])
        reduce_add = cgutils.get_or_insert_function(
            mod, ir.FunctionType(i32, [v32]), f"llvm.vector.reduce.add.v{v32.count}i32")
        i8p = i8.as_pointer()
        prefetch = cgutils.get_or_insert_function(mod, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                                  _PREFETCH)
        n_blocks = builder.udiv(row_bytes, ir.Constant(intp, BLOCK_BYTES))
        n_groups = builder.udiv(builder.add(n_blocks, ir.Constant(intp, FLUSH_BLOCKS - 1)),
                                ir.Constant(intp, FLUSH_BLOCKS))
        mask = ir.Constant(v8, [FIELD_MASK] * vec_bytes)
        n_acc = n_rows * n_tok
        acc32 = [cgutils.alloca_once_value(builder, ir.Constant(v32, [0] * v32.count)) for _ in range(n_acc)]
        # the int16 stage (avx2, portable) or the int32 accumulators themselves (vnni)
        inner_ty = v32 if v16 is None else v16
        zero_inner = ir.Constant(inner_ty, [0] * inner_ty.count)
        inner = acc32 if v16 is None else [cgutils.alloca_once_value(builder, zero_inner) for _ in range(n_acc)]
        with cgutils.for_range(builder, n_groups) as gloop:
            g0 = builder.mul(gloop.index, ir.Constant(intp, FLUSH_BLOCKS))
            left = builder.sub(n_blocks, g0)
            cnt = builder.select(builder.icmp_unsigned("<", left, ir.Constant(intp, FLUSH_BLOCKS)), left,
                                 ir.Constant(intp, FLUSH_BLOCKS))
            if v16 is not None:
                for p in inner:
                    builder.store(zero_inner, p)
            with cgutils.for_range(builder, cnt) as bloop:
                blk = builder.add(g0, bloop.index)
                boff = builder.mul(blk, ir.Constant(intp, BLOCK_BYTES))
                xbase = builder.mul(blk, ir.Constant(intp, BLOCK_COLS))
                accs = [builder.load(p) for p in inner]
                for row in rows:
                    ahead = builder.gep(row, [builder.add(boff, ir.Constant(intp, PREFETCH_AHEAD_BYTES))])
                    builder.call(prefetch, [ahead, ir.Constant(i32, 0), ir.Constant(i32, PREFETCH_LOCALITY),
                                            ir.Constant(i32, 1)])
                for part in range(BLOCK_BYTES // vec_bytes):
                    poff = builder.add(boff, ir.Constant(intp, part * vec_bytes))
                    codes = [builder.load(builder.bitcast(builder.gep(row, [poff]), v8.as_pointer()), align=1)
                             for row in rows]
                    for k in range(FIELDS_PER_BYTE):
                        shift = ir.Constant(v8, [k * FIELD_BITS] * vec_bytes)
                        fields = [builder.and_(builder.lshr(c, shift), mask) if k else builder.and_(c, mask)
                                  for c in codes]
                        xoff = builder.add(xbase, ir.Constant(intp, k * BLOCK_BYTES + part * vec_bytes))
                        for i, xrow in enumerate(xrows):
                            xv = builder.load(builder.bitcast(builder.gep(xrow, [xoff]), v8.as_pointer()), align=1)
                            for q, f in enumerate(fields):
                                a = q * n_tok + i
                                accs[a] = mac(accs[a], f, xv)
                for p, a in zip(inner, accs):
                    builder.store(a, p)
            if v16 is not None:
                for p16, p32 in zip(inner, acc32):
                    builder.store(widen(builder.load(p32), builder.load(p16)), p32)
        sums = [builder.call(reduce_add, [builder.load(p)]) for p in acc32]
        return context.make_tuple(builder, signature.return_type, sums)

    return codegen


AVX2_ROWS = 2          # rows sharing each load of the spikes (the decode case, T = 1)
PREFETCH_LOCALITY = 3  # llvm.prefetch locality: keep in all cache levels


def _dot_intrinsic(mode, n_tok: int, n_rows: int):
    """An intrinsic ``(codes [rows, bytes], xpad [T, cols], r0, t0) -> UniTuple(int32, n_rows * n_tok)``; index
    ``q * n_tok + i`` is row r0 + q, token t0 + i. ``mode`` None: :func:`host_dot_mode` when it is compiled."""
    def typer(typingctx, codes, xpad2d, r0, t0):
        if not (_byte_array(codes, 2) and _byte_array(xpad2d, 2) and r0 == types.intp and t0 == types.intp):
            return None
        return (types.UniTuple(types.int32, n_tok * n_rows)(codes, xpad2d, r0, t0),
                _dot_codegen(host_dot_mode() if mode is None else mode, n_tok, n_rows))
    typer.__name__ = typer.__qualname__ = f"_dot_{mode or 'host'}_r{n_rows}t{n_tok}"
    return intrinsic(typer)


# each codes[r] and xpad2d[t] must be unit-stride
_dot_avx2_r1t1, _dot_avx2_r2t1, _dot_avx2_r1tb = (_dot_intrinsic("avx2", 1, 1), _dot_intrinsic("avx2", 1, AVX2_ROWS),
                                                  _dot_intrinsic("avx2", TOKEN_BLOCK, 1))
_dot_port_r1t1, _dot_port_r2t1, _dot_port_r1tb = (
    _dot_intrinsic("portable", 1, 1), _dot_intrinsic("portable", 1, AVX2_ROWS),
    _dot_intrinsic("portable", TOKEN_BLOCK, 1))
_dot_host_r1t1, _dot_host_r2t1, _dot_host_r1tb = (_dot_intrinsic(None, 1, 1), _dot_intrinsic(None, 1, AVX2_ROWS),
                                                  _dot_intrinsic(None, TOKEN_BLOCK, 1))


@njit(cache=True, inline="always")
def _row_dot_generic(row, xpad):
    """Portable twin of ``_row_dot_vnni`` (LLVM vectorises the 64-lane inner loop on int32 lanes)."""
    acc = np.int32(0)
    for blk in range(row.shape[0] // BLOCK_BYTES):
        b = row[blk * BLOCK_BYTES:(blk + 1) * BLOCK_BYTES]
        base = blk * BLOCK_COLS
        x0 = xpad[base:base + BLOCK_BYTES]
        x1 = xpad[base + BLOCK_BYTES:base + 2 * BLOCK_BYTES]
        x2 = xpad[base + 2 * BLOCK_BYTES:base + 3 * BLOCK_BYTES]
        x3 = xpad[base + 3 * BLOCK_BYTES:base + 4 * BLOCK_BYTES]
        for lane in range(BLOCK_BYTES):
            c = np.int32(b[lane])
            acc += ((c & FIELD_MASK) * np.int32(x0[lane])
                    + ((c >> FIELD_BITS) & FIELD_MASK) * np.int32(x1[lane])
                    + ((c >> (2 * FIELD_BITS)) & FIELD_MASK) * np.int32(x2[lane])
                    + ((c >> (3 * FIELD_BITS)) & FIELD_MASK) * np.int32(x3[lane]))
    return acc


# ---- batched drivers: out[t, r] = sum_j c[r, j] * xpad[t, j] - xsum[t] = (W @ x_t)[r] --------------------
# Four explicit functions (not one factory) so that numba's on-disk cache never confuses the variants.
@njit(cache=True, inline="always")
def _vnni_tile(codes, xpad, xsum, out, r0, r1):
    n_tok = xpad.shape[0]
    n_full = n_tok - n_tok % TOKEN_BLOCK
    for t in range(0, n_full, TOKEN_BLOCK):
        for r in range(r0, r1):
            sums = _row_dot_vnni_block(codes[r], xpad, t)
            for i in range(TOKEN_BLOCK):
                out[t + i, r] = sums[i] - xsum[t + i]
    for t in range(n_full, n_tok):
        for r in range(r0, r1):
            out[t, r] = _row_dot_vnni(codes[r], xpad[t]) - xsum[t]


@njit(cache=True)
def _matmul_vnni(codes, xpad, xsum, out):
    n_rows, n_tok = codes.shape[0], xpad.shape[0]
    for t0 in range(0, n_tok, TOKEN_TILE):
        t1 = min(n_tok, t0 + TOKEN_TILE)
        for tile in range((n_rows + ROW_TILE - 1) // ROW_TILE):
            _vnni_tile(codes, xpad[t0:t1], xsum[t0:t1], out[t0:t1], tile * ROW_TILE,
                       min(n_rows, (tile + 1) * ROW_TILE))


@njit(cache=True, parallel=True)
def _matmul_vnni_par(codes, xpad, xsum, out):
    n_rows, n_tok = codes.shape[0], xpad.shape[0]
    for t0 in range(0, n_tok, TOKEN_TILE):
        t1 = min(n_tok, t0 + TOKEN_TILE)
        for tile in prange((n_rows + ROW_TILE - 1) // ROW_TILE):
            _vnni_tile(codes, xpad[t0:t1], xsum[t0:t1], out[t0:t1], tile * ROW_TILE,
                       min(n_rows, (tile + 1) * ROW_TILE))


@njit(cache=True, inline="always")
def _avx2_tile(codes, xpad, xsum, out, r0, r1):
    """out[t, r] for rows r0..r1 of every token: TOKEN_BLOCK tokens per decode of the codes, AVX2_ROWS rows per
    load of the spikes for the tokens left over (decode: T = 1)."""
    n_tok = xpad.shape[0]
    n_full = n_tok - n_tok % TOKEN_BLOCK
    for t in range(0, n_full, TOKEN_BLOCK):
        for r in range(r0, r1):
            s = _dot_avx2_r1tb(codes, xpad, r, t)
            for i in range(TOKEN_BLOCK):
                out[t + i, r] = s[i] - xsum[t + i]
    r_pairs = r0 + (r1 - r0) - (r1 - r0) % AVX2_ROWS
    for t in range(n_full, n_tok):
        for r in range(r0, r_pairs, AVX2_ROWS):
            s = _dot_avx2_r2t1(codes, xpad, r, t)
            for q in range(AVX2_ROWS):
                out[t, r + q] = s[q] - xsum[t]
        for r in range(r_pairs, r1):
            out[t, r] = _dot_avx2_r1t1(codes, xpad, r, t)[0] - xsum[t]


@njit(cache=True, inline="always")
def _port_tile(codes, xpad, xsum, out, r0, r1):
    n_tok = xpad.shape[0]
    n_full = n_tok - n_tok % TOKEN_BLOCK
    for t in range(0, n_full, TOKEN_BLOCK):
        for r in range(r0, r1):
            s = _dot_port_r1tb(codes, xpad, r, t)
            for i in range(TOKEN_BLOCK):
                out[t + i, r] = s[i] - xsum[t + i]
    r_pairs = r0 + (r1 - r0) - (r1 - r0) % AVX2_ROWS
    for t in range(n_full, n_tok):
        for r in range(r0, r_pairs, AVX2_ROWS):
            s = _dot_port_r2t1(codes, xpad, r, t)
            for q in range(AVX2_ROWS):
                out[t, r + q] = s[q] - xsum[t]
        for r in range(r_pairs, r1):
            out[t, r] = _dot_port_r1t1(codes, xpad, r, t)[0] - xsum[t]


@njit(cache=True, inline="always")
def _host_tile(codes, xpad, xsum, out, r0, r1):
    n_tok = xpad.shape[0]
    n_full = n_tok - n_tok % TOKEN_BLOCK
    for t in range(0, n_full, TOKEN_BLOCK):
        for r in range(r0, r1):
            s = _dot_host_r1tb(codes, xpad, r, t)
            for i in range(TOKEN_BLOCK):
                out[t + i, r] = s[i] - xsum[t + i]
    r_pairs = r0 + (r1 - r0) - (r1 - r0) % AVX2_ROWS
    for t in range(n_full, n_tok):
        for r in range(r0, r_pairs, AVX2_ROWS):
            s = _dot_host_r2t1(codes, xpad, r, t)
            for q in range(AVX2_ROWS):
                out[t, r + q] = s[q] - xsum[t]
        for r in range(r_pairs, r1):
            out[t, r] = _dot_host_r1t1(codes, xpad, r, t)[0] - xsum[t]


@njit(cache=True)
def host_rows(codes, xpad, xsum, out, r0, r1):
    """``out[t, r] = (W @ xpad[t])[r]`` for rows r0..r1 with the host's row-dot code (a function call, not
    inlined: the whole-model kernel of golden_fast.py calls it from its parallel loops)."""
    _host_tile(codes, xpad, xsum, out, r0, r1)


@njit(cache=True)
def _matmul_avx2(codes, xpad, xsum, out):
    n_rows, n_tok = codes.shape[0], xpad.shape[0]
    for t0 in range(0, n_tok, TOKEN_TILE):
        t1 = min(n_tok, t0 + TOKEN_TILE)
        for tile in range((n_rows + ROW_TILE - 1) // ROW_TILE):
            _avx2_tile(codes, xpad[t0:t1], xsum[t0:t1], out[t0:t1], tile * ROW_TILE,
                       min(n_rows, (tile + 1) * ROW_TILE))


@njit(cache=True, parallel=True)
def _matmul_avx2_par(codes, xpad, xsum, out):
    n_rows, n_tok = codes.shape[0], xpad.shape[0]
    for t0 in range(0, n_tok, TOKEN_TILE):
        t1 = min(n_tok, t0 + TOKEN_TILE)
        for tile in prange((n_rows + ROW_TILE - 1) // ROW_TILE):
            _avx2_tile(codes, xpad[t0:t1], xsum[t0:t1], out[t0:t1], tile * ROW_TILE,
                       min(n_rows, (tile + 1) * ROW_TILE))


@njit(cache=True)
def _matmul_port(codes, xpad, xsum, out):
    n_rows, n_tok = codes.shape[0], xpad.shape[0]
    for t0 in range(0, n_tok, TOKEN_TILE):
        t1 = min(n_tok, t0 + TOKEN_TILE)
        for tile in range((n_rows + ROW_TILE - 1) // ROW_TILE):
            _port_tile(codes, xpad[t0:t1], xsum[t0:t1], out[t0:t1], tile * ROW_TILE,
                       min(n_rows, (tile + 1) * ROW_TILE))


@njit(cache=True, parallel=True)
def _matmul_port_par(codes, xpad, xsum, out):
    n_rows, n_tok = codes.shape[0], xpad.shape[0]
    for t0 in range(0, n_tok, TOKEN_TILE):
        t1 = min(n_tok, t0 + TOKEN_TILE)
        for tile in prange((n_rows + ROW_TILE - 1) // ROW_TILE):
            _port_tile(codes, xpad[t0:t1], xsum[t0:t1], out[t0:t1], tile * ROW_TILE,
                       min(n_rows, (tile + 1) * ROW_TILE))


@njit(cache=True)
def _matmul_host(codes, xpad, xsum, out):
    n_rows, n_tok = codes.shape[0], xpad.shape[0]
    for t0 in range(0, n_tok, TOKEN_TILE):
        t1 = min(n_tok, t0 + TOKEN_TILE)
        for tile in range((n_rows + ROW_TILE - 1) // ROW_TILE):
            _host_tile(codes, xpad[t0:t1], xsum[t0:t1], out[t0:t1], tile * ROW_TILE,
                       min(n_rows, (tile + 1) * ROW_TILE))


@njit(cache=True, parallel=True)
def _matmul_host_par(codes, xpad, xsum, out):
    n_rows, n_tok = codes.shape[0], xpad.shape[0]
    for t0 in range(0, n_tok, TOKEN_TILE):
        t1 = min(n_tok, t0 + TOKEN_TILE)
        for tile in prange((n_rows + ROW_TILE - 1) // ROW_TILE):
            _host_tile(codes, xpad[t0:t1], xsum[t0:t1], out[t0:t1], tile * ROW_TILE,
                       min(n_rows, (tile + 1) * ROW_TILE))


@njit(cache=True)
def _matmul_generic(codes, xpad, xsum, out):
    n_rows, n_tok = codes.shape[0], xpad.shape[0]
    for tile in range((n_rows + ROW_TILE - 1) // ROW_TILE):
        r0, r1 = tile * ROW_TILE, min(n_rows, (tile + 1) * ROW_TILE)
        for t in range(n_tok):
            for r in range(r0, r1):
                out[t, r] = _row_dot_generic(codes[r], xpad[t]) - xsum[t]


@njit(cache=True, parallel=True)
def _matmul_generic_par(codes, xpad, xsum, out):
    n_rows, n_tok = codes.shape[0], xpad.shape[0]
    for tile in prange((n_rows + ROW_TILE - 1) // ROW_TILE):
        r0, r1 = tile * ROW_TILE, min(n_rows, (tile + 1) * ROW_TILE)
        for t in range(n_tok):
            for r in range(r0, r1):
                out[t, r] = _row_dot_generic(codes[r], xpad[t]) - xsum[t]


@njit(cache=True)
def _decode_rows_f32(codes, r0, out):
    """out[i, :] = float32 weights of row r0 + i, all padded columns included (they decode to 0)."""
    for i in range(out.shape[0]):
        row = codes[r0 + i]
        dst = out[i]
        for blk in range(row.shape[0] // BLOCK_BYTES):
            b = row[blk * BLOCK_BYTES:(blk + 1) * BLOCK_BYTES]
            for k in range(FIELDS_PER_BYTE):
                d = dst[blk * BLOCK_COLS + k * BLOCK_BYTES:blk * BLOCK_COLS + (k + 1) * BLOCK_BYTES]
                for lane in range(BLOCK_BYTES):
                    d[lane] = np.float32(((np.int32(b[lane]) >> (k * FIELD_BITS)) & FIELD_MASK) - ZERO_CODE)


_INT_KERNELS = {("vnni", False): _matmul_vnni, ("vnni", True): _matmul_vnni_par,
                ("avx2", False): _matmul_avx2, ("avx2", True): _matmul_avx2_par,
                ("portable", False): _matmul_port, ("portable", True): _matmul_port_par,
                ("host", False): _matmul_host, ("host", True): _matmul_host_par,
                ("generic", False): _matmul_generic, ("generic", True): _matmul_generic_par}


# ---- packing ----------------------------------------------------------------------------------------------
def padded_in(n_in: int) -> int:
    """``n_in`` rounded up to whole 256-column blocks."""
    return -(-n_in // BLOCK_COLS) * BLOCK_COLS


def pack(W: np.ndarray) -> np.ndarray:
    """Ternary ``[out, in]`` -> uint8 codes ``[out, padded_in(in) // 4]`` (layout: module docstring)."""
    n_out, n_in = W.shape
    n_blk = padded_in(n_in) // BLOCK_COLS
    full = np.full((n_out, n_blk * BLOCK_COLS), ZERO_CODE, dtype=np.uint8)
    full[:, :n_in] = W + ZERO_CODE
    fields = full.reshape(n_out, n_blk, FIELDS_PER_BYTE, BLOCK_BYTES)
    codes = np.zeros((n_out, n_blk, BLOCK_BYTES), dtype=np.uint8)
    for k in range(FIELDS_PER_BYTE):
        codes |= fields[:, :, k, :] << np.uint8(k * FIELD_BITS)
    return codes.reshape(n_out, n_blk * BLOCK_BYTES)


def unpack(codes: np.ndarray, n_in: int) -> np.ndarray:
    """Inverse of :func:`pack`: int8 ``[out, n_in]``."""
    n_out, n_bytes = codes.shape
    n_blk = n_bytes // BLOCK_BYTES
    blocks = codes.reshape(n_out, n_blk, 1, BLOCK_BYTES)
    shifts = (np.arange(FIELDS_PER_BYTE, dtype=np.uint8) * FIELD_BITS).reshape(1, 1, FIELDS_PER_BYTE, 1)
    fields = (blocks >> shifts) & np.uint8(FIELD_MASK)
    W = fields.reshape(n_out, n_blk * BLOCK_COLS)[:, :n_in].astype(np.int8)
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
        """Storage bits per real weight: 2.0 when ``in`` is a multiple of 256, more with padding."""
        return BITS_PER_BYTE * self.nbytes / (self.n_out * self.n_in)

    def __repr__(self) -> str:
        return (f"TernaryMatrix(shape={self.shape}, kernel={self.kernel!r}, "
                f"bits_per_weight={self.bits_per_weight:.3f}, nbytes={self.nbytes})")

    def to_dense(self) -> np.ndarray:
        """The int8 ``[out, in]`` matrix back."""
        return unpack(self.codes, self.n_in)

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
            _decode_rows_f32(self.codes, r0, chunk)
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
