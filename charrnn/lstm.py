"""LSTM cell: forward and backward over a chunk of T steps, side by side.

Dimensions: T time steps, N streams (batch), H hidden units, G = 4H.
Gate order, written down once: i, f, o, g (input, forget, output, candidate),
packed along the last axis of Wx (D, 4H), Wh (H, 4H) and b (4H) as in torch-rnn.

    a = x Wx + b + h_prev Wh          pre-activations, (N, 4H)
    i = sigmoid(a[:, 0H:1H])   f = sigmoid(a[:, 1H:2H])
    o = sigmoid(a[:, 2H:3H])   g = tanh(a[:, 3H:4H])
    c = f * c_prev + i * g             the additive cell state
    h = o * tanh(c)

The input projection x Wx + b of all T steps is one GEMM done by the caller
(model.py); only the recurrent product h_prev Wh is sequential, so it is all
the kernels here do. The caller also forms dWh = H_prev^T dA as one GEMM.
Memory per layer and chunk: gates T*N*4H + c T*N*H + h T*N*H floats.
"""
import numpy as np
from numba import njit

from charrnn.layers import FAST, ONE, dot_rows, sigmoid, tanh


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def lstm_forward(h, c, gates, xw, Wh, h0, c0, lo, hi):
    """h, c: (T, N, H) out; gates: (T, N, 4H) out, activated i, f, o, g.
    xw: (T, N, 4H) input projections with bias; Wh: (H, 4H); h0, c0: (N, H).
    Runs streams lo..hi only: threads take disjoint ranges (see threads.py)."""
    T, N, G = xw.shape
    a = np.empty((hi - lo, G), dtype=xw.dtype)  # the only buffer; nothing is allocated per step
    for t in range(T):
        dot_rows(h0[lo:hi] if t == 0 else h[t - 1][lo:hi], Wh, a)
        for n in range(lo, hi):
            lstm_cell(h[t, n], c[t, n], gates[t, n], a[n - lo], xw[t, n],
                      c0[n] if t == 0 else c[t - 1, n])


@njit(cache=True, fastmath=FAST, error_model="numpy", inline="always")
def lstm_cell(h, c, gates, a, xw, c_prev):
    """One stream, one step, on rows: gates (4H,) = activations of a + xw; c, h (H,).
    Two simple loops rather than one: each reads and writes few arrays, so LLVM
    vectorizes them (one fused loop over eight strided arrays ran 5x slower)."""
    H = h.shape[0]
    for j in range(3 * H):
        gates[j] = sigmoid(a[j] + xw[j])
    for j in range(3 * H, 4 * H):
        gates[j] = tanh(a[j] + xw[j])
    for j in range(H):
        ct = gates[H + j] * c_prev[j] + gates[j] * gates[3 * H + j]
        c[j] = ct
        h[j] = gates[2 * H + j] * tanh(ct)


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def lstm_backward(da, dh0, dc0, dh, gates, c, c0, WhT, lo, hi):
    """da: (T, N, 4H) out, gradient of the pre-activations (serves as dxw and for dWh).
    dh0, dc0: (N, H) out, gradient of the initial state.
    dh: (T, N, H) gradient of the loss with respect to each h[t] from above (not
    counting the recurrence); gates, c: saved by lstm_forward; WhT: (4H, H).
    Streams lo..hi only."""
    T, N, G = da.shape
    H = G // 4
    dh_next = np.zeros((hi - lo, H), dtype=da.dtype)  # carried back through h_prev Wh
    dc_next = np.zeros((hi - lo, H), dtype=da.dtype)  # carried back through f * c_prev
    for t in range(T - 1, -1, -1):
        for n in range(lo, hi):
            g, d = gates[t, n], da[t, n]
            c_prev = c0[n] if t == 0 else c[t - 1, n]
            dhn, dcn, ct, dht = dh_next[n - lo], dc_next[n - lo], c[t, n], dh[t, n]
            for j in range(H):
                i, f, o, gg = g[j], g[H + j], g[2 * H + j], g[3 * H + j]
                tc = tanh(ct[j])
                dhj = dht[j] + dhn[j]
                dcj = dcn[j] + dhj * o * (ONE - tc * tc)
                d[j] = dcj * gg * i * (ONE - i)
                d[H + j] = dcj * c_prev[j] * f * (ONE - f)
                d[2 * H + j] = dhj * tc * o * (ONE - o)
                d[3 * H + j] = dcj * i * (ONE - gg * gg)
                dcn[j] = dcj * f
        dot_rows(da[t][lo:hi], WhT, dh_next)
    dh0[lo:hi] = dh_next
    dc0[lo:hi] = dc_next


@njit(cache=True, fastmath=FAST, error_model="numpy")
def lstm_step(h, c, a, xw):
    """One step for sampling, in place. h, c: (N, H) state; a: (N, 4H) holds
    h_prev Wh on entry; xw: (N, 4H) input projections with bias."""
    N, H = h.shape
    for n in range(N):
        for j in range(H):
            i = sigmoid(a[n, j] + xw[n, j])
            f = sigmoid(a[n, H + j] + xw[n, H + j])
            o = sigmoid(a[n, 2 * H + j] + xw[n, 2 * H + j])
            g = tanh(a[n, 3 * H + j] + xw[n, 3 * H + j])
            c[n, j] = f * c[n, j] + i * g
            h[n, j] = o * tanh(c[n, j])
