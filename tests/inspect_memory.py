"""The all-in-memory statistics inspect-cells computed before it streamed: every
state of a half at once, z-scored, then one matrix product per block. Slow and
obviously right: tests compare the streamed sums of charrnn/inspect/stream.py with
these (tests/test_inspect_stream.py)."""
import numpy as np

from charrnn.inspect import stats
from charrnn.inspect.stats import zscore
from charrnn.inspect.analyze import LAGS, PROBE_SHIFTS


def shift_null(Zblocks, f, offsets):
    """Null distribution of the best |r|: for each offset s, the max over every
    column of every block of |r| with f rolled by s. Zblocks: [(n, K)] z-scored;
    f: (n,). Returns (S,). Rolling keeps f's own autocorrelation, so a slowly
    varying feature gets the large chance correlations it really has."""
    n = len(f)
    zf = zscore(f)
    Fs = np.stack([np.roll(zf, s) for s in offsets], axis=1)    # (n, S)
    best = np.zeros(len(offsets), np.float32)
    for Z in Zblocks:
        np.maximum(best, np.abs(Z.T @ Fs).max(axis=0) / np.float32(n), out=best)
    return best


def pearson(x, y):
    """Columnwise r between x (n, J) and y (n, J), or of two vectors."""
    zx, zy = zscore(x), zscore(y)
    return (zx * zy).mean(axis=0)


def ridge_r(Xa, Ya, Xb, Yb, alpha=1e-2):
    """A linear probe: ridge regression of Ya (n_a, J) on Xa (n_a, D), inputs
    z-scored with half a's statistics, penalty alpha * n_a; returns r (J,) of its
    predictions with Yb on the other half."""
    mu, sd = Xa.mean(axis=0), Xa.std(axis=0)
    sd[sd < 1e-12] = 1.0
    Za = ((Xa - mu) / sd).astype(np.float32)           # float32 products, float64 solve
    Zb = ((Xb - mu) / sd).astype(np.float32)
    G = (Za.T @ Za).astype(np.float64) + alpha * len(Za) * np.eye(Za.shape[1])
    W = np.linalg.solve(G, (Za.T @ (Ya - Ya.mean(axis=0)).astype(np.float32)).astype(np.float64))
    return pearson(Zb @ W.astype(np.float32), Yb)


def scan(blocks, F, parts, lags=LAGS):
    """R[p, b, k]: (H, J) r of every unit of block b with every feature, at lag
    lags[k], on part p of the text. blocks: [(T, H)]; F: (T, J).

    The activations are never z-scored: the z-scored features sum to zero, so
    Za^T Zf = diag(1 / sd_a) A^T Zf, and sd_a at each lag comes from the part's
    sums minus the lag rows it drops (one pass over the block, not one per lag)."""
    R = np.empty((len(parts), len(blocks), len(lags), blocks[0].shape[1], F.shape[1]), np.float32)
    for p, sl in enumerate(parts):
        Zfs = [zscore(F[sl.start:sl.stop - lag]) for lag in lags]
        for b, a in enumerate(blocks):
            part = a[sl]
            s1 = part.sum(axis=0, dtype=np.float64)
            s2 = np.square(part, dtype=np.float64).sum(axis=0)
            for k, lag in enumerate(lags):
                n = len(part) - lag
                head = part[:lag].astype(np.float64)  # steps whose activation is paired with no feature
                mean = (s1 - head.sum(axis=0)) / n
                var = np.maximum((s2 - np.square(head).sum(axis=0)) / n - mean * mean, 0.0)
                sd = np.sqrt(var)
                scale = np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > 1e-6 * (1 + np.abs(mean)))
                R[p, b, k] = (scale[:, None] * (part[lag:].T @ Zfs[k])) / n
    return R


def probe_steps(parts, lags=LAGS):
    """The steps s of each part the probe reads: every lag pairs X[s] with F[s - lag]."""
    return [slice(sl.start + max(lags), sl.stop) for sl in parts]


def probe_targets(F, parts, lags=LAGS, offsets=()):
    """Per part, the probe's right-hand sides: F[s - lag] for each lag, (n, Λ J), then
    F[s] rolled by each offset within the part, (n, S J)."""
    out = []
    for st in probe_steps(parts, lags):
        Y = [F[st.start - lag:st.stop - lag] for lag in lags]
        Y += [np.roll(F[st], o % (st.stop - st.start), axis=0) for o in offsets]
        out.append(np.concatenate(Y, axis=1))
    return out


def probe_r(blocks, groups, F, parts, offsets=()):
    """r (Λ, J) of the best ridge probe over the groups of blocks, per lag, and
    (J, S) the best probe's r for F rolled by each offset. Every lag regresses
    F[s - lag] on X[s] over the same steps s, so one Gram matrix per group and half
    serves them all (lags and rolls stacked as right-hand sides)."""
    J, L = F.shape[1], len(LAGS)
    steps = probe_steps(parts)
    Ys = probe_targets(F, parts, LAGS, offsets)
    out = np.full(Ys[0].shape[1], -np.inf)
    for g in groups:
        X = np.concatenate([blocks[b] for b in g], axis=1)
        out = np.maximum(out, ridge_r(X[steps[0]], Ys[0], X[steps[1]], Ys[1]))
    return out[:L * J].reshape(L, J), out[L * J:].reshape(len(offsets), J).T


def controls(blocks, groups, F, parts, seed, n_shifts):
    """What a model's blocks give, as arrays: R (scan), probe (Λ, J), null (J, S) and
    the probe's null (J, S') (None without shifts)."""
    R = scan(blocks, F, parts)
    b_sl = parts[1]
    rng = np.random.default_rng(seed)
    offsets = stats.shifts(b_sl.stop - b_sl.start, n_shifts, rng) if n_shifts else []
    probe, probe_null = probe_r(blocks, groups, F, parts, offsets[:PROBE_SHIFTS])
    if not n_shifts:
        return R, probe, None, None
    Z = [zscore(a[b_sl]) for a in blocks]
    null = np.stack([shift_null(Z, F[b_sl, j], offsets) for j in range(F.shape[1])])
    return R, probe, null, probe_null


def saturation(rec, gates):
    """{(layer, gate): (left (H,), right (H,))}: the fractions of steps below 0.1 and
    above 0.9, from every step at once."""
    return {(l, g): ((rec[(l, g)] < 0.1).mean(axis=0), (rec[(l, g)] > 0.9).mean(axis=0))
            for l in range(rec.layers) for g in gates}


def bimodality(a):
    """Sarle's bimodality coefficient of the columns of a (n, K)."""
    n = a.shape[0]
    z = (a - a.mean(axis=0)) / np.maximum(a.std(axis=0), 1e-12)
    skew = (z ** 3).mean(axis=0)
    kurt = (z ** 4).mean(axis=0) - 3
    return (skew ** 2 + 1) / (kurt + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def persistence(a):
    """Lag-1 autocorrelation of the columns of a (n, K)."""
    z = (a - a.mean(axis=0)) / np.maximum(a.std(axis=0), 1e-12)
    return (z[1:] * z[:-1]).mean(axis=0)
