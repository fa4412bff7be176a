"""Kernels shared by all cells: the nonlinearity, the fused softmax/cross-entropy,
and the scatter-add that is the backward of a row gather (embedding or one-hot).

Dimensions: M = T*N rows (every character of a chunk), V vocabulary size.
"""
import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@njit(cache=True)
def softmax_xent(dlogits, logits, targets, scale):
    """Cross-entropy of the softmax of each row of logits against targets, fused.
    dlogits: (M, V) out, scale * d(loss)/d(logits), which is scale * (p - onehot);
    logits: (M, V); targets: (M,) ids. Returns the summed loss in nats (float64).
    dlogits may be logits itself (in place). The max is subtracted before exp,
    so no logit is large enough to overflow."""
    M, V = logits.shape
    total = 0.0
    for m in range(M):
        mx = logits[m, 0]
        for v in range(1, V):
            mx = max(mx, logits[m, v])
        s = 0.0
        for v in range(V):
            s += np.exp(logits[m, v] - mx)
        y = targets[m]
        total += np.log(s) - (logits[m, y] - mx)
        inv = 1.0 / s
        for v in range(V):
            dlogits[m, v] = scale * np.exp(logits[m, v] - mx) * inv
        dlogits[m, y] -= scale
    return total


@njit(cache=True)
def xent(logits, targets):
    """The summed cross-entropy alone, for evaluation: no gradient is written."""
    M, V = logits.shape
    total = 0.0
    for m in range(M):
        mx = logits[m, 0]
        for v in range(1, V):
            mx = max(mx, logits[m, v])
        s = 0.0
        for v in range(V):
            s += np.exp(logits[m, v] - mx)
        total += np.log(s) - (logits[m, targets[m]] - mx)
    return total


@njit(cache=True)
def scatter_add_rows(dW, ids, drows):
    """dW[ids[m]] += drows[m] for every m: the gradient of the gather W[ids].
    dW: (V, K); ids: (M,); drows: (M, K). Sequential, so repeated ids add up."""
    M, K = drows.shape
    for m in range(M):
        r = ids[m]
        for k in range(K):
            dW[r, k] += drows[m, k]
