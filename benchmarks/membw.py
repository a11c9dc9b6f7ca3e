"""The machine's memory read bandwidth, measured in the benchmark's own run: the bound of a decode token.

A decode token reads every packed weight once (85 MB at 370M) and does little work per byte, so its time cannot
be shorter than bytes / read bandwidth, and that bandwidth must come from a reader at least as good as any
reader of those bytes, or the "bound" is not one. ``Reader`` compiles ``membw_read.c`` (beside this file) at
run time with the system's C compiler (``$CC``, else ``cc``, ``gcc``, ``clang``; ``-O3 -march=native``) into a
temporary folder: AVX2 loads, 8 independent accumulators, 1 or N threads each reading a contiguous share,
every pass timed from one barrier to the next, each pass the best of four reads (``READS``): plain, prefetching in
software at the ternary kernels' distances (on an Intel Xeon whose L3 held the weights the kernel with that prefetch
read faster than the plain reader), prefetching 4 KiB ahead into L2 only (on an AMD EPYC with AVX-512, Zen 4, 15 %
faster than plain, where the kernel's pair was 20 % slower), and the two halves of each thread's share read side by
side, 4 KiB at a time, as the kernels read a decode token (docs/cpu_tuning.md). All four on every host: the kernel's
own prefetch and streams differ by host and matrix (``ternary_kernels.prefetch_distances``, ``STREAM_MIN_APART``),
and the bound must be the best reader's whatever the kernel does. Without a C compiler (or with ``MEMBW_NO_C=1``) it falls back to
numpy's vectorised sum over each thread's share of a uint64 view, on Python threads (numpy releases the GIL
there); ``Reader.method`` says which ran. (The plain numba summing loop used before is not vectorised: 4-5 GB/s
where the C reader reads 25-37 on this machine.) The buffer (``buffer_bytes``): for a token's bound exactly the
weights' own size, wherever they fall against the last-level cache (``/sys/devices/system/cpu/cpu0/cache``);
alone >= 4x that cache and 256 MiB; written once so that every page is backed.

``Reader.passes(threads, n)`` returns GB/s of ``n`` passes; the bound is the best of all passes (a physical
limit: the best the machine did), and bench_decode.py checks in the same run that no kernel read faster.
Run alone (``python benchmarks/membw.py [--passes 10]``) it prints the best, median and worst of each.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lava_matmulfree.model.ternary_kernels import PREFETCH_BYTES, PREFETCH_L2_BYTES  # noqa: E402

GB = 1e9
MB = 1e6
PREFETCH = (PREFETCH_BYTES, PREFETCH_L2_BYTES)  # the ternary kernels' distances (bytes ahead into L1, L2), any host
L2_PAGE_AHEAD = (0, 4096)                       # into L2 only, a page ahead
# name -> (L1, L2 bytes ahead, streams): streams 2 reads the two halves of each thread's share side by side, as the
# ternary kernels read a decode token's codes (ternary_kernels.STREAM_MIN_APART)
READS = {"plain": (0, 0, 1), "prefetch": (*PREFETCH, 1), "prefetch-l2-4k": (*L2_PAGE_AHEAD, 1),
         "two-streams": (0, 0, 2)}
MIN_BUFFER_BYTES = 256 << 20
SOURCE = Path(__file__).resolve().parent / "membw_read.c"
CFLAGS = ["-O3", "-march=native", "-pthread", "-shared", "-fPIC"]
ALIGN = 4096


def llc_bytes(cpu: int = 0) -> int:
    """Size of the highest-level data / unified cache of ``cpu`` (bytes; 0 if sysfs does not say)."""
    best_level, size = 0, 0
    for d in Path(f"/sys/devices/system/cpu/cpu{cpu}/cache").glob("index*"):
        try:
            level = int((d / "level").read_text())
            kind = (d / "type").read_text().strip()
            text = (d / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        if kind == "Instruction" or level < best_level:
            continue
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
        best_level, size = level, int(text.rstrip("KMGkmg")) * mult
    return size


def buffer_bytes(weight_bytes: int = 0) -> int:
    """The read buffer, a whole number of pages. For a decode token's bound (``weight_bytes`` given): exactly the
    weights' own size, read pass after pass as the kernel reads them token after token, so that the cache keeps for
    the reader what it keeps for the kernel: on a host whose last-level cache holds the weights, that is the cache's
    bandwidth, as it is for the kernel (a bigger buffer gives a lower "bound" that a kernel can beat;
    docs/cpu_tuning.md). Without: the machine's memory bandwidth, >= 4x the last-level cache and >= 256 MiB."""
    if weight_bytes:
        n = int(weight_bytes)
    else:
        n = max(4 * llc_bytes(), MIN_BUFFER_BYTES)
    return -(-n // ALIGN) * ALIGN


def _compile():
    """The compiled reader (ctypes library) and the command that built it, or (None, why not)."""
    if os.environ.get("MEMBW_NO_C"):
        return None, "MEMBW_NO_C is set"
    cands = [os.environ.get("CC"), "cc", "gcc", "clang"]
    compilers = [c for c in dict.fromkeys(cands) if c and shutil.which(c)]
    if not compilers:
        return None, "no C compiler on PATH ($CC, cc, gcc, clang)"
    why = ""
    with tempfile.TemporaryDirectory(prefix="membw_") as tmp:
        lib_path = Path(tmp) / "membw_read.so"
        for cc in compilers:
            cmd = [cc, *CFLAGS, "-o", str(lib_path), str(SOURCE)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode == 0:
                lib = ctypes.CDLL(str(lib_path))  # mapped: the file may go with the folder
                lib.membw_read.restype = ctypes.c_int
                lib.membw_read.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                                           ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int,
                                           ctypes.POINTER(ctypes.c_double),
                                           ctypes.POINTER(ctypes.c_uint64)]
                lib.membw_isa.restype = ctypes.c_char_p
                return lib, " ".join([Path(cc).name, *CFLAGS[:2]])
            why = f"{cc} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
    return None, why


def _numpy_passes(buf: np.ndarray, threads: int, n: int) -> list[float]:
    """The fallback reader: numpy's sum over each thread's share of the uint64 buffer (numpy releases the GIL in
    the reduction; its loop is vectorised), ``threads`` Python threads, every pass timed from one barrier to the
    next, like the C reader. Seconds per pass."""
    import threading

    shares = np.array_split(buf, threads)
    bar = threading.Barrier(threads)
    secs = [0.0] * n

    def work(t):
        for p in range(n):
            bar.wait()
            t0 = time.perf_counter()
            shares[t].sum()
            bar.wait()
            if t == 0:
                secs[p] = time.perf_counter() - t0

    helpers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(1, threads)]
    for h in helpers:
        h.start()
    work(0)
    for h in helpers:
        h.join()
    return secs


class Reader:
    """Reads a buffer of ``nbytes`` (``buffer_bytes`` by default) and times each pass."""

    def __init__(self, nbytes: int | None = None):
        nbytes = buffer_bytes() if nbytes is None else int(nbytes)
        raw = np.ones(nbytes // 8 + ALIGN // 8, dtype=np.uint64)  # written once: every page really backed
        off = (-raw.ctypes.data % ALIGN) // 8
        self._raw, self.buf = raw, raw[off:off + nbytes // 8]
        self.nbytes = self.buf.nbytes
        self.lib, how = _compile()
        self.wins = dict.fromkeys(READS, 0)         # of the measured passes (``passes``), not ``warm``'s
        if self.lib is not None:
            self.method = (f"C ({how}, {self.lib.membw_isa().decode()}, 8 accumulators, pthreads; each pass the "
                           f"best of plain, prefetched {PREFETCH[0]} B / {PREFETCH[1]} B ahead into L1 / L2, "
                           f"{L2_PAGE_AHEAD[1]} B ahead into L2 only, and two streams)")
        else:
            try:
                _numpy_passes(self.buf[:1 << 16], 2, 1)
            except Exception as exc:  # noqa: BLE001 -- the one line says what failed
                raise SystemExit(f"membw: cannot compile {SOURCE.name} ({how}) and the numpy fallback failed: "
                                 f"{type(exc).__name__}: {exc}") from None
            self.method = f"numpy sum over a uint64 view, Python threads (the C reader not used: {how})"
        self.warm(1, 1)
        self.warm(2, 1)

    def warm(self, threads: int, n: int = 1) -> None:
        """``n`` untimed passes (bench_decode.py: the cache's ramp before the timed ones); not counted in ``wins``."""
        self.passes(threads, n, count=False)

    def passes(self, threads: int, n: int = 1, count: bool = True) -> list[float]:
        """GB/s of each of ``n`` passes over the buffer on ``threads`` threads: with the C reader, pass k is the
        best of pass k of each read in ``READS``, whichever reads fastest on this host (``wins`` counts them; a tie
        goes to the first)."""
        if self.lib is None:
            return [self.nbytes / sec / GB for sec in _numpy_passes(self.buf, threads, n)]
        runs = {name: self._c_passes(threads, n, pf) for name, pf in READS.items()}
        best = []
        for k in range(n):
            name = max(runs, key=lambda m: runs[m][k])
            if count:
                self.wins[name] += 1
            best.append(runs[name][k])
        return best

    def _c_passes(self, threads: int, n: int, read: tuple[int, int, int]) -> list[float]:
        secs = (ctypes.c_double * n)()
        checksum = ctypes.c_uint64()
        rc = self.lib.membw_read(self.buf.ctypes.data, self.nbytes, threads, n, *read, secs,
                                 ctypes.byref(checksum))
        if rc != 0:
            raise RuntimeError(f"membw_read failed ({rc})")
        if checksum.value != self.buf.size * n:  # every word is 1: the sum says every byte was read
            raise RuntimeError(f"membw_read read {checksum.value} words, not {self.buf.size * n}")
        return [self.nbytes / s / GB for s in secs]


def compare_reads(reader: Reader, reads: dict, threads: int, rounds: int, passes: int = 3) -> dict:
    """Each read of ``reads`` (name -> (L1, L2 bytes ahead, streams)) in turn, ``rounds`` times, each time ``passes`` passes
    after one untimed pass: {name: [GB/s of every timed pass]}; the reads interleaved, so that the host's drift
    hits all alike (how docs/cpu_tuning.md weighed the prefetch variants of the reader)."""
    if reader.lib is None:
        raise RuntimeError("comparing reads needs the C reader (no C compiler here, or MEMBW_NO_C is set)")
    got = {name: [] for name in reads}
    for _ in range(rounds):
        for name, read in reads.items():
            reader._c_passes(threads, 1, read)
            got[name] += reader._c_passes(threads, passes, read)
    return got


def _prefetch_pair(text: str) -> tuple[int, int]:
    l1, sep, l2 = text.partition(",")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected L1,L2 (bytes ahead; 0: none), e.g. 0,2048")
    return int(l1), int(l2)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="read bandwidth of this machine (best of --passes)")
    ap.add_argument("--passes", type=int, default=10)
    ap.add_argument("--mib", type=int, default=0, help="buffer MiB (default: buffer_bytes())")
    ap.add_argument("--weights-mb", type=float, default=0.0,
                    help="a buffer of exactly this many MB, as a decode token's bound reads (85.3 at 370m)")
    ap.add_argument("--compare", nargs="*", type=_prefetch_pair, metavar="L1,L2",
                    help="compare each read of READS and these prefetch pairs (bytes ahead into L1, L2), "
                         "interleaved, --rounds rounds of 3 passes, on 1 and 2 threads")
    ap.add_argument("--rounds", type=int, default=6)
    a = ap.parse_args()
    nbytes = (a.mib << 20) or (buffer_bytes(int(a.weights_mb * MB)) if a.weights_mb else None)
    r = Reader(nbytes)
    print(f"{r.method}; buffer {r.nbytes >> 20} MiB (last-level cache {llc_bytes() >> 20} MiB)")
    if a.compare is not None:
        reads = {**READS, **{f"L1 {l1} B, L2 {l2} B": (l1, l2, 1) for l1, l2 in a.compare}}
        for th in (1, 2):
            got = compare_reads(r, reads, th, a.rounds)
            print(f"{th} thread(s), GB/s median / best: " + "; ".join(
                f"{name} {float(np.median(v)):.1f} / {max(v):.1f}" for name, v in got.items()))
        raise SystemExit(0)
    for th in (1, 2):
        v = r.passes(th, a.passes)
        print(f"{th} thread(s): best {max(v):.1f} GB/s, median {float(np.median(v)):.1f}, worst {min(v):.1f}")
    print(f"passes won: {r.wins}")
