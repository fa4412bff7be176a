"""GRU cell: forward and backward over a chunk, side by side.

Dimensions: T time steps, N streams (batch), H hidden units, G = 3H.
Gate order, written down once: r, z, n (reset, update, new), packed along the
last axis of Wx (D, 3H), Wh (H, 3H) and b (3H). The formulation is cuDNN's and
PyTorch's, with the reset gate applied after the recurrent product, so that
product stays one GEMM per step:

    ax = x Wx + b                       (N, 3H), one GEMM for all T steps
    ah = h_prev Wh                      (N, 3H)
    r = sigmoid(ax_r + ah_r)    z = sigmoid(ax_z + ah_z)
    n = tanh(ax_n + r * (ah_n + bhn))
    h = (ONE - z) * n + z * h_prev

bhn (H) is the recurrent bias of the candidate; it cannot be folded into b
because r multiplies it. Memory per layer and chunk: gates T*N*3H,
ahn T*N*H (the term r multiplies, needed for dr), h T*N*H floats.
"""
import numpy as np
from numba import njit

from charrnn.layers import FAST, ONE, dot_rows, sigmoid, tanh


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def gru_forward(h, gates, ahn, xw, Wh, bhn, h0, lo, hi):
    """h: (T, N, H) out; gates: (T, N, 3H) out, activated r, z, n;
    ahn: (T, N, H) out, ah_n + bhn; xw: (T, N, 3H); Wh: (H, 3H); bhn: (H,); h0: (N, H).
    Streams lo..hi only (see threads.py)."""
    T, N, G = xw.shape
    a = np.empty((hi - lo, G), dtype=xw.dtype)
    for t in range(T):
        h_prev = h0 if t == 0 else h[t - 1]
        dot_rows(h_prev[lo:hi], Wh, a)
        for n in range(lo, hi):
            gru_cell(h[t, n], gates[t, n], ahn[t, n], a[n - lo], xw[t, n], bhn, h_prev[n])


@njit(cache=True, fastmath=FAST, error_model="numpy", inline="always")
def gru_cell(h, gates, ahn, a, xw, bhn, h_prev):
    """One stream, one step, on rows; short loops so that each vectorizes."""
    H = h.shape[0]
    for j in range(2 * H):
        gates[j] = sigmoid(a[j] + xw[j])
    for j in range(H):
        hn = a[2 * H + j] + bhn[j]
        ahn[j] = hn
        nt = tanh(xw[2 * H + j] + gates[j] * hn)
        gates[2 * H + j] = nt
        z = gates[H + j]
        h[j] = (ONE - z) * nt + z * h_prev[j]


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def gru_backward(dax, dah, dh0, dh, gates, ahn, h, h0, WhT, lo, hi):
    """dax: (T, N, 3H) out, gradient of x Wx + b; dah: (T, N, 3H) out, gradient of
    h_prev Wh (its n part is dax_n * r; its sum over T and N for the n part is dbhn);
    dh0: (N, H) out; dh: (T, N, H) from above; gates, ahn, h: saved by gru_forward;
    WhT: (3H, H). Streams lo..hi only."""
    T, N, G = dax.shape
    H = G // 3
    dh_next = np.zeros((hi - lo, H), dtype=dax.dtype)
    dh_rec = np.empty((hi - lo, H), dtype=dax.dtype)  # np.dot cannot accumulate into its output
    for t in range(T - 1, -1, -1):
        for n in range(lo, hi):
            g, dx, dhh = gates[t, n], dax[t, n], dah[t, n]
            h_prev = h0[n] if t == 0 else h[t - 1, n]
            dhn, dht, hn = dh_next[n - lo], dh[t, n], ahn[t, n]
            for j in range(H):
                r, z, nt = g[j], g[H + j], g[2 * H + j]
                dhj = dht[j] + dhn[j]
                dan = dhj * (ONE - z) * (ONE - nt * nt)
                dar = dan * hn[j] * r * (ONE - r)
                daz = dhj * (h_prev[j] - nt) * z * (ONE - z)
                dx[j] = dar
                dx[H + j] = daz
                dx[2 * H + j] = dan
                dhh[j] = dar
                dhh[H + j] = daz
                dhh[2 * H + j] = dan * r
                dhn[j] = dhj * z  # the direct path z * h_prev
        dot_rows(dah[t][lo:hi], WhT, dh_rec)
        dh_next += dh_rec
    dh0[lo:hi] = dh_next


@njit(cache=True, fastmath=FAST, error_model="numpy")
def gru_step(h, a, xw, bhn):
    """One step for sampling, in place. h: (N, H); a: (N, 3H) holds h_prev Wh;
    xw: (N, 3H) input projections with bias; bhn: (H,)."""
    N, H = h.shape
    for n in range(N):
        for j in range(H):
            r = sigmoid(xw[n, j] + a[n, j])
            z = sigmoid(xw[n, H + j] + a[n, H + j])
            nt = tanh(xw[n, 2 * H + j] + r * (a[n, 2 * H + j] + bhn[j]))
            h[n, j] = (ONE - z) * nt + z * h[n, j]
