"""Vanilla RNN cell (Elman, as in min-char-rnn): forward and backward over a chunk.

Dimensions: T time steps, N streams (batch), H hidden units, G = H.

    h = tanh(x Wx + b + h_prev Wh)

min-char-rnn's Wxh, Whh, bh are Wx, Wh, b here. The input projection of all
T steps is one GEMM done by the caller (model.py), which also forms
dWh = H_prev^T dA as one GEMM; only the recurrence is here.
Memory per layer and chunk: h T*N*H floats.
"""
import numpy as np
from numba import njit

from charrnn.layers import FAST, ONE, dot_rows, tanh


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def rnn_forward(h, xw, Wh, h0, lo, hi):
    """h: (T, N, H) out; xw: (T, N, H) input projections with bias;
    Wh: (H, H); h0: (N, H). Streams lo..hi only (see threads.py)."""
    T, N, H = xw.shape
    a = np.empty((hi - lo, H), dtype=xw.dtype)
    for t in range(T):
        dot_rows(h0[lo:hi] if t == 0 else h[t - 1][lo:hi], Wh, a)
        for n in range(lo, hi):
            hr, ar, xr = h[t, n], a[n - lo], xw[t, n]
            for j in range(H):
                hr[j] = tanh(ar[j] + xr[j])


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def rnn_backward(da, dh0, dh, h, WhT, lo, hi):
    """da: (T, N, H) out, gradient of the pre-activations (min-char-rnn's dhraw);
    dh0: (N, H) out; dh: (T, N, H) gradient from above; h: saved by rnn_forward;
    WhT: (H, H). Streams lo..hi only."""
    T, N, H = da.shape
    dh_next = np.zeros((hi - lo, H), dtype=da.dtype)  # min-char-rnn's dhnext
    for t in range(T - 1, -1, -1):
        for n in range(lo, hi):
            d, hr, dhr, dhn = da[t, n], h[t, n], dh[t, n], dh_next[n - lo]
            for j in range(H):
                d[j] = (dhr[j] + dhn[j]) * (ONE - hr[j] * hr[j])
        dot_rows(da[t][lo:hi], WhT, dh_next)
    dh0[lo:hi] = dh_next


@njit(cache=True, fastmath=FAST, error_model="numpy")
def rnn_step(h, a, xw):
    """One step for sampling, in place. h: (N, H); a: (N, H) holds h_prev Wh;
    xw: (N, H) input projections with bias."""
    N, H = h.shape
    for n in range(N):
        for j in range(H):
            h[n, j] = tanh(a[n, j] + xw[n, j])
