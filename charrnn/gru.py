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
because r multiplies it. Memory per layer and chunk: gates T*N*3H (in place
of the input projections, and their gradients dax in place of them, as in lstm.py),
dah T*N*3H, ahn T*N*H (the term r multiplies, needed for dr), h T*N*H floats.

Each kernel computes one thread's share (threads.Share), streams s0..s1 and units
u0..u1; see lstm.py and threads.py for the two ways the work is split.
"""
import numpy as np
from numba import njit

from charrnn import threads
from charrnn.cell import Cell
from charrnn.layers import FAST, ONE, sigmoid, tanh
from charrnn.native import add_gate_columns, barrier, gate_columns
from charrnn.packed import mul, pack


@njit(cache=True, fastmath=FAST, error_model="numpy", inline="always")
def gru_cell(h, gates, ahn, a, bhn, h_prev, u0):
    """One stream, one step, U units from u0: h, ahn, bhn, h_prev (U,) those units'
    slices; gates (3H,) a whole row, the input projection in, the activated gates out
    (in place, see lstm.lstm_cell); a (3U,) this share's recurrent product.
    One loop a gate, over slices from 0 (see lstm.lstm_cell)."""
    U = h.shape[0]
    H = gates.shape[0] // 3
    r, z, n = gates[u0:u0 + U], gates[H + u0:H + u0 + U], gates[2 * H + u0:2 * H + u0 + U]
    ar, az, an = a[:U], a[U:2 * U], a[2 * U:3 * U]
    for u in range(U):
        r[u] = sigmoid(r[u] + ar[u])
    for u in range(U):
        z[u] = sigmoid(z[u] + az[u])
    for u in range(U):
        hn = an[u] + bhn[u]
        ahn[u] = hn
        nt = tanh(n[u] + r[u] * hn)
        n[u] = nt
        h[u] = (ONE - z[u]) * nt + z[u] * h_prev[u]


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def gru_forward(h, gates, ahn, Wh, bhn, h0, share):
    """h: (T, N, H) out; gates: (T, N, 3H), in: the input projections x Wx + b, out
    (in their place, as in lstm.py): the activated r, z, n; ahn: (T, N, H) out,
    ah_n + bhn; Wh: (H, 3H); bhn: (H,); h0: (N, H).
    The share's streams s0..s1 and units u0..u1."""
    ctx, s0, s1, u0, u1 = share
    T = gates.shape[0]
    Wp = pack(gate_columns(Wh, Wh.shape[0], u0, u1))
    a = np.empty((s1 - s0, 3 * (u1 - u0)), dtype=gates.dtype)
    for t in range(T):
        h_prev = h0 if t == 0 else h[t - 1]
        mul(h_prev[s0:s1], Wp, a)
        for n in range(s0, s1):
            gru_cell(h[t, n, u0:u1], gates[t, n], ahn[t, n, u0:u1], a[n - s0], bhn[u0:u1],
                     h_prev[n, u0:u1], u0)
        barrier(ctx)


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def gru_backward(gates, dah, db, dbhn, dh0, dh, ahn, h, h0, Wh, share):
    """gates: (T, N, 3H), in: the activated gates saved by gru_forward; out, in their
    place: dax, the gradient of x Wx + b. dah: (T, N, 3H) out, gradient of
    h_prev Wh (its n part is dax_n * r); db (N, 3H), dbhn (N, H): each stream's sums
    over T of dax and of dah's n part added to them (the gradients of b and bhn);
    dh0: (N, H) out; dh: (T, N, H) from above; ahn, h: saved by gru_forward;
    Wh: (H, 3H). The share's streams s0..s1 and units u0..u1."""
    ctx, s0, s1, u0, u1 = share
    dax = gates
    T, N, G = dax.shape
    H = G // 3
    U = u1 - u0
    WTp = pack(Wh[u0:u1].T)  # this share's columns of Wh^T (G, U)
    dh_next = np.zeros((s1 - s0, U), dtype=dax.dtype)
    for t in range(T - 1, -1, -1):
        for n in range(s0, s1):
            dx, dhh = dax[t, n], dah[t, n]
            h_prev = (h0[n] if t == 0 else h[t - 1, n])[u0:u1]
            dhn, dht, hn = dh_next[n - s0], dh[t, n, u0:u1], ahn[t, n, u0:u1]
            # each gate's slice is read, then its gradient written in its place
            dxr, dxz, dxn = dx[u0:u1], dx[H + u0:H + u1], dx[2 * H + u0:2 * H + u1]
            dh_r, dh_z, dh_n = dhh[u0:u1], dhh[H + u0:H + u1], dhh[2 * H + u0:2 * H + u1]
            for u in range(U):  # slices from 0: see lstm.lstm_cell
                r, z, nt = dxr[u], dxz[u], dxn[u]
                dhj = dht[u] + dhn[u]
                dan = dhj * (ONE - z) * (ONE - nt * nt)
                dar = dan * hn[u] * r * (ONE - r)
                daz = dhj * (h_prev[u] - nt) * z * (ONE - z)
                dxr[u] = dar
                dxz[u] = daz
                dxn[u] = dan
                dh_r[u] = dar
                dh_z[u] = daz
                dh_n[u] = dan * r
                dhn[u] = dhj * z  # the direct path z * h_prev
            add_gate_columns(db[n], dx, H, u0, u1)
            add_gate_columns(dbhn[n], dhh[2 * H:], H, u0, u1)
        barrier(ctx)  # the product reads every unit of dah[t]
        mul(dah[t][s0:s1], WTp, dh_next, True)  # added to the direct path's dhj * z
    dh0[s0:s1, u0:u1] = dh_next


def forward(xw, Wh, state, bhn):
    """One layer over a chunk (see cell.py); the gates replace xw in place."""
    T, N, G = xw.shape
    h, ahn = np.empty((T, N, G // 3), dtype=xw.dtype), np.empty((T, N, G // 3), dtype=xw.dtype)
    threads.recurrence(gru_forward, N, G // 3, G, h, xw, ahn, Wh, bhn, state[0])
    return h, {"gates": xw, "ahn": ahn, "h": h}, h[-1][None]


def backward(saved, dh, Wh, state):
    """One layer's gradients (see cell.py); dax replaces the saved gates in place."""
    dax = saved["gates"]
    T, N, G = dax.shape
    dah = np.empty_like(dax)
    dstate = np.empty_like(state)
    db = np.zeros((N, G), dtype=dax.dtype)  # per stream: no two threads share a row
    dbhn = np.zeros((N, G // 3), dtype=dax.dtype)
    threads.recurrence(gru_backward, N, G // 3, G, dax, dah, db, dbhn, dstate[0], dh, saved["ahn"],
                       saved["h"], state[0], Wh)
    return dax, dah, dstate, {"b": db.sum(axis=0), "bhn": dbhn.sum(axis=0)}


GRU = Cell("gru", gates=("r", "z", "n"), blocks=3, states=("h",), saves=("gates", "ahn", "h"),
           forward=forward, backward=backward, step=2, extra="bhn")
