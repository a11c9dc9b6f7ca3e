"""The machine code of the ternary synapse kernel (ternary.py): the row dot products, the one tile loop around
them and the compiled kernels :class:`ternary.TernaryMatrix` and golden_fast.py's whole-model kernel call.

Every kernel computes ``out[t, r] = sum_j c[r, j] * xpad[t, j] - xsum[t] = (W @ x_t)[r]`` (codes ``c = w + 1``,
ternary.py) and differs only in its row dot product:

``"vnni"``      512-bit vpdpbusd straight into int32 lanes (AVX-512 VNNI), one accumulator per field, the field
                masked in place (no shifts); the kernel of that name reads each
                row alone and leaves prefetching to the hardware (measured faster for decode at 512 bits,
                benchmarks/bench_ternary.py), the host kernel on a VNNI CPU runs the tile of the others;
``"avx2"``      256-bit vpmaddubsw into int16 lanes (exact: ``|lane| <= MAX_ABS_MADDUBS_LANE``), widened into int32
                by vpmaddwd with ones every ``FLUSH_BLOCKS`` blocks;
``"portable"``  256-bit codes in plain LLVM vector ops (zero-extended codes times sign-extended spikes in int16
                lanes, the same flushes): any CPU LLVM targets;
``"host"``      whichever of those :func:`host_dot_mode` names when numba compiles it;
``"generic"``   the scalar reference: plain numba code that LLVM auto-vectorises on int32 lanes.

The SIMD dot products are LLVM IR written here (:func:`_dot_codegen`, one numba intrinsic :func:`_dot` whose
mode and shape are compile-time literals); the tile loop (:func:`row_tiles`) and the rows of one tile
(:func:`simd_rows`, :func:`generic_rows`) are written once for every mode. The IR generation and the loops
that inline it share this file on purpose: numba's on-disk cache (``cache=True``) is stamped per source file,
so an edit of the IR recompiles the kernels built on it. (golden_fast's whole-model kernel, in model_plan.py,
links :func:`host_rows` from here: after an edit here, delete its ``__pycache__/model_plan.*.nb?`` files.)
"""
from __future__ import annotations

import functools

import numba
import numpy as np
from llvmlite import ir
import llvmlite.binding as llvm
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

# ---- the packed layout and the tiles ----------------------------------------------------------------------
# (ternary.py's docstring draws the layout; numba compiles these numbers into the kernels)
FIELD_BITS = 2                                  # one weight = one 2-bit field
FIELD_MASK = (1 << FIELD_BITS) - 1
BITS_PER_BYTE = 8
FIELDS_PER_BYTE = BITS_PER_BYTE // FIELD_BITS   # 4 weights per byte
ZERO_CODE = 1                                   # field code = w + 1: {-1, 0, +1} -> {0, 1, 2}
BLOCK_BYTES = 64                                # one 512-bit vector of codes
BLOCK_COLS = BLOCK_BYTES * FIELDS_PER_BYTE      # 256 input columns per block
ROW_TILE = 64                                   # rows per tile in the kernels (a tile's codes stay in L1)
TOKEN_BLOCK = 4                                 # tokens sharing one decode of the codes (batched kernels)
TOKEN_TILE = 64                                 # tokens per pass over the rows (their spikes stay in L2)

# ---- which code this CPU runs -----------------------------------------------------------------------------
HOST_CPU = "host"                               # numba's NUMBA_CPU_NAME for "this machine"
DOT_MODES = ("vnni", "avx2", "portable")        # the SIMD row dots
HOST = "host"                                   # the mode that resolves to host_dot_mode() at compile time


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


def host_dot_mode() -> str:
    """The row-dot code the host kernel (mode ``"host"``) compiles to on this CPU."""
    return "vnni" if vnni_usable() else "avx2" if avx2_usable() else "portable"


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


# ---- the SIMD row dots: LLVM IR ---------------------------------------------------------------------------
_VNNI_INTRINSIC = "llvm.x86.avx512.vpdpbusd.512"
# AVX2: vpmaddubsw (unsigned codes x signed spikes, pairs summed into int16 lanes), vpmaddwd (int16 pairs -> int32)
_MADDUBS_INTRINSIC = "llvm.x86.avx2.pmadd.ub.sw"
_MADDWD_INTRINSIC = "llvm.x86.avx2.pmadd.wd"
_PREFETCH = "llvm.prefetch.p0i8"
_I16_BYTES = np.dtype(np.int16).itemsize
_I32_BYTES = np.dtype(np.int32).itemsize
YMM_BYTES = 32                                  # one 256-bit AVX2 vector
# exactness of the int16 stage: a vpmaddubsw lane is c0*x0 + c1*x1 with c in {0, 1, 2}, x in [-128, 127]:
# |lane| <= 2 * 2 * 128 = 512, so vpmaddubsw never saturates; one int16 accumulator receives at most
# AVX2_LANES_PER_ACC_PER_BLOCK such lanes per block and is widened to int32 (vpmaddwd by ones) every
# FLUSH_BLOCKS blocks, before |sum| could pass int16's 32767.
MAX_ABS_MADDUBS_LANE = 2 * 2 * (1 << (BITS_PER_BYTE - 1))   # c in {0, 1, 2}, |x| <= 128
AVX2_LANES_PER_ACC_PER_BLOCK = (BLOCK_BYTES // YMM_BYTES) * FIELDS_PER_BYTE   # one accumulator per token (batched)
FLUSH_BLOCKS = 4
assert FLUSH_BLOCKS * AVX2_LANES_PER_ACC_PER_BLOCK * MAX_ABS_MADDUBS_LANE <= int(np.iinfo(np.int16).max)
VNNI_MAX_ACCUMULATORS = 8                       # field accumulators in place (16 spill: prefill slower)
PREFETCH_AHEAD_BYTES = 4096                     # software prefetch distance in the packed weight stream (the 1-thread
                                                # decode pass was slower at 1 KiB, docs/performance.md)
PREFETCH_LOCALITY = 3                           # llvm.prefetch locality: keep in all cache levels
AVX2_ROWS = 2                                   # rows sharing each load of the spikes (the decode case, T = 1)
# ... only where a row is at most this long: two longer rows read side by side streamed slower from
# memory than one at a time (370M: d-wide rows of 256 bytes paired, I-wide ones of 704 alone; docs/performance.md)
PAIRED_ROW_MAX_BYTES = 4 * BLOCK_BYTES


def _dot_codegen(mode: str, n_tok: int, n_rows: int, prefetch: bool = True):
    """LLVM IR for ``sum_j c[r0 + q, j] * x[t0 + i, j]``, q < n_rows, i < n_tok, over packed rows.

    Each vector of codes is decoded (shift, AND) once and meets the spikes of ``n_tok`` tokens; ``n_rows``
    rows share each load of the spikes; one accumulator per (row, token) keeps that many dependency chains in
    flight; with ``prefetch`` the weight stream is prefetched PREFETCH_AHEAD_BYTES ahead. ``mode``: one of
    DOT_MODES (module docstring); the vnni code needs :func:`vnni_usable` and the avx2 code :func:`avx2_usable`
    (LLVM cannot lower their intrinsics otherwise).
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
        i8, i16, i32 = ir.IntType(BITS_PER_BYTE), ir.IntType(2 * BITS_PER_BYTE), ir.IntType(4 * BITS_PER_BYTE)
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
        if v16 is None:  # int32 accumulators need no flushes: one group of every block, one plain loop
            n_groups, group = ir.Constant(intp, 1), n_blocks
        else:
            group = ir.Constant(intp, FLUSH_BLOCKS)
            n_groups = builder.udiv(builder.add(n_blocks, ir.Constant(intp, FLUSH_BLOCKS - 1)), group)
        mask = ir.Constant(v8, [FIELD_MASK] * vec_bytes)
        n_acc = n_rows * n_tok
        # vnni decode (few accumulators): each field k gets an accumulator of its own and is used in place,
        # c_k * 4^k = byte AND (3 << 2k) (<= 128, still an unsigned byte): no shifts, no chain of a block's four
        # vpdpbusd through one register; the accumulator is 4^k times the field's sum, scaled back (exactly, by an
        # arithmetic shift) at the end. Its lanes stay within 256 * in like the row total (ternary.py's MAX_IN
        # bound). Batches (more accumulators) shift each field down instead: four times the registers would spill.
        in_place = v16 is None and n_acc * FIELDS_PER_BYTE <= VNNI_MAX_ACCUMULATORS
        n_split = FIELDS_PER_BYTE if in_place else 1
        acc32 = [cgutils.alloca_once_value(builder, ir.Constant(v32, [0] * v32.count))
                 for _ in range(n_acc * n_split)]
        # the int16 stage (avx2, portable) or the int32 accumulators themselves (vnni)
        inner_ty = v32 if v16 is None else v16
        zero_inner = ir.Constant(inner_ty, [0] * inner_ty.count)
        inner = acc32 if v16 is None else [cgutils.alloca_once_value(builder, zero_inner) for _ in range(n_acc)]
        with cgutils.for_range(builder, n_groups) as gloop:
            g0 = builder.mul(gloop.index, group)
            left = builder.sub(n_blocks, g0)
            cnt = builder.select(builder.icmp_unsigned("<", left, group), left, group)
            if v16 is not None:
                for p in inner:
                    builder.store(zero_inner, p)
            with cgutils.for_range(builder, cnt) as bloop:
                blk = builder.add(g0, bloop.index)
                boff = builder.mul(blk, ir.Constant(intp, BLOCK_BYTES))
                xbase = builder.mul(blk, ir.Constant(intp, BLOCK_COLS))
                accs = [builder.load(p) for p in inner]
                for row in rows if prefetch else ():
                    ahead = builder.gep(row, [builder.add(boff, ir.Constant(intp, PREFETCH_AHEAD_BYTES))])
                    builder.call(prefetch, [ahead, ir.Constant(i32, 0), ir.Constant(i32, PREFETCH_LOCALITY),
                                            ir.Constant(i32, 1)])
                for part in range(BLOCK_BYTES // vec_bytes):
                    poff = builder.add(boff, ir.Constant(intp, part * vec_bytes))
                    codes = [builder.load(builder.bitcast(builder.gep(row, [poff]), v8.as_pointer()), align=1)
                             for row in rows]
                    for k in range(FIELDS_PER_BYTE):
                        shift = ir.Constant(v8, [k * FIELD_BITS] * vec_bytes)
                        if in_place:
                            fields = [builder.and_(c, ir.Constant(v8, [FIELD_MASK << (k * FIELD_BITS)] * vec_bytes))
                                      for c in codes]
                        else:
                            fields = [builder.and_(builder.lshr(c, shift), mask) if k else builder.and_(c, mask)
                                      for c in codes]
                        xoff = builder.add(xbase, ir.Constant(intp, k * BLOCK_BYTES + part * vec_bytes))
                        for i, xrow in enumerate(xrows):
                            xv = builder.load(builder.bitcast(builder.gep(xrow, [xoff]), v8.as_pointer()), align=1)
                            for q, f in enumerate(fields):
                                a = (q * n_tok + i) * n_split + k % n_split
                                accs[a] = mac(accs[a], f, xv)
                for p, a in zip(inner, accs):
                    builder.store(a, p)
            if v16 is not None:
                for p16, p32 in zip(inner, acc32):
                    builder.store(widen(builder.load(p32), builder.load(p16)), p32)
        def field_sum(p, k):
            v = builder.load(p)
            return builder.ashr(v, ir.Constant(v32, [k * FIELD_BITS] * v32.count)) if n_split > 1 and k else v

        totals = [functools.reduce(builder.add, (field_sum(acc32[a * n_split + k], k) for k in range(n_split)))
                  for a in range(n_acc)]
        sums = [builder.call(reduce_add, [v]) for v in totals]
        return context.make_tuple(builder, signature.return_type, sums)

    return codegen


def _byte_array(ty, ndim: int) -> bool:
    return isinstance(ty, types.Array) and ty.ndim == ndim and ty.dtype in (types.uint8, types.int8)


@intrinsic
def _dot(typingctx, codes, xpad2d, r0, t0, mode, n_rows, n_tok):
    """``UniTuple(int32, n_rows * n_tok)``: index ``q * n_tok + i`` is ``sum_j c[r0 + q, j] * xpad2d[t0 + i, j]``,
    by the row dot of ``mode`` (DOT_MODES or HOST). ``mode``, ``n_rows`` and ``n_tok`` must be compile-time
    constants (numba types them as literals); each ``codes[r]`` and ``xpad2d[t]`` must be unit-stride."""
    if not (_byte_array(codes, 2) and _byte_array(xpad2d, 2) and r0 == types.intp and t0 == types.intp
            and isinstance(mode, types.StringLiteral) and isinstance(n_rows, types.IntegerLiteral)
            and isinstance(n_tok, types.IntegerLiteral)):
        return None
    m = host_dot_mode() if mode.literal_value == HOST else mode.literal_value
    if m not in DOT_MODES:
        return None
    R, T = n_rows.literal_value, n_tok.literal_value
    codegen = _dot_codegen(m, T, R, prefetch=mode.literal_value != "vnni")  # the "vnni" kernel: module docstring
    return types.UniTuple(types.int32, R * T)(codes, xpad2d, r0, t0, mode, n_rows, n_tok), codegen


# ---- the scalar reference ---------------------------------------------------------------------------------
@njit(inline="always")
def _row_dot_generic(row, xpad):
    """``sum_j c_j * xpad[j]`` over one packed row in plain numba code (LLVM vectorises the 64-lane inner loop on
    int32 lanes): the reference the SIMD row dots are checked against."""
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


# ---- one tile, the tile loop, the kernels -----------------------------------------------------------------
@njit(inline="always")
def simd_rows(codes, xpad, xsum, out, r0, r1, mode):
    """``out[t, r] = (W @ xpad[t])[r]`` for rows r0..r1 of every token by the row dot of ``mode``: TOKEN_BLOCK
    tokens per decode of the codes, AVX2_ROWS rows per load of the spikes for the tokens left over (decode: T = 1)."""
    n_tok = xpad.shape[0]
    n_full = n_tok - n_tok % TOKEN_BLOCK
    for t in range(0, n_full, TOKEN_BLOCK):
        for r in range(r0, r1):
            s = _dot(codes, xpad, r, t, mode, 1, TOKEN_BLOCK)
            for i in range(TOKEN_BLOCK):
                out[t + i, r] = s[i] - xsum[t + i]
    # the tokens left over (decode): AVX2_ROWS rows per load of their spikes where rows are short, one in the
    # "vnni" kernel (docstring) and for rows longer than PAIRED_ROW_MAX_BYTES
    paired = mode != "vnni" and codes.shape[1] <= PAIRED_ROW_MAX_BYTES
    r_pairs = r1 - (r1 - r0) % AVX2_ROWS if paired else r0
    for t in range(n_full, n_tok):
        for r in range(r0, r_pairs, AVX2_ROWS):
            s = _dot(codes, xpad, r, t, mode, AVX2_ROWS, 1)
            for q in range(AVX2_ROWS):
                out[t, r + q] = s[q] - xsum[t]
        for r in range(r_pairs, r1):
            out[t, r] = _dot(codes, xpad, r, t, mode, 1, 1)[0] - xsum[t]


@njit(inline="always")
def generic_rows(codes, xpad, xsum, out, r0, r1, mode):
    """:func:`simd_rows` by the scalar reference (``mode`` unused: the one signature :func:`row_tiles` calls)."""
    for t in range(xpad.shape[0]):
        for r in range(r0, r1):
            out[t, r] = _row_dot_generic(codes[r], xpad[t]) - xsum[t]


# simd_rows compiled once as a function of its own: golden_fast's whole-model kernel calls it from the tile loop
# of every matrix (host_matmul), where inlining it would compile its code once per matrix.
host_rows = njit(cache=True)(simd_rows.py_func)


@njit(inline="always")
def row_tiles(codes, xpad, xsum, out, rows, mode):
    """``out[t] = W @ xpad[t]`` (int32) for every token: TOKEN_TILE tokens at a time (their spikes stay in L2) over
    tiles of ROW_TILE rows (a tile's codes stay in L1), each filled by ``rows(codes, xpad, xsum, out, r0, r1,
    mode)``. Inlined (numba IR) into its caller, so the tiles run on numba's threads where the caller is compiled
    with ``parallel=True`` and in a plain loop otherwise (a cached function calling a separately compiled
    parallel one crashes when numba reloads it from its cache)."""
    n_rows, n_tok = codes.shape[0], xpad.shape[0]
    for t0 in range(0, n_tok, TOKEN_TILE):
        t1 = min(n_tok, t0 + TOKEN_TILE)
        for tile in prange((n_rows + ROW_TILE - 1) // ROW_TILE):
            rows(codes, xpad[t0:t1], xsum[t0:t1], out[t0:t1], tile * ROW_TILE, min(n_rows, (tile + 1) * ROW_TILE),
                 mode)


@njit(inline="always")
def host_matmul(codes, xpad, xsum, out):
    """The host kernel as the whole-model kernel (model_plan.py) inlines it: every tile a call of host_rows."""
    row_tiles(codes, xpad, xsum, out, host_rows, HOST)


def _kernel(mode: str, parallel: bool):
    """``kernel(codes, xpad, xsum, out)`` of one mode, compiled with its row tiles on numba's threads when
    ``parallel``. Only strings are closed over (numba keys its on-disk cache by their values; a closure over a
    compiled function would be keyed by an id that changes every process), and each kernel is named for its mode,
    so that the cache keeps one file per kernel."""
    if mode == "generic":
        def kernel(codes, xpad, xsum, out):
            row_tiles(codes, xpad, xsum, out, generic_rows, mode)
    else:
        def kernel(codes, xpad, xsum, out):
            row_tiles(codes, xpad, xsum, out, simd_rows, mode)
    kernel.__name__ = kernel.__qualname__ = f"_matmul_{mode}{'_par' if parallel else ''}"
    return njit(cache=True, parallel=parallel)(kernel)


# (mode, parallel) -> kernel; "vnni" and "avx2" only run where vnni_usable() / avx2_usable() (ternary.py checks)
INT_KERNELS = {(mode, par): _kernel(mode, par) for mode in (*DOT_MODES, HOST, "generic") for par in (False, True)}


@njit(cache=True)
def decode_rows_f32(codes, r0, out):
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
