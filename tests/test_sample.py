"""sample.py against a slow reference: model.forward fed one character at a time."""
import numpy as np
import pytest
from scipy import stats

from charrnn import model
from charrnn.model import ModelConfig
from charrnn.sample import Sampler, Stop

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


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("P", [2, 3])
def test_units_split_across_threads_gives_the_same_text(kind, P, monkeypatch):
    """With the hidden units cut into P parts (3 does not divide H = 8) run by P
    threads that meet at barriers, sampling equals the greedy reference and draws
    the same texts, for several samples at once and in chunks of any length, as
    one thread does."""
    from charrnn import threads
    cfg, p = make(kind, 2, 5)
    prime = [0, 3, 4, 5, 1]
    one = Sampler(cfg, p, VOCAB)
    assert len(one.parts) == 1
    monkeypatch.setenv("CHARRNN_THREADS", str(P))
    monkeypatch.setattr(threads, "cores", lambda: P)
    monkeypatch.setattr(threads, "SAMPLE_MIN_BYTES", 0)
    split = Sampler(cfg, p, VOCAB)
    assert [part[-2:] for part in split.parts] == [(k * 8 // P, (k + 1) * 8 // P) for k in range(P)]
    got = generate(split, prime, 60, greedy=True)[:, 0].tolist()
    assert got == greedy_reference(cfg, p, prime, 60)
    np.testing.assert_array_equal(generate(split, prime, 80, num_samples=3, seed=7, temperature=1.2),
                                  generate(one, prime, 80, num_samples=3, seed=7, temperature=1.2))
    # chunks of odd lengths end with the state in the split's spare buffer, copied back
    np.testing.assert_array_equal(generate(split, prime, 80, seed=3, chunk=7, flush_s=0),
                                  generate(one, prime, 80, seed=3, chunk=7, flush_s=0))


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
    """Chunks of 7 that stay 7 (each took longer than flush_s = 0) or double (each
    took less than an infinite flush_s) make the same texts as the default chunks."""
    cfg, p = make(scale=0.3)
    s = Sampler(cfg, p, VOCAB)
    for n in (1, 3):
        a = generate(s, [1, 2], 150, num_samples=n, seed=5)
        for flush_s, sizes in ((0.0, [7] * 21 + [3]), (float("inf"), [7, 14, 28, 56, 45])):
            chunks = list(s.generate(np.array([1, 2]), 150, num_samples=n, seed=5, chunk=7,
                                     flush_s=flush_s))
            assert [c.shape[0] for c in chunks] == sizes
            assert a.shape == (150, n) and np.array_equal(a, np.concatenate(chunks))


@pytest.mark.parametrize("H", [1, 3, 4, 7, 128, 130])
def test_output_row_matches_float64(H):
    """The output layer for one sample (four rows of Wy a pass, then the rest one by
    one) equals h Wy + by in float64 to float32 rounding, for H a multiple of 4 or not."""
    from charrnn.sample import output_row
    rng = np.random.default_rng(H)
    h, Wy, by = (rng.standard_normal(s).astype(np.float32) for s in [(H,), (H, 65), (65,)])
    logits = np.full(65, np.nan, dtype=np.float32)
    output_row(h, Wy, by, logits)
    ref = h.astype(np.float64) @ Wy.astype(np.float64) + by
    np.testing.assert_allclose(logits, ref, rtol=1e-5, atol=1e-5 * np.sqrt(H))


def test_softmax_weights_match_float64_exp():
    """The draw's weights, float32 exp against numpy's float64: within 1e-6 relative
    and the rounding of the exponent x to float32 (|x| 2^-24), 0 below the top_k floor
    and below e^-87 (a logit 61 or more under the largest at temperature 0.7)."""
    from charrnn.sample import softmax_weights
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal(65) * 8).astype(np.float32)
    logits[:3] = -200.0
    x = (logits.astype(np.float64) - logits.max()) / 0.7
    for floor, kept in ((-np.inf, 62), (np.sort(logits)[-20], 20)):
        probs = np.empty(65)
        total = softmax_weights(logits, logits.max(), 0.7, floor, probs)
        want = np.where((logits >= floor) & (x > -87), np.exp(x), 0.0)
        assert (probs[:3] == 0).all() and (probs > 0).sum() == kept
        assert (np.abs(probs - want) <= want * (1e-6 + np.abs(x) * 2.0 ** -24)).all()
        assert total == pytest.approx(want.sum(), rel=1e-6)
    # a temperature so small that its reciprocal overflows still leaves the largest alone
    probs = np.empty(65)
    assert softmax_weights(logits, logits.max(), 1e-310, -np.inf, probs) == 1.0
    assert probs[np.argmax(logits)] == 1.0 and (probs > 0).sum() == 1


def test_weight_bytes_are_what_a_character_reads():
    """The bytes of weights a sampled character reads (the split's threshold, and
    bench.py's bound on sampling): 2 layers, both Wh (H, G), layer 1's Wx (H, G) and
    the output layer (H, V), in float32; layer 0's input is a table row."""
    for kind, gates in (("rnn", 1), ("lstm", 4), ("gru", 3)):
        cfg = ModelConfig(kind=kind, vocab_size=65, hidden=24, layers=2, embed=24)
        s = Sampler(cfg, model.carve(model.init_params(cfg, np.random.default_rng(0)), cfg),
                    [chr(32 + i) for i in range(65)])
        assert s.weight_bytes == 4 * (3 * 24 * gates * 24 + 24 * 65)


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


def reference_sample(cfg, p, prime, coins, temperature=1.0, top_k=0, top_p=1.0):
    """Inverse-CDF draws with the given coins (length,), from the reference probabilities
    (cut to the top_k, then to the nucleus top_p, in vocabulary order)."""
    ref = Reference(cfg, p)
    logits = ref.feed(prime)
    out = []
    for u in coins:
        z = logits.copy()
        if top_k:
            z[z < np.sort(z)[-top_k]] = -np.inf
        q = softmax(z, temperature)
        if top_p < 1:
            desc = np.sort(q)[::-1]
            q[q < desc[np.searchsorted(np.cumsum(desc), top_p)]] = 0
        cdf = np.cumsum(q)
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


# -- top-p (nucleus) ------------------------------------------------------------------

def fixed(probs, kind="lstm"):
    """A model whose next-character distribution is probs at every step, whatever the
    state: out.W is zero and out.b holds the log-probabilities."""
    cfg = ModelConfig(kind=kind, vocab_size=len(probs), hidden=8, layers=1)
    p = model.carve(model.init_params(cfg, np.random.default_rng(0)), cfg)
    p["out.W"][:] = 0
    p["out.b"][:] = np.log(probs)
    return cfg, p


def allowed(probs, temperature=1.0, top_k=0, top_p=1.0):
    """The renormalised distribution after temperature, top-k, then top-p (slow, obvious)."""
    z = np.log(np.asarray(probs, dtype=np.float64))
    if top_k:
        z[z < np.sort(z)[-top_k]] = -np.inf
    q = softmax(z, temperature)
    if top_p < 1:
        desc = np.sort(q)[::-1]
        m = int(np.searchsorted(np.cumsum(desc), top_p))  # the fewest whose sum >= top_p
        q[q < desc[m]] = 0  # ties with the last one kept stay in
    return q / q.sum()


# in vocabulary order, so that rank and position differ; by rank:
# .25 .20 .15 .12 .10 .08 .05 .03 .01 .005 .003 .002
PROBS = [.03, .15, .005, .25, .08, .002, .12, .2, .01, .1, .003, .05]
R = [3, 7, 1, 6, 9, 4, 11, 0]  # positions of the 8 most likely, best first


@pytest.mark.parametrize("temperature,top_k,top_p,expect", [
    (1.0, 0, 0.55, R[:3]),         # .25 + .20 + .15 = .60 >= .55
    (1.0, 0, 0.88, R[:6]),         # .82 is short; .90 with the sixth
    (1.0, 0, 0.2, R[:1]),          # the most likely alone suffices
    (1.0, 5, 0.5, R[:2]),          # top 5 first: .45 of their .82 >= .5 * .82 = .41
    (1.0, 3, 1.0, R[:3]),          # top-k alone
    (1.0, 8, 0.97, R[:8]),         # .95 of the top 8's .98 is short of .97: all 8 stay
    (0.5, 0, 0.6, R[:2]),          # tempered: .25**2 and .2**2 are .39 + .25 of the mass
])
def test_top_k_top_p_sample_only_the_allowed_set_with_renormalised_frequencies(
        temperature, top_k, top_p, expect):
    probs = np.array(PROBS)
    assert abs(probs.sum() - 1) < 1e-12
    q = allowed(probs, temperature, top_k, top_p)
    assert sorted(np.flatnonzero(q)) == sorted(expect)  # the hand-derived set
    cfg, p = fixed(probs)
    got = generate(Sampler(cfg, p, VOCAB), [0], 10, num_samples=3000, temperature=temperature,
                   top_k=top_k, top_p=top_p, seed=99).ravel()  # 30000 draws, 10 steps deep
    counts = np.bincount(got, minlength=len(VOCAB))
    assert counts[q == 0].sum() == 0, "sampled a character outside the allowed set"
    live = q > 0
    if live.sum() > 1:
        _, pvalue = stats.chisquare(counts[live], q[live] * got.size)
        assert pvalue > 1e-3
    if temperature != 1:  # power: the cut made without the temperature is rejected
        raw = probs[live] / probs[live].sum()
        assert stats.chisquare(counts[live], raw * got.size)[1] < 1e-6


def test_top_p_keeps_ties_at_the_cut():
    probs = np.array([.1, .4, .1, .1, .1, .2])
    assert np.count_nonzero(allowed(probs, top_p=0.65)) == 6  # .4 + .2 + a .1: all the .1s
    cfg, p = fixed(probs)
    got = generate(Sampler(cfg, p, VOCAB[:6]), [0], 1, num_samples=2000, top_p=0.65, seed=1)
    assert set(got.ravel().tolist()) == set(range(6))
    got = generate(Sampler(cfg, p, VOCAB[:6]), [0], 1, num_samples=2000, top_p=0.55, seed=1)
    assert set(got.ravel().tolist()) == {1, 5}


def test_top_p_1_is_off_and_tiny_top_p_is_argmax():
    cfg, p = make(scale=0.5)
    s = Sampler(cfg, p, VOCAB)
    assert np.array_equal(generate(s, [0], 100, seed=4, top_p=1.0), generate(s, [0], 100, seed=4))
    assert np.array_equal(generate(s, [0], 100, seed=4, top_p=1e-6),
                          generate(s, [0], 100, greedy=True))


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 0.7), (0.8, 6, 0.9), (1.2, 0, 0.35)])
def test_top_p_samples_follow_the_coins(temperature, top_k, top_p):
    """The nucleus, state by state on a random model, against the slow reference."""
    cfg, p = make(scale=0.4)
    N, length, seed = 3, 120, 43
    got = generate(Sampler(cfg, p, VOCAB), [2, 0], length, num_samples=N,
                   temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    children = np.random.SeedSequence(seed).spawn(N)
    for n in range(N):
        coins = np.random.default_rng(children[n]).random(length)
        want = reference_sample(cfg, p, [2, 0], coins, temperature, top_k, top_p)
        assert got[:, n].tolist() == want


# -- beam search ----------------------------------------------------------------------

def sequence_logprob(cfg, p, prime, seq):
    """log P(seq | prime) by the slow reference."""
    ref = Reference(cfg, p)
    logits, total = ref.feed(prime), 0.0
    for i in seq:
        z = logits - logits.max()
        total += z[i] - np.log(np.exp(z).sum())
        logits = ref.step(i)
    return total


@pytest.mark.parametrize("kind,seed", [("rnn", 7), ("lstm", 2), ("gru", 20)])  # greedy loses
def test_beam_search_finds_the_most_likely_sequence(kind, seed):
    """V = 4, length 4: all 256 continuations enumerated. A beam as wide as the number
    of prefixes of length 3 (V**3) is exact; the greedy text is not the answer."""
    import itertools
    V, T, prime = 4, 4, [2, 1]
    vocab = VOCAB[:V]
    cfg = ModelConfig(kind=kind, vocab_size=V, hidden=8, layers=2)
    rng = np.random.default_rng(seed)
    flat = model.init_params(cfg, rng)
    flat += rng.normal(0, 1.0, flat.shape).astype(np.float32)
    p = model.carve(flat, cfg)
    scored = sorted((sequence_logprob(cfg, p, prime, seq), seq)
                    for seq in itertools.product(range(V), repeat=T))
    (best_lp, best), (second_lp, _) = scored[-1], scored[-2]
    assert best_lp - second_lp > 1e-3  # no near tie for float32 to break either way
    greedy = greedy_reference(cfg, p, prime, T)
    assert tuple(greedy) != best  # a beam is needed here

    s = Sampler(cfg, p, vocab)
    got, lp = s.beam(np.array(prime), T, V ** (T - 1))
    assert tuple(got.tolist()) == best
    assert lp == pytest.approx(best_lp, abs=1e-4)
    for width in (1, 2, 3, 8):  # narrower beams: a valid score, never above the best
        got, lp = s.beam(np.array(prime), T, width)
        assert lp == pytest.approx(sequence_logprob(cfg, p, prime, got), abs=1e-4)
        assert lp <= best_lp + 1e-4


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers,embed", [(1, 0), (2, 5)])
def test_beam_width_1_equals_argmax(kind, layers, embed):
    cfg, p = make(kind, layers, embed)
    s = Sampler(cfg, p, VOCAB)
    got, lp = s.beam(np.array([0, 3, 4]), 80, 1)
    assert got.tolist() == generate(s, [0, 3, 4], 80, greedy=True)[:, 0].tolist()
    assert lp == pytest.approx(sequence_logprob(cfg, p, [0, 3, 4], got), abs=1e-3)


@pytest.mark.parametrize("width", [1, 2, 5])
def test_beam_ties_go_to_the_lower_character_as_argmax(width):
    """Two equally likely best characters at every step: every continuation made of
    them ties exactly, and the beam returns the one argmax makes."""
    cfg, p = fixed([.2, .3, .3, .2])
    s = Sampler(cfg, p, VOCAB[:4])
    got, lp = s.beam(np.array([0]), 12, width)
    assert got.tolist() == generate(s, [0], 12, greedy=True)[:, 0].tolist() == [1] * 12
    assert lp == pytest.approx(12 * np.log(.3), abs=1e-4)


def test_beam_length_zero_and_wider_than_the_vocabulary():
    cfg, p = make()
    s = Sampler(cfg, p, VOCAB)
    got, lp = s.beam(np.array([1]), 0, 5)
    assert got.shape == (0,) and lp == 0.0
    got, lp = s.beam(np.array([1]), 1, 50)  # 12 candidates for 50 beams at the first step
    assert got.tolist() == generate(s, [1], 1, greedy=True)[:, 0].tolist()
    assert np.isfinite(lp)


# -- stop at a delimiter ------------------------------------------------------------------

def stream(stop, pieces, N=1):
    """Runs Stop over pieces [(n, text)]; returns each text's output, and checks as it
    goes that no more than len(stop) - 1 characters are ever held back."""
    st, shown, given = Stop(stop, N), [""] * N, [""] * N
    for n, piece in pieces:
        shown[n] += st.cut(n, piece)
        given[n] += piece
        if not st.ended[n]:
            assert len(given[n]) - len(shown[n]) <= len(stop) - 1
    return [shown[n] + st.flush(n) for n in range(N)], st


@pytest.mark.parametrize("stop,pieces,want", [
    ("\n\n", ["ab\n", "\ncd"], "ab\n\n"),                       # split across pieces
    ("\n\n", ["ab\n\ncd\n\n"], "ab\n\n"),                       # the first occurrence
    ("abc", ["xab", "d", "ab", "c", "zzz"], "xabdabc"),          # a false start is released
    ("abc", ["xa", "b"], "xab"),                                # no match: all flushed at the end
    ("aab", ["a", "a", "a", "b", "x"], "aaab"),                 # overlapping prefixes
    ("€", ["a€b"], "a€"),                                       # one character: nothing held
    ("xyz", [], ""),
])
def test_stop_cuts_right_after_the_first_occurrence(stop, pieces, want):
    (got,), st = stream(stop, [(0, s) for s in pieces])
    assert got == want
    assert st.done == (stop in "".join(pieces))


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 128])
def test_stop_at_across_chunk_boundaries(chunk):
    """Generated in chunks of any size, each of 3 samples ends right after its own
    first occurrence of the delimiter, as the whole text cut by hand does."""
    cfg, p = make(scale=0.3)
    s = Sampler(cfg, p, VOCAB)
    whole = generate(s, [1, 2], 600, num_samples=3, seed=6)
    texts = ["".join(VOCAB[i] for i in whole[:, n]) for n in range(3)]
    stop = texts[0][300:303]
    want = [t[:t.find(stop) + len(stop)] if stop in t else t for t in texts]
    assert len({len(w) for w in want}) > 1  # the samples stop at different places
    pieces = [(n, "".join(VOCAB[i] for i in out[:, n]))
              for out in s.generate(np.array([1, 2]), 600, num_samples=3, seed=6, chunk=chunk)
              for n in range(3)]
    got, st = stream(stop, pieces, N=3)
    assert got == want


# -- where an unprimed sample starts ----------------------------------------------

def own_losses(cfg, p, vocab, prime, n=400, length=400, seed=0):
    """The model's own loss (nats) on each of the first `length` characters it samples
    after reading prime, averaged over n samples: (length,)."""
    from charrnn.data import encode
    ids = encode(prime, vocab).astype(np.int64)
    out = np.concatenate(list(Sampler(cfg, p, vocab).generate(ids, length, n, seed=seed)))
    state = model.zero_state(cfg, n)
    if len(ids) > 1:
        _, _, state = model.forward(cfg, p, np.repeat(ids[:-1, None], n, axis=1), state)
    x = np.vstack([np.full((1, n), ids[-1]), out[:-1]])
    logits, _, _ = model.forward(cfg, p, x, state)
    logits = logits.reshape(length, n, -1).astype(np.float64)
    top = logits.max(-1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(-1)) + top[..., 0]
    return (lse - np.take_along_axis(logits, out[:, :, None], -1)[..., 0]).mean(axis=1)


def test_unprimed_samples_start_from_a_state_the_model_knows(tmp_path):
    """Issue 18: the model's own mean loss on the first 20 sampled characters is within
    0.3 nats of its loss on characters 200-400. This small model is held to 0.06, which
    the zero state (the start before) misses: 0.11 here (0.13 with another seed)."""
    from charrnn import checkpoint, synth, train
    from charrnn.sample import start_text
    out = str(tmp_path / "m.npz")
    cfg = ModelConfig(kind="lstm", hidden=48, layers=1)
    tc = train.TrainConfig(batch_size=16, seq_length=32, lr=1e-2, max_steps=400, seed=1)
    # a text of more than 400 steps: the zero state is seen only at the very start
    train.run(train.Run(synth.generate(250_000, seed=5), out, cfg, tc), progress=False)
    ck = checkpoint.load(out)
    prime = start_text(ck.meta["start_context"], ck.vocab)
    assert prime.endswith("\n") and len(prime) == train.CONTEXT  # read, not printed
    own = own_losses(ck.config, ck.params, ck.vocab, prime)
    assert abs(own[:20].mean() - own[200:400].mean()) < 0.06
    zero = own_losses(ck.config, ck.params, ck.vocab, "\n")
    assert zero[:20].mean() - zero[200:400].mean() > 0.07
    assert start_text(None, ck.vocab) == "\n"  # a checkpoint from before: as before


def test_many_samples_keep_each_chunk_small():
    """Chunks double while they are fast, but K x N stays within MAX_CHUNK_CELLS
    (1,024 samples once grew to 16,384 x 1,024 ids and coins: 268 MB)."""
    from charrnn.sample import MAX_CHUNK_CELLS
    cfg, p = make("rnn", layers=1)
    N = 1024
    shapes = [out.shape for out in Sampler(cfg, p, VOCAB).generate([1], 6000, num_samples=N,
                                                                    seed=0, flush_s=1e9)]
    assert sum(K for K, _ in shapes) == 6000 and all(n == N for _, n in shapes)
    assert max(K for K, _ in shapes) * N <= MAX_CHUNK_CELLS
