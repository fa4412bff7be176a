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

from charrnn.layers import FAST, ONE, sigmoid, tanh


@njit(cache=True, fastmath=FAST)
def lstm_forward(h, c, gates, xw, Wh, h0, c0):
    """h, c: (T, N, H) out; gates: (T, N, 4H) out, activated i, f, o, g.
    xw: (T, N, 4H) input projections with bias; Wh: (H, 4H); h0, c0: (N, H)."""
    T, N, G = xw.shape
    H = G // 4
    a = np.empty((N, G), dtype=xw.dtype)  # the only buffer; nothing is allocated per step
    for t in range(T):
        h_prev = h0 if t == 0 else h[t - 1]
        c_prev = c0 if t == 0 else c[t - 1]
        np.dot(h_prev, Wh, a)
        for n in range(N):
            for j in range(H):
                i = sigmoid(a[n, j] + xw[t, n, j])
                f = sigmoid(a[n, H + j] + xw[t, n, H + j])
                o = sigmoid(a[n, 2 * H + j] + xw[t, n, 2 * H + j])
                g = tanh(a[n, 3 * H + j] + xw[t, n, 3 * H + j])
                gates[t, n, j] = i
                gates[t, n, H + j] = f
                gates[t, n, 2 * H + j] = o
                gates[t, n, 3 * H + j] = g
                ct = f * c_prev[n, j] + i * g
                c[t, n, j] = ct
                h[t, n, j] = o * tanh(ct)


@njit(cache=True, fastmath=FAST)
def lstm_backward(da, dh0, dc0, dh, gates, c, c0, WhT):
    """da: (T, N, 4H) out, gradient of the pre-activations (serves as dxw and for dWh).
    dh0, dc0: (N, H) out, gradient of the initial state.
    dh: (T, N, H) gradient of the loss with respect to each h[t] from above (not
    counting the recurrence); gates, c: saved by lstm_forward; WhT: (4H, H)."""
    T, N, G = da.shape
    H = G // 4
    dh_next = np.zeros((N, H), dtype=da.dtype)  # carried back through h_prev Wh
    dc_next = np.zeros((N, H), dtype=da.dtype)  # carried back through f * c_prev
    for t in range(T - 1, -1, -1):
        c_prev = c0 if t == 0 else c[t - 1]
        for n in range(N):
            for j in range(H):
                i = gates[t, n, j]
                f = gates[t, n, H + j]
                o = gates[t, n, 2 * H + j]
                g = gates[t, n, 3 * H + j]
                tc = tanh(c[t, n, j])
                dht = dh[t, n, j] + dh_next[n, j]
                dct = dc_next[n, j] + dht * o * (ONE - tc * tc)
                da[t, n, j] = dct * g * i * (ONE - i)
                da[t, n, H + j] = dct * c_prev[n, j] * f * (ONE - f)
                da[t, n, 2 * H + j] = dht * tc * o * (ONE - o)
                da[t, n, 3 * H + j] = dct * i * (ONE - g * g)
                dc_next[n, j] = dct * f
        np.dot(da[t], WhT, dh_next)
    dh0[:] = dh_next
    dc0[:] = dc_next


@njit(cache=True, fastmath=FAST)
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
