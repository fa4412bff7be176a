"""A character n-gram baseline: interpolated Kneser-Ney in numpy, the reference
point Karpathy, Johnson and Fei-Fei (2015) set beside their RNNs.

    python benchmarks/ngram.py                       # order 5 on tiny Shakespeare, 90/10 split
    python benchmarks/ngram.py --order 3 4 5 6 7 --corpus corpora/python.txt

An n-gram of k characters is one integer in base V (code = sum of id * V**place),
so counting is np.unique over integer arrays and lookup is np.searchsorted: no
Python loop over the text (tiny Shakespeare, 1 MB, order 5: about a second).

The model (Chen and Goodman 1998, "modified" interpolated Kneser-Ney), for a
history h of k - 1 characters, h' = h without its first character:

    P_k(w | h) = (max(c(hw) - D(c(hw)), 0) + gamma(h) * P_{k-1}(w | h')) / S(h)
    S(h) = sum_w c(hw),  gamma(h) = sum_{w: c(hw) > 0} D(c(hw)),  P_0(w) = 1 / V

c is the raw count at the highest order and the continuation count N1+(. hw)
(distinct characters seen before hw) below it; a history never seen (S = 0)
leaves P_{k-1} unchanged. D(c) is D1, D2 or D3+ for c = 1, 2, >= 3, estimated per
order from the counts of counts n1..n4 (Y = n1 / (n1 + 2 n2), D_r = r - (r+1) Y
n_{r+1} / n_r); a single `discount` for every count gives plain interpolated KN.
Because sum_w max(c - D(c), 0) = S(h) - gamma(h), every P_k(. | h) sums to 1, and
every character of the vocabulary, seen or not, keeps some probability.

Worked example (plain KN, D = 0.5, order 2) on "aabab" with vocabulary a, b, c:
bigram counts aa 1, ab 2, ba 1; continuation counts a 2 (after a and b), b 1, c 0,
so P_1(a) = 1.5/3 + 1/3 * 1/3 = 11/18, and P_2(b | a) = (1.5 + 1 * 5/18) / 3 = 16/27.
"""
import argparse
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CORPORA = [os.path.join(HERE, "..", "..", "shared", "corpora", "tinyshakespeare.txt"),
           os.path.join(HERE, "..", "corpora", "shakespeare.txt")]


def gram_codes(ids, k, V):
    """(len(ids) - k + 1,) int64 codes of the k-grams of ids; the last character is
    the lowest digit, so code // V is the history and code % V**(k-1) the suffix."""
    codes = ids.astype(np.int64)
    for j in range(1, k):
        codes = codes[:-1] * V + ids[j:]
    return codes


def discounts(counts, discount=None):
    """[0, D1, D2, D3+] for counts of this order (index min(c, 3))."""
    if discount is not None:
        return np.array([0.0, discount, discount, discount])
    n = np.bincount(np.minimum(counts, 5), minlength=6)[1:5].astype(float)  # n1..n4
    Y = n[0] / (n[0] + 2 * n[1]) if n[0] + n[1] else 0.5
    D = [r - (r + 1) * Y * n[r] / n[r - 1] if n[r - 1] else Y for r in (1, 2, 3)]
    # a tiny text can make the estimate negative or above the count: keep every
    # discount positive (the lower orders must get some mass) and at most c
    return np.concatenate([[0.0], np.clip(D, 0.1, [1.0, 2.0, 3.0])])


class Order:
    """The statistics of one order k: sorted gram codes and their counts, and per
    history (sorted codes) the total S and the mass gamma given to order k - 1."""

    def __init__(self, grams, counts, V, discount):
        self.grams, self.counts = grams, counts
        self.D = discounts(counts, discount)
        hist = grams // V
        self.hists, starts = np.unique(hist, return_index=True)
        if len(grams):
            self.S = np.add.reduceat(counts, starts).astype(float)
            self.gamma = np.add.reduceat(self.D[np.minimum(counts, 3)], starts)


def _lookup(keys, table):
    """Positions of keys in the sorted table and whether each is there."""
    if len(table) == 0:
        return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(table, keys), len(table) - 1)
    return pos, table[pos] == keys


class KneserNey:
    """Interpolated Kneser-Ney character model of the given order on ids (values < V)."""

    def __init__(self, ids, V, order=5, discount=None):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if V ** order >= 2 ** 63:
            raise ValueError(f"{V}**{order} n-gram codes do not fit in int64; lower the order")
        self.V, self.order = V, order
        ids = np.asarray(ids, dtype=np.int64)
        grams, counts = np.unique(gram_codes(ids, order, V), return_counts=True)
        top = Order(grams, counts, V, discount)
        self.orders = [top]
        for k in range(order - 1, 0, -1):
            # continuation count of a k-gram: how many distinct (k+1)-grams end in it
            suffixes = self.orders[0].grams % V ** k
            grams, counts = np.unique(suffixes, return_counts=True)
            self.orders.insert(0, Order(grams, counts, V, discount))

    @property
    def size(self):
        """Stored n-gram counts: the model's "parameters"."""
        return sum(len(o.grams) for o in self.orders)

    def prob(self, hist, w):
        """P(w | hist) for Q queries: hist (Q, order - 1) ids, -1 where the text had
        no character yet (its start); w (Q,) ids. Returns (Q,) float64."""
        V = self.V
        hist = np.asarray(hist, dtype=np.int64).reshape(len(w), self.order - 1)
        w = np.asarray(w, dtype=np.int64)
        p = np.full(len(w), 1.0 / V)
        h = np.zeros(len(w), dtype=np.int64)  # the history code of order k, built right to left
        known = np.ones(len(w), dtype=bool)   # every character of that history is there
        for k, o in enumerate(self.orders, start=1):
            if k > 1:
                c = hist[:, -(k - 1)]
                known &= c >= 0
                h += np.maximum(c, 0) * V ** (k - 2)
            if len(o.hists) == 0:  # a text shorter than k
                continue
            hpos, hseen = _lookup(h, o.hists)
            hseen &= known
            gpos, gseen = _lookup(h * V + w, o.grams)
            c = np.where(gseen & hseen, o.counts[gpos], 0)
            num = np.maximum(c - o.D[np.minimum(c, 3)], 0) + o.gamma[hpos] * p
            p = np.where(hseen, num / o.S[hpos], p)  # S > 0 wherever the history is seen
        return p

    def distribution(self, context):
        """(V,) probabilities of the next character after the ids in context."""
        n = self.order - 1
        hist = np.full(n, -1, dtype=np.int64)
        tail = np.asarray(context, dtype=np.int64)[max(0, len(context) - n):]
        if n:
            hist[n - len(tail):] = tail
        return self.prob(np.tile(hist, (self.V, 1)), np.arange(self.V))

    def loss(self, ids):
        """Mean nats per character over ids, each predicted from the ones before it
        in ids (the first character, with no context, is not scored, as in
        charrnn.evaluate). Returns (loss, characters scored)."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) < 2:
            return float("nan"), 0
        n = self.order - 1
        padded = np.concatenate([np.full(n, -1, dtype=np.int64), ids])
        hist = np.lib.stride_tricks.sliding_window_view(padded[:-1], n)[1:] if n else \
            np.zeros((len(ids) - 1, 0), dtype=np.int64)
        p = self.prob(hist, ids[1:])
        return float(-np.log(p).mean()), len(ids) - 1


def corpus_path():
    for p in CORPORA:
        if os.path.exists(p):
            return os.path.abspath(p)
    sys.exit("ngram: no corpus; put tinyshakespeare.txt in ../shared/corpora or run 'make corpora'")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=None, help="text file (default: tiny Shakespeare)")
    ap.add_argument("--order", type=int, nargs="+", default=[5])
    ap.add_argument("--val-frac", type=float, default=0.1)
    ap.add_argument("--discount", type=float, default=None,
                    help="one discount for every count (plain KN); default: estimated D1, D2, D3+")
    args = ap.parse_args(argv)
    from charrnn.data import read_corpus, split
    path = args.corpus or corpus_path()
    ids, vocab = read_corpus([path])
    train, val = split(ids, args.val_frac)
    print(f"# {os.path.basename(path)}: {len(train):,} training, {len(val):,} held-out "
          f"characters, V = {len(vocab)} (uniform: ln V = {math.log(len(vocab)):.3f} nats)")
    print("| order | n-grams stored | fit s | held-out nats/char | bits/char |")
    print("|---|---|---|---|---|")
    for order in args.order:
        t = time.perf_counter()
        model = KneserNey(train, len(vocab), order, args.discount)
        fit_s = time.perf_counter() - t
        loss, _ = model.loss(val)
        print(f"| {order} | {model.size:,} | {fit_s:.2f} | {loss:.4f} | {loss / math.log(2):.4f} |",
              flush=True)


if __name__ == "__main__":
    main()
