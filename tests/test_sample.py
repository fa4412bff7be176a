"""sample.py against a slow reference: model.forward fed one character at a time."""
import numpy as np
import pytest
from scipy import stats

from charrnn import model
from charrnn.model import ModelConfig
from charrnn.sample import Sampler

VOCAB = list("\n abcdefghij")  # V = 12


def make(kind="lstm", layers=2, embed=0, seed=0, scale=0.8):
    """A random model whose logits are spread out (not the near-uniform fresh init)."""
    cfg = ModelConfig(kind=kind, vocab_size=len(VOCAB), hidden=8, layers=layers, embed=embed)
    rng = np.random.default_rng(seed)
    flat = model.init_params(cfg, rng)
    flat += rng.normal(0, scale, flat.shape).astype(np.float32)
    return cfg, model.carve(flat, cfg)


class Reference:
    """The model run by model.forward on one character at a time, in float64."""

    def __init__(self, cfg, p):
        self.cfg = cfg
        self.p = {k: v.astype(np.float64) for k, v in p.items()}
        self.state = model.zero_state(cfg, 1, dtype=np.float64)

    def step(self, i):
        """Feeds character i; returns the logits (V,) for the next one."""
        logits, _, self.state = model.forward(self.cfg, self.p, np.array([[i]]), self.state)
        return logits[0]

    def feed(self, ids):
        for i in ids:
            logits = self.step(i)
        return logits


def softmax(z, temperature=1.0):
    z = (z - z.max()) / temperature
    e = np.exp(z)
    return e / e.sum()


def generate(sampler, prime, length, **kw):
    """All samples as a (length, N) id array."""
    out = list(sampler.generate(np.array(prime), length, **kw))
    return np.concatenate(out) if out else np.empty((0, kw.get("num_samples", 1)), np.int64)


def greedy_reference(cfg, p, prime, length):
    ref = Reference(cfg, p)
    logits = ref.feed(prime)
    out = []
    for _ in range(length):
        out.append(int(np.argmax(logits)))
        logits = ref.step(out[-1])
    return out


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers,embed", [(1, 0), (2, 0), (2, 5)])
def test_argmax_equals_step_by_step_greedy_reference(kind, layers, embed):
    cfg, p = make(kind, layers, embed)
    prime = [0, 3, 4, 5, 1]
    got = generate(Sampler(cfg, p, VOCAB), prime, 60, greedy=True)[:, 0].tolist()
    assert got == greedy_reference(cfg, p, prime, 60)


def test_argmax_is_deterministic_and_ignores_seed():
    cfg, p = make()
    s = Sampler(cfg, p, VOCAB)
    a = generate(s, [1, 2], 80, greedy=True, seed=1)
    b = generate(s, [1, 2], 80, greedy=True, seed=2)
    c = generate(s, [1, 2], 80, greedy=True)
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_same_seed_same_text_different_seed_different_text():
    cfg, p = make(scale=0.3)
    s = Sampler(cfg, p, VOCAB)
    a = s.text("ab", 200, seed=7)
    assert len(a) == 200 and set(a) <= set(VOCAB)
    assert a == s.text("ab", 200, seed=7)
    assert a != s.text("ab", 200, seed=8)


def test_chunking_does_not_change_the_text():
    cfg, p = make(scale=0.3)
    s = Sampler(cfg, p, VOCAB)
    for n in (1, 3):
        a = generate(s, [1, 2], 150, num_samples=n, seed=5)
        b = generate(s, [1, 2], 150, num_samples=n, seed=5, chunk=7)
        assert a.shape == (150, n) and np.array_equal(a, b)


def test_top_k_1_equals_argmax():
    cfg, p = make()
    s = Sampler(cfg, p, VOCAB)
    greedy = generate(s, [0], 100, greedy=True)
    assert np.array_equal(generate(s, [0], 100, top_k=1, seed=3), greedy)
    assert np.array_equal(generate(s, [0], 100, top_k=1, seed=3, temperature=5.0), greedy)


def test_tiny_temperature_approaches_argmax():
    cfg, p = make()
    s = Sampler(cfg, p, VOCAB)
    greedy = generate(s, [0], 100, greedy=True)
    assert np.array_equal(generate(s, [0], 100, temperature=1e-4, seed=11), greedy)
    # and temperature 1 does not (the model is not that sure of itself)
    assert not np.array_equal(generate(s, [0], 100, temperature=1.0, seed=11), greedy)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_top_k_samples_only_the_k_most_likely(k):
    cfg, p = make(scale=0.5)
    prime = [0, 4]
    got = generate(Sampler(cfg, p, VOCAB), prime, 200, top_k=k, seed=k)[:, 0]
    ref = Reference(cfg, p)
    logits = ref.feed(prime)
    used_rank = []
    for i in got:
        rank = int((logits > logits[i]).sum())  # 0 for the most likely
        assert rank < k, f"chose a character of rank {rank} with top_k={k}"
        used_rank.append(rank)
        logits = ref.step(i)
    assert set(used_rank) == set(range(k))  # and it does not collapse to fewer


def reference_sample(cfg, p, prime, coins, temperature=1.0, top_k=0):
    """Inverse-CDF draws with the given coins (length,), from the reference probabilities."""
    ref = Reference(cfg, p)
    logits = ref.feed(prime)
    out = []
    for u in coins:
        z = logits.copy()
        if top_k:
            z[z < np.sort(z)[-top_k]] = -np.inf
        cdf = np.cumsum(softmax(z, temperature))
        out.append(int(np.searchsorted(cdf, u * cdf[-1], side="right")))
        logits = ref.step(out[-1])
    return out


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.7, 0), (1.3, 4)])
def test_samples_follow_the_coins_drawn_from_the_seed(temperature, top_k):
    """Sample n of N is the inverse-CDF draw with the coins of the n-th generator
    spawned from the seed."""
    cfg, p = make(scale=0.4)
    N, length, seed = 3, 120, 42
    got = generate(Sampler(cfg, p, VOCAB), [2, 0], length, num_samples=N,
                   temperature=temperature, top_k=top_k, seed=seed)
    children = np.random.SeedSequence(seed).spawn(N)
    for n in range(N):
        coins = np.random.default_rng(children[n]).random(length)
        assert got[:, n].tolist() == reference_sample(cfg, p, [2, 0], coins, temperature, top_k)


def test_num_samples():
    """N samples are N streams from the same prime. They differ from each other,
    sample 0 of N > 1 is the N = 1 sample for the same seed (a generator per sample),
    and with --argmax every stream is the single greedy text."""
    cfg, p = make(scale=0.3)
    s = Sampler(cfg, p, VOCAB)
    one = generate(s, [1], 100, num_samples=1, seed=9)
    many = generate(s, [1], 100, num_samples=4, seed=9)
    assert one.shape == (100, 1) and many.shape == (100, 4)
    assert len({tuple(many[:, n]) for n in range(4)}) == 4
    assert np.array_equal(many[:, 0], one[:, 0])
    greedy = generate(s, [1], 100, greedy=True)
    assert np.array_equal(generate(s, [1], 100, num_samples=4, greedy=True),
                          np.repeat(greedy, 4, axis=1))


def test_length_zero_yields_nothing():
    cfg, p = make()
    assert list(Sampler(cfg, p, VOCAB).generate(np.array([0]), 0)) == []
    assert Sampler(cfg, p, VOCAB).text("a", 0, seed=1) == ""


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.6, 0), (1.0, 5)])
def test_empirical_distribution_matches_the_softmax(temperature, top_k):
    """One step, many samples side by side: the counts of the first generated
    character against the reference softmax (chi-square, fixed seed)."""
    cfg, p = make(scale=0.3)
    prime = [3, 1, 4]
    draws = 20000
    got = generate(Sampler(cfg, p, VOCAB), prime, 1, num_samples=draws,
                   temperature=temperature, top_k=top_k, seed=2024)[0]
    z = Reference(cfg, p).feed(prime)
    if top_k:
        z[z < np.sort(z)[-top_k]] = -np.inf
    probs = softmax(z, temperature)
    counts = np.bincount(got, minlength=len(VOCAB))
    assert counts[probs == 0].sum() == 0
    live = probs > 0
    assert probs[live].min() * draws > 5  # the chi-square approximation holds
    _, pvalue = stats.chisquare(counts[live], probs[live] * draws)
    assert pvalue > 1e-3
    # and the test has power: the untempered softmax is rejected when tempered
    if temperature != 1.0:
        alt = softmax(z)
        _, p_alt = stats.chisquare(counts[live], alt[live] * draws)
        assert p_alt < 1e-6
