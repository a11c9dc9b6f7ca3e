"""The machine's memory read bandwidth, measured in the benchmark's own run: the bound of a decode token.

A decode token reads every packed weight once (85 MB at 370M) and does little work per byte, so its time cannot
be shorter than bytes / read bandwidth. ``read_bandwidth`` streams a buffer much larger than the last-level cache
(``BUFFER_BYTES``) with a plain summing loop, on one thread and split over ``threads`` numba threads (contiguous
chunks, one parallel region per pass), and returns GB/s per repeat: the same kind of loop as a C read loop, and
the same numba threads the parallel kernels use.
"""
from __future__ import annotations

import time

import numpy as np
from numba import njit, prange

BUFFER_BYTES = 256 << 20    # >> any L3 of the machines here (32 MiB)
GB = 1e9
N_ACC = 4                   # independent accumulators: the loop is bound by loads, not by an add chain


@njit(cache=True)
def _read_range(buf, lo, hi):
    s0 = np.uint64(0)
    s1 = np.uint64(0)
    s2 = np.uint64(0)
    s3 = np.uint64(0)
    for i in range(lo, hi - N_ACC + 1, N_ACC):
        s0 += buf[i]
        s1 += buf[i + 1]
        s2 += buf[i + 2]
        s3 += buf[i + 3]
    return s0 + s1 + s2 + s3


@njit(cache=True)
def read_serial(buf):
    return _read_range(buf, 0, buf.size)


@njit(cache=True, parallel=True)
def read_parallel(buf, n_threads):
    chunk = buf.size // n_threads
    sums = np.zeros(n_threads, dtype=np.uint64)
    for t in prange(n_threads):
        sums[t] = _read_range(buf, t * chunk, (t + 1) * chunk)
    return sums.sum()


def make_buffer() -> np.ndarray:
    from lava_matmulfree.model.ternary import start_threads

    start_threads()  # numba's threads without fixing multiprocessing's start method (lava is imported later)
    buf = np.ones(BUFFER_BYTES // 8, dtype=np.uint64)  # written once: every page really backed
    read_serial(buf)
    read_parallel(buf, 2)
    return buf


def read_bandwidth(buf: np.ndarray, threads: int) -> float:
    """GB/s of one pass over ``buf`` on ``threads`` threads (1: the serial loop)."""
    t0 = time.perf_counter()
    if threads == 1:
        read_serial(buf)
    else:
        read_parallel(buf, threads)
    return buf.nbytes / (time.perf_counter() - t0) / GB
