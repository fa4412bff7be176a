"""The classics exactly: --preset min-char-rnn against a transcription of the gist's
equations, and the options it is made of (init, clipping, the summed loss)."""
import json
import math

import numpy as np
import pytest

from charrnn import checkpoint, synth, train
from charrnn.data import build_vocab, encode
from charrnn.model import ModelConfig, carve, init_params
from charrnn.optim import Optimizer
from charrnn.train import PRESETS, Run, TrainConfig
from tests.test_cli import charrnn

STEPS = 200
# 1,012 characters: 40 chunks of 25 per pass, so the data wraps (and h resets) 5 times
# in 200 steps; (1012 - 1) % 25 != 0, where the gist's `>=` would drop the last chunk
TEXT = synth.generate(4000, seed=5)[:1012]


def lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by):
    """min-char-rnn.py's lossFun (Karpathy, 2015) as written, its parameters passed in."""
    vocab_size = Why.shape[0]
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
        ys[t] = np.dot(Why, hs[t]) + by
        ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))
        loss += -np.log(ps[t][targets[t], 0])
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
        np.clip(dparam, -5, 5, out=dparam)
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]


def gist_step(data, n, p, hprev, params, mems, seq_length=25, learning_rate=1e-1):
    """One pass of min-char-rnn.py's training loop as written (less the sampling and
    printing): updates params and mems in place; returns p, hprev, the loss."""
    if p + seq_length + 1 >= len(data) or n == 0:
        hprev = np.zeros_like(hprev)
        p = 0
    inputs = data[p:p + seq_length]
    targets = data[p + 1:p + seq_length + 1]
    loss, dWxh, dWhh, dWhy, dbh, dby, hprev = lossFun(inputs, targets, hprev, *params)
    for param, dparam, mem in zip(params, [dWxh, dWhh, dWhy, dbh, dby], mems):
        mem += dparam * dparam
        param += -learning_rate * dparam / np.sqrt(mem + 1e-8)
    return p + seq_length, hprev, loss


def to_gist(p):
    """charrnn's row-vector parameters (or flat buffers carved alike) as the gist's
    column-vector ones (Wxh, Whh, Why, bh, by), float64 copies."""
    f = lambda a: a.astype(np.float64)  # noqa: E731
    return [f(p["L0.Wx"]).T.copy(), f(p["L0.Wh"]).T.copy(), f(p["out.W"]).T.copy(),
            f(p["L0.b"])[:, None], f(p["out.b"])[:, None]]


def preset_run(name, text, out, cls=Run, **overrides):
    """A Run with the preset's settings resolved as `charrnn train --preset` resolves them."""
    from charrnn.cli import ARCH
    opts = dict(PRESETS[name], **overrides)
    cfg = ModelConfig(kind=opts.pop("model"), **{k: opts.pop(k) for k in ARCH[1:]})
    return cls(text, out, cfg, TrainConfig.from_dict(opts))


class Lockstep(Run):
    """A run in float64 (charrnn's kernels are generic; it trains in float32, whose
    rounding of 1 - h^2 at a saturated unit the gist's gain below turns into 1e-4) that,
    at every step, also takes one step of the gist from the same parameters, Adagrad
    memory and hidden state, and records the largest difference of each."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.flat, self.state = self.flat.astype(np.float64), self.state.astype(np.float64)
        self.grad = np.zeros_like(self.flat)
        self.p, self.g = carve(self.flat, self.cfg), carve(self.grad, self.cfg)
        self.opt = Optimizer(self.tc.optimizer, self.flat.size, dtype=np.float64)
        self.data = [int(i) for i in self.train_ids]
        self.pos, self.gist_losses, self.worst, self.clipped = 0, [], {}, 0

    def train_step(self):
        params = to_gist(self.p)
        mems = to_gist(carve(self.opt.buffers["v"], self.cfg))
        hprev = self.state[0, 0, 0].astype(np.float64)[:, None]
        self.pos, hprev, loss = gist_step(self.data, self.step, self.pos, hprev, params, mems)
        mine = super().train_step()
        self.clipped += np.abs(self.grad).max() == 5.0  # the gradient, clipped in place
        mems_after = to_gist(carve(self.opt.buffers["v"], self.cfg))
        after = [*zip(params, to_gist(self.p)), *zip(mems, mems_after),
                 (hprev[:, 0], self.state[0, 0, 0])]
        for k, (a, b) in enumerate(after):
            self.worst[k] = max(self.worst.get(k, 0.0), float(np.abs(a - b).max()))
        self.gist_losses.append((loss, mine * 25))
        return mine


def test_preset_min_char_rnn_takes_the_gists_steps(tmp_path):
    """200 steps of --preset min-char-rnn, each from charrnn's parameters, Adagrad memory
    and hidden state, against one step of the gist's own equations: 5 wraps of the data
    (and resets of h), clipping at work, the log's losses the gist's. In lockstep, since
    no two implementations follow the gist for 200 free steps (the test below)."""
    log = tmp_path / "log.jsonl"
    r = preset_run("min-char-rnn", TEXT, str(tmp_path / "m.npz"), Lockstep, val_frac=0.0,
                   max_steps=STEPS, log_every=1, seed=4)
    assert (r.cfg.kind, r.cfg.hidden, r.cfg.layers, r.cfg.embed) == ("rnn", 100, 1, 0)
    assert all(not r.p[k].any() for k in ("L0.b", "out.b")) and 0.009 < r.p["L0.Wh"].std() < 0.011
    start = to_gist(r.p)
    train.run(r, progress=False, log_file=str(log))
    assert r.step == STEPS and r.batches.steps_per_epoch == 40
    assert max(np.abs(a - b).max() for a, b in zip(to_gist(r.p), start)) > 0.1  # it learnt
    assert r.clipped > 20
    assert max(r.worst.values()) < 1e-9, r.worst
    losses = np.array(r.gist_losses)
    np.testing.assert_allclose(losses[:, 1], losses[:, 0], rtol=1e-5)
    # the log: seq_loss is the gist's loss, smooth_seq_loss its smooth_loss
    records = [json.loads(line) for line in log.read_text().splitlines()]
    smooth = 25 * math.log(r.cfg.vocab_size)
    for rec, (loss, _) in zip(records, losses, strict=True):
        smooth = smooth * 0.999 + loss * 0.001
        assert rec["seq_loss"] == pytest.approx(loss, rel=1e-5)
        assert rec["smooth_seq_loss"] == pytest.approx(smooth, rel=1e-6)


def test_the_gist_amplifies_rounding_so_no_two_implementations_agree_for_long():
    """Why the test above steps in lockstep rather than comparing 200 free steps: the
    gist's own dynamics, from its N(0, 0.01^2) start, turn a 1e-15 change of the
    weights into more than 1e-5 within 40 steps (Adagrad's first steps divide tiny
    gradients by sqrt(g^2 + 1e-8), a gain of up to 0.1 / 1e-4 = 1000)."""
    data = [int(i) for i in encode(TEXT, build_vocab(TEXT))]
    V, H = max(data) + 1, 100
    rng = np.random.default_rng(0)
    start = [rng.standard_normal((H, V)) * 0.01, rng.standard_normal((H, H)) * 0.01,
             rng.standard_normal((V, H)) * 0.01, np.zeros((H, 1)), np.zeros((V, 1))]
    runs = []
    for nudge in (0.0, 1e-15):
        params = [a + nudge * rng.standard_normal(a.shape) for a in start]
        mems, pos, hprev = [np.zeros_like(a) for a in params], 0, np.zeros((H, 1))
        for n in range(40):
            pos, hprev, _ = gist_step(data, n, pos, hprev, params, mems)
        runs.append(params)
    assert max(np.abs(a - b).max() for a, b in zip(*runs)) > 1e-5


def test_preset_min_char_rnn_from_the_command_line(tmp_path):
    corpus, out = tmp_path / "text.txt", tmp_path / "m.npz"
    corpus.write_text(TEXT, encoding="utf-8")
    code, _, err = charrnn("train", corpus, "-o", out, "--preset", "min-char-rnn", "--max-steps", 5,
                           "--seed", "4", "-q")
    assert code == 0, err
    ck = checkpoint.load(out)
    pre = PRESETS["min-char-rnn"]
    assert (ck.config.kind, ck.config.hidden, ck.config.layers) == ("rnn", 100, 1)
    for k in ("init", "init_scale", "seq_length", "batch_size", "optimizer", "lr", "lr_decay",
              "clip_mode", "grad_clip", "loss"):
        assert ck.meta["train"][k] == pre[k], k


@pytest.mark.parametrize("init,scale,expected", [("normal", 0.0, 0.01), ("normal", 0.2, 0.2),
                                                 ("uniform", 0.08, 0.08 / math.sqrt(3))])
def test_init_draws_every_weight_at_its_scale(init, scale, expected):
    cfg = ModelConfig(kind="lstm", vocab_size=50, hidden=64, layers=2)
    p = carve(init_params(cfg, np.random.default_rng(0), init=init, scale=scale), cfg)
    for name in ("L0.Wx", "L0.Wh", "L1.Wx", "L1.Wh", "out.W"):
        assert p[name].std() == pytest.approx(expected, rel=0.05), name
        assert p[name].mean() == pytest.approx(0, abs=expected / 10), name
    if init == "uniform":
        assert all(np.abs(p[n]).max() <= scale for n in ("L0.Wh", "out.W"))
    assert not p["out.b"].any() and (p["L0.b"][64:128] == 1).all() and not p["L0.b"][:64].any()


def test_summed_loss_scales_the_gradient_by_seq_length(tmp_path):
    """--loss sum: the same chunk's gradient, T times the mean's (no clipping, SGD at
    lr 1 for one step: the weights moved T times as far)."""
    corpus = tmp_path / "text.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    moved = {}
    for loss in ("mean", "sum"):
        out = tmp_path / f"{loss}.npz"
        code, _, err = charrnn("train", corpus, "-o", out, "--model", "rnn", "--hidden", "8",
                               "--layers", "1", "--batch-size", "2", "--seq-length", "10",
                               "--optimizer", "sgd", "--lr", "1", "--grad-clip", "0",
                               "--loss", loss, "--max-steps", "1", "--seed", "2", "-q")
        assert code == 0, err
        ck = checkpoint.load(out)
        p0 = carve(init_params(ck.config, np.random.default_rng(2)), ck.config)
        moved[loss] = {k: ck.params[k].astype(np.float64) - p0[k] for k in p0}
    for k, d in moved["mean"].items():
        assert np.abs(d).max() > 0, k
        np.testing.assert_allclose(moved["sum"][k], 10 * d, rtol=1e-4, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("field,value", [("clip_mode", "elementwise"), ("loss", "total"),
                                         ("init", "xavier")])
def test_settings_of_a_damaged_checkpoint_are_refused(field, value):
    from charrnn import CharrnnError
    with pytest.raises(CharrnnError, match=f"{field}='{value}' is not one of"):
        TrainConfig.from_dict({field: value})


def test_lr_decay_after_holds_the_rate_then_decays_per_epoch():
    tc = TrainConfig(lr=2e-3, lr_decay=0.97, lr_decay_after=10)
    spe = 400
    for epoch, factor in ((0, 1.0), (5.5, 1.0), (10, 1.0), (11, 0.97), (12.5, 0.97 ** 2.5),
                          (50, 0.97 ** 40)):
        assert train.lr_at(tc, int(epoch * spe), spe) == pytest.approx(2e-3 * factor), epoch
    plain = TrainConfig(lr=2e-3, lr_decay=0.97)  # 0: from the start, as before
    assert train.lr_at(plain, 3 * spe, spe) == pytest.approx(2e-3 * 0.97 ** 3)


def test_preset_char_rnn_is_char_rnns_defaults(tmp_path):
    """The preset's settings, a short run of it on a small net (the flags beside it win),
    and its initialisation: every weight in [-0.08, 0.08], the forget gates' bias 1."""
    corpus, out = tmp_path / "text.txt", tmp_path / "c.npz"
    corpus.write_text(synth.generate(20000, seed=6), encoding="utf-8")
    code, _, err = charrnn("train", corpus, "-o", out, "--preset", "char-rnn", "--max-steps", 3,
                           "--batch-size", "8", "--seed", "5", "-q")
    assert code == 0, err
    ck = checkpoint.load(out)
    t = ck.meta["train"]
    assert (ck.config.kind, ck.config.layers, ck.config.hidden, ck.config.embed) == ("lstm", 2, 128, 0)
    assert (t["optimizer"], t["lr"], t["lr_decay"], t["lr_decay_after"]) == ("rmsprop", 2e-3, 0.97, 10)
    assert (t["clip_mode"], t["grad_clip"], t["loss"], t["init"], t["init_scale"]) == (
        "value", 5.0, "sum", "uniform", 0.08)
    assert (t["epochs"], t["max_steps"], t["val_frac"], t["seq_length"]) == (50, 3, 0.05, 50)
    assert t["batch_size"] == 8 and ck.meta["step"] == 3
    p0 = carve(init_params(ck.config, np.random.default_rng(5), init="uniform", scale=0.08),
               ck.config)
    for name in ("L0.Wx", "L0.Wh", "L1.Wx", "L1.Wh", "out.W"):
        assert np.abs(p0[name]).max() <= 0.08 and np.abs(p0[name]).max() > 0.079, name
    assert (p0["L1.b"][128:256] == 1).all()
