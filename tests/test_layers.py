"""layers.py: the float32 approximations of tanh and exp against float64 numpy, and
the fused softmax/cross-entropy against a known answer and numpy."""
import numpy as np
import pytest
from numba import njit

from charrnn.layers import FAST, exp, row_max, softmax_xent, tanh, xent


@njit(fastmath=FAST, error_model="numpy")
def _apply(fn_kind, x, out):
    for i in range(x.size):
        out[i] = exp(x[i]) if fn_kind == 0 else tanh(x[i])


def test_exp_float32_within_3_ulp():
    """Relative error under 3.6e-7 on [-87, 88]; below, the floor e^-87 (no zero
    or subnormal); NaN stays NaN (the training loop's check for it)."""
    x = np.linspace(-87, 88, 1_000_001).astype(np.float32)
    out = np.empty_like(x)
    _apply(0, x, out)
    ref = np.exp(x.astype(np.float64))
    assert (np.abs(out - ref) / ref).max() < 3.6e-7
    low = np.array([-88, -200, -np.inf, np.nan], dtype=np.float32)
    _apply(0, low, out[:4])
    assert out[0] == out[1] == out[2] == pytest.approx(np.exp(-87.0), rel=1e-6) and np.isnan(out[3])


def test_tanh_float32_within_4e_7():
    x = np.linspace(-12, 12, 1_000_001).astype(np.float32)
    out = np.empty_like(x)
    _apply(1, x, out)
    assert np.abs(out - np.tanh(x.astype(np.float64))).max() < 4e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_xent_known_answer_and_numpy(dtype):
    """A row of equal logits costs ln V and has gradient 1/V - onehot; random rows
    match float64 numpy, and xent (evaluation) gives the same loss."""
    V, scale = 7, 0.5
    logits = np.zeros((1, V), dtype=dtype)
    total = softmax_xent(logits, np.array([2]), scale, 0, 1)
    assert total == pytest.approx(np.log(V), rel=1e-6)
    np.testing.assert_allclose(logits[0], scale * (1 / V - np.eye(V)[2]), rtol=1e-6, atol=1e-7)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((40, 65)) * 4).astype(dtype)
    y = rng.integers(0, 65, 40)
    x64 = x.astype(np.float64)
    p = np.exp(x64 - x64.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    ref = -np.log(p[np.arange(40), y]).sum()
    assert xent(x, y) == pytest.approx(ref, rel=1e-6)
    d = x.copy()
    assert softmax_xent(d, y, scale, 0, 40) == pytest.approx(ref, rel=1e-6)
    np.testing.assert_allclose(d, scale * (p - np.eye(65)[y]), rtol=1e-5, atol=1e-7)


@njit(error_model="numpy")
def _row_max(row):
    return row_max(row)


def test_row_max_and_nan_in_a_row():
    """row_max (four running maxima) equals numpy's max for rows of every length from 1
    to 70 with the largest anywhere in them; a NaN logit in a row, not the target's,
    still makes the loss NaN, for the training loop's check."""
    rng = np.random.default_rng(1)
    for V in range(1, 71):
        for at in {0, V // 2, V - 1}:
            row = rng.standard_normal(V).astype(np.float32)
            row[at] = 10.0
            assert _row_max(row) == np.max(row) == 10.0
    logits = rng.standard_normal((3, 65)).astype(np.float32)
    logits[1, 40] = np.nan
    y = np.array([0, 3, 5])
    assert np.isnan(xent(logits, y)) and np.isnan(softmax_xent(logits.copy(), y, 1.0, 0, 3))
