"""Gate saturation (Karpathy et al. 2015, section 4.3) and hypothesis-free discovery.

Saturation: a sigmoid gate unit is left-saturated at a step when its activation
is below 0.1 and right-saturated above 0.9; per unit, the fraction of steps of
each. (LSTM i, f, o; GRU r, z; the tanh candidates g and n are left out.)

Discovery: every memory cell (c, tanh_c, h for an LSTM; h otherwise) scored by
persistence (lag-1 autocorrelation) times bimodality (Sarle's coefficient
b = (skew^2 + 1) / (excess kurtosis + 3 (n-1)^2 / ((n-2)(n-3))), 5/9 for a
uniform, towards 1 for two separated modes). Each of the best is labelled with
the built-in hypothesis it correlates with most on the held-out half, when that
|r| passes R_MIN and the hypothesis' null99; the rest show the contexts where
they are highest and lowest.

Both are sums over the stream (Saturation and Moments are fed every chunk); only
the contexts of the discovered cells need their series, from a second pass.
Their text and HTML are in render.py.
"""
import numpy as np

from charrnn.inspect import analyze as an

SIGMOID_GATES = {"lstm": "ifo", "gru": "rz", "rnn": "", "esn": ""}
LOW, HIGH = 0.1, 0.9
MEMORY = ("c", "tanh_c", "h")


class Saturation:
    """Counts per sigmoid gate unit of the steps below LOW and above HIGH."""

    def __init__(self, names, kind):
        self.gates = [(b, l, s) for b, (l, s) in enumerate(names) if s in SIGMOID_GATES[kind]]
        self.left = [0] * len(self.gates)
        self.right = [0] * len(self.gates)
        self.n = 0

    def add(self, t0, states):
        for k, (b, _, _) in enumerate(self.gates):
            self.left[k] = self.left[k] + (states[b] < LOW).sum(axis=0)
            self.right[k] = self.right[k] + (states[b] > HIGH).sum(axis=0)
        self.n += len(states[0])

    def result(self):
        """[{layer (from 1), gate, left (H,), right (H,)}] per layer and sigmoid gate."""
        return [{"layer": l + 1, "gate": g, "left": (left / self.n).tolist(),
                 "right": (right / self.n).tolist()}
                for (_, l, g), left, right in zip(self.gates, self.left, self.right)]


class Moments:
    """Per memory block, sums of powers 1..4 and of lag-1 products of a - ref (float64),
    which give each unit's persistence and bimodality over the whole text."""

    def __init__(self, names):
        self.blocks = [b for b, (_, s) in enumerate(names) if s in MEMORY]
        self.ref, self.prev, self.first = {}, {}, {}
        self.sums = {b: np.zeros((5, 0)) for b in self.blocks}   # a, a^2, a^3, a^4, a_t a_t-1
        self.n = 0

    def add(self, t0, states):
        for b in self.blocks:
            if b not in self.ref:
                self.ref[b] = states[b].mean(axis=0, dtype=np.float64)
                self.first[b] = states[b][0] - self.ref[b]
                self.sums[b] = np.zeros((5, states[b].shape[1]))
            x = states[b] - self.ref[b]                        # (c, H) float64
            pairs = x[1:] * x[:-1]
            lag1 = pairs.sum(axis=0) + (self.prev[b] * x[0] if b in self.prev else 0.0)
            self.sums[b] += [x.sum(axis=0), (x ** 2).sum(axis=0), (x ** 3).sum(axis=0),
                             (x ** 4).sum(axis=0), lag1]
            self.prev[b] = x[-1]
        self.n += len(states[0])

    def scores(self, b):
        """(persistence (H,), bimodality (H,)) of block b, as persistence() and
        bimodality() give over the whole series."""
        n = self.n
        s1, s2, s3, s4, lag1 = self.sums[b] / [[n], [n], [n], [n], [1]]
        m2 = s2 - s1 ** 2
        m3 = s3 - 3 * s1 * s2 + 2 * s1 ** 3
        m4 = s4 - 4 * s1 * s3 + 6 * s1 ** 2 * s2 - 3 * s1 ** 4
        sd = np.maximum(np.sqrt(np.maximum(m2, 0.0)), 1e-12)
        ends = self.sums[b][0] - self.first[b] + self.sums[b][0] - self.prev[b]
        auto = (lag1 - s1 * ends + (n - 1) * s1 ** 2) / (n - 1) / sd ** 2
        skew, kurt = m3 / sd ** 3, m4 / sd ** 4 - 3
        return auto, (skew ** 2 + 1) / (kurt + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def _contexts(text, series, n=3, span=24, highest=True):
    """The n contexts (span characters ending at the step) where series is most
    extreme, at least span apart."""
    order = np.argsort(-series if highest else series, kind="stable")
    picked = []
    for t in order:
        if all(abs(int(t) - p) >= span for p in picked):
            picked.append(int(t))
            if len(picked) == n:
                break
    return [{"at": t, "value": float(series[t]), "context": text[max(0, t - span + 1):t + 1]}
            for t in picked]


def discover(moments, names, results, R, text, series, count=10):
    """The `count` best cells by persistence x bimodality, one state per cell.
    series(cells): {(block, unit): (T,)} for the cells that need their contexts."""
    best, scores = {}, {}
    for b in moments.blocks:
        scores[b] = moments.scores(b)
        score = np.clip(scores[b][0], 0, None) * scores[b][1]
        layer = names[b][0]
        for u in range(len(score)):
            if (layer, u) not in best or score[u] > best[(layer, u)][0]:
                best[(layer, u)] = (float(score[u]), b)
    out = []
    for (layer, u), (score, b) in sorted(best.items(), key=lambda kv: -kv[1][0])[:count]:
        item = {"layer": layer + 1, "state": names[b][1], "unit": u, "score": score,
                "persistence": float(scores[b][0][u]), "bimodality": float(scores[b][1][u]),
                "label": None, "block": b}
        if results:
            Rb = R[1, b, :, u, :]                          # (Λ, J) held out
            k, j = np.unravel_index(np.argmax(np.abs(Rb)), Rb.shape)
            res = results[j]
            r = float(Rb[k, j])
            if abs(r) >= an.R_MIN and (res["null99"] is None or abs(r) > res["null99"]):
                item["label"] = {"hypothesis": res["name"], "r": r, "lag": an.LAGS[k]}
        out.append(item)
    todo = [d for d in out if d["label"] is None]
    cells = [(d["block"], d["unit"]) for d in todo]
    got = series(cells) if cells else {}
    for d in out:
        b = d.pop("block")
        if d["label"] is None:
            a = got[(b, d["unit"])].astype(np.float64)
            d["top"] = _contexts(text, a, highest=True)
            d["bottom"] = _contexts(text, a, highest=False)
    return out
