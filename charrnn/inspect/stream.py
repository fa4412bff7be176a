"""The statistics of analyze.py accumulated as the text streams through the model:
sums and cross-products per chunk, so no state is kept beyond the chunk.

Dimensions: T characters, c rows of a chunk, H units of a block, J features, Λ lags,
S shifts of the null, D probe inputs of a layer (2H or H), Q probe targets.

Every chunk lies inside one half (part p). For every block b, lag k:
    n, sums of a and a^2 over the rows t >= start + lag of the part, and
    sum a[t] zf_k[t - lag]   (zf_k: the feature z-scored over the rows it pairs with)
which give r exactly as a scan over the whole half does. Each chunk is centred on
its own mean before the float32 product, and the chunk means are put back in float64
at the end (Cross): a nearly constant unit far from 0 (a saturated gate) would
otherwise lose its variance to rounding, and its r would be noise divided by ~0.
The null needs sum a[t] zf(t - o mod n) for every offset o on the second half only:
the largest sums (H x J x S per block), kept in float32, as only their maximum is read.
The probe needs, on the first half, the Gram matrix and X^T Y per layer (Y centred
by its known means); its ridge weights W are solved at the half, and on the second
half the predictions X W stream into sums of pred, pred^2 and pred Y.
"""
import numpy as np

ALPHA = 1e-2   # ridge penalty per step, as the all-in-memory ridge regression


class Cross:
    """Sums over chunks of rows a (c, H) and f (c, Q): n, the mean and variance of a,
    sum (a - mean) f^T and, with gram, sum (a - mean)(a - mean)^T, about the mean of
    every row added, which is known only at the end.

    Each chunk is centred on m, its float64 mean rounded to a's dtype, before its
    float32 products (a saturated unit at -1 in one half and +1 in the other varies
    by 3e-6; about any other centre its variance is lost to rounding). The products
    of the centred rows x = a - m go straight into float64 totals, one array a sum;
    every FOLD chunks, what centring on each chunk's m rather than on one base (the
    first chunks' mean) leaves out is added from the chunks' means and sums: with
    d = m - base, sum (a - base) f^T = sum x f^T + sum_chunks d (sum f)^T, and the
    like. So memory stays bounded, at one (H, Q) array for the cross sums, of dtype
    total (float32 for the null's, the largest)."""

    FOLD = 8   # chunks between folds: each holds two (H,) arrays in every Cross

    def __init__(self, gram=False, total=np.float64):
        self.gram, self.diagonal, self.total = gram, False, total
        self.base, self.n0 = None, 0
        self.S2 = self.XS = self.AF = self.AA = self.FS = 0.0      # about base, once folded
        self._clear()

    def _clear(self):
        self.means, self.counts, self.xsums, self.fsums = [], [], [], []

    def add(self, a, f=None, diagonal=False):
        """diagonal: f has a's columns, and only column q of a with column q of f is
        summed (cross() then gives (Q,))."""
        x, moments = _centre(a)
        if self.gram:
            self.AA = _add_to(self.AA, x.T @ x, self.total)
        if f is None:
            return self._add(moments)
        self._add(moments, (x * f).sum(axis=0, dtype=np.float64) if diagonal else x.T @ f,
                  f.sum(axis=0, dtype=np.float64), diagonal)

    @staticmethod
    def add_shared(crosses, a, f, fsums):
        """crosses[i].add(a, f_i) for each i, f = [f_0 f_1 ...] side by side, f_i as
        wide as fsums[i] (its column sums): a is centred once and multiplied once, as
        the lags and the null pair the same rows."""
        x, moments = _centre(a)
        prod = x.T @ f
        col = 0
        for c, fsum in zip(crosses, fsums):
            c._add(moments, prod[:, col:col + len(fsum)], fsum)
            col += len(fsum)

    def _add(self, moments, xf=None, fsum=None, diagonal=False):
        """A chunk's moments (from _centre) and its product x^T f and f's column sums."""
        m, count, xsum, s2 = moments
        self.means.append(m)
        self.counts.append(count)
        self.xsums.append(xsum)
        self.S2 = self.S2 + s2
        if xf is not None:
            self.diagonal = diagonal
            self.AF = _add_to(self.AF, xf, self.total)
            self.fsums.append(fsum)
        if len(self.means) >= self.FOLD:
            self._fold()

    def _fold(self):
        if not self.means:
            return
        M, cnt, xs = np.array(self.means), np.asarray(self.counts, float), np.array(self.xsums)
        if self.base is None:
            self.base = cnt @ M / cnt.sum()
        d = M - self.base                                        # (chunks, H)
        self.S2 = self.S2 + 2 * (d * xs).sum(axis=0) + cnt @ np.square(d)
        self.XS = self.XS + xs.sum(axis=0) + cnt @ d
        if self.fsums:
            fs = np.array(self.fsums)
            self.AF += (d * fs).sum(axis=0) if self.diagonal else d.T @ fs
            self.FS = self.FS + fs.sum(axis=0)
        if self.gram:
            self.AA += d.T @ xs + xs.T @ d + (d.T * cnt) @ d
        self.n0 += int(cnt.sum())
        self._clear()

    @property
    def n(self):
        return self.n0 + sum(self.counts)

    def _delta(self):
        """The mean minus base, (H,), after folding everything in."""
        self._fold()
        return self.XS / self.n0

    def mean(self):
        delta = self._delta()
        return self.base + delta

    def var(self):
        delta = self._delta()
        return self.S2 / self.n0 - delta * delta

    def cross(self):
        """sum over rows of (a - mean) f^T: (H, Q) float64."""
        delta = self._delta()
        return self.AF - (delta * self.FS if self.diagonal else np.outer(delta, self.FS))

    def gram_matrix(self):
        """sum over rows of (a - mean)(a - mean)^T: (H, H) float64."""
        delta = self._delta()
        return self.AA - self.n0 * np.outer(delta, delta)


def _centre(a):
    """x = a - m, m its float64 column mean rounded to a's dtype, and the chunk's
    moments: m (float64), the count, x's column sums and sums of squares."""
    m = a.mean(axis=0, dtype=np.float64).astype(a.dtype)
    x = a - m                                                    # (c, H), centred
    return x, (m.astype(np.float64), len(a), x.sum(axis=0, dtype=np.float64),
               np.square(x, dtype=np.float64).sum(axis=0))


def _add_to(total, part, dtype):
    """total + part as dtype: in place, once total is an array."""
    if isinstance(total, float):
        return part.astype(dtype)
    total += part
    return total


def _centred(hyps, rows, mean, inv):
    """(len(rows), J) float32: the features at rows, centred and scaled."""
    F = np.stack([h.values[rows] for h in hyps], axis=1)
    return ((F - mean) * inv).astype(np.float32)


def _moments(hyps, a, b):
    """Mean and population sd (J,) of each feature over text[a:b], float64."""
    return (np.array([h.values[a:b].mean(dtype=np.float64) for h in hyps]),
            np.array([h.values[a:b].std(dtype=np.float64) for h in hyps]))


def _inverse(sd, mean, tol):
    """1 / sd, and 0 where sd is 0 up to rounding (a constant column: r = 0)."""
    return np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > tol * (1 + np.abs(mean)))


class Stream:
    """The sums for one model. names: [(layer, state)] of the blocks; groups: block
    indices of each layer's probe inputs; parts: the two halves; offsets: the null's
    circular shifts on the second half (empty: no null); probe_offsets: the probe's."""

    def __init__(self, names, groups, hyps, parts, lags, offsets=(), probe_offsets=()):
        self.names, self.hyps, self.parts, self.lags = names, hyps, parts, lags
        self.offsets = np.asarray(offsets, int)
        self.zf = []                       # per part and lag: (mean, 1/sd) of the paired features
        for sl in parts:
            per = []
            for lag in lags:
                mean, sd = _moments(hyps, sl.start, sl.stop - lag)
                per.append((mean, _inverse(sd, mean, 1e-12)))
            self.zf.append(per)
        # sums[p][k][b]: block b against the features at lag k on part p; null[b]: block
        # b against the rolled features of the second half
        self.sums = [[[Cross() for _ in names] for _ in lags] for _ in parts]
        self.null = [Cross(total=np.float32) for _ in names]
        self.probe = _Probe(groups, hyps, parts, lags, np.asarray(probe_offsets, int))

    def add(self, p, t0, states):
        """states: [(c, H)] float32 per block, rows t0.. of part p."""
        sl = self.parts[p]
        t1 = t0 + len(states[0])
        by_row = {}       # first row: [(a Cross per block, features, their sums)] on rows lo..t1
        for k, lag in enumerate(self.lags):
            lo = max(t0, sl.start + lag)
            if lo >= t1:
                continue
            mean, inv = self.zf[p][k]
            f = _centred(self.hyps, np.arange(lo - lag, t1 - lag), mean, inv)      # (c', J)
            by_row.setdefault(lo, []).append((self.sums[p][k], f, f.sum(axis=0, dtype=np.float64)))
        if p == 1 and len(self.offsets):
            f = self._rolled(t0, t1)
            by_row.setdefault(t0, []).append((self.null, f, f.sum(axis=0, dtype=np.float64)))
        for lo, sums in by_row.items():
            f = np.concatenate([fk for _, fk, _ in sums], axis=1)
            for b, a in enumerate(states):
                Cross.add_shared([c[b] for c, _, _ in sums], a[lo - t0:], f,
                                 [fs for _, _, fs in sums])
        self.probe.add(p, t0, states)

    def _rolled(self, t0, t1):
        """(c, J * S) float32: the z-scored features at rows t0..t1 of the second half,
        rolled by every offset (features major), as np.roll(zf, o) gives."""
        sl = self.parts[1]
        n = sl.stop - sl.start
        mean, inv = self.zf[1][0]
        idx = sl.start + (np.arange(t0 - sl.start, t1 - sl.start)[:, None] - self.offsets) % n
        Fs = np.stack([(h.values[idx] - mean[j]) * inv[j] for j, h in enumerate(self.hyps)], 1)
        return Fs.reshape(len(idx), -1).astype(np.float32)

    def half_done(self):
        """Called between the halves: the probe solves its weights."""
        self.probe.solve()

    def scan(self, p):
        """R[b, k]: (H, J) r of every unit with every feature at each lag on part p,
        as a scan over the whole part gives."""
        out = []
        for b in range(len(self.names)):
            per = []
            for k in range(len(self.lags)):
                c = self.sums[p][k][b]
                scale = _inverse(np.sqrt(c.var()), c.mean(), 1e-6)
                per.append(scale[:, None] * c.cross() / c.n)
            out.append(per)
        return np.array(out, np.float32)

    def shift_null(self):
        """(J, S): the best |r| over all units of all blocks for each rolled feature."""
        best = 0.0
        for c in self.null:
            scale = _inverse(np.sqrt(c.var()), c.mean(), 1e-12)
            best = np.maximum(best, np.abs(scale[:, None] * c.cross()).max(axis=0) / c.n)
        return best.reshape(len(self.hyps), len(self.offsets))


class _Probe:
    """Ridge probes over each layer's memory: fitted on the first half from sums, and
    scored on the second from streamed predictions. Targets: F[s - lag] for each lag,
    then F[s] rolled by each probe offset within the part, over the steps s from
    max(lags) into each part (every lag reads the same states)."""

    def __init__(self, groups, hyps, parts, lags, offsets):
        self.groups, self.hyps, self.lags, self.offsets = groups, hyps, lags, offsets
        self.steps = [slice(sl.start + max(lags), sl.stop) for sl in parts]
        self.ymean, self.yvar = [], []
        for st in self.steps:           # a rolled feature has the moments of the feature
            m = [_moments(hyps, st.start - lag, st.stop - lag) for lag in lags]
            m += [_moments(hyps, st.start, st.stop)] * len(offsets)
            self.ymean.append(np.concatenate([mean for mean, _ in m]))
            self.yvar.append(np.concatenate([sd * sd for _, sd in m]))
        self.sums = [Cross(gram=True) for _ in groups]
        self.W = self.mu = self.sd = None
        self.pred = [Cross() for _ in groups]      # the predictions against the targets

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
                self.sums[g].add(X, Yc)
                continue
            P = ((X - self.mu[g]) / self.sd[g]).astype(np.float32) @ self.W[g]   # (c, Q)
            self.pred[g].add(P, Yc, diagonal=True)

    def solve(self):
        """Ridge weights per layer from the first half's sums, inputs z-scored."""
        self.mu, self.sd, self.W = [], [], []
        for c in self.sums:
            n, mu = c.n, c.mean()
            sd = np.sqrt(c.var())
            sd[sd < 1e-12] = 1.0
            G = c.gram_matrix() / np.outer(sd, sd) + ALPHA * n * np.eye(len(sd))
            W = np.linalg.solve(G, c.cross() / sd[:, None])
            self.mu.append(mu)
            self.sd.append(sd)
            self.W.append(W.astype(np.float32))

    def r(self):
        """(Q,) the best layer's held-out r per target."""
        out = np.full(len(self.yvar[1]), -np.inf)
        for c in self.pred:
            den = np.sqrt(c.var() * self.yvar[1])
            r = np.divide(c.cross() / c.n, den, out=np.zeros_like(den), where=den > 1e-12)
            out = np.maximum(out, r)
        return out
