"""extend.py: new characters leave the old ones' predictions as they were."""
import numpy as np
import pytest

from charrnn import checkpoint, model
from charrnn.data import encode
from charrnn.extend import extend_vocab
from charrnn.model import ModelConfig

VOCAB = list("\n abcdefgh")
TEXT = "a bad cafe\nhead bed feed\ncage a dab\n" * 3


def trained_like(kind, embed, seed=0):
    """A checkpoint with spread-out weights and non-zero optimizer buffers."""
    cfg = ModelConfig(kind=kind, vocab_size=len(VOCAB), hidden=6, layers=2, embed=embed)
    rng = np.random.default_rng(seed)
    flat = model.init_params(cfg, rng) + rng.normal(0, 0.5, model.num_params(cfg)).astype(np.float32)
    arrays = {f"param/{k}": v for k, v in model.carve(flat, cfg).items()}
    arrays["opt/m"] = rng.normal(size=flat.size).astype(np.float32)
    arrays["opt/v"] = rng.random(flat.size).astype(np.float32)
    arrays["state/train"] = rng.normal(size=(2, model.STATES[kind], 3, 6)).astype(np.float32)
    return checkpoint.Checkpoint({"config": cfg.to_dict(), "vocab": VOCAB, "step": 7,
                                  "train": {"batch_size": 3}}, arrays)


def logits(ck, text):
    ids = encode(text, ck.vocab).astype(np.int64)[:, None]
    p = {k: v.astype(np.float64) for k, v in ck.params.items()}
    out, _, _ = model.forward(ck.config, p, ids, model.zero_state(ck.config, 1, np.float64))
    return out


@pytest.mark.parametrize("kind,embed", [("lstm", 0), ("gru", 4), ("rnn", 0)])
def test_old_characters_predict_exactly_as_before(kind, embed):
    old = trained_like(kind, embed)
    new_vocab = sorted(VOCAB + ["A", "z", "é"])  # before, between and after the old ids
    new = extend_vocab(old, new_vocab)
    assert new.vocab == new_vocab and new.config.vocab_size == len(new_vocab)
    where = [new_vocab.index(ch) for ch in VOCAB]
    before, after = logits(old, TEXT), logits(new, TEXT)
    np.testing.assert_allclose(after[:, where], before, rtol=1e-12, atol=1e-12)
    added = [new_vocab.index(ch) for ch in "Az\u00e9"]
    # a new character starts as unlikely as the rarest old one
    np.testing.assert_allclose(after[:, added], old.params["out.b"].min(), atol=1e-12)


@pytest.mark.parametrize("kind,embed", [("lstm", 0), ("gru", 4)])
def test_optimizer_moments_follow_their_weights(kind, embed):
    old = trained_like(kind, embed)
    new_vocab = sorted(VOCAB + ["A", "z"])
    new = extend_vocab(old, new_vocab)
    where = [new_vocab.index(ch) for ch in VOCAB]
    added = [new_vocab.index(ch) for ch in "Az"]
    for b in ("m", "v"):
        o = model.carve(old.arrays[f"opt/{b}"], old.config)
        n = model.carve(new.arrays[f"opt/{b}"], new.config)
        for name in o:
            if name in ("out.W",):
                assert np.array_equal(n[name][:, where], o[name]) and not n[name][:, added].any()
            elif name == "out.b" or name == ("embed.W" if embed else "L0.Wx"):
                assert np.array_equal(n[name][where], o[name]) and not n[name][added].any()
            else:
                assert np.array_equal(n[name], o[name]), name
    assert np.array_equal(new.arrays["state/train"], old.arrays["state/train"])
    assert new.meta["step"] == 7


def test_nothing_new_is_the_same_checkpoint():
    old = trained_like("lstm", 0)
    assert extend_vocab(old, VOCAB) is old
