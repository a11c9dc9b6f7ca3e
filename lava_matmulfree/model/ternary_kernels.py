"""The machine code of the ternary synapse kernel (ternary.py): the group dot products, the one tile loop around
them and the compiled kernels :class:`ternary.TernaryMatrix` and golden_fast.py's whole-model kernel call.

Every kernel computes ``out[t, r] = sum_j c[r, j] * xpad[t, j] - xsum[t] = (W @ x_t)[r]`` (codes ``c = w + 1``,
ternary.py) a group of GROUP_ROWS rows at a time (the interleaved layout: each row owns one 4-byte lane of every
block, so a vector of codes holds 16 or 8 rows side by side and every row sums in a lane of its own, with no
reductions across lanes), and the kernels differ only in the group dot product:

``"vnni"``      512-bit vpdpbusd straight into int32 lanes (AVX-512 VNNI), each field meeting one broadcast dword
                of the spikes; for one token the field is masked in place (no shifts) into an accumulator of its
                own, for a batch it is shifted down and one accumulator per token serves the four fields;
``"avx2"``      256-bit vpmaddubsw into int16 lanes (exact: ``|lane| <= MAX_ABS_MADDUBS_LANE``), widened into the
                int32 lane of its row by vpmaddwd with ones every ``FLUSH_BLOCKS`` blocks;
``"portable"``  256-bit codes in plain LLVM vector ops (zero-extended codes times sign-extended spikes in int16
                lanes, the same flushes, each row's four byte lanes summed when widened): any CPU LLVM targets;
``"host"``      whichever of those :func:`host_dot_mode` names when numba compiles it;
``"generic"``   the scalar reference: plain numba code over the codes as uint32 lanes, which LLVM auto-vectorises
                across a group's rows.

Every SIMD kernel prefetches its codes in software, one prefetch per cache line of a block at two distances:
PREFETCH_BYTES ahead into L1 and PREFETCH_L2_BYTES ahead into L2 (docs/cpu_tuning.md, "Software prefetch"), except
where :func:`prefetch_distances` says none. One group is one sequential stream of bytes, and the stacked matrices of
a token one long stream, yet on an Intel Xeon host the hardware prefetchers alone kept a core at 7.6 GB/s from
memory and 11.3 GB/s from its L3, against 11.1 and 24.5 for the plain reader. 512 B ahead into L1 brought memory to
10.5-11.5; adding 8-64 KiB ahead into L2 brought the L3 to 23-25 GB/s on one thread and 46-49 on two (a token's
synapses; the kernel-1t / kernel-2t rows of ``benchmarks/bench_decode.py``). On an AMD EPYC without AVX-512 (Zen 3)
the L2 prefetch is worth up to a fifth ("Which of the two prefetches the AVX2 host needs"); on an AMD EPYC with
AVX-512 (Zen 4) the kernel streams faster with no software prefetch at all ("Prefetch on an AMD host with AVX-512").

Decode (one token) reads a thread's rows as two streams where they span enough bytes: group k of the rows' first
half beside group k of their second half, STREAM_CHUNK_BLOCKS blocks of one, then of the other (:func:`_dot_pair`),
which lets a core's prefetchers run ahead on two streams while it computes (docs/cpu_tuning.md, "Two streams for
one core").

The SIMD dot products are LLVM IR written here (:func:`_dot_codegen`, numba intrinsics :func:`_dot` and
:func:`_dot_pair` whose mode and batch are compile-time literals); the tile loop (:func:`row_tiles`) and the rows of one tile
(:func:`simd_rows`, :func:`generic_rows`) are written once for every mode.

Kept whole: the IR, what shapes it (the layout's constants, the prefetch distances per host, the two-stream
threshold) and the loops that inline it must share one file, because numba's on-disk cache (``cache=True``) is
stamped per source file: only then does an edit of any of them recompile the kernels built on it. (golden_fast's
whole-model kernel, in whole_model.py, links :func:`host_rows` from here: after an edit here, delete its
``__pycache__/whole_model.*.nb?`` files.)
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
LANE_BYTES = 4                                  # one int32 lane of vpdpbusd: 4 code bytes of one row
GROUP_ROWS = 32                                 # rows interleaved lane by lane (two 512-bit vectors of lanes)
BLOCK_BYTES = GROUP_ROWS * LANE_BYTES           # 128 bytes: one block of a group's codes
BLOCK_COLS = LANE_BYTES * FIELDS_PER_BYTE       # 16 input columns per block (4 spikes per field: one dword)
ROW_TILE = 2 * GROUP_ROWS                       # rows per tile in the kernels (a tile's codes stay in L1/L2)
TOKEN_BLOCK = 4                                 # tokens sharing one decode of the codes (batched kernels)
PREFETCH_BYTES = 1024                           # software prefetch distance into L1 in a group's stream (0: none)
PREFETCH_L2_BYTES = 16384                       # and a farther one into L2 (0: none); both measured, below
NO_PREFETCH = (0, 0)                            # where the hardware prefetchers alone stream faster: prefetch_distances
CACHE_LINE_BYTES = 64
PREFETCH_READ_L1_DATA = (0, 3, 1)               # llvm.prefetch's rw (read), locality (3: prefetcht0, L1), data
PREFETCH_READ_L2_DATA = (0, 2, 1)               # locality 2: prefetcht1, into L2 only
TOKEN_TILE = 64                                 # tokens per pass over the rows (their spikes stay in L2)
# decode (one token) reads a share of rows as two streams of groups, the share's two halves, STREAM_CHUNK_BLOCKS
# blocks (4 KiB) of one, then of the other, where the halves lie STREAM_MIN_APART bytes or more apart (closer ones
# did not stream faster): docs/cpu_tuning.md, "Two streams for one core"
STREAM_CHUNK_BLOCKS = 32
STREAM_MIN_APART = 256 * 1024

# ---- which code this CPU runs -----------------------------------------------------------------------------
HOST_CPU = "host"                               # numba's NUMBA_CPU_NAME for "this machine"
DOT_MODES = ("vnni", "avx2", "portable")        # the SIMD group dots
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


AMD_VENDOR = "AuthenticAMD"                     # cpuid's vendor string, as /proc/cpuinfo gives it


@functools.lru_cache(maxsize=None)
def host_vendor() -> str:
    """The host CPU's vendor string (``vendor_id`` of /proc/cpuinfo; "" where the system does not say)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "vendor_id":
                    return value.strip()
    except OSError:
        pass
    return ""


def prefetch_distances(mode: str) -> tuple[int, int]:
    """(bytes ahead into L1, bytes ahead into L2) at which the group dot of ``mode`` (DOT_MODES, resolved)
    prefetches its codes; 0: no prefetch at that level. On AMD's cores with AVX-512 (the vnni dot on an AMD host:
    Zen 4 and later) none: there the hardware prefetchers alone stream the codes 11-13 % faster than with either
    prefetch (docs/cpu_tuning.md, "Prefetch on an AMD host with AVX-512"); on Zen 3 (avx2) and on Intel's cores the
    prefetch pair is what brought the kernel up to the reader, so it stays."""
    if mode == "vnni" and host_vendor() == AMD_VENDOR:
        return NO_PREFETCH
    return PREFETCH_BYTES, PREFETCH_L2_BYTES


def host_kernel_label() -> str:
    """What the host kernel runs here, for reports: its dot and its prefetch (e.g. "vnni, no software prefetch")."""
    mode = host_dot_mode()
    l1, l2 = prefetch_distances(mode)
    if (l1, l2) == NO_PREFETCH:
        return f"{mode}, no software prefetch"
    return f"{mode}, prefetch {l1} B ahead into L1 and {l2} B into L2"


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


# ---- the SIMD group dots: LLVM IR -------------------------------------------------------------------------
_VNNI_INTRINSIC = "llvm.x86.avx512.vpdpbusd.512"
# AVX2: vpmaddubsw (unsigned codes x signed spikes, pairs summed into int16 lanes), vpmaddwd (int16 pairs -> int32)
_MADDUBS_INTRINSIC = "llvm.x86.avx2.pmadd.ub.sw"
_MADDWD_INTRINSIC = "llvm.x86.avx2.pmadd.wd"
ZMM_BYTES = 64                                  # one 512-bit AVX-512 vector
YMM_BYTES = 32                                  # one 256-bit AVX2 vector
# exactness of the int16 stage (avx2): a vpmaddubsw lane is c0*x0 + c1*x1 with c in {0, 1, 2}, x in [-128, 127]:
# |lane| <= 2 * 2 * 128 = 512, so vpmaddubsw never saturates; one int16 accumulator receives one such lane per
# field of a block and is widened to int32 (vpmaddwd by ones) every FLUSH_BLOCKS blocks, before |sum| could pass
# int16's 32767. (portable: one byte's c*x per field, |.| <= 256, in int16 lanes: within the same bound.)
MAX_ABS_MADDUBS_LANE = 2 * 2 * (1 << (BITS_PER_BYTE - 1))   # c in {0, 1, 2}, |x| <= 128
AVX2_LANES_PER_ACC_PER_BLOCK = FIELDS_PER_BYTE
FLUSH_BLOCKS = 8
assert FLUSH_BLOCKS * AVX2_LANES_PER_ACC_PER_BLOCK * MAX_ABS_MADDUBS_LANE <= int(np.iinfo(np.int16).max)
# vnni decode: field k used in place, as byte AND (3 << 2k) = 4^k c <= 128, into an accumulator of its own; a lane
# of it gains at most LANE_BYTES * 128 * 128 = 2**16 per block and is folded (shifted back exactly, added) into
# the int32 total every VNNI_FLUSH_BLOCKS blocks, far below 2**31 (and whatever the fan-in).
MAX_IN_PLACE_FIELD = (FIELD_MASK - 1) << (FIELD_BITS * (FIELDS_PER_BYTE - 1))   # c <= 2 in the top field: 128
VNNI_FLUSH_BLOCKS = 4096
assert VNNI_FLUSH_BLOCKS * LANE_BYTES * MAX_IN_PLACE_FIELD * (1 << (BITS_PER_BYTE - 1)) < int(np.iinfo(np.int32).max)


def _byte_ptr(builder, ptr, byte_offset, ty):
    """``ptr`` (any pointer) advanced by ``byte_offset`` bytes, as a pointer to ``ty``."""
    i8p = ir.IntType(BITS_PER_BYTE).as_pointer()
    return builder.bitcast(builder.gep(builder.bitcast(ptr, i8p), [byte_offset]), ty.as_pointer())


def _dot_codegen(mode: str, n_tok: int, n_streams: int = 1):
    """LLVM IR for ``out[t0 + i, GROUP_ROWS*g + q] = sum_j c[GROUP_ROWS*g + q, j] * x[t0 + i, j] - xsum[t0 + i]``,
    i < n_tok, q < GROUP_ROWS (rows past ``out``'s width are not written): one group of the interleaved layout,
    or with ``n_streams`` 2 two groups g and g2 of the same matrix read side by side, STREAM_CHUNK_BLOCKS blocks of
    one, then of the other (each with accumulators of its own: two streams of memory for one core).

    The group's codes are one stream of blocks; each vector of codes holds one int32 lane per row, so every row
    accumulates in a lane of its own (no reductions across lanes) and each field meets one broadcast dword of each
    token's spikes. Decode (``n_tok`` 1) on VNNI uses the fields in place (one accumulator per field and vector);
    otherwise each field is shifted down and masked, one accumulator per vector and token. ``mode``: one of
    DOT_MODES (module docstring); the vnni code needs :func:`vnni_usable` and the avx2 code :func:`avx2_usable`
    (LLVM cannot lower their intrinsics otherwise).
    """
    vec_bytes = ZMM_BYTES if mode == "vnni" else YMM_BYTES
    n_vec = BLOCK_BYTES // vec_bytes             # vectors of codes per block
    lanes = vec_bytes // LANE_BYTES              # rows per vector

    def codegen(context, builder, signature, args):
        carr, xarr, sarr, oarr = (context.make_array(ty)(context, builder, a)
                                  for ty, a in zip(signature.args[:4], args[:4]))
        gs, t0 = list(args[4:4 + n_streams]), args[4 + n_streams]
        intp = context.get_value_type(types.intp)
        i8, i16, i32 = ir.IntType(BITS_PER_BYTE), ir.IntType(2 * BITS_PER_BYTE), ir.IntType(4 * BITS_PER_BYTE)

        def const(v):
            return ir.Constant(intp, v)

        c_stride = cgutils.unpack_tuple(builder, carr.strides, 2)[0]
        row_bytes = cgutils.unpack_tuple(builder, carr.shape, 2)[1]
        x_stride = cgutils.unpack_tuple(builder, xarr.strides, 2)[0]
        o_stride = cgutils.unpack_tuple(builder, oarr.strides, 2)[0]
        n_out = cgutils.unpack_tuple(builder, oarr.shape, 2)[1]
        s_stride = cgutils.unpack_tuple(builder, sarr.strides, 1)[0]
        rows0 = [builder.mul(g, const(GROUP_ROWS)) for g in gs]
        groups = [_byte_ptr(builder, carr.data, builder.mul(row0, c_stride), i8) for row0 in rows0]
        xrows = [_byte_ptr(builder, xarr.data, builder.mul(builder.add(t0, const(i)), x_stride), i8)
                 for i in range(n_tok)]
        v8 = ir.VectorType(i8, vec_bytes)
        v32 = ir.VectorType(i32, lanes)          # one int32 lane per row: the totals (every mode)
        mod = builder.module
        if mode == "avx2":
            v16 = ir.VectorType(i16, vec_bytes // 2)
            maddubs = cgutils.get_or_insert_function(mod, ir.FunctionType(v16, [v8, v8]), _MADDUBS_INTRINSIC)
            maddwd = cgutils.get_or_insert_function(mod, ir.FunctionType(v32, [v16, v16]), _MADDWD_INTRINSIC)
            ones16 = ir.Constant(v16, [1] * v16.count)
            acc_ty, flush_every = v16, FLUSH_BLOCKS

            def mac(acc, f, xb):
                return builder.add(acc, builder.call(maddubs, [f, builder.bitcast(xb, v8)]))

            def widen(acc, k):                   # int16 pairs -> the int32 lane of their row
                return builder.call(maddwd, [acc, ones16])
        elif mode == "portable":
            v16 = ir.VectorType(i16, vec_bytes)
            v32b = ir.VectorType(i32, vec_bytes)
            acc_ty, flush_every = v16, FLUSH_BLOCKS

            def mac(acc, f, xb):
                return builder.add(acc, builder.mul(builder.zext(f, v16), builder.sext(builder.bitcast(xb, v8), v16)))

            def widen(acc, k):                   # int16 byte lanes -> the int32 lane of their row (4 bytes summed)
                wide = builder.sext(acc, v32b)
                parts = [builder.shuffle_vector(wide, wide, ir.Constant(ir.VectorType(i32, lanes),
                                                                        [LANE_BYTES * q + m for q in range(lanes)]))
                         for m in range(LANE_BYTES)]
                return functools.reduce(builder.add, parts)
        else:
            dpbusd = cgutils.get_or_insert_function(mod, ir.FunctionType(v32, [v32, v32, v32]), _VNNI_INTRINSIC)
            acc_ty, flush_every = v32, VNNI_FLUSH_BLOCKS

            def mac(acc, f, xb):
                return builder.call(dpbusd, [acc, builder.bitcast(f, v32), xb])

            def widen(acc, k):                   # 4^k times field k's sum where fields are in place: exact shift
                return builder.ashr(acc, ir.Constant(v32, [k * FIELD_BITS] * lanes)) if k else acc
        in_place = mode == "vnni" and n_tok == 1
        prefetch = cgutils.get_or_insert_function(
            mod, ir.FunctionType(ir.VoidType(), [i8.as_pointer(), i32, i32, i32]), "llvm.prefetch.p0i8")
        n_split = FIELDS_PER_BYTE if in_place else 1
        zero_acc = ir.Constant(acc_ty, [0] * acc_ty.count)
        zero32 = ir.Constant(v32, [0] * lanes)
        # per stream: accumulator (v, i, s) at (v * n_tok + i) * n_split + s; totals at v * n_tok + i
        accs_p = [[cgutils.alloca_once_value(builder, zero_acc) for _ in range(n_vec * n_tok * n_split)]
                  for _ in gs]
        totals_p = [[cgutils.alloca_once_value(builder, zero32) for _ in range(n_vec * n_tok)] for _ in gs]
        n_blocks = builder.udiv(row_bytes, const(LANE_BYTES))
        group_len = const(flush_every)
        n_groups = builder.udiv(builder.add(n_blocks, const(flush_every - 1)), group_len)
        chunk_len = const(STREAM_CHUNK_BLOCKS if n_streams > 1 else flush_every)
        splat_mask = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)

        def block(group, accs_s, blk):           # one block of one stream into its accumulators
            boff = builder.mul(blk, const(BLOCK_BYTES))
            xoff = builder.mul(blk, const(BLOCK_COLS))
            for distance, how in zip(prefetch_distances(mode), (PREFETCH_READ_L1_DATA, PREFETCH_READ_L2_DATA)):
                for line in range(0, BLOCK_BYTES if distance else 0, CACHE_LINE_BYTES):
                    ahead = _byte_ptr(builder, group, builder.add(boff, const(distance + line)), i8)
                    builder.call(prefetch, [ahead, *(ir.Constant(i32, a) for a in how)])
            accs = [builder.load(p) for p in accs_s]
            codes = [builder.load(_byte_ptr(builder, group, builder.add(boff, const(v * vec_bytes)), v8), align=1)
                     for v in range(n_vec)]
            for k in range(FIELDS_PER_BYTE):
                if in_place:
                    fields = [builder.and_(c, ir.Constant(v8, [FIELD_MASK << (k * FIELD_BITS)] * vec_bytes))
                              for c in codes]
                else:
                    shift = ir.Constant(v8, [k * FIELD_BITS] * vec_bytes)
                    mask = ir.Constant(v8, [FIELD_MASK] * vec_bytes)
                    fields = [builder.and_(builder.lshr(c, shift), mask) if k else builder.and_(c, mask)
                              for c in codes]
                for i, xrow in enumerate(xrows):
                    xw = builder.load(_byte_ptr(builder, xrow, builder.add(xoff, const(k * LANE_BYTES)), i32),
                                      align=1)
                    one = builder.insert_element(ir.Constant(v32, ir.Undefined), xw, ir.Constant(i32, 0))
                    xb = builder.shuffle_vector(one, one, splat_mask)
                    for v, f in enumerate(fields):
                        a = (v * n_tok + i) * n_split + (k if in_place else 0)
                        accs[a] = mac(accs[a], f, xb)
            for p, acc in zip(accs_s, accs):
                builder.store(acc, p)

        with cgutils.for_range(builder, n_groups) as gloop:
            b0 = builder.mul(gloop.index, group_len)
            left = builder.sub(n_blocks, b0)
            cnt = builder.select(builder.icmp_unsigned("<", left, group_len), left, group_len)
            for p in (p for accs_s in accs_p for p in accs_s):
                builder.store(zero_acc, p)
            n_chunks = builder.udiv(builder.add(cnt, builder.sub(chunk_len, const(1))), chunk_len)
            with cgutils.for_range(builder, n_chunks) as cloop:   # one stream's chunk, then the other's
                c0 = builder.add(b0, builder.mul(cloop.index, chunk_len))
                c_left = builder.sub(builder.add(b0, cnt), c0)
                c_cnt = builder.select(builder.icmp_unsigned("<", c_left, chunk_len), c_left, chunk_len)
                for group, accs_s in zip(groups, accs_p):
                    with cgutils.for_range(builder, c_cnt) as bloop:
                        block(group, accs_s, builder.add(c0, bloop.index))
            for accs_s, totals_s in zip(accs_p, totals_p):   # flush: fold the accumulators into the int32 totals
                for a, tp in enumerate(totals_s):
                    parts = [widen(builder.load(accs_s[a * n_split + s]), s) for s in range(n_split)]
                    builder.store(functools.reduce(builder.add, [builder.load(tp)] + parts), tp)
        xsums = [builder.load(_byte_ptr(builder, sarr.data, builder.mul(builder.add(t0, const(i)), s_stride), i32))
                 for i in range(n_tok)]
        orows = [_byte_ptr(builder, oarr.data, builder.mul(builder.add(t0, const(i)), o_stride), i32)
                 for i in range(n_tok)]
        for row0, totals_s in zip(rows0, totals_p):
            _write_group(builder, const, row0, n_out, totals_s, xsums, orows, n_tok, n_vec, lanes, v32, i32,
                         splat_mask)
        return context.get_dummy_value()

    return codegen


def _write_group(builder, const, row0, n_out, totals_p, xsums, orows, n_tok, n_vec, lanes, v32, i32, splat_mask):
    """IR writing one group's int32 totals (``totals_p``, allocas) less each token's spike sum into ``out`` from row
    ``row0``: whole vectors where the group lies within out, else only the rows that exist (the last group of a
    matrix may be partly padding)."""
    left = builder.sub(n_out, row0)
    whole = builder.icmp_signed(">=", left, const(GROUP_ROWS))
    with builder.if_else(whole) as (then, otherwise):
        with then:
            for v in range(n_vec):
                for i in range(n_tok):
                    xs = builder.shuffle_vector(builder.insert_element(ir.Constant(v32, ir.Undefined), xsums[i],
                                                                       ir.Constant(i32, 0)), ir.Constant(v32, ir.Undefined), splat_mask)
                    dst = builder.bitcast(builder.gep(orows[i], [builder.add(row0, const(v * lanes))]),
                                          v32.as_pointer())
                    builder.store(builder.sub(builder.load(totals_p[v * n_tok + i]), xs), dst, align=4)
        with otherwise:
            buf = cgutils.alloca_once(builder, i32, size=n_tok * GROUP_ROWS)
            for v in range(n_vec):
                for i in range(n_tok):
                    dst = builder.bitcast(builder.gep(buf, [ir.Constant(i32, i * GROUP_ROWS + v * lanes)]),
                                          v32.as_pointer())
                    builder.store(builder.load(totals_p[v * n_tok + i]), dst, align=4)
            for i in range(n_tok):
                with cgutils.for_range(builder, left) as qloop:
                    q = qloop.index
                    val = builder.load(builder.gep(buf, [builder.add(const(i * GROUP_ROWS), q)]))
                    builder.store(builder.sub(val, xsums[i]), builder.gep(orows[i], [builder.add(row0, q)]))


def _byte_array(ty, ndim: int) -> bool:
    return isinstance(ty, types.Array) and ty.ndim == ndim and ty.dtype in (types.uint8, types.int8)


def _dot_typing(codes, xpad2d, xsum, out, groups, t0, mode, n_tok):
    """(the signature, the IR) of a group dot over ``groups`` (one or two group indices), or None where the types
    do not fit (numba then reports the call)."""
    if not (_byte_array(codes, 2) and _byte_array(xpad2d, 2) and isinstance(xsum, types.Array)
            and xsum.ndim == 1 and xsum.dtype == types.int32 and isinstance(out, types.Array) and out.ndim == 2
            and out.dtype == types.int32 and all(g == types.intp for g in groups) and t0 == types.intp
            and isinstance(mode, types.StringLiteral) and isinstance(n_tok, types.IntegerLiteral)):
        return None
    m = host_dot_mode() if mode.literal_value == HOST else mode.literal_value
    if m not in DOT_MODES:
        return None
    return (types.void(codes, xpad2d, xsum, out, *groups, t0, mode, n_tok),
            _dot_codegen(m, n_tok.literal_value, len(groups)))


@intrinsic
def _dot(typingctx, codes, xpad2d, xsum, out, g, t0, mode, n_tok):
    """``out[t0 + i, 32 g + q] = (W @ xpad2d[t0 + i])[32 g + q]`` for ``i < n_tok`` and the rows of group ``g``
    (``q < GROUP_ROWS``, rows within ``out``'s width), by the group dot of ``mode`` (DOT_MODES or HOST).
    ``mode`` and ``n_tok`` must be compile-time constants (numba types them as literals); ``codes`` must be
    C-contiguous (a group is one run of bytes), each ``xpad2d[t]`` unit-stride; ``xsum`` int32 [T], ``out`` int32."""
    return _dot_typing(codes, xpad2d, xsum, out, (g,), t0, mode, n_tok)


@intrinsic
def _dot_pair(typingctx, codes, xpad2d, xsum, out, g, g2, t0, mode, n_tok):
    """:func:`_dot` of groups ``g`` and ``g2`` of the same matrix, read as two streams side by side."""
    return _dot_typing(codes, xpad2d, xsum, out, (g, g2), t0, mode, n_tok)


# ---- the scalar reference ---------------------------------------------------------------------------------
@njit(inline="always")
def code_offset(r, row_bytes):
    """Byte offset (in the C-order codes array) of lane 0 of row ``r`` in its group's block 0; block ``b`` is
    ``b * BLOCK_BYTES`` further on, and byte ``m`` of that lane holds columns ``b*BLOCK_COLS + 4k + m`` (field k)."""
    return (r // GROUP_ROWS) * GROUP_ROWS * row_bytes + (r % GROUP_ROWS) * LANE_BYTES


@njit(inline="always")
def _group_dot_generic(words, base, n_blocks, x):
    """``[sum_j c[q, j] * x[j] for q < GROUP_ROWS]`` (int32) for the rows q < GROUP_ROWS of the group whose lanes start at word ``base``
    of the codes seen as little-endian uint32 lanes (bits 8m + 2k of a lane: byte m, field k): plain numba code
    (LLVM vectorises the loop over the group's rows), the scalar reference the SIMD group dots are checked
    against."""
    acc = np.zeros(GROUP_ROWS, dtype=np.int32)
    for blk in range(n_blocks):
        w = words[base + blk * GROUP_ROWS:base + (blk + 1) * GROUP_ROWS]
        for k in range(FIELDS_PER_BYTE):
            for m in range(LANE_BYTES):
                xs = np.int32(x[blk * BLOCK_COLS + k * LANE_BYTES + m])
                shift = m * BITS_PER_BYTE + k * FIELD_BITS
                for q in range(GROUP_ROWS):
                    acc[q] += np.int32((w[q] >> shift) & FIELD_MASK) * xs
    return acc


# ---- one tile, the tile loop, the kernels -----------------------------------------------------------------
@njit(inline="always")
def simd_rows(codes, xpad, xsum, out, r0, r1, mode):
    """``out[t, r] = (W @ xpad[t])[r]`` for rows r0..r1 (r0 a multiple of GROUP_ROWS) of every token by the group
    dot of ``mode``: TOKEN_BLOCK tokens per decode of the codes, the tokens left over (decode: T = 1) one by one,
    each over the range's two halves as two streams (:func:`_dot_pair`) where they lie STREAM_MIN_APART apart."""
    n_tok = xpad.shape[0]
    n_full = n_tok - n_tok % TOKEN_BLOCK
    g0, g1 = r0 // GROUP_ROWS, (r1 + GROUP_ROWS - 1) // GROUP_ROWS
    for t in range(0, n_full, TOKEN_BLOCK):
        for g in range(g0, g1):
            _dot(codes, xpad, xsum, out, g, t, mode, TOKEN_BLOCK)
    h = (g1 - g0) // 2          # one token streams its codes: the range's halves side by side if far enough apart
    if h * GROUP_ROWS * codes.shape[1] < STREAM_MIN_APART:
        h = 0
    for t in range(n_full, n_tok):
        for k in range(h):
            _dot_pair(codes, xpad, xsum, out, g0 + k, g0 + h + k, t, mode, 1)
        for g in range(g0 + 2 * h, g1):
            _dot(codes, xpad, xsum, out, g, t, mode, 1)


@njit(inline="always")
def generic_rows(codes, xpad, xsum, out, r0, r1, mode):
    """:func:`simd_rows` by the scalar reference (``mode`` unused: the one signature :func:`row_tiles` calls)."""
    words = codes.reshape(codes.size).view(np.uint32)
    lanes_per_row = codes.shape[1] // LANE_BYTES
    for t in range(xpad.shape[0]):
        for g in range(r0 // GROUP_ROWS, (r1 + GROUP_ROWS - 1) // GROUP_ROWS):
            acc = _group_dot_generic(words, g * GROUP_ROWS * lanes_per_row, lanes_per_row, xpad[t])
            for q in range(min(GROUP_ROWS, r1 - g * GROUP_ROWS)):
                out[t, g * GROUP_ROWS + q] = acc[q] - xsum[t]


# the scalar reference compiled as a function of its own: inlined into the serial kernel's loop nest, LLVM left
# its loop over the rows scalar there (46 against 17 ms for a 370M decode token, bench_ternary.py shapes)
generic_group_rows = njit(cache=True)(generic_rows.py_func)

# simd_rows compiled once as a function of its own: golden_fast's whole-model kernel calls it for every matrix
# (thread_team.team_rows), where inlining it would compile its code once per matrix.
host_rows = njit(cache=True)(simd_rows.py_func)


@njit(inline="always")
def row_tiles(codes, xpad, xsum, out, rows, mode):
    """``out[t] = W @ xpad[t]`` (int32, the first ``out.shape[1]`` rows: codes may hold padding rows) for every
    token: TOKEN_TILE tokens at a time (their spikes stay in L2) over tiles of ROW_TILE rows, each filled by
    ``rows(codes, xpad, xsum, out, r0, r1, mode)``. Inlined (numba IR) into its caller, so the tiles run on
    numba's threads where the caller is compiled with ``parallel=True`` and in a plain loop otherwise (a cached
    function calling a separately compiled parallel one crashes when numba reloads it from its cache)."""
    n_rows, n_tok = out.shape[1], xpad.shape[0]
    for t0 in range(0, n_tok, TOKEN_TILE):
        t1 = min(n_tok, t0 + TOKEN_TILE)
        for tile in prange((n_rows + ROW_TILE - 1) // ROW_TILE):
            rows(codes, xpad[t0:t1], xsum[t0:t1], out[t0:t1], tile * ROW_TILE, min(n_rows, (tile + 1) * ROW_TILE),
                 mode)


def _kernel(mode: str, parallel: bool):
    """``kernel(codes, xpad, xsum, out)`` of one mode, compiled with its row tiles on numba's threads when
    ``parallel``. Only strings are closed over (numba keys its on-disk cache by their values; a closure over a
    compiled function would be keyed by an id that changes every process), and each kernel is named for its mode,
    so that the cache keeps one file per kernel."""
    if mode == "generic":
        def kernel(codes, xpad, xsum, out):
            row_tiles(codes, xpad, xsum, out, generic_group_rows, mode)
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
    flat = codes.reshape(codes.size)
    row_bytes = codes.shape[1]
    for i in range(out.shape[0]):
        off = code_offset(r0 + i, row_bytes)
        dst = out[i]
        for blk in range(row_bytes // LANE_BYTES):
            for m in range(LANE_BYTES):
                c = np.int32(flat[off + blk * BLOCK_BYTES + m])
                for k in range(FIELDS_PER_BYTE):
                    dst[blk * BLOCK_COLS + k * LANE_BYTES + m] = np.float32(
                        ((c >> (k * FIELD_BITS)) & FIELD_MASK) - ZERO_CODE)
