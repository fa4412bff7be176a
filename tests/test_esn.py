"""The echo state network (esn.py): its reservoir, its readout's gradient, the ridge
readout against numpy's least squares, fixed weights in training, and the CLI."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import CharrnnError, checkpoint, esn, model, schema, synth
from charrnn import train as tr
from charrnn.cli import COMPILE_NOTICE, cli
from charrnn.model import ModelConfig
from tests import naive

TEXT = synth.generate(3000, seed=5)
TINY = dict(seq_length=16, batch_size=4, lr=1e-2, eval_every=10, checkpoint_every=1000, seed=1)


def make(embed, V=5, H=6, T=4, N=3, seed=0):
    cfg = ModelConfig(kind="esn", vocab_size=V, hidden=H, layers=1, embed=embed)
    rng = np.random.default_rng(seed)
    flat = model.init_params(cfg, rng, dtype=np.float64)
    flat += rng.normal(0, 0.3, flat.shape)  # a readout away from zero, leaks unequal
    ids, targets = rng.integers(0, V, (T, N)), rng.integers(0, V, (T, N))
    state = rng.normal(0, 0.5, (1, 1, N, H))
    return cfg, flat, ids, targets, state


@pytest.mark.parametrize("radius", [0.5, 0.95, 1.3])
def test_reservoir_spectral_radius_and_sparsity(radius):
    cfg = ModelConfig(kind="esn", vocab_size=7, hidden=200, layers=1)
    res = esn.Reservoir(spectral_radius=radius, leak=0.3, input_scale=0.2)
    p = model.carve(model.init_params(cfg, np.random.default_rng(1), reservoir=res), cfg)
    Wh = p["L0.Wh"].astype(np.float64)
    assert np.abs(np.linalg.eigvals(Wh)).max() == pytest.approx(radius, rel=1e-5)
    assert 0.5 * esn.FANIN < np.count_nonzero(Wh) / 200 < 1.5 * esn.FANIN  # sparse
    assert np.abs(p["L0.Wx"]).max() <= 0.2 and np.abs(p["L0.b"]).max() <= 0.2
    assert np.all(p["L0.leak"] == np.float32(0.3))
    assert not p["out.W"].any() and not p["out.b"].any()  # the loss starts at ln V


@pytest.mark.parametrize("embed", [0, 3])
def test_forward_matches_naive(embed):
    cfg, flat, ids, _, state = make(embed)
    p = model.carve(flat, cfg)
    logits, _, new_state = model.forward(cfg, p, ids, state)
    ref_logits, ref_state = naive.forward(cfg, p, ids, state)
    np.testing.assert_allclose(logits.reshape(ref_logits.shape), ref_logits, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new_state, ref_state, rtol=1e-12, atol=1e-12)


def one_step_loss(cfg, p, ids, targets, h_prev):
    """The loss with every h_prev held at the values of the forward pass (T, N, H):
    what the gradient without backpropagation through time is the gradient of."""
    x = p["embed.W"][ids] if cfg.embed else np.eye(cfg.vocab_size)[ids]
    z = np.tanh(x @ p["L0.Wx"] + p["L0.b"] + h_prev @ p["L0.Wh"])
    h = (1 - p["L0.leak"]) * h_prev + p["L0.leak"] * z
    return naive.mean_xent(h @ p["out.W"] + p["out.b"], targets)


@pytest.mark.parametrize("embed,V", [(0, 5), (3, 5), (3, 20)])  # V = 20: the unfolded path
def test_gradient_central_differences(embed, V):
    """The readout's gradient is the loss's; the embedding's is the one-step loss's;
    the reservoir gets none (float64, central differences)."""
    cfg, flat, ids, targets, state = make(embed, V=V)
    p = model.carve(flat, cfg)
    grad = np.zeros_like(flat)
    model.loss_and_grad(cfg, p, model.carve(grad, cfg), ids, targets, state)
    _, caches, _ = model.forward(cfg, p, ids, state)
    h = caches[0][1]
    h_prev = np.concatenate([state[0, 0][None], h[:-1]])

    def full():
        return naive.mean_xent(naive.forward(cfg, p, ids, state)[0], targets)
    num = np.zeros_like(flat)
    for k in range(model.frozen(cfg), flat.size):
        old, eps = flat[k], 1e-6
        flat[k] = old + eps
        fp = full() if k >= flat.size - cfg.vocab_size * (cfg.hidden + 1) else \
            one_step_loss(cfg, p, ids, targets, h_prev)
        flat[k] = old - eps
        fm = full() if k >= flat.size - cfg.vocab_size * (cfg.hidden + 1) else \
            one_step_loss(cfg, p, ids, targets, h_prev)
        flat[k] = old
        num[k] = (fp - fm) / (2 * eps)
    a, n = model.carve(grad, cfg), model.carve(num, cfg)
    for name in ("out.W", "out.b") + (("embed.W",) if embed else ()):
        rel = np.abs(a[name] - n[name]).max() / (np.abs(a[name]).max() + np.abs(n[name]).max())
        assert rel < 1e-6, f"{name}: relative error {rel:.2e}"
        assert np.abs(a[name]).max() > 0, name
    assert not grad[:model.frozen(cfg)].any()


def test_ridge_equals_lstsq():
    """The sums over two chunks give numpy's least-squares answer of the stacked
    system [S, 1; sqrt(M ridge) I', 0] W = [Y; 0]; beta is the cross-entropy's minimum."""
    rng = np.random.default_rng(2)
    H, V, lam = 7, 4, 1e-2
    r = esn.Ridge(H, V, lam)
    S, y = rng.uniform(-1, 1, (50, H)), rng.integers(0, V, 50)
    r.add(S[:30], y[:30])
    r.add(S[30:], y[30:])
    W = esn.ridge_solve(r.A, r.BT, lam)
    S1, Y = np.hstack([S, np.ones((50, 1))]), np.eye(V)[y]
    pen = np.sqrt(50 * lam) * np.eye(H + 1)[:H]  # no penalty on the bias
    ref = np.linalg.lstsq(np.vstack([S1, pen]), np.vstack([Y, np.zeros((H, V))]), rcond=None)[0]
    np.testing.assert_allclose(W, ref, rtol=1e-9, atol=1e-12)
    Z = S1[30:] @ W
    beta = esn.fit_scale(Z, y[30:])
    losses = [naive.mean_xent(b * Z, y[30:]) for b in (beta * 0.99, beta, beta * 1.01)]
    assert beta > 1 and losses[1] < min(losses[0], losses[2])


def run_esn(path, text=TEXT, resume=None, **train):
    tc = tr.TrainConfig(**dict(TINY, **train))
    if resume is not None:
        ck = checkpoint.load(resume)
        tc = tr.TrainConfig.from_dict(dict(ck.meta["train"], **train))
        return tr.Run(text, str(path), ck.config, tc, resume=ck)
    return tr.Run(text, str(path), ModelConfig(kind="esn", hidden=24, layers=1, embed=4), tc)


def test_ridge_run_fits_the_states_it_read(tmp_path):
    """A --readout ridge run's readout is beta times numpy's solution on the states
    of the chunks it read (collected again here, chunk by chunk, state carried)."""
    run = run_esn(tmp_path / "m.npz", readout="ridge", ridge=1e-3, max_steps=12, eval_every=100)
    tr.run(run, progress=False)
    p, bt = run.p, run.batches
    state, S, Y_ids = model.zero_state(run.cfg, 4, np.float32), [], []
    for k in range(12):
        x, y = bt.batch(k)
        _, caches, state = model.forward(run.cfg, p, x, state)
        S.append(caches[0][1].reshape(-1, 24))
        Y_ids.append(y.reshape(-1))
    S1, Y = esn.with_ones(np.concatenate(S)), np.eye(run.cfg.vocab_size)[np.concatenate(Y_ids)]
    M = len(S1)
    W = np.linalg.solve(S1.T @ S1 / M + 1e-3 * np.diag([1.0] * 24 + [0.0]), S1.T @ Y / M)
    got = np.vstack([p["out.W"], p["out.b"]]).astype(np.float64)
    last = slice(M - 64, M)  # beta is fitted on the last chunk (checked on its own above)
    beta = esn.fit_scale(S1[last] @ W, np.concatenate(Y_ids)[last])
    assert beta > 1
    np.testing.assert_allclose(got, beta * W, rtol=1e-4, atol=1e-5)
    assert run.val_loss < np.log(run.cfg.vocab_size) - 0.3  # it learned something


def test_ridge_run_reads_the_text_once(tmp_path):
    run = run_esn(tmp_path / "m.npz", readout="ridge", epochs=10, eval_every=1000)
    assert run.stop_step() == run.batches.steps_per_epoch
    assert run_esn(tmp_path / "o.npz", epochs=10).stop_step() == 10 * run.batches.steps_per_epoch


@pytest.mark.parametrize("readout", ["optimizer", "ridge"])
def test_reservoir_fixed_and_resume_bitwise(tmp_path, readout):
    """Training changes the readout and the embedding (optimizer) but never the
    reservoir; N steps straight == N/2, save, resume, N/2 more, bit for bit."""
    kw = dict(readout=readout, max_steps=30, optimizer="adam")
    straight = run_esn(tmp_path / "a.npz", **kw)
    before = {k: v.copy() for k, v in straight.p.items()}
    tr.run(straight, progress=False)
    for name in ("L0.Wx", "L0.Wh", "L0.b", "L0.leak"):
        assert np.array_equal(before[name], straight.p[name]), name
    for name in ("out.W", "out.b") + (("embed.W",) if readout == "optimizer" else ()):
        assert not np.array_equal(before[name], straight.p[name]), name
    half = run_esn(tmp_path / "b.npz", **dict(kw, max_steps=15))
    tr.run(half, progress=False)
    resumed = run_esn(tmp_path / "b.npz", resume=tmp_path / "b.npz", max_steps=30)
    tr.run(resumed, progress=False)
    a, b = checkpoint.load(tmp_path / "a.npz"), checkpoint.load(tmp_path / "b.npz")
    assert a.meta["step"] == b.meta["step"] == 30
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name
    for key in a.arrays:
        assert np.array_equal(a.arrays[key], b.arrays[key]), key
    assert ("ridge/A" in a.arrays) == (readout == "ridge")


def test_what_an_esn_cannot_do():
    lstm = ModelConfig(kind="lstm", hidden=8, layers=1)
    deep = ModelConfig(kind="esn", hidden=8, layers=2)
    for cfg, tc in ((lstm, tr.TrainConfig(readout="ridge")), (deep, tr.TrainConfig()),
                    (ModelConfig(kind="esn", hidden=8, layers=1), tr.TrainConfig(weight_drop=0.2))):
        with pytest.raises(CharrnnError):
            tr.Run(TEXT, "x.npz", cfg, tc)
    meta = {"config": dict(deep.to_dict(), vocab_size=5), "vocab": list("abcde")}
    with pytest.raises(ValueError, match="one reservoir"):
        schema.meta(meta)


def charrnn(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    return res.exit_code, res.stdout, res.stderr.replace(COMPILE_NOTICE + "\n", "")


@pytest.mark.parametrize("readout", ["optimizer", "ridge"])
def test_cli_train_resume_sample_eval_inspect(tmp_path, readout):
    corpus = tmp_path / "text.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "esn.npz"
    common = ["--batch-size", "4", "--seq-length", "16", "--eval-every", "10", "-q"]
    code, _, err = charrnn("train", corpus, "-o", out, "--model", "esn", "--hidden", "40",
                           "--embed", "4", "--readout", readout, "--spectral-radius", "0.8",
                           "--leak", "0.7", "--max-steps", "10", "--seed", "3", *common)
    assert code == 0, err
    ck = checkpoint.load(out)
    assert ck.config.kind == "esn" and ck.config.layers == 1
    assert ck.meta["train"]["leak"] == 0.7 and ck.meta["train"]["readout"] == readout
    radius = np.abs(np.linalg.eigvals(ck.params["L0.Wh"].astype(np.float64))).max()
    assert radius == pytest.approx(0.8, rel=1e-5)
    code, res, err = charrnn("info", out, "--json")
    assert code == 0, err
    fixed = 4 * 40 + 40 * 40 + 40 + 40  # L0.Wx (E, H), Wh, b, leak
    assert json.loads(res)["params"] - json.loads(res)["trained_params"] == fixed
    code, res, err = charrnn("info", out)
    assert code == 0 and "trained, the reservoir fixed" in res, err
    code, _, err = charrnn("train", corpus, "--resume", out, "--max-steps", "20", *common)
    assert code == 0, err
    assert checkpoint.load(out).meta["step"] == 20
    code, text, err = charrnn("sample", out, "--length", "50", "--seed", "1", "--prime", "the")
    assert code == 0 and text.startswith("the") and len(text) == 3 + 50 + 1, err
    code, res, err = charrnn("eval", out, corpus, "--json")
    assert code == 0, err
    assert 0 < json.loads(res)["loss_nats"] < np.log(ck.config.vocab_size)
    code, res, err = charrnn("inspect-cells", out, corpus, "--format", "json", "--shifts", "5",
                             "--only", "word_pos", "-q")
    assert code == 0, err
    assert json.loads(res)["model"]["kind"] == "esn"


def test_cli_errors_are_one_line(tmp_path):
    corpus = tmp_path / "text.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    for args, words in ((["--readout", "ridge"], "--model esn"),
                        (["--model", "esn", "--layers", "2"], "one reservoir")):
        code, out, err = charrnn("train", corpus, "-o", tmp_path / "m.npz", "-q", *args)
        assert code == 1 and out == "" and err.count("\n") == 1, err
        assert err.startswith("charrnn: error: ") and words in err, err


@pytest.mark.parametrize("embed,P", [(0, 1), (5, 1), (5, 3)])
def test_sampler_equals_the_step_by_step_reference(embed, P, monkeypatch):
    """Greedy sampling (the sampler's own ESN step, with the units split across P
    threads or not) equals model.forward fed one character at a time."""
    from charrnn import threads
    from charrnn.sample import Sampler
    from tests.test_sample import VOCAB, generate, greedy_reference
    cfg = ModelConfig(kind="esn", vocab_size=len(VOCAB), hidden=8, layers=1, embed=embed)
    rng = np.random.default_rng(4)
    flat = model.init_params(cfg, rng, reservoir=esn.Reservoir(leak=0.6))
    flat[model.frozen(cfg):] += rng.normal(0, 0.8, flat.size - model.frozen(cfg)).astype(np.float32)
    p = model.carve(flat, cfg)
    if P > 1:
        monkeypatch.setenv("CHARRNN_THREADS", str(P))
        monkeypatch.setattr(threads, "cores", lambda: P)
        monkeypatch.setattr(threads, "SAMPLE_MIN_BYTES", 0)
    sampler = Sampler(cfg, p, VOCAB)
    assert len(sampler.parts) == P
    prime = [0, 3, 4, 5, 1]
    assert generate(sampler, prime, 60, greedy=True)[:, 0].tolist() == \
        greedy_reference(cfg, p, prime, 60)


def test_untrained_baseline_draws_with_the_runs_settings():
    """inspect-cells' untrained ESN is another reservoir of the same kind: the
    checkpoint's spectral radius, leak and input scale; damaged values keep defaults."""
    from charrnn.inspect.record import untrained_params
    res = esn.Reservoir.of_run({"spectral_radius": 0.7, "leak": 0.25, "input_scale": "x",
                                "lr": 0.1})
    assert res == esn.Reservoir(spectral_radius=0.7, leak=0.25)
    cfg = ModelConfig(kind="esn", vocab_size=5, hidden=30, layers=1)
    p = untrained_params(cfg, 3, res)
    assert np.abs(np.linalg.eigvals(p["L0.Wh"].astype(np.float64))).max() == pytest.approx(0.7, rel=1e-5)
    assert np.all(p["L0.leak"] == np.float32(0.25))
