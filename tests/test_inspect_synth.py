"""inspect-cells on a model that learned: a briefly trained LSTM on the synthetic
corpus, whose quote state is not visible locally (the same words inside and out),
has a TRACKED quote cell and a TRACKED bracket cell, well above the untrained model.

The fast test reads tests/fixtures/synth_lstm.npz (made by the command in
tests/fixtures/README.md); the slow one trains the same model again (minutes)."""
import os

import numpy as np
import pytest

from charrnn import checkpoint, synth
from charrnn import train as tr
from charrnn.inspect import hypotheses, inspect
from charrnn.inspect.features import Hypothesis
from charrnn.model import ModelConfig

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "synth_lstm.npz")
# the fixture's recipe (tests/fixtures/README.md), as TrainConfig and ModelConfig
RECIPE = dict(seq_length=100, batch_size=32, lr=3e-3, epochs=40, max_steps=1200, eval_every=200,
              seed=1)
CHECKED = ("in_dquote", "bracket_depth", "is_space")


def check(cfg, params, vocab):
    text = synth.generate(30_000, seed=99)                  # not the training text (seed 0)
    ins = inspect(cfg, params, vocab, text, hypotheses(text, only=CHECKED))
    got = {r["name"]: r for r in ins.results}
    for name in ("in_dquote", "bracket_depth"):
        r = got[name]
        assert r["verdict"] == "TRACKED", r
        assert abs(r["cell"]["r"]) > 0.6 and abs(r["cell"]["r"]) > r["untrained"] + 0.3, r
        assert r["local"] < 0.5, r                           # the corpus hides it locally
    assert got["is_space"]["verdict"] == "LOCAL"
    return got


def test_the_fixture_model_tracks_quotes_and_brackets():
    assert os.path.exists(FIXTURE), "missing fixture: make it with tests/fixtures/README.md"
    ck = checkpoint.load(FIXTURE)
    assert (ck.config.kind, ck.config.layers, ck.config.hidden) == ("lstm", 1, 128)
    check(ck.config, ck.params, ck.vocab)


def test_drifting_features_unrelated_to_the_text_are_not_found():
    """A random walk, a ramp and a slow wave owe nothing to the text; a probe over
    128 cells fits any slow drift on one half and carries some of it to the other,
    so only its controls (the rolled feature, the untrained model) can say no."""
    ck = checkpoint.load(FIXTURE)
    text = synth.generate(30_000, seed=99)
    rng = np.random.default_rng(7)
    t = np.arange(len(text))
    drifts = {"walk": np.cumsum(rng.choice([-1.0, 1.0], len(text))),
              "ramp": t / len(text),
              "wave": np.sin(2 * np.pi * t / 7919.0 + 1.0) + 0.01 * rng.standard_normal(len(text))}
    hyps = [Hypothesis(name, v, False, "feature") for name, v in drifts.items()]
    ins = inspect(ck.config, ck.params, ck.vocab, text, hyps)
    for r in ins.results:
        assert r["verdict"] == "NOT FOUND", r
        assert r["probe_null99"] is not None and r["probe_untrained"] is not None


@pytest.mark.slow
def test_retraining_the_fixture_recipe_gives_the_same_findings(tmp_path):
    run = tr.Run(synth.generate(200_000, seed=0), str(tmp_path / "m.npz"),
                 ModelConfig(kind="lstm", layers=1, hidden=128), tr.TrainConfig(**RECIPE))
    tr.run(run, progress=False)
    check(run.cfg, run.p, run.vocab)
