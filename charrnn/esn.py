"""Echo state network (Jaeger 2001): a fixed random reservoir, only the readout trained.

Dimensions: T time steps, N streams, V vocabulary, E embedding size (0: one-hot),
H reservoir units, M = T*N characters of a chunk, K = H + 1 (states and a 1 for the bias).

    z = tanh(x Wx + b + h_prev Wh)          Wx, b, Wh fixed, drawn once
    h = (1 - a) h_prev + a z                a = L0.leak (H,), the leak rate
    logits = h out.W + out.b                the readout, the only weights trained

Wh is sparse (about FANIN nonzeros per column) and scaled to a chosen spectral
radius; Wx and b are U(-s, s), s the input scale. The vanilla RNN's kernel with a
leak added; the reservoir is stored densely as L0.Wh, so checkpoints, sampling and
inspect-cells read it as any other layer's weights.

The readout is trained either by the optimizer, with no backpropagation through
time (the gradient stops at h: a step is a forward pass and one GEMM), or in closed
form: ridge regression of the one-hot next character on [h, 1], from the sums
A = [h,1]^T [h,1] (K, K) and B^T = Y^T [h,1] (V, K) over the chunks read so far,
    W = (A/M + ridge * I') \\ (B/M),   I' the identity without the bias's 1,
then multiplied by the one scalar beta that minimises the cross-entropy of the last
chunk (the least-squares fit estimates probabilities; softmax needs log-odds).
"""
from dataclasses import dataclass

import numpy as np
from numba import njit

from charrnn import CharrnnError, threads
from charrnn.cell import Cell
from charrnn.layers import FAST, ONE, scatter_add_rows, tanh, xent
from charrnn.native import barrier, gate_columns
from charrnn.packed import mul, pack

FANIN = 10  # nonzero recurrent weights per unit, on average (Jaeger's sparse reservoirs)


@dataclass(frozen=True)
class Reservoir:
    spectral_radius: float = 0.95  # largest |eigenvalue| of Wh
    leak: float = 0.5              # a: the share of the new value in each step
    input_scale: float = 1.0       # s: Wx and b are U(-s, s)

    @classmethod
    def of_run(cls, train):
        """The settings a run's saved "train" dict drew its reservoir with (numbers only;
        what is missing or damaged keeps its default)."""
        return cls(**{k: float(v) for k, v in train.items()
                      if k in cls.__dataclass_fields__ and type(v) in (int, float) and v > 0})


def init_reservoir(p, rng, res):
    """Draws L0.Wx, L0.Wh, L0.b and sets L0.leak in the named views p; the readout
    starts at zero (the loss at the start is ln V exactly)."""
    Wh = p["L0.Wh"]
    H = Wh.shape[0]
    keep = rng.random((H, H)) < min(1.0, FANIN / H)
    Wh[:] = np.where(keep, rng.uniform(-1, 1, (H, H)), 0.0)
    radius = np.abs(np.linalg.eigvals(Wh.astype(np.float64))).max()
    if radius > 0:  # a nilpotent draw (tiny H) has no radius to scale
        Wh *= res.spectral_radius / radius
    s = res.input_scale
    p["L0.Wx"][:] = rng.uniform(-s, s, p["L0.Wx"].shape)
    p["L0.b"][:] = rng.uniform(-s, s, p["L0.b"].shape)
    p["L0.leak"][:] = res.leak
    if "embed.W" in p:
        p["embed.W"][:] = rng.standard_normal(p["embed.W"].shape)
    p["out.W"][:] = 0
    p["out.b"][:] = 0


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def esn_forward(h, xw, Wh, leak, h0, share):
    """h: (T, N, H) out; xw: (T, N, H) input projections with bias, turned into z in
    place (the embedding's gradient needs it); Wh: (H, H); leak: (H,); h0: (N, H).
    The share's (threads.Share) streams s0..s1 and units u0..u1."""
    ctx, s0, s1, u0, u1 = share
    T, N, H = xw.shape
    Wp = pack(gate_columns(Wh, H, u0, u1))
    a = np.empty((s1 - s0, u1 - u0), dtype=xw.dtype)
    for t in range(T):
        prev = h0 if t == 0 else h[t - 1]
        mul(prev[s0:s1], Wp, a)
        for n in range(s0, s1):
            esn_cell(h[t, n, u0:u1], a[n - s0], xw[t, n, u0:u1], prev[n, u0:u1], leak[u0:u1])
        barrier(ctx)


@njit(cache=True, fastmath=FAST, error_model="numpy", inline="always")
def esn_cell(h, a, xw, h_prev, leak):
    """One stream, one step, U units: h, a, xw, h_prev, leak (U,); xw becomes z.
    h may be h_prev itself (the sampler's in-place step): each unit reads before it writes."""
    for u in range(h.shape[0]):
        z = tanh(a[u] + xw[u])
        xw[u] = z
        h[u] = (ONE - leak[u]) * h_prev[u] + leak[u] * z


def forward(xw, Wh, state, leak):
    """The reservoir over a chunk (see cell.py); z replaces xw in place."""
    T, N, H = xw.shape
    h = np.empty((T, N, H), dtype=xw.dtype)
    threads.recurrence(esn_forward, N, H, H, h, xw, Wh, leak, state[0])
    return h, {"z": xw}, h[-1][None]


# no backward: the gradient stops at h (embedding_grad is all the input side gets)
ESN = Cell("esn", gates=(), blocks=1, states=("h",), saves=("z",), forward=forward, backward=None,
           step=3, extra="leak")


def embedding_grad(p, g, dh, z, ids, folded):
    """Adds the gradient of the embedding through this step's z alone (h_prev held
    fixed: no backpropagation through time) to g["embed.W"]. dh: (T, N, H) from the
    readout; z: (T, N, H) from esn_forward; folded: model._folds_embedding's answer."""
    da = (dh * p["L0.leak"] * (1 - z * z)).reshape(-1, dh.shape[2])  # dz * tanh'
    M = da.shape[0]
    if folded:  # the same sum, the gradient rows of each character first
        dtable = np.zeros((p["embed.W"].shape[0], da.shape[1]), dtype=da.dtype)
        scatter_add_rows(dtable, ids.reshape(M), da)
        g["embed.W"] += dtable @ p["L0.Wx"].T
    else:
        scatter_add_rows(g["embed.W"], ids.reshape(M), da @ p["L0.Wx"].T)


# -- the readout in closed form ------------------------------------------------------

def with_ones(S):
    """[S, 1]: (M, H) -> (M, K), in float64."""
    return np.hstack([S.astype(np.float64), np.ones((S.shape[0], 1))])


def ridge_solve(A, BT, ridge):
    """The ridge readout (K, V) from the sums A (K, K) and BT (V, K); A[-1, -1] counts
    the characters M. The bias (the last row) is not penalised."""
    M = A[-1, -1]
    reg = np.full(A.shape[0], ridge)
    reg[-1] = 0.0
    return np.linalg.solve(A / M + np.diag(reg), BT.T / M)


def fit_scale(Z, targets, iters=30):
    """The beta > 0 minimising the mean cross-entropy of softmax(beta Z) against
    targets, Z (M, V) float64: Newton's method on a convex function of one variable."""
    beta, rows = 1.0, np.arange(len(targets))
    for _ in range(iters):
        q = beta * Z
        q = np.exp(q - q.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        mean = (q * Z).sum(axis=1)
        d1 = (mean - Z[rows, targets]).mean()
        d2 = ((q * Z * Z).sum(axis=1) - mean * mean).mean()
        if d2 <= 1e-300:
            break
        step = d1 / d2
        beta = max(beta - step, beta / 10)  # stays positive
        if abs(step) < 1e-10 * beta:
            break
    return beta


class Ridge:
    """The running sums of a --readout ridge run and the readout they give.
    Its arrays A and BT are saved in checkpoints (ridge/A, ridge/BT), so a run resumes."""

    def __init__(self, H, V, ridge, arrays=None):
        self.ridge = ridge
        self.A = np.zeros((H + 1, H + 1)) if arrays is None else arrays[0].astype(np.float64)
        self.BT = np.zeros((V, H + 1)) if arrays is None else arrays[1].astype(np.float64)
        self.last = None  # (S1 (M, K), targets (M,)) of the latest chunk, to fit beta on
        self.stale = False

    def add(self, S, targets):
        """Counts the states S (M, H) with the characters that follow them (M,)."""
        S1 = with_ones(S)
        self.A += S1.T @ S1
        scatter_add_rows(self.BT, targets.reshape(-1), S1)
        self.last, self.stale = (S1, targets.reshape(-1)), True

    def solve_into(self, p):
        """Writes the readout into out.W and out.b, if chunks came since the last time."""
        if not self.stale:
            return
        try:
            W = ridge_solve(self.A, self.BT, self.ridge)
        except np.linalg.LinAlgError:
            raise CharrnnError("the reservoir's states are linearly dependent, so the ridge "
                               "readout has no unique solution: pass a --ridge above 0")
        S1, y = self.last
        W *= fit_scale(S1 @ W, y)
        p["out.W"][:] = W[:-1]
        p["out.b"][:] = W[-1]
        self.stale = False


def ridge_step(cfg, p, ridge, ids, targets, state):
    """One chunk of a ridge run: the reservoir's states counted into ridge.
    Returns the chunk's mean loss under the readout solved last, and the new state."""
    from charrnn.model import forward
    logits, caches, new_state = forward(cfg, p, ids, state)
    ridge.add(caches[-1][1].reshape(ids.size, -1), targets)
    return xent(logits, targets.reshape(-1)) / ids.size, new_state
