"""The statistics of analyze.py accumulated as the text streams through the model:
sums and cross-products per chunk, so no state is kept beyond the chunk.

Dimensions: T characters, c rows of a chunk, H units of a block, J features, Λ lags,
S shifts of the null, D probe inputs of a layer (2H or H), Q probe targets.

Every chunk lies inside one half (part p). For every block b, lag k:
    n, sums of a and a^2 over the rows t >= start + lag of the part, and
    sum a[t] zf_k[t - lag]   (zf_k: the feature z-scored over the rows it pairs with)
which give r exactly as scan() does over the whole half: the z-scored feature sums
to 0, so the activation's mean drops out. The activations are shifted by the first
chunk's means first (ref), so float32 products do not subtract large means.
The null needs sum a[t] zf(t - o mod n) for every offset o on the second half only.
The probe needs, on the first half, X'^T X' and X'^T Y per layer (X' = X - ref,
Y centred by its known means); its ridge weights W are solved at the half, and on
the second half the predictions X W stream into sums of pred, pred^2 and pred Y.
"""
import numpy as np

ALPHA = 1e-2   # ridge penalty per step, as stats.ridge_r


def _centred(hyps, rows, mean, inv):
    """(len(rows), J) float32: the features at rows, centred and scaled."""
    F = np.stack([h.values[rows] for h in hyps], axis=1)
    return ((F - mean) * inv).astype(np.float32)


def _moments(hyps, a, b):
    """Mean and population sd (J,) of each feature over text[a:b], float64."""
    return (np.array([h.values[a:b].mean() for h in hyps]),
            np.array([h.values[a:b].std() for h in hyps]))


class Stream:
    """The sums for one model. names: [(layer, state)] of the blocks; groups: block
    indices of each layer's probe inputs; parts: the two halves; offsets: the null's
    circular shifts on the second half (empty: no null); probe_offsets: the probe's."""

    def __init__(self, names, groups, hyps, parts, lags, offsets=(), probe_offsets=()):
        self.names, self.groups, self.hyps, self.parts, self.lags = names, groups, hyps, parts, lags
        self.offsets, self.probe_offsets = np.asarray(offsets, int), np.asarray(probe_offsets, int)
        J, L, B = len(hyps), len(lags), len(names)
        self.zf = []                       # per part and lag: (mean, 1/sd) of the paired features
        for sl in parts:
            per = []
            for lag in lags:
                mean, sd = _moments(hyps, sl.start, sl.stop - lag)
                per.append((mean, np.divide(1.0, sd, out=np.zeros_like(sd),
                                            where=sd > 1e-12 * (1 + np.abs(mean)))))
            self.zf.append(per)
        self.ref = [None] * B
        self.n = np.zeros((2, L))
        self.af = None                     # allocated at the first chunk, which gives H
        self.null = None
        self.probe = _Probe(groups, hyps, parts, lags, self.probe_offsets)

    def add(self, p, t0, states):
        """states: [(c, H)] float32 per block, rows t0.. of part p."""
        sl = self.parts[p]
        t1 = t0 + len(states[0])
        if self.af is None:
            self._allocate(states)
        for k, lag in enumerate(self.lags):
            lo = max(t0, sl.start + lag)
            if lo >= t1:
                continue
            self.n[p, k] += t1 - lo
            mean, inv = self.zf[p][k]
            zf = _centred(self.hyps, np.arange(lo - lag, t1 - lag), mean, inv)      # (c', J)
            for b, a in enumerate(states):
                x = a[lo - t0:] - self.ref[b]
                self.S1[p, b, k] += x.sum(axis=0, dtype=np.float64)
                self.S2[p, b, k] += np.square(x, dtype=np.float64).sum(axis=0)
                self.af[p, b, k] += x.T @ zf
        if p == 1 and len(self.offsets):
            self._add_null(t0, t1, states)
        self.probe.add(p, t0, [s - r for s, r in zip(states, self.ref)])

    def _allocate(self, states):
        B, L, J, H = len(states), len(self.lags), len(self.hyps), states[0].shape[1]
        self.ref = [a.mean(axis=0) for a in states]
        self.S1, self.S2 = np.zeros((2, B, L, H)), np.zeros((2, B, L, H))
        self.af = np.zeros((2, B, L, H, J))
        if len(self.offsets):
            self.null = np.zeros((B, H, J * len(self.offsets)), np.float32)

    def _add_null(self, t0, t1, states):
        """sum over rows of a[t] zf(t - o mod n), every offset o, features major."""
        sl = self.parts[1]
        n = sl.stop - sl.start
        mean, inv = self.zf[1][0]
        idx = sl.start + (np.arange(t0 - sl.start, t1 - sl.start)[:, None] - self.offsets) % n
        Fs = np.stack([(h.values[idx] - mean[j]) * inv[j] for j, h in enumerate(self.hyps)], 1)
        Fs = Fs.reshape(len(idx), -1).astype(np.float32)                    # (c, J * S)
        for b, a in enumerate(states):
            self.null[b] += (a - self.ref[b]).T @ Fs

    def half_done(self):
        """Called between the halves: the probe solves its weights."""
        self.probe.solve()

    def scan(self, p):
        """R[b, k]: (H, J) r of every unit with every feature at each lag on part p,
        as a scan over the whole part would give."""
        n = self.n[p][None, :, None]
        mean = self.S1[p] / n
        sd = np.sqrt(np.maximum(self.S2[p] / n - mean * mean, 0.0))
        mean = mean + np.stack(self.ref)[:, None, :]
        scale = np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > 1e-6 * (1 + np.abs(mean)))
        return (scale[..., None] * self.af[p] / n[..., None]).astype(np.float32)

    def shift_null(self):
        """(J, S): the best |r| over all units of all blocks for each rolled feature."""
        n = self.n[1, 0]
        mean = self.S1[1, :, 0] / n
        sd = np.sqrt(np.maximum(self.S2[1, :, 0] / n - mean * mean, 0.0))
        mean = mean + np.stack(self.ref)
        scale = np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > 1e-12 * (1 + np.abs(mean)))
        best = np.abs(self.null * scale[:, :, None]).max(axis=(0, 1)) / n
        return best.reshape(len(self.hyps), len(self.offsets))


class _Probe:
    """Ridge probes over each layer's memory: fitted on the first half from sums, and
    scored on the second from streamed predictions. Targets: F[s - lag] for each lag,
    then F[s] rolled by each probe offset within the part, over the steps s of
    analyze.probe_steps."""

    def __init__(self, groups, hyps, parts, lags, offsets):
        self.groups, self.hyps, self.lags, self.offsets = groups, hyps, lags, offsets
        self.steps = [slice(sl.start + max(lags), sl.stop) for sl in parts]
        self.ymean, self.yvar = [], []
        for st in self.steps:           # a rolled feature has the moments of the feature
            m = [_moments(hyps, st.start - lag, st.stop - lag) for lag in lags]
            m += [_moments(hyps, st.start, st.stop)] * len(offsets)
            self.ymean.append(np.concatenate([mean for mean, _ in m]))
            self.yvar.append(np.concatenate([sd * sd for _, sd in m]))
        G = len(groups)
        self.n = 0
        self.xs, self.xx, self.xy = [0.0] * G, [0.0] * G, [0.0] * G
        self.W = self.mu = self.sd = None
        self.pred = [np.zeros((3, len(self.ymean[1]))) for _ in groups]   # sums p, p^2, p y

    def targets(self, st, a, b):
        """(b - a, Q) float64: the probe's targets at steps a..b of the part's steps st."""
        s = np.arange(a, b)
        Y = [np.stack([h.values[s - lag] for h in self.hyps], 1) for lag in self.lags]
        n = st.stop - st.start
        for o in self.offsets:
            rolled = st.start + (s - st.start - o) % n
            Y.append(np.stack([h.values[rolled] for h in self.hyps], 1))
        return np.concatenate(Y, axis=1)

    def add(self, p, t0, states):
        st = self.steps[p]
        lo, t1 = max(t0, st.start), t0 + len(states[0])
        if lo >= t1:
            return
        Yc = (self.targets(st, lo, t1) - self.ymean[p]).astype(np.float32)
        for g, blocks in enumerate(self.groups):
            X = np.concatenate([states[b][lo - t0:] for b in blocks], axis=1)
            if p == 0:
                self.xs[g] = self.xs[g] + X.sum(axis=0, dtype=np.float64)
                self.xx[g] = self.xx[g] + (X.T @ X).astype(np.float64)
                self.xy[g] = self.xy[g] + (X.T @ Yc).astype(np.float64)
            else:
                P = ((X - self.mu[g]) / self.sd[g]).astype(np.float32) @ self.W[g]   # (c, Q)
                self.pred[g] += [P.sum(axis=0, dtype=np.float64),
                                 np.square(P, dtype=np.float64).sum(axis=0),
                                 (P * Yc).sum(axis=0, dtype=np.float64)]
        if p == 0:
            self.n += t1 - lo

    def solve(self):
        """Ridge weights per layer from the first half's sums, inputs z-scored."""
        n = self.n
        self.mu, self.sd, self.W = [], [], []
        for g in range(len(self.groups)):
            mu = self.xs[g] / n
            cov = self.xx[g] / n - np.outer(mu, mu)
            sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
            sd[sd < 1e-12] = 1.0
            G = n * cov / np.outer(sd, sd) + ALPHA * n * np.eye(len(sd))
            W = np.linalg.solve(G, self.xy[g] / sd[:, None])
            self.mu.append(mu.astype(np.float32))
            self.sd.append(sd.astype(np.float32))
            self.W.append(W.astype(np.float32))

    def r(self):
        """(Q,) the best layer's held-out r per target."""
        st = self.steps[1]
        n = st.stop - st.start
        out = np.full(len(self.yvar[1]), -np.inf)
        for s1, s2, sy in self.pred:
            var = s2 / n - (s1 / n) ** 2
            den = np.sqrt(var * self.yvar[1])
            r = np.divide(sy / n, den, out=np.zeros_like(den), where=den > 1e-12)
            out = np.maximum(out, r)
        return out
