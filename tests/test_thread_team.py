"""The whole-model kernel's thread team (lava_matmulfree/model/thread_team.py): the spin barrier, the share of
rows each thread takes, and when a team may form. The whole model on a team against the reference is
tests/test_benchmarks_smoke.py::test_whole_model_kernel_equals_the_numpy_reference."""
import numba
import numpy as np
import pytest
from numba import njit, prange

from lava_matmulfree.model.ternary import pack, padded_in
from lava_matmulfree.model.ternary_kernels import FIELDS_PER_BYTE
from lava_matmulfree.model.thread_team import barrier, team_rows, team_size

ROUNDS = 20000


@njit(parallel=True)
def _lockstep(seen, rounds, n):
    """Each round every thread writes its slot, meets the others, reads every slot, meets them again; a slot
    holding another round's number is a barrier that let a thread through early (counted per thread)."""
    bar = np.zeros(2, dtype=np.int64)
    slots = np.zeros(n, dtype=np.int64)
    for tid in prange(n):
        bad = 0
        for r in range(1, rounds + 1):
            slots[tid] = r
            barrier(bar, n)
            for k in range(n):
                if slots[k] != r:
                    bad += 1
            barrier(bar, n)
        seen[tid] = bad


# a broken barrier would spin in machine code, where no signal reaches Python: the thread method ends the run
@pytest.mark.timeout(120, method="thread")
def test_barrier_holds_every_thread_in_lockstep():
    n = team_size(True)
    if n < 2:
        pytest.skip("one numba thread here: no team to hold")
    seen = np.full(n, -1, dtype=np.int64)
    _lockstep(seen, ROUNDS, n)
    assert seen.tolist() == [0] * n


@njit
def _rows_by_turns(codes, xpad, xsum, out, n):
    for tid in range(n):
        team_rows(codes, xpad, xsum, out, tid, n)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_out, n_in", [(72, 200), (401, 257), (33, 1024), (5, 70)])
@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shares_of_rows_cover_the_matrix_once(seed, n_out, n_in, n):
    """Every thread's share run in turn gives W x exactly, for teams larger than the row groups too."""
    rng = np.random.default_rng(seed)
    W = rng.integers(-1, 2, (n_out, n_in)).astype(np.int8)
    X = rng.integers(-128, 128, (3, n_in)).astype(np.int8)
    codes = pack(W)
    xpad = np.zeros((3, padded_in(n_in)), dtype=np.int8)
    xpad[:, :n_in] = X
    assert xpad.shape[1] == codes.shape[1] * FIELDS_PER_BYTE
    xsum = X.astype(np.int32).sum(axis=1).astype(np.int32)
    out = np.full((3, n_out), -7, dtype=np.int32)
    _rows_by_turns(codes, xpad, xsum, out, n)
    np.testing.assert_array_equal(out, X.astype(np.int64) @ W.astype(np.int64).T)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n", [1, 2])
def test_decode_share_read_as_two_streams_is_exact(seed, n):
    """Decode (one token, and the two byte rows of int16 spikes) takes a thread's whole share in one call, which
    reads its two halves side by side where they lie STREAM_MIN_APART apart: a matrix big enough for that on one
    thread (and not on two), an odd number of row groups with a partial last one, gives W x exactly."""
    from lava_matmulfree.model.ternary_kernels import GROUP_ROWS, STREAM_MIN_APART

    rng = np.random.default_rng(seed)
    n_out, n_in = 65 * GROUP_ROWS + 1, 1000                       # 66 groups, the last holding one row
    W = rng.integers(-1, 2, (n_out, n_in)).astype(np.int8)
    codes = pack(W)
    half_apart = (66 // 2) * GROUP_ROWS * codes.shape[1]
    assert half_apart >= STREAM_MIN_APART > ((66 // 2 + 1) // 2) * GROUP_ROWS * codes.shape[1]
    for T in (1, 2):
        X = rng.integers(-128, 128, (T, n_in)).astype(np.int8)
        xpad = np.zeros((T, padded_in(n_in)), dtype=np.int8)
        xpad[:, :n_in] = X
        out = np.full((T, n_out), -7, dtype=np.int32)
        _rows_by_turns(codes, xpad, X.astype(np.int32).sum(axis=1).astype(np.int32), out, n)
        np.testing.assert_array_equal(out, X.astype(np.int64) @ W.astype(np.int64).T)


def test_team_only_where_numba_schedules_statically(monkeypatch):
    assert team_size(False) == 1
    monkeypatch.setattr(numba, "threading_layer", lambda: "tbb")   # work stealing: two chunks may share a thread
    assert team_size(True) == 1
    monkeypatch.setattr(numba, "threading_layer", lambda: "omp")
    assert team_size(True) == numba.get_num_threads()
