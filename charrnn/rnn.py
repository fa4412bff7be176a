"""Vanilla RNN cell (Elman, as in min-char-rnn): forward and backward over a chunk.

Dimensions: T time steps, N streams (batch), H hidden units, G = H.

    h = tanh(x Wx + b + h_prev Wh)

min-char-rnn's Wxh, Whh, bh are Wx, Wh, b here. The input projection of all
T steps is one GEMM done by the caller (model.py), which also forms
dWh = H_prev^T dA as one GEMM; only the recurrence is here.
Memory per layer and chunk: h T*N*H floats.

Each kernel computes one thread's share (threads.Share), streams s0..s1 and units
u0..u1; see lstm.py and threads.py for the two ways the work is split.
"""
import numpy as np
from numba import njit

from charrnn import threads
from charrnn.cell import Cell
from charrnn.layers import FAST, ONE, tanh
from charrnn.native import add_gate_columns, barrier, gate_columns
from charrnn.packed import mul, pack


@njit(cache=True, fastmath=FAST, error_model="numpy", inline="always")
def rnn_cell(h, a, xw):
    """One stream, one step, U units: h, a, xw (U,) (slices from 0: see lstm.lstm_cell)."""
    for u in range(h.shape[0]):
        h[u] = tanh(a[u] + xw[u])


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def rnn_forward(h, xw, Wh, h0, share):
    """h: (T, N, H) out; xw: (T, N, H) input projections with bias;
    Wh: (H, H); h0: (N, H). The share's streams s0..s1 and units u0..u1."""
    ctx, s0, s1, u0, u1 = share
    T, N, H = xw.shape
    Wp = pack(gate_columns(Wh, H, u0, u1))
    a = np.empty((s1 - s0, u1 - u0), dtype=xw.dtype)
    for t in range(T):
        mul(h0[s0:s1] if t == 0 else h[t - 1][s0:s1], Wp, a)
        for n in range(s0, s1):
            rnn_cell(h[t, n, u0:u1], a[n - s0], xw[t, n, u0:u1])
        barrier(ctx)


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def rnn_backward(da, db, dh0, dh, h, Wh, share):
    """da: (T, N, H) out, gradient of the pre-activations (min-char-rnn's dhraw);
    db: (N, H), each stream's sum over T of da added to it; dh0: (N, H) out;
    dh: (T, N, H) gradient from above; h: saved by rnn_forward; Wh: (H, H).
    The share's streams s0..s1 and units u0..u1."""
    ctx, s0, s1, u0, u1 = share
    T, N, H = da.shape
    U = u1 - u0
    WTp = pack(Wh[u0:u1].T)  # this share's columns of Wh^T (H, U)
    dh_next = np.zeros((s1 - s0, U), dtype=da.dtype)  # min-char-rnn's dhnext
    for t in range(T - 1, -1, -1):
        for n in range(s0, s1):
            d, hr, dhr, dhn = da[t, n, u0:u1], h[t, n, u0:u1], dh[t, n, u0:u1], dh_next[n - s0]
            for u in range(U):
                d[u] = (dhr[u] + dhn[u]) * (ONE - hr[u] * hr[u])
            add_gate_columns(db[n], da[t, n], H, u0, u1)
        barrier(ctx)  # the product reads every unit of da[t]
        mul(da[t][s0:s1], WTp, dh_next)
    dh0[s0:s1, u0:u1] = dh_next


def forward(xw, Wh, state, extra=None):
    """One layer over a chunk (see cell.py)."""
    T, N, H = xw.shape
    h = np.empty((T, N, H), dtype=xw.dtype)
    threads.recurrence(rnn_forward, N, H, H, h, xw, Wh, state[0])
    return h, {"h": h}, h[-1][None]


def backward(saved, dh, Wh, state):
    """One layer's gradients (see cell.py)."""
    h = saved["h"]
    T, N, H = h.shape
    da = np.empty_like(h)
    dstate = np.empty_like(state)
    db = np.zeros((N, H), dtype=h.dtype)  # per stream: no two threads share a row
    threads.recurrence(rnn_backward, N, H, H, da, db, dstate[0], dh, h, Wh)
    return da, da, dstate, {"b": db.sum(axis=0)}


RNN = Cell("rnn", gates=(), blocks=1, states=("h",), saves=("h",), forward=forward,
           backward=backward, step=0)
