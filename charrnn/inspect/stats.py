"""The statistics: correlation as one matrix product, AUC, the circular shifts of
the null and the locality baseline (the streamed sums are in stream.py).

Dimensions: n time steps of one half of the text, K columns of activations (one
per unit of a block), J features, S random shifts, D probe inputs.

Pearson r of every column of A with every column of F is one product of
z-scored columns,  r = Za^T Zf / n  (Za = (A - mean) / std over time), and for a
binary feature it is the point-biserial correlation. A lag k pairs the
activation at t + k with the feature at t: the cell may register a character
k steps after reading it.
"""
import numpy as np


def zscore(a):
    """Columns of a (n, K) or (n,) centred and scaled to unit variance, float32;
    a constant column becomes 0, so its r with anything is 0."""
    a = np.asarray(a)
    mu = a.mean(axis=0, dtype=np.float64)
    sd = a.std(axis=0, dtype=np.float64)
    scale = np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > 1e-12 * (1 + np.abs(mu)))
    return ((a - mu) * scale).astype(np.float32)


def corr(A, F, lag=0):
    """r[k, j] between A[t + lag, k] and F[t, j]: (K, J). A: (n, K), F: (n, J)."""
    n = len(A) - lag
    return zscore(A[lag:]).T @ zscore(F[:n]) / np.float32(n)


def auc(scores, labels):
    """P(score of a positive > score of a negative), a tie counting 1/2: the
    Mann-Whitney U over n1 n0, from average ranks. nan without both classes."""
    pos = np.asarray(labels).astype(bool)
    n1 = int(pos.sum())
    n0 = len(pos) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = average_ranks(scores)
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))




def average_ranks(x):
    """Ranks 1..n of x, ties sharing the mean of their ranks (scipy's rankdata),
    in numpy: importing scipy.stats would cost more memory than the analysis."""
    x = np.asarray(x)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.concatenate([[True], xs[1:] != xs[:-1]]))   # first of each tie group
    ends = np.append(starts[1:], len(x))
    mean_rank = (starts + 1 + ends) / 2.0                                  # mean of ranks start+1..end
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def shifts(n, count, rng):
    """count random circular shifts of a series of n steps, at least n/10 from 0."""
    lo = max(1, n // 10)
    return rng.integers(lo, max(lo + 1, n - lo), size=count)


def p_value(null, r):
    """(1 + #{null >= |r|}) / (1 + S): never 0, at best 1 / (S + 1)."""
    return (1 + int(np.sum(null >= abs(r)))) / (1 + len(null))


def pearson(x, y):
    """Columnwise r between x (n, J) and y (n, J), or of two vectors."""
    zx, zy = zscore(x), zscore(y)
    return (zx * zy).mean(axis=0)


def context_key(ids, k, lag=0):
    """(T,) uint64: a 64-bit hash of the k characters ending at t + lag, for every t
    (positions before the start or past the end read as a sentinel)."""
    ids = np.asarray(ids, np.int64)
    T = len(ids)
    padded = np.concatenate([np.full(k, -1), ids, np.full(lag, -1)]) + 2  # (k+T+lag,)
    key = np.zeros(T, np.uint64)
    P = np.uint64(1_000_003)
    with np.errstate(over="ignore"):
        for m in range(1, k + 1):
            # the character m-1 before t + lag sits at k + t + lag - (m - 1)
            key *= P
            key += padded[k + lag - m + 1: k + lag - m + 1 + T].astype(np.uint64)
    return key


def local_r(ids, cols, half_a, half_b, width=8, lag=0, min_count=2):
    """The locality baseline: how well the last `width` characters alone predict
    each feature, held out. cols: the J features, each (T,). On half a, the mean of
    a feature for each context of k characters, k = width..0; on half b, the mean
    of the longest context seen at least min_count times (k = 0 is the overall
    mean). Returns r (J,) on half b. One context length's keys at a time: nine
    (T,) hashes at once would be the largest arrays of inspect-cells."""
    pred = np.zeros((half_b.stop - half_b.start, len(cols)), np.float32)
    done = np.zeros(len(pred), bool)
    for k in range(width, -1, -1):
        key = context_key(ids, k, lag)
        uniq, inv = np.unique(key[half_a], return_inverse=True)
        counts = np.bincount(inv, minlength=len(uniq))
        kb = key[half_b]
        pos = np.minimum(np.searchsorted(uniq, kb), len(uniq) - 1)
        hit = (uniq[pos] == kb) & (counts[pos] >= min_count) & ~done
        if hit.any():
            for j, y in enumerate(cols):
                sums = np.bincount(inv, weights=y[half_a], minlength=len(uniq))
                pred[hit, j] = sums[pos[hit]] / counts[pos[hit]]
            done |= hit
    return np.array([pearson(pred[:, j], y[half_b]) for j, y in enumerate(cols)])
