"""packed.py, the GEMM of the per-step recurrent products, against numpy's product
in float64 (known answers for the packing)."""
import numpy as np
import pytest

from charrnn import packed


def test_pack_known_answer():
    """Units 1..3 of each of two blocks of H = 5 columns (gate_columns' share) are
    columns 1, 2, 6, 7; their panel is zero beyond them, and their transposed view
    packs the same. 70 columns make panels of 32, 32 and 6."""
    from charrnn.native import gate_columns
    W = np.arange(30, dtype=np.float64).reshape(3, 10)
    share = gate_columns(W, 5, 1, 3)
    Bp = packed.pack(share)
    assert Bp.shape == (1, 3, packed.NR)
    np.testing.assert_array_equal(Bp[0, :, :4], W[:, [1, 2, 6, 7]])
    assert not Bp[0, :, 4:].any()
    np.testing.assert_array_equal(packed.pack(np.ascontiguousarray(share.T).T), Bp)
    wide = packed.pack(np.arange(140.0).reshape(2, 70))
    assert wide.shape == (3, 2, 32) and not wide[2, :, 6:].any()
    np.testing.assert_array_equal(np.concatenate(list(wide), axis=1)[:, :70],
                                  np.arange(140.0).reshape(2, 70))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (9, 5, 32), (10, 300, 33), (25, 128, 512),
                                   (50, 600, 70), (4, 257, 64), (19, 40, 100)])
def test_mul_matches_numpy(dtype, M, K, N):
    """Every row count up to MR and beyond (blocks split evenly), K across blocks of
    KC (the second added to the first), N across partial panels; a as a view with a
    longer row stride; out overwritten or added to."""
    rng = np.random.default_rng(M * K + N)
    a = rng.standard_normal((M, K + 3))[:, 1:K + 1].astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    ref = a.astype(np.float64) @ B.astype(np.float64)
    tol = (1e-12 if dtype == np.float64 else 1e-5) * np.sqrt(K)
    Bp = packed.pack(B)
    out = np.full((M, N), np.nan, dtype=dtype)
    packed.mul(a, Bp, out)
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    wider = np.full((M, N + 5), 2.0, dtype=dtype)  # out with a longer row stride, added to
    packed.mul(a, Bp, wider[:, :N], True)
    np.testing.assert_allclose(wider[:, :N], ref + 2, rtol=tol, atol=tol)
    assert np.all(wider[:, N:] == 2)


def test_mul_needs_rows_of_adjacent_elements():
    a = np.ones((8, 8))[::2, ::2]
    with pytest.raises(ValueError, match="adjacent"):
        packed.mul(a, packed.pack(np.ones((4, 3))), np.empty((4, 3)))


@pytest.mark.parametrize("M,K,N,add", [(10, 300, 33, False), (19, 40, 100, True)])
def test_mul_without_the_compiler_matches_the_ir(M, K, N, add):
    """mul as plain Python (as NUMBA_DISABLE_JIT=1 runs it) takes _tile's numpy meaning
    of the IR, on the same flat offsets: the same product, partial panels and a
    row-strided a and out included."""
    rng = np.random.default_rng(K)
    a = rng.standard_normal((M, K + 3))[:, 1:K + 1]
    Bp = packed.pack(rng.standard_normal((K, N)))
    outs = [np.full((M, N + 5), 2.0) for _ in range(2)]
    packed.mul(a, Bp, outs[0][:, :N], add)
    packed.mul.py_func(a, Bp, outs[1][:, :N], add)
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-12, atol=1e-12)
