"""The policy 'charrnn train', 'sample', 'eval' and 'info' hand over to: settings of a
new or resumed run, the samples' layout, the info report's vocabulary line."""
import io

import numpy as np
import pytest

from charrnn import CharrnnError, generate, reports, session
from charrnn.distributed import communicator
from charrnn.sample import Stop

OPTS = dict(model="lstm", hidden=8, layers=2, embed=0, dropout=0.0, eval_every=None, seed=3)


def test_plural():
    assert [session.plural(n, "step") for n in (1, 2, 1000)] == ["1 step", "2 steps", "1,000 steps"]


def test_a_new_run_takes_its_architecture_from_the_options():
    ck, cfg, tc = session.settings(communicator(), None, OPTS, set(), print)
    assert ck is None and (cfg.kind, cfg.hidden, cfg.layers) == ("lstm", 8, 2)
    assert (tc.seed, tc.eval_every) == (3, 0)


def test_an_esn_has_one_layer_unless_told():
    _, cfg, _ = session.settings(communicator(), None, dict(OPTS, model="esn"), set(), print)
    assert cfg.layers == 1
    _, cfg, _ = session.settings(communicator(), None, dict(OPTS, model="esn"), {"layers"}, print)
    assert cfg.layers == 2


def test_a_random_seed_is_drawn_when_none_is_given():
    _, _, tc = session.settings(communicator(), None, dict(OPTS, seed=None), set(), print)
    assert isinstance(tc.seed, int) and tc.seed >= 0


def test_preset_and_resume_together_are_refused():
    with pytest.raises(CharrnnError, match="--preset small starts a new run"):
        session.train(["x.txt"], OPTS, set(), print, resume="m.npz", preset="small")


def test_samples_follow_sample_zero_each_after_the_separator_and_prime():
    vocab = ["a", "b", "\n"]
    chunks = [np.array([[0, 1], [1, 0]]), np.array([[2, 2], [2, 2], [0, 1]])]  # (chars, samples)
    out = io.BytesIO()
    generate.write(out, chunks, vocab, 2, "P:", Stop("\n\n", 2), "|")
    assert out.getvalue() == b"P:ab\n\n|P:ba\n\n\n"


def test_the_vocabulary_line_is_cut_and_says_how_many_are_left():
    vocab = [chr(c) for c in range(0x4e00, 0x4e00 + 400)]
    line = reports.shown(vocab, width=40)
    assert line.endswith("more (all in 'info --json')") and len(line) < 100
    assert reports.shown(["a", "b"]) == "'ab'"
