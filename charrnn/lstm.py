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
the kernels here do, in packed.py's GEMM (Wh packed once per call). The caller
also forms dWh = H_prev^T dA as one GEMM.
Memory per layer and chunk: gates T*N*4H + c T*N*H + h T*N*H floats: the gates
are computed in place of the input projections, and their gradients in place of the
gates (one array of T*N*4H where there were three: the cells stream less memory).

Each kernel computes one thread's share (threads.Share): streams s0..s1 and units
u0..u1, where threads.py splits either the streams (each thread on its own, no
waiting) or the units (all streams; the threads meet at a barrier after every step,
because the next product needs every unit of h). a holds the share's columns of
h_prev Wh gate by gate: a[:, q*U + u] is gate q of unit u0 + u.
"""
import numpy as np
from numba import njit

from charrnn import threads
from charrnn.cell import Cell
from charrnn.layers import FAST, ONE, sigmoid, tanh
from charrnn.native import add_gate_columns, barrier, gate_columns
from charrnn.packed import mul, pack


@njit(cache=True, fastmath=FAST, error_model="numpy", inline="always")
def lstm_cell(h, c, gates, a, c_prev, u0):
    """One stream, one step, U units from u0: h, c, c_prev (U,) those units' slices;
    gates (4H,) a whole row, the input projection in, the activated gates out (in
    place: one array read and written at the same index vectorizes, where two that
    may overlap are checked first); a (4U,) this share's recurrent product. Every
    loop runs over slices from 0, so numba can drop its negative-index checks, and
    over few arrays, so LLVM vectorizes it (offset indices such as gates[q*H + u0 + u]
    kept both from happening): one loop a gate."""
    U = h.shape[0]
    H = gates.shape[0] // 4
    i, f = gates[u0:u0 + U], gates[H + u0:H + u0 + U]
    o, g = gates[2 * H + u0:2 * H + u0 + U], gates[3 * H + u0:3 * H + u0 + U]
    ai, af, ao, ag = a[:U], a[U:2 * U], a[2 * U:3 * U], a[3 * U:4 * U]
    for u in range(U):
        i[u] = sigmoid(i[u] + ai[u])
    for u in range(U):
        f[u] = sigmoid(f[u] + af[u])
    for u in range(U):
        o[u] = sigmoid(o[u] + ao[u])
    for u in range(U):
        g[u] = tanh(g[u] + ag[u])
    for u in range(U):
        ct = f[u] * c_prev[u] + i[u] * g[u]
        c[u] = ct
        h[u] = o[u] * tanh(ct)


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def lstm_forward(h, c, gates, Wh, h0, c0, share):
    """h, c: (T, N, H) out; gates: (T, N, 4H), in: the input projections with their
    bias, x Wx + b; out: the activated gates i, f, o, g. Wh: (H, 4H); h0, c0: (N, H).
    Writes the share's streams s0..s1 and units u0..u1 only."""
    ctx, s0, s1, u0, u1 = share
    T = gates.shape[0]
    Wp = pack(gate_columns(Wh, Wh.shape[0], u0, u1))
    a = np.empty((s1 - s0, 4 * (u1 - u0)), dtype=gates.dtype)  # nothing is allocated per step
    for t in range(T):
        mul(h0[s0:s1] if t == 0 else h[t - 1][s0:s1], Wp, a)
        for n in range(s0, s1):
            c_prev = c0[n] if t == 0 else c[t - 1, n]
            lstm_cell(h[t, n, u0:u1], c[t, n, u0:u1], gates[t, n], a[n - s0], c_prev[u0:u1], u0)
        barrier(ctx)


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def lstm_backward(gates, db, dh0, dc0, dh, c, c0, Wh, share):
    """gates: (T, N, 4H), in: the activated gates saved by lstm_forward; out, in their
    place: da, the gradient of the pre-activations (serves as dxw and for dWh).
    db: (N, 4H), each stream's sum over T of da added to it (the bias gradient, summed
    here while da is in cache). dh0, dc0: (N, H) out, gradient of the initial state.
    dh: (T, N, H) gradient of the loss with respect to each h[t] from above (not
    counting the recurrence); c: saved by lstm_forward; Wh: (H, 4H).
    The share's streams s0..s1 and units u0..u1 only."""
    ctx, s0, s1, u0, u1 = share
    da = gates
    T, N, G = da.shape
    H = G // 4
    U = u1 - u0
    WTp = pack(Wh[u0:u1].T)  # this share's columns of Wh^T (G, U)
    dh_next = np.zeros((s1 - s0, U), dtype=da.dtype)  # carried back through h_prev Wh
    dc_next = np.zeros((s1 - s0, U), dtype=da.dtype)  # carried back through f * c_prev
    for t in range(T - 1, -1, -1):
        for n in range(s0, s1):
            d = da[t, n]
            c_prev = (c0[n] if t == 0 else c[t - 1, n])[u0:u1]
            dhn, dcn, ct, dht = dh_next[n - s0], dc_next[n - s0], c[t, n, u0:u1], dh[t, n, u0:u1]
            # each gate's slice is read, then its gradient written in its place
            di, df = d[u0:u1], d[H + u0:H + u1]
            do, dg = d[2 * H + u0:2 * H + u1], d[3 * H + u0:3 * H + u1]
            for u in range(U):  # slices from 0: see lstm_cell
                i, f, o, g = di[u], df[u], do[u], dg[u]
                tc = tanh(ct[u])
                dhj = dht[u] + dhn[u]
                dcj = dcn[u] + dhj * o * (ONE - tc * tc)
                di[u] = dcj * g * i * (ONE - i)
                df[u] = dcj * c_prev[u] * f * (ONE - f)
                do[u] = dhj * tc * o * (ONE - o)
                dg[u] = dcj * i * (ONE - g * g)
                dcn[u] = dcj * f
            add_gate_columns(db[n], d, H, u0, u1)
        barrier(ctx)  # the product below reads every unit's columns of da[t]
        mul(da[t][s0:s1], WTp, dh_next)
    dh0[s0:s1, u0:u1] = dh_next
    dc0[s0:s1, u0:u1] = dc_next


def forward(xw, Wh, state, extra=None):
    """One layer over a chunk (see cell.py); the gates replace xw in place."""
    T, N, G = xw.shape
    h, c = np.empty((T, N, G // 4), dtype=xw.dtype), np.empty((T, N, G // 4), dtype=xw.dtype)
    threads.recurrence(lstm_forward, N, G // 4, G, h, c, xw, Wh, state[0], state[1])
    return h, {"gates": xw, "c": c}, np.stack([h[-1], c[-1]])


def backward(saved, dh, Wh, state):
    """One layer's gradients (see cell.py); da replaces the saved gates in place."""
    da = saved["gates"]
    T, N, G = da.shape
    dstate = np.empty_like(state)
    db = np.zeros((N, G), dtype=da.dtype)  # per stream: no two threads share a row
    threads.recurrence(lstm_backward, N, G // 4, G, da, db, dstate[0], dstate[1], dh, saved["c"],
                       state[1], Wh)
    return da, da, dstate, {"b": db.sum(axis=0)}


LSTM = Cell("lstm", gates=("i", "f", "o", "g"), blocks=4, states=("h", "c"), saves=("gates", "c"),
            forward=forward, backward=backward, step=1)
