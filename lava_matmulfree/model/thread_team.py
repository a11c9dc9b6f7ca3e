"""A team of numba threads inside one parallel region: the whole-model kernel's threads (whole_model.py).

Each thread of the team runs the same sequence of stages on its own share (:func:`share`: a contiguous run of
whole row groups) of every matrix's rows (:func:`team_rows`) and of the channels those rows feed, so the neurons
are shared out too; the threads meet at a spin barrier (:func:`barrier`) only where one reads what another wrote.
One parallel region per call, not one per matrix: a numba parallel region costs its launch, its scheduling and a
restart of every thread's memory stream, about 4 us per matrix on the project's 2-core machine, where a 1024-row
matrix takes 5 us per thread (docs/cpu_tuning.md, "One region per token").

The team needs every one of its ``n`` threads running at once (a barrier waits for all of them): numba's ``omp``
and ``workqueue`` layers give each thread one chunk of ``prange(n)`` when ``n`` is the thread count; a
work-stealing layer (``tbb``) may run two chunks on one thread, so :func:`team_size` is 1 there.
"""
from __future__ import annotations

import contextlib
import platform

import numba
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from lava_matmulfree.model.ternary_kernels import (GROUP_ROWS, HOST, ROW_TILE, TOKEN_BLOCK, TOKEN_TILE, host_rows,
                                                   start_threads)

# threading layers that give each of n threads exactly one chunk of prange(n) (static scheduling)
STATIC_LAYERS = ("omp", "workqueue")
BARRIER_ARRIVED, BARRIER_ROUND = 0, 1          # the barrier's state: int64[2]
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _item_pointer(context, builder, aryty, ary_val, idx):
    ary = context.make_array(aryty)(context, builder, ary_val)
    return cgutils.get_item_pointer(context, builder, aryty, ary, [idx])


@intrinsic
def _atomic_add(typingctx, arr, idx, val):
    """``arr[idx] += val`` as one sequentially consistent atomic read-modify-write; returns the old value."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        v = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, v, "seq_cst")
    return types.int64(arr, idx, val), codegen


@intrinsic
def _atomic_load(typingctx, arr, idx):
    """``arr[idx]`` as an acquire load: nothing read after it is read before it."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)
    return types.int64(arr, idx), codegen


@intrinsic
def _spin_pause(typingctx):
    """x86 ``pause`` (the spin-wait hint: frees the core's resources while a thread waits); nothing elsewhere."""
    def codegen(context, builder, sig, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()
    return types.void(), codegen


@njit(inline="always")
def barrier(state, n):
    """Wait until all ``n`` threads of the team have arrived (``state``: int64[2], zeros, shared by the team).
    The last to arrive resets the count and opens the round; every write before the barrier is seen after it."""
    if n == 1:
        return
    rnd = _atomic_load(state, BARRIER_ROUND)
    if _atomic_add(state, BARRIER_ARRIVED, 1) == n - 1:
        _atomic_add(state, BARRIER_ARRIVED, -n)
        _atomic_add(state, BARRIER_ROUND, 1)
    else:
        while _atomic_load(state, BARRIER_ROUND) == rnd:
            _spin_pause()


@njit(inline="always")
def share(n_items, tid, n):
    """Thread ``tid``'s run [lo, hi) of ``n_items`` rows or channels: whole groups of GROUP_ROWS, the same
    split for a matrix's rows and for the channels its rows feed (so a thread reads only what it wrote)."""
    groups = (n_items + GROUP_ROWS - 1) // GROUP_ROWS
    per = (groups + n - 1) // n
    return min(n_items, tid * per * GROUP_ROWS), min(n_items, (tid + 1) * per * GROUP_ROWS)


@njit(inline="always")
def team_rows(codes, xpad, xsum, out, tid, n):
    """Thread ``tid``'s share of ``out[t] = W @ xpad[t]`` (the first ``out.shape[1]`` rows, every token): the
    rows :func:`share` gives it, TOKEN_TILE tokens at a time over tiles of ROW_TILE rows (ternary_kernels.row_tiles
    for one thread); fewer than TOKEN_BLOCK tokens (decode) in one call over the whole share."""
    n_rows, n_tok = out.shape[1], xpad.shape[0]
    r_lo, r_hi = share(n_rows, tid, n)
    if n_tok < TOKEN_BLOCK:     # decode: no codes to keep in cache for other tokens; the whole share in one call,
        host_rows(codes, xpad, xsum, out, r_lo, r_hi, HOST)   # which streams its two halves side by side
        return
    for t0 in range(0, n_tok, TOKEN_TILE):
        t1 = min(n_tok, t0 + TOKEN_TILE)
        for r0 in range(r_lo, r_hi, ROW_TILE):
            host_rows(codes, xpad[t0:t1], xsum[t0:t1], out[t0:t1], r0, min(r_hi, r0 + ROW_TILE), HOST)


def team_size(parallel: bool) -> int:
    """Threads of the whole-model kernel's team: numba's thread count where ``parallel`` and its threading layer
    schedules statically (STATIC_LAYERS), else 1."""
    if not parallel:
        return 1
    start_threads()
    if numba.threading_layer() not in STATIC_LAYERS:
        return 1
    return int(numba.get_num_threads())


def check_threads(n: int) -> None:
    """ValueError unless numba can run ``n`` threads here."""
    have = int(numba.config.NUMBA_NUM_THREADS)
    if not 1 <= n <= have:
        raise ValueError(f"threads = {n}: numba has {have} thread(s) on this machine (NUMBA_NUM_THREADS; one per "
                         "core by default)")


@contextlib.contextmanager
def use_threads(n: int):
    """numba's thread count set to ``n`` inside the block (a team of ``n`` for a ``parallel`` model), restored
    after it; ValueError where numba has fewer threads on this machine."""
    check_threads(n)
    if n == 1:
        yield
        return
    start_threads()
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(old)
