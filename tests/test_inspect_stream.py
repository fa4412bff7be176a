"""inspect/stream.py: the statistics summed chunk by chunk as the text streams
through the model equal, up to float rounding, those computed with every state in
memory at once (tests/inspect_memory.py, the computation inspect-cells used to do)."""
import numpy as np
import pytest

from charrnn import synth
from charrnn.inspect import analyze as an
from charrnn.inspect import extras, hypotheses, stats, stream
from charrnn.inspect import record as rc
from charrnn.inspect.features import Hypothesis
from charrnn.model import ModelConfig
from tests import inspect_memory as memory


@pytest.fixture(scope="module")
def model():
    text = synth.generate(4001, seed=4)              # odd: the halves differ by one
    vocab = sorted(set(text))
    cfg = ModelConfig(kind="lstm", layers=2, hidden=12, vocab_size=len(vocab))
    p = rc.untrained_params(cfg, seed=3)
    ids = np.array([vocab.index(ch) for ch in text])
    hyps = [h for h in hypotheses(text) if h.values.std() > 0]
    return cfg, p, ids, hyps, rc.record(cfg, p, ids)


@pytest.mark.parametrize("chunk,fold", [(1000, 8), (257, 64), (257, 2)])
def test_streamed_controls_equal_the_all_in_memory_ones(model, chunk, fold, monkeypatch):
    """fold 2: the chunks are folded into the running sums every second chunk."""
    monkeypatch.setattr(stream.Cross, "FOLD", fold)
    cfg, p, ids, hyps, rec = model
    names, groups = rc.blocks(cfg), rc.memory_groups(cfg)
    parts = an.halves(len(ids))
    F = np.stack([h.values for h in hyps], axis=1)
    R, probe, null, probe_null = memory.controls([rec[b] for b in names], groups, F, parts,
                                                 seed=2, n_shifts=30)
    offsets = stats.shifts(parts[1].stop - parts[1].start, 30, np.random.default_rng(2))
    st = stream.Stream(names, groups, hyps, parts, an.LAGS, offsets, offsets[:an.PROBE_SHIFTS])
    for t0, states in rc.chunks(cfg, p, ids, (parts[1].start,), chunk=chunk):
        if t0 == parts[1].start:
            st.half_done()
        st.add(int(t0 >= parts[1].start), t0, states)
    np.testing.assert_allclose(np.stack([st.scan(0), st.scan(1)]), R, atol=5e-5)   # float32 sums
    np.testing.assert_allclose(st.shift_null(), null, atol=5e-5)
    L, J = len(an.LAGS), len(hyps)
    got = st.probe.r()
    np.testing.assert_allclose(got[:L * J].reshape(L, J), probe, atol=1e-4)
    np.testing.assert_allclose(got[L * J:].reshape(-1, J).T, probe_null, atol=1e-4)


@pytest.mark.parametrize("fold", [8, 3])
def test_a_nearly_constant_unit_far_from_zero_keeps_its_correlations(fold, monkeypatch):
    """A saturated tanh(c) sits at -1 in one half and at 1 in the other, +- 3e-6:
    summed about the wrong mean in float32, its variance is
    lost to rounding and its r with anything blows up past 1 (the first streamed
    version gave a null99 of 4 on a trained model). Chunks centred on their means
    keep it. References in float64: np.corrcoef for r and the probe (the all-in-memory
    scan, which does not z-score the activations, is off by 0.01 here, and its probe,
    which predicts in float32, by 0.004), the all-in-memory null."""
    rng = np.random.default_rng(8)
    T = 6000
    f = (np.cumsum(rng.random(T) < 0.01) % 2).astype(float)
    X = np.stack([np.where(np.arange(T) < T // 2, -0.999997, 0.999997)
                  + 3e-6 * (0.5 * f + rng.standard_normal(T)),
                  5.0 + 1e-3 * (f + rng.standard_normal(T)),
                  rng.standard_normal(T)], axis=1).astype(np.float32)
    hyps = [Hypothesis("f", f, True), Hypothesis("g", rng.standard_normal(T), False)]
    parts = an.halves(T)
    F = np.stack([h.values for h in hyps], axis=1)
    R, probe, null, probe_null = memory.controls([X.astype(np.float64)], [[0]], F, parts,
                                                 seed=1, n_shifts=20)
    offsets = stats.shifts(parts[1].stop - parts[1].start, 20, np.random.default_rng(1))
    st = stream.Stream([(0, "x")], [[0]], hyps, parts, an.LAGS, offsets, offsets)
    for t0, states in an.from_arrays([X])((parts[1].start,)):
        if t0 == parts[1].start:
            st.half_done()
        st.add(int(t0 >= parts[1].start), t0, states)
    assert null.max() < 0.2
    np.testing.assert_allclose(st.shift_null(), null, atol=1e-3)
    truth = np.array([[[[[np.corrcoef(X[sl.start + lag:sl.stop, u].astype(np.float64),
                                      F[sl.start:sl.stop - lag, j])[0, 1]
                          for j in range(2)] for u in range(3)] for lag in an.LAGS]]
                      for sl in parts])
    np.testing.assert_allclose(np.stack([st.scan(0), st.scan(1)]), truth, atol=1e-4)
    st_a, st_b = memory.probe_steps(parts)
    Ya, Yb = memory.probe_targets(F, parts)
    mu, sd = X[st_a].mean(axis=0, dtype=np.float64), X[st_a].std(axis=0, dtype=np.float64)
    Za, Zb = (X[st_a] - mu) / sd, (X[st_b] - mu) / sd
    W = np.linalg.solve(Za.T @ Za + 1e-2 * len(Za) * np.eye(3), Za.T @ (Ya - Ya.mean(axis=0)))
    truth = [np.corrcoef(Zb @ W[:, q], Yb[:, q])[0, 1] for q in range(Yb.shape[1])]
    np.testing.assert_allclose(st.probe.r()[:len(an.LAGS) * 2], truth, atol=1e-3)  # float32 X W


def test_streamed_extras_equal_the_all_in_memory_ones(model):
    cfg, p, ids, hyps, rec = model
    names = rc.blocks(cfg)
    sat, mom = extras.Saturation(names, cfg.kind), extras.Moments(names)
    for t0, states in rc.chunks(cfg, p, ids, chunk=333):
        sat.add(t0, states)
        mom.add(t0, states)
    want = memory.saturation(rec, extras.SIGMOID_GATES[cfg.kind])
    for s in sat.result():
        left, right = want[(s["layer"] - 1, s["gate"])]
        np.testing.assert_allclose(s["left"], left)
        np.testing.assert_allclose(s["right"], right)
    for b in mom.blocks:
        a = rec[names[b]].astype(np.float64)
        auto, bimod = mom.scores(b)
        np.testing.assert_allclose(auto, memory.persistence(a), atol=1e-6)
        np.testing.assert_allclose(bimod, memory.bimodality(a), atol=1e-6)


def test_the_pipeline_keeps_only_the_chosen_cells(model):
    """inspect() keeps the second half of the chosen and shown cells, nothing else,
    and their values are the recorded ones."""
    from charrnn.inspect import inspect
    cfg, p, ids, hyps, rec = model
    text = synth.generate(4001, seed=4)
    vocab = sorted(set(text))
    ins = inspect(cfg, p, vocab, text, hyps[:3], top=2, show=[(1, "f", 5)], untrained=False)
    half = len(ids) // 2
    want = {(c["layer"], c["state"], c["unit"]) for r in ins.results for c in r["top"]}
    assert set(ins.traces) == want | {(1, "f", 5)}
    for (l, s, u), tr in ins.traces.items():
        np.testing.assert_array_equal(tr.values, rec[(l, s)][half:, u])
        assert tr[half + 7] == rec[(l, s)][half + 7, u]
