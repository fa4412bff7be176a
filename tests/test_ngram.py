"""benchmarks/ngram.py: distributions sum to 1, a known answer by hand, agreement
with a slow dictionary-based Kneser-Ney, and it beats a unigram on structured text."""
import collections
import importlib.util
import itertools
import math
import pathlib

import numpy as np
import pytest

from charrnn import synth
from charrnn.data import build_vocab, encode, split

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("ngram", ROOT / "benchmarks" / "ngram.py")
ngram = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ngram)
KneserNey = ngram.KneserNey


def naive_kn(text, V, order, discount):
    """P(w | h) by the textbook recursion over dictionaries of tuples, plain
    interpolated KN with one discount: slow and obviously right."""
    counts = [collections.Counter() for _ in range(order + 1)]  # counts[k][gram of k]
    grams = collections.Counter(tuple(text[i:i + order]) for i in range(len(text) - order + 1))
    counts[order] = grams
    for k in range(order - 1, 0, -1):  # continuation counts: distinct left extensions
        counts[k] = collections.Counter(g[1:] for g in counts[k + 1])

    def p(w, h):
        k = len(h) + 1
        if k == 1:
            lower = 1 / V
        else:
            lower = p(w, h[1:])
        follow = {g[-1]: c for g, c in counts[k].items() if g[:-1] == h}
        S = sum(follow.values())
        if S == 0:
            return lower
        return (max(follow.get(w, 0) - discount, 0) + discount * len(follow) * lower) / S
    return p


def ids_of(text, vocab):
    return encode(text, vocab)


def test_known_answer_by_hand():
    # "aabab", vocabulary a b c, order 2, D = 0.5 (worked out in the module docstring):
    # P_1 = (11, 5, 2)/18; after a: (10, 16, 1)/27; after b: (29, 5, 2)/36; after c: P_1
    vocab = ["a", "b", "c"]
    m = KneserNey(ids_of("aabab", vocab), 3, order=2, discount=0.5)
    np.testing.assert_allclose(m.distribution([]), np.array([11, 5, 2]) / 18)
    np.testing.assert_allclose(m.distribution([0]), np.array([10, 16, 1]) / 27)
    np.testing.assert_allclose(m.distribution([1]), np.array([29, 5, 2]) / 36)
    np.testing.assert_allclose(m.distribution([2]), np.array([11, 5, 2]) / 18)
    loss, n = m.loss(ids_of("abc", vocab))  # b after a, then c after b
    assert n == 2
    assert loss == pytest.approx(-(math.log(16 / 27) + math.log(1 / 18)) / 2)


@pytest.mark.parametrize("discount", [None, 0.5, 0.9])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_every_context_sums_to_one(order, discount):
    vocab = list("abcd")  # d never occurs in the training text, yet gets probability
    m = KneserNey(ids_of("abcabcaabbcabbbacab" * 2 + "cc", vocab), 4, order, discount)
    for n in range(order):  # every history of every length, seen or not
        for h in itertools.product(range(4), repeat=n):
            d = m.distribution(list(h))
            assert d.sum() == pytest.approx(1.0, abs=1e-12)
            assert (d > 0).all()


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_agrees_with_naive_reference(order):
    text = synth.generate(400, seed=5)
    vocab = build_vocab(text + "~")  # one character never seen
    ids = ids_of(text, vocab)
    V = len(vocab)
    m = KneserNey(ids, V, order, discount=0.7)
    ref = naive_kn(tuple(ids.tolist()), V, order, 0.7)
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(ids) - order, 15)
    histories = [tuple(ids[s:s + order - 1].tolist()) for s in starts]  # seen ones
    histories += [tuple(rng.integers(0, V, order - 1).tolist()) for _ in range(5)]
    for h in histories:
        want = [ref(w, h) for w in range(V)]
        np.testing.assert_allclose(m.distribution(list(h)), want, rtol=1e-12)


def test_estimated_discounts_are_in_range():
    ids = encode(synth.generate(20_000, seed=1), build_vocab(synth.generate(20_000, seed=1)))
    m = KneserNey(ids, int(ids.max()) + 1, order=5)
    for o in m.orders:
        assert o.D[0] == 0
        assert (0 < o.D[1:]).all() and (o.D[1:] <= [1, 2, 3]).all()


def test_beats_unigram_on_structured_text():
    text = synth.generate(60_000, seed=2)
    vocab = build_vocab(text)
    train, held = split(encode(text, vocab), 0.1)
    V = len(vocab)
    freq = (np.bincount(train, minlength=V) + 1) / (len(train) + V)  # add-one unigram
    unigram = -np.log(freq[held[1:]]).mean()
    kn5, n = KneserNey(train, V, order=5).loss(held)
    assert n == len(held) - 1
    assert KneserNey(train, V, order=1).loss(held)[0] == pytest.approx(unigram, abs=0.01)
    assert kn5 < unigram - 1.0, (kn5, unigram)


def test_short_text_and_bad_order():
    m = KneserNey(np.array([0, 1]), 3, order=5)  # shorter than one 5-gram
    d = m.distribution([0, 1])
    assert d.sum() == pytest.approx(1.0) and (d > 0).all()
    assert math.isnan(m.loss(np.array([1]))[0])
    with pytest.raises(ValueError):
        KneserNey(np.array([0, 1]), 3, order=0)
    with pytest.raises(ValueError):
        KneserNey(np.array([0, 1]), 70_000, order=5)  # codes would overflow int64
