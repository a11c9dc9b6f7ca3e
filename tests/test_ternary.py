"""Exactness and validation of the ternary synapse kernel (lava_matmulfree/model/ternary.py)."""
import platform

import numpy as np
import pytest

from lava_matmulfree.model import ternary
from lava_matmulfree.model.ternary_kernels import PREFETCH_BYTES, PREFETCH_L2_BYTES
from lava_matmulfree.model.ternary import (BLAS_MAX_IN, BLAS_MIN_TOKENS, MAX_IN, MAX_IN_WIDE, TernaryMatrix, X16_MAX,
                                     X16_MIN, X_MAX, X_MIN, blas_exact_max_in, pack, padded_in, padded_out,
                                     split_bytes,
                                     unpack, avx2_usable, vnni_usable)

INT_KERNELS = ["generic"] + (["avx2"] if avx2_usable() else []) + (["vnni"] if vnni_usable() else [])
ALL_KERNELS = INT_KERNELS + ["blas"]
SHAPES = [(1, 1), (72, 200), (3, 257), (300, 513), (64, 1024), (17, 2816)]
SEEDS = [0, 1, 2]


def reference(W, X):
    """The contract: int64 numpy, row t = W @ X[t]."""
    return np.asarray(X, dtype=np.int64) @ np.asarray(W, dtype=np.int64).T


def random_ternary(rng, shape):
    return rng.integers(-1, 2, size=shape).astype(np.int8)


def random_spikes(rng, shape):
    return rng.integers(X_MIN, X_MAX + 1, size=shape).astype(np.int8)


@pytest.mark.parametrize("kernel", ALL_KERNELS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_random_exact(kernel, shape, seed):
    rng = np.random.default_rng(seed)
    W = random_ternary(rng, shape)
    X = random_spikes(rng, (5, shape[1]))
    m = TernaryMatrix(W, kernel=kernel)
    got = m.matmul(X)
    assert got.dtype == np.int32 and got.shape == (5, shape[0])
    np.testing.assert_array_equal(got, reference(W, X))
    v = m.matvec(X[2])
    assert v.dtype == np.int32 and v.shape == (shape[0],)
    np.testing.assert_array_equal(v, reference(W, X[2:3])[0])


@pytest.mark.parametrize("kernel", ALL_KERNELS)
def test_sparse_and_skewed_weights(kernel):
    rng = np.random.default_rng(7)
    shape = (129, 700)
    for p_zero in (0.0, 0.5, 0.95):
        W = random_ternary(rng, shape)
        W[rng.random(shape) < p_zero] = 0
        X = random_spikes(rng, (3, shape[1]))
        np.testing.assert_array_equal(TernaryMatrix(W, kernel=kernel).matmul(X), reference(W, X))


@pytest.mark.parametrize("kernel", ALL_KERNELS)
@pytest.mark.parametrize("n_in", [1, 255, 256, 257, 1024, 2816])
def test_extremes(kernel, n_in):
    """All-(+1), all-(-1), all-zero and mixed weights against all-(-128), all-127 and alternating spikes."""
    n_out = 4
    weights = [np.ones((n_out, n_in), np.int8), -np.ones((n_out, n_in), np.int8),
               np.zeros((n_out, n_in), np.int8), np.array([[1], [-1], [0], [1]], np.int8) * np.ones(n_in, np.int8)]
    alt = np.where(np.arange(n_in) % 2 == 0, X_MIN, X_MAX).astype(np.int8)
    X = np.stack([np.full(n_in, X_MIN, np.int8), np.full(n_in, X_MAX, np.int8), alt, np.zeros(n_in, np.int8)])
    for W in weights:
        got = TernaryMatrix(W, kernel=kernel).matmul(X)
        np.testing.assert_array_equal(got, reference(W, X))
    # closed form: the largest magnitude of all, -1 * -128 summed n_in times
    assert TernaryMatrix(weights[1], kernel=kernel).matvec(X[0])[0] == -X_MIN * n_in


@pytest.mark.parametrize("kernel", INT_KERNELS)
def test_parallel_matches(kernel):
    rng = np.random.default_rng(3)
    W = random_ternary(rng, (200, 600))       # several row tiles, padded columns
    X = random_spikes(rng, (4, 600))
    np.testing.assert_array_equal(TernaryMatrix(W, kernel=kernel, parallel=True).matmul(X), reference(W, X))


def test_kernels_agree_on_a_model_shape():
    rng = np.random.default_rng(11)
    W = random_ternary(rng, (1024, 2816))
    X = random_spikes(rng, (3, 2816))
    ref = reference(W, X)
    for kernel in ALL_KERNELS:
        np.testing.assert_array_equal(TernaryMatrix(W, kernel=kernel).matmul(X), ref)


def test_empty_batch():
    m = TernaryMatrix(np.ones((3, 10), np.int8))
    assert m.matmul(np.zeros((0, 10), np.int8)).shape == (0, 3)


def test_other_integer_spike_dtypes_accepted_when_in_range():
    rng = np.random.default_rng(5)
    W = random_ternary(rng, (6, 30))
    x = random_spikes(rng, 30)
    m = TernaryMatrix(W)
    for dt in (np.int16, np.int32, np.int64):
        np.testing.assert_array_equal(m.matvec(x.astype(dt)), reference(W, x[None])[0])
    np.testing.assert_array_equal(m.matvec(list(x)), reference(W, x[None])[0])


# ---- storage -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
def test_pack_roundtrip(shape):
    W = random_ternary(np.random.default_rng(0), shape)
    codes = pack(W)
    assert codes.dtype == np.uint8 and codes.shape == (padded_out(shape[0]), padded_in(shape[1]) // 4)
    np.testing.assert_array_equal(unpack(codes, shape[1], shape[0]), W)
    np.testing.assert_array_equal(TernaryMatrix(W).to_dense(), W)


@pytest.mark.parametrize("seed", SEEDS)
def test_layout_as_documented(seed):
    """Each weight sits where ternary.py's docstring says: byte m of row r's lane in block b, field k, holds
    column 16 b + 4 k + m (read through code_offset, byte by byte, against the int8 matrix)."""
    rng = np.random.default_rng(seed)
    W = random_ternary(rng, (70, 45))
    flat = pack(W).reshape(-1)
    row_bytes = padded_in(45) // 4
    for r in range(70):
        for j in range(45):
            b, k, m = j // ternary.BLOCK_COLS, (j % ternary.BLOCK_COLS) // ternary.LANE_BYTES, j % ternary.LANE_BYTES
            byte = int(flat[ternary.code_offset(r, row_bytes) + b * ternary.BLOCK_BYTES + m])
            assert (byte >> (ternary.FIELD_BITS * k)) & ternary.FIELD_MASK == W[r, j] + ternary.ZERO_CODE


def test_bits_per_weight_and_nbytes():
    m = TernaryMatrix(np.zeros((1024, 2816), np.int8))
    assert m.bits_per_weight == 2.0
    assert m.nbytes == 1024 * 2816 // 4
    small = TernaryMatrix(np.zeros((72, 200), np.int8))     # padded to 96 rows (3 groups) and 208 columns
    assert small.nbytes == 96 * 208 // 4
    assert small.bits_per_weight == pytest.approx(2 * 96 * 208 / (72 * 200))
    assert "bits_per_weight" in repr(small)


def test_max_abs_result_bounds_output():
    rng = np.random.default_rng(9)
    W = random_ternary(rng, (20, 50))
    W[3] = 1                                   # the densest row: all 50 non-zero
    m = TernaryMatrix(W)
    assert m.max_abs_result == -X_MIN * 50
    y = m.matmul(np.stack([np.full(50, X_MIN, np.int8), np.full(50, X_MAX, np.int8)]))
    assert np.abs(y).max() <= m.max_abs_result


# ---- exactness bounds ----------------------------------------------------------------------------------------
def test_blas_bound_value_and_why():
    assert blas_exact_max_in() == BLAS_MAX_IN == 2 ** 24 // 128 == 131072
    # the bound is tight: float32 cannot hold the next partial sum
    assert np.float32(2 ** 24) + np.float32(1) == np.float32(2 ** 24)


def test_blas_exact_at_the_bound():
    """The worst case at in = 131072: -1 * -128 summed 131072 times = 2**24, still exact."""
    W = -np.ones((2, BLAS_MAX_IN), np.int8)
    W[1, ::3] = 0
    X = np.stack([np.full(BLAS_MAX_IN, X_MIN, np.int8), np.full(BLAS_MAX_IN, X_MAX, np.int8)])
    got = TernaryMatrix(W, kernel="blas").matmul(X)
    np.testing.assert_array_equal(got, reference(W, X))
    assert got[0, 0] == 2 ** 24


def test_blas_refuses_too_wide_and_auto_falls_back(monkeypatch):
    n_in = BLAS_MAX_IN + 1
    W = -np.ones((1, n_in), np.int8)
    with pytest.raises(ValueError, match="exact only for in <= 131072"):
        TernaryMatrix(W, kernel="blas")
    # without VNNI and AVX2, "auto" would use BLAS for a big batch, but not beyond the bound
    monkeypatch.setattr(ternary, "vnni_usable", lambda: False)
    monkeypatch.setattr(ternary, "avx2_usable", lambda: False)
    m = TernaryMatrix(W)
    assert m.kernel_for(BLAS_MIN_TOKENS) == "generic"
    X = np.full((BLAS_MIN_TOKENS, n_in), X_MIN, np.int8)
    got = m.matmul(X)
    assert (got == 2 ** 24 + 128).all()                     # would round in float32


def test_auto_policy_without_vnni(monkeypatch):
    monkeypatch.setattr(ternary, "vnni_usable", lambda: False)
    monkeypatch.setattr(ternary, "avx2_usable", lambda: False)
    rng = np.random.default_rng(4)
    W = random_ternary(rng, (40, 300))
    m = TernaryMatrix(W)
    assert m.kernel_for(1) == "generic"
    assert m.kernel_for(BLAS_MIN_TOKENS) == "blas"
    X = random_spikes(rng, (BLAS_MIN_TOKENS, 300))
    np.testing.assert_array_equal(m.matmul(X), reference(W, X))
    with pytest.raises(ValueError, match="AVX-512 VNNI"):
        TernaryMatrix(W, kernel="vnni")


def test_auto_uses_avx2_without_vnni(monkeypatch):
    if not avx2_usable():
        pytest.skip("no AVX2 on this CPU")
    monkeypatch.setattr(ternary, "vnni_usable", lambda: False)
    m = TernaryMatrix(np.ones((2, 3), np.int8))
    assert m.kernel_for(1) == m.kernel_for(BLAS_MIN_TOKENS) == "avx2"
    with pytest.raises(ValueError, match="AVX-512 VNNI"):
        TernaryMatrix(np.ones((2, 3), np.int8), kernel="vnni")


def test_avx2_int16_lanes_at_the_flush_bound():
    """The int16 stage of the AVX2 kernel at its worst case: every product -1 * -128 over rows of several flush
    groups (FLUSH_BLOCKS blocks of 16 columns each), with and without a partial last group."""
    if not avx2_usable():
        pytest.skip("no AVX2 on this CPU")
    for n_blocks in (ternary.FLUSH_BLOCKS, ternary.FLUSH_BLOCKS + 1, 3 * ternary.FLUSH_BLOCKS - 1):
        n_in = n_blocks * ternary.BLOCK_COLS
        for w, x in ((-1, X_MIN), (1, X_MIN), (1, X_MAX), (-1, X_MAX)):
            W = np.full((5, n_in), w, np.int8)
            X = np.full((6, n_in), x, np.int8)            # one TOKEN_BLOCK and two tokens left over
            np.testing.assert_array_equal(TernaryMatrix(W, kernel="avx2").matmul(X), reference(W, X))


def test_vnni_in_place_fields_at_the_flush_bound():
    """Decode on VNNI keeps each field in place (4^k times its code) and folds it into the int32 total every
    VNNI_FLUSH_BLOCKS blocks: the worst case (every product of magnitude 128 with one sign) over more blocks than
    that, with a partial last flush group, for one token (the in-place path) and a batch."""
    if not vnni_usable():
        pytest.skip("no AVX-512 VNNI on this CPU")
    n_in = (ternary.VNNI_FLUSH_BLOCKS + 3) * ternary.BLOCK_COLS
    for w, x in ((-1, X_MIN), (1, X_MIN), (1, X_MAX), (-1, X_MAX)):
        W = np.full((3, n_in), w, np.int8)
        for T in (1, 5):
            X = np.full((T, n_in), x, np.int8)
            np.testing.assert_array_equal(TernaryMatrix(W, kernel="vnni").matmul(X), reference(W, X))


def test_auto_uses_vnni_when_usable():
    if not vnni_usable():
        pytest.skip("no AVX-512 VNNI on this CPU")
    m = TernaryMatrix(np.ones((2, 3), np.int8))
    assert m.kernel_for(1) == m.kernel_for(512) == "vnni"


def test_int32_bound_enforced():
    with pytest.raises(ValueError, match="too wide"):
        TernaryMatrix(np.zeros((1, MAX_IN + 1), np.int8))


# ---- validation ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, msg", [
    (np.zeros(5, np.int8), "2-D"),
    (np.zeros((2, 3, 4), np.int8), "2-D"),
    (np.zeros((0, 4), np.int8), "empty"),
    (np.zeros((4, 0), np.int8), "empty"),
    (np.array([[0, 2], [1, -1]], np.int8), r"found 2 at \[0, 1\]"),
    (np.array([[0, 1], [-2, -1]], np.int64), "-1, 0 or \\+1"),
    (np.array([[0.0, 0.5]]), "-1, 0 or \\+1"),
    (np.array([[0.0, np.nan]]), "-1, 0 or \\+1"),
    (np.array([[True, False]]), "integer"),
    (np.array([["a", "b"]]), "integer"),
])
def test_weight_validation(bad, msg):
    with pytest.raises(ValueError, match=msg):
        TernaryMatrix(bad)


def test_unknown_kernel():
    with pytest.raises(ValueError, match="kernel must be one of"):
        TernaryMatrix(np.ones((2, 2), np.int8), kernel="gpu")


def test_spike_validation():
    m = TernaryMatrix(np.ones((3, 4), np.int8))
    with pytest.raises(ValueError, match=r"shape \[4\]"):
        m.matvec(np.zeros(5, np.int8))
    with pytest.raises(ValueError, match=r"shape \[4\]"):
        m.matvec(np.zeros((1, 4), np.int8))
    with pytest.raises(ValueError, match=r"shape \[T, 4\]"):
        m.matmul(np.zeros(4, np.int8))
    with pytest.raises(ValueError, match=r"shape \[T, 4\]"):
        m.matmul(np.zeros((2, 3), np.int8))
    with pytest.raises(ValueError, match="int8 or int16 graded spikes"):
        m.matvec(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="int16 range"):
        m.matvec(np.array([0, X16_MAX + 1, 0, 0], np.int32))
    with pytest.raises(ValueError, match="int16 range"):
        m.matmul(np.array([[0, X16_MIN - 1, 0, 0]], np.int64))


def test_with_kernel_shares_storage():
    rng = np.random.default_rng(12)
    W = random_ternary(rng, (10, 300))
    X = random_spikes(rng, (2, 300))
    m = TernaryMatrix(W)
    for kernel in ALL_KERNELS:
        other = m.with_kernel(kernel)
        assert other.codes is m.codes and other.kernel == kernel
        np.testing.assert_array_equal(other.matmul(X), reference(W, X))
    assert m.kernel == "auto"
    with pytest.raises(ValueError, match="kernel must be one of"):
        m.with_kernel("fast")


@pytest.mark.parametrize("kernel", INT_KERNELS)
@pytest.mark.parametrize("parallel", [False, True])
def test_batch_sizes_around_tiles(kernel, parallel):
    """Token blocks, token tiles and row tiles with remainders on every side."""
    rng = np.random.default_rng(21)
    n_out = ternary.ROW_TILE * 2 + 5
    W = random_ternary(rng, (n_out, 300))
    m = TernaryMatrix(W, kernel=kernel, parallel=parallel)
    for T in (1, ternary.TOKEN_BLOCK - 1, ternary.TOKEN_BLOCK, ternary.TOKEN_TILE + ternary.TOKEN_BLOCK + 1,
              2 * ternary.TOKEN_TILE):
        X = random_spikes(rng, (T, 300))
        np.testing.assert_array_equal(m.matmul(X), reference(W, X))


def test_non_contiguous_spikes():
    rng = np.random.default_rng(22)
    W = random_ternary(rng, (50, 512))
    Xbig = random_spikes(rng, (512, 12))
    X = Xbig.T                                   # [12, 512], Fortran-ordered view
    np.testing.assert_array_equal(TernaryMatrix(W).matmul(X), reference(W, X))
    np.testing.assert_array_equal(TernaryMatrix(W).matvec(Xbig[:, 3]), reference(W, Xbig[:, 3][None])[0])


@pytest.mark.slow
def test_benchmark_smoke(tmp_path):
    """The benchmark runs end to end on the tiny config and writes its JSON."""
    import importlib.util
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_ternary.py"
    spec = importlib.util.spec_from_file_location("bench_ternary", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main(["--model", "tiny", "--tokens", "1", "3", "--repeats", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [run["T"] for run in report["runs"]] == [1, 3]
    methods = {s["method"] for s in report["runs"][0]["model_total"]}
    assert {"numpy int32", "float32 BLAS", "packed generic", "packed blas"} <= methods


@pytest.mark.parametrize("n_in", [2048, 2560, 5632, 6912])      # 1.3B and 2.7B widths (d and I)
def test_larger_model_widths(n_in):
    rng = np.random.default_rng(n_in)
    W = random_ternary(rng, (40, n_in))
    X = random_spikes(rng, (9, n_in))
    X[0] = X_MIN
    for kernel in ALL_KERNELS:
        np.testing.assert_array_equal(TernaryMatrix(W, kernel=kernel).matmul(X), reference(W, X))


# ---- wide (int16) graded spikes: W8A16 -------------------------------------------------------------------
def random_wide_spikes(rng, shape, bits=16):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return rng.integers(lo, hi + 1, size=shape).astype(np.int16)


def test_split_bytes_is_exact_on_every_int16():
    x = np.arange(X16_MIN, X16_MAX + 1, dtype=np.int64).astype(np.int16)
    hi, lo = split_bytes(x)
    assert hi.dtype == np.int8 and lo.dtype == np.int8
    np.testing.assert_array_equal(256 * hi.astype(np.int64) + lo.astype(np.int64) + 128, x.astype(np.int64))


@pytest.mark.parametrize("kernel", ALL_KERNELS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_wide_random_exact(kernel, shape, seed):
    rng = np.random.default_rng(100 + seed)
    W = random_ternary(rng, shape)
    m = TernaryMatrix(W, kernel=kernel)
    for bits in (9, 12, 16):
        X = random_wide_spikes(rng, (5, shape[1]), bits)
        got = m.matmul(X)
        assert got.dtype == np.int32 and got.shape == (5, shape[0])
        np.testing.assert_array_equal(got, reference(W, X))
        np.testing.assert_array_equal(m.matvec(X[3]), reference(W, X[3:4])[0])


@pytest.mark.parametrize("kernel", ALL_KERNELS)
@pytest.mark.parametrize("n_in", [1, 255, 257, 1024, 2816])
def test_wide_extremes(kernel, n_in):
    """All-(+1) / all-(-1) / mixed weights against all-(-32768), all-32767, alternating and byte-edge spikes."""
    n_out = 4
    weights = [np.ones((n_out, n_in), np.int8), -np.ones((n_out, n_in), np.int8),
               np.array([[1], [-1], [0], [1]], np.int8) * np.ones(n_in, np.int8)]
    alt = np.where(np.arange(n_in) % 2 == 0, X16_MIN, X16_MAX).astype(np.int16)
    edges = np.resize(np.array([-129, -128, -1, 0, 127, 128, 255, 256, -256, -257], np.int16), n_in)
    X = np.stack([np.full(n_in, X16_MIN, np.int16), np.full(n_in, X16_MAX, np.int16), alt, edges])
    for W in weights:
        np.testing.assert_array_equal(TernaryMatrix(W, kernel=kernel).matmul(X), reference(W, X))
    assert TernaryMatrix(weights[1], kernel=kernel).matvec(X[0])[0] == -X16_MIN * n_in


def test_wide_values_in_any_integer_dtype_take_the_wide_path():
    rng = np.random.default_rng(5)
    W = random_ternary(rng, (33, 300))
    X = random_wide_spikes(rng, (3, 300)).astype(np.int64)
    np.testing.assert_array_equal(TernaryMatrix(W).matmul(X), reference(W, X))
    # int16 spikes that happen to lie in the int8 range give the same result through either path
    small = random_spikes(rng, (3, 300))
    m = TernaryMatrix(W)
    np.testing.assert_array_equal(m.matmul(small.astype(np.int16)), m.matmul(small))


def test_wide_bound_and_fan_in_limit():
    m = TernaryMatrix(-np.ones((2, 50), np.int8))
    assert m.max_abs_result_for(16) == 32768 * 50 and m.max_abs_result_for(8) == m.max_abs_result
    assert np.abs(m.matmul(np.full((1, 50), X16_MIN, np.int16))).max() == m.max_abs_result_for(16)
    wide = TernaryMatrix(np.ones((1, MAX_IN_WIDE + 1), np.int8), kernel="generic")
    with pytest.raises(ValueError, match="too wide for int16 spikes"):
        wide.matvec(np.ones(MAX_IN_WIDE + 1, np.int16))


# ---- the drivers the whole-model kernel uses (golden_fast.py): host and portable row-dot code ----------------
def _driver_matmul(name, W, X):
    """``W @ X[t]`` through a raw driver of ternary._INT_KERNELS (int8 X, padded as TernaryMatrix does)."""
    codes = pack(W)
    xpad = np.zeros((X.shape[0], padded_in(W.shape[1])), np.int8)
    xpad[:, :W.shape[1]] = X
    out = np.empty((X.shape[0], W.shape[0]), np.int32)
    ternary._INT_KERNELS[name](codes, xpad, X.sum(axis=1, dtype=np.int32), out)
    return out


@pytest.mark.parametrize("driver", ["portable", "host"])
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_host_and_portable_drivers_exact(driver, parallel, seed):
    rng = np.random.default_rng(seed)
    for shape in SHAPES + [(65, 5 * 256 + 3)]:
        W = random_ternary(rng, shape)
        for T in (1, 2, 3, 4, 5, 9):  # token blocks, pairs of rows and the rows left over
            X = random_spikes(rng, (T, shape[1]))
            np.testing.assert_array_equal(_driver_matmul((driver, parallel), W, X), reference(W, X))


@pytest.mark.parametrize("driver", ["portable", "host"])
def test_host_and_portable_drivers_at_the_int16_flush_bound(driver):
    """Worst case of the int16 stage (every product of magnitude 128 with one sign) over several flush groups."""
    for n_blocks in (ternary.FLUSH_BLOCKS, ternary.FLUSH_BLOCKS + 1, 3 * ternary.FLUSH_BLOCKS - 1):
        n_in = n_blocks * ternary.BLOCK_COLS
        for w, x in ((-1, X_MIN), (1, X_MIN), (1, X_MAX), (-1, X_MAX)):
            W = np.full((5, n_in), w, np.int8)
            X = np.full((6, n_in), x, np.int8)
            np.testing.assert_array_equal(_driver_matmul((driver, False), W, X), reference(W, X))


def test_host_dot_mode_follows_the_cpu():
    assert ternary.host_dot_mode() == ("vnni" if vnni_usable() else "avx2" if avx2_usable() else "portable")


# ---- weights held only packed --------------------------------------------------------------------------------
def test_packed_ternary_stands_in_for_the_int8_array():
    rng = np.random.default_rng(5)
    W = random_ternary(rng, (37, 300))
    P = ternary.PackedTernary(TernaryMatrix(W))
    assert P.shape == W.shape and P.dtype == np.int8 and P.ndim == 2 and len(P) == 37 and P.size == W.size
    np.testing.assert_array_equal(np.asarray(P), W)
    np.testing.assert_array_equal(2 * P, 2 * W.astype(np.int64))
    np.testing.assert_array_equal(P.T, W.T)
    np.testing.assert_array_equal(P[3:5, 7], W[3:5, 7])
    assert P.sum() == W.sum() and np.count_nonzero(P) == np.count_nonzero(W)
    np.testing.assert_array_equal(P.astype(np.int32), W.astype(np.int32))
    from lava_matmulfree.model.float_model import ternary_matrix
    assert ternary_matrix(P) is P.matrix  # the kernels use the packed codes, never an unpacked copy


def test_parallel_kernels_leave_multiprocessing_unset():
    """After a parallel kernel, lava (which calls set_start_method('fork') at import) can still be imported."""
    import subprocess
    import sys
    code = ("import multiprocessing as mp, numpy as np\n"
            "from lava_matmulfree.model.ternary import TernaryMatrix\n"
            "TernaryMatrix(np.ones((70, 300), np.int8), parallel=True).matmul(np.ones((2, 300), np.int8))\n"
            "assert mp.get_start_method(allow_none=True) is None\n"
            "mp.set_start_method('fork')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 prefetch instructions")
def test_simd_kernels_prefetch_their_codes():
    """The SIMD rows prefetch each block's codes PREFETCH_BYTES ahead into L1 (prefetcht0) and PREFETCH_L2_BYTES
    ahead into L2 (prefetcht1; ternary_kernels.py), the host kernel at the distances prefetch_distances gives this
    host; the generic scalar reference does neither, which shows the check can tell them apart. Compiled here
    without numba's disk cache (a kernel loaded from the cache has no assembly to inspect)."""
    from numba import njit
    from lava_matmulfree.model.ternary_kernels import generic_rows, host_dot_mode, prefetch_distances, simd_rows

    @njit(cache=False)
    def portable(codes, xpad, xsum, out):
        simd_rows(codes, xpad, xsum, out, 0, out.shape[1], "portable")

    @njit(cache=False)
    def host(codes, xpad, xsum, out):
        simd_rows(codes, xpad, xsum, out, 0, out.shape[1], "host")

    @njit(cache=False)
    def generic(codes, xpad, xsum, out):
        generic_rows(codes, xpad, xsum, out, 0, out.shape[1], "generic")

    rng = np.random.default_rng(5)
    W = rng.integers(-1, 2, (70, 200)).astype(np.int8)
    X = rng.integers(X_MIN, X_MAX + 1, (3, 200)).astype(np.int8)
    codes = pack(W)
    xpad = np.zeros((3, padded_in(200)), np.int8)
    xpad[:, :200] = X
    for kernel in (portable, host, generic):
        out = np.empty((3, 70), np.int32)
        kernel(codes, xpad, X.sum(axis=1, dtype=np.int32), out)
        np.testing.assert_array_equal(out, reference(W, X))
    asm = {k.__name__: "".join(k.inspect_asm().values()) for k in (portable, host, generic)}
    assert PREFETCH_BYTES > 0 and PREFETCH_L2_BYTES > 0
    assert prefetch_distances("portable") == (PREFETCH_BYTES, PREFETCH_L2_BYTES)
    for insn, distance in zip(("prefetcht0", "prefetcht1"), prefetch_distances(host_dot_mode())):
        assert insn in asm["portable"]
        assert (insn in asm["host"]) == (distance > 0)
        assert insn not in asm["generic"]


def test_prefetch_distances_by_host(monkeypatch):
    """No software prefetch for the vnni dot on an AMD host (Zen 4 on: docs/cpu_tuning.md), the pair everywhere
    else: the avx2 dot on AMD (Zen 3 needs the L2 prefetch), every dot on Intel, and where the vendor is unknown."""
    from lava_matmulfree.model import ternary_kernels as tk

    both = (PREFETCH_BYTES, PREFETCH_L2_BYTES)
    for vendor, expect in ((tk.AMD_VENDOR, {"vnni": tk.NO_PREFETCH, "avx2": both, "portable": both}),
                           ("GenuineIntel", {"vnni": both, "avx2": both, "portable": both}),
                           ("", {"vnni": both, "avx2": both, "portable": both})):
        monkeypatch.setattr(tk, "host_vendor", lambda v=vendor: v)
        assert {m: tk.prefetch_distances(m) for m in tk.DOT_MODES} == expect, vendor


def test_host_vendor_reads_cpuinfo():
    """The vendor string is cpuid's, read from /proc/cpuinfo where there is one (every Linux on x86)."""
    from pathlib import Path
    from lava_matmulfree.model.ternary_kernels import host_vendor

    info = Path("/proc/cpuinfo")
    if not info.is_file() or "vendor_id" not in info.read_text(errors="replace"):
        assert host_vendor() == ""
        return
    line = next(l for l in info.read_text(errors="replace").splitlines() if l.startswith("vendor_id"))
    assert host_vendor() == line.split(":", 1)[1].strip() != ""


@pytest.mark.parametrize("seed", SEEDS)
def test_two_stream_dot_exact(seed):
    """The decode dot over two groups of one matrix side by side (ternary_kernels._dot_pair: STREAM_CHUNK_BLOCKS
    blocks of one, then of the other, each with accumulators of its own) gives W x exactly for every pair, the
    partial last group included, in every SIMD mode this host compiles, one token and a batch, with rows long
    enough for several chunks and a partial one (1100 columns: 69 blocks)."""
    from numba import njit
    from lava_matmulfree.model.ternary_kernels import GROUP_ROWS, STREAM_CHUNK_BLOCKS, TOKEN_BLOCK, _dot_pair

    def make(mode, n_tok):
        @njit(cache=False)
        def pairs(codes, xpad, xsum, out, firsts, seconds):
            for t in range(0, xpad.shape[0], n_tok):
                for k in range(firsts.size):
                    _dot_pair(codes, xpad, xsum, out, firsts[k], seconds[k], t, mode, n_tok)
        return pairs

    rng = np.random.default_rng(seed)
    n_out, n_in, T = 7 * GROUP_ROWS + 5, 1100, 2 * TOKEN_BLOCK
    assert padded_in(n_in) // 16 > 2 * STREAM_CHUNK_BLOCKS        # blocks per row: more than two chunks
    W, X = random_ternary(rng, (n_out, n_in)), random_spikes(rng, (T, n_in))
    codes = pack(W)
    xpad = np.zeros((T, padded_in(n_in)), np.int8)
    xpad[:, :n_in] = X
    xsum = X.sum(axis=1, dtype=np.int32)
    groups = rng.permutation(8)                                    # 8 groups, the last one partial
    firsts, seconds = groups[:4].astype(np.intp), groups[4:].astype(np.intp)
    modes = ["portable", "host"] + (["avx2"] if avx2_usable() else []) + (["vnni"] if vnni_usable() else [])
    for mode in modes:
        for n_tok in (1, TOKEN_BLOCK):
            out = np.full((T, n_out), -7, np.int32)
            make(mode, n_tok)(codes, xpad, xsum, out, firsts, seconds)
            np.testing.assert_array_equal(out, reference(W, X), err_msg=f"{mode}, {n_tok} token(s)")

