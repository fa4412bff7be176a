"""charrnn.evaluate: the parts read side by side give the loss of one pass over the
whole text, every character after the first scored exactly once."""
import os

import numpy as np
import pytest

from charrnn import checkpoint, synth
from charrnn.data import encode
from charrnn.evaluate import evaluate, layout
from charrnn.model import ModelConfig, carve, init_params

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "synth_lstm.npz")


@pytest.mark.parametrize("n,parts,burn_in", [(2, 50, 200), (450, 50, 200), (10_007, 50, 200),
                                             (10_000, 7, 30), (1_001, 4, 0)])
def test_layout_scores_every_character_after_the_first_once(n, parts, burn_in):
    pos = np.arange(n)  # each id is its own position in the text
    hist, xs, ys, tail_x, tail_y = layout(pos, parts, burn_in)
    targets = np.concatenate([ys.ravel(), tail_y])
    assert np.array_equal(np.sort(targets), np.arange(1, n))
    assert np.array_equal(xs + 1, ys) and np.array_equal(tail_x + 1, tail_y)
    assert tail_x[:1].tolist() in ([], [xs[-1, -1] + 1])  # the last part reads on
    B, W = hist.shape
    assert xs.shape[0] == B and W <= burn_in
    for b in range(1, B):  # the history ends right before the part's first input
        assert np.array_equal(hist[b], np.arange(xs[b, 0] - W, xs[b, 0]))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_two_parts_with_the_whole_history_equal_one_pass(kind):
    cfg = ModelConfig(kind=kind, vocab_size=11, hidden=9, layers=2, embed=4)
    p = carve(init_params(cfg, np.random.default_rng(1), dtype=np.float64), cfg)
    ids = np.random.default_rng(2).integers(0, 11, 1_001).astype(np.uint8)  # 1,000 targets
    one, n1 = evaluate(cfg, p, ids, chunk=37, max_streams=1)
    # MIN_PART 200: 2 parts of 500; a burn-in of 500 reads all of the first before the second
    two, n2 = evaluate(cfg, p, ids, chunk=37, max_streams=2, burn_in=500)
    assert n1 == n2 == 1_000
    assert two == pytest.approx(one, rel=1e-12)
    odd, n3 = evaluate(cfg, p, ids[:1_000], chunk=37, max_streams=2, burn_in=500)  # a tail of 1
    assert n3 == 999 and odd == pytest.approx(evaluate(cfg, p, ids[:1_000], max_streams=1)[0],
                                              rel=1e-12)


def test_burn_in_brings_fifty_parts_to_the_one_pass_loss():
    """On a trained model: zero states at 50 arbitrary points cost something
    measurable; 200 characters of burn-in take (nearly) all of it back."""
    ck = checkpoint.load(FIXTURE)
    p = {k: v.astype(np.float64) for k, v in ck.params.items()}
    ids = encode(synth.generate(30_000, seed=11), ck.vocab)
    one, _ = evaluate(ck.config, p, ids, max_streams=1)
    cold, _ = evaluate(ck.config, p, ids, burn_in=0)
    warm, _ = evaluate(ck.config, p, ids)
    assert abs(warm - one) < 0.1 * abs(cold - one)
    assert abs(warm - one) < 1e-3
