"""The Numba core against the naive reference and against central finite differences."""
import itertools
import platform
import sys

import numpy as np
import pytest

from charrnn import model
from charrnn.model import ModelConfig
from tests import naive

CASES = list(itertools.product(["rnn", "lstm", "gru"], [1, 2], [0, 3]))


def make(kind, layers, embed, dropout=0.0, dtype=np.float64, seed=0, V=5, H=4, T=4, N=3):
    cfg = ModelConfig(kind=kind, vocab_size=V, hidden=H, layers=layers, embed=embed,
                      dropout=dropout)
    rng = np.random.default_rng(seed)
    flat = model.init_params(cfg, rng, dtype=dtype)
    # move every parameter away from its initial value (zeros in biases hide bugs)
    flat += rng.normal(0, 0.3, flat.shape).astype(dtype)
    ids = rng.integers(0, V, (T, N))
    targets = rng.integers(0, V, (T, N))
    state = rng.normal(0, 0.5, (layers, model.STATES[kind], N, H)).astype(dtype)
    masks = model.dropout_masks(cfg, rng, T, N, dtype)
    return cfg, flat, ids, targets, state, masks


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_named_states_follow_the_equations(kind):
    """A cell saves what its table entry names, and named_states' gates obey the
    cell's equations by name (swapped names would break them): c = f c_prev + i g and
    h = o tanh(c) for the LSTM, h = (1 - z) n + z h_prev for the GRU, the last step
    the state carried out."""
    cfg, flat, ids, targets, state, _ = make(kind, 2, 0, T=3)
    _, caches, new_state = model.forward(cfg, model.carve(flat, cfg), ids, state)
    cell = model.CELLS[kind]
    assert all(tuple(saved) == cell.saves for _, _, saved, _ in caches)
    for l, s in enumerate(model.named_states(cfg, caches)):
        assert tuple(s) == ("h", *cell.states[1:], *cell.gates)
        prev = [np.concatenate([state[l][k][None], s[name][:-1]]) for k, name in enumerate(cell.states)]
        np.testing.assert_allclose(new_state[l], [s[name][-1] for name in cell.states], rtol=1e-12)
        if kind == "lstm":
            np.testing.assert_allclose(s["c"], s["f"] * prev[1] + s["i"] * s["g"], rtol=1e-12)
            np.testing.assert_allclose(s["h"], s["o"] * np.tanh(s["c"]), rtol=1e-12)
        if kind == "gru":
            np.testing.assert_allclose(s["h"], (1 - s["z"]) * s["n"] + s["z"] * prev[0], rtol=1e-12)


@pytest.mark.parametrize("kind,layers,embed", CASES)
def test_forward_matches_naive(kind, layers, embed):
    cfg, flat, ids, targets, state, _ = make(kind, layers, embed)
    p = model.carve(flat, cfg)
    logits, _, new_state = model.forward(cfg, p, ids, state)
    ref_logits, ref_state = naive.forward(cfg, p, ids, state)
    np.testing.assert_allclose(logits.reshape(ref_logits.shape), ref_logits, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new_state, ref_state, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind,layers,embed", CASES)
def test_float32_forward_close_to_float64(kind, layers, embed):
    cfg, flat, ids, targets, state, _ = make(kind, layers, embed)
    p64 = model.carve(flat, cfg)
    p32 = model.carve(flat.astype(np.float32), cfg)
    l64, _, _ = model.forward(cfg, p64, ids, state)
    l32, _, _ = model.forward(cfg, p32, ids, state.astype(np.float32))
    assert l32.dtype == np.float32
    np.testing.assert_allclose(l32, l64, rtol=1e-4, atol=1e-5)


def check_gradients(cfg, flat, ids, targets, state, masks, wmasks=None, before=None):
    """before: what the gradient buffer holds already (loss_and_grad adds to it)."""
    p = model.carve(flat, cfg)
    grad = np.zeros_like(flat) if before is None else before.copy()
    loss, _ = model.loss_and_grad(cfg, p, model.carve(grad, cfg), ids, targets, state, masks,
                                  wmasks)
    if before is not None:
        grad -= before

    def f():
        q = dict(p)
        if wmasks is not None:  # weight drop is a forward pass on Wh * mask
            q.update({f"L{l}.Wh": p[f"L{l}.Wh"] * wmasks[l] for l in range(cfg.layers)})
        logits, _ = naive.forward(cfg, q, ids, state, masks)
        return naive.mean_xent(logits, targets)

    assert loss == pytest.approx(f(), rel=1e-12)
    eps = 1e-6
    num = np.zeros_like(flat)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        fp = f()
        flat[k] = old - eps
        fm = f()
        flat[k] = old
        num[k] = (fp - fm) / (2 * eps)
    views_a, views_n = model.carve(grad, cfg), model.carve(num, cfg)
    for name in views_a:
        a, n = views_a[name], views_n[name]
        rel = np.abs(a - n).max() / max(np.abs(a).max() + np.abs(n).max(), 1e-12)
        assert rel < 1e-6, f"{name}: relative error {rel:.2e}"
        assert np.abs(a).max() > 0, f"{name}: gradient is all zero, the check proves nothing"


@pytest.mark.parametrize("kind,layers,embed", CASES)
def test_gradients_central_differences(kind, layers, embed):
    check_gradients(*make(kind, layers, embed))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("V", [5, 12, 20])
def test_embedding_folded_or_not(kind, V, monkeypatch):
    """Layer 0 folds the embedding into a (V, G) table when V < M = T*N (12 here):
    V = 5 takes that path, 12 and 20 the per-character GEMMs. Both are checked
    against central differences and give the same loss and gradient."""
    assert model._folds_embedding(ModelConfig(vocab_size=V, embed=3), 12) == (V < 12)
    args = make(kind, 2, 3, V=V)
    check_gradients(*args)
    cfg, flat, ids, targets, state, masks = args
    p = model.carve(flat, cfg)
    runs = []
    for fold in (True, False):
        monkeypatch.setattr(model, "_folds_embedding", lambda cfg, M, fold=fold: fold)
        g = np.zeros_like(flat)
        loss, _ = model.loss_and_grad(cfg, p, model.carve(g, cfg), ids, targets, state)
        runs.append((loss, g))
    assert runs[0][0] == pytest.approx(runs[1][0], rel=1e-12)
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_gradients_with_dropout(kind):
    check_gradients(*make(kind, 2, 3, dropout=0.4))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_gradients_with_weight_drop(kind):
    """DropConnect on Wh: the gradient is that of the loss of the masked forward pass,
    added to what the buffer held (dropped entries get nothing)."""
    cfg, flat, ids, targets, state, masks = make(kind, 2, 3, dropout=0.3)
    rng = np.random.default_rng(1)
    wmasks = model.weight_masks(cfg, rng, 0.5, np.float64)
    assert wmasks.shape == (2, 4, model.GATES[kind] * 4)
    assert set(np.unique(wmasks)) == {0.0, 2.0}  # inverted: kept entries scaled by 1/(1-p)
    check_gradients(cfg, flat, ids, targets, state, masks, wmasks,
                    before=rng.normal(0, 1, flat.shape))
    assert model.weight_masks(cfg, rng, 0.0) is None


def test_chunked_equals_whole():
    """Carrying the state across chunks gives the same outputs as one long chunk."""
    cfg, flat, ids, targets, state, _ = make("lstm", 2, 3, T=6)
    p = model.carve(flat, cfg)
    whole, _, s_whole = model.forward(cfg, p, ids, state)
    a, _, s = model.forward(cfg, p, ids[:2], state)
    b, _, s = model.forward(cfg, p, ids[2:], s)
    np.testing.assert_allclose(np.concatenate([a, b]), whole, rtol=1e-12)
    np.testing.assert_allclose(s, s_whole, rtol=1e-12)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_untrained_loss_near_uniform(kind):
    """A new model guesses uniformly: its loss is within a few percent of ln V."""
    V = 65
    cfg = ModelConfig(kind=kind, vocab_size=V, hidden=128, layers=2, embed=0)
    rng = np.random.default_rng(1)
    p = model.carve(model.init_params(cfg, rng), cfg)
    ids = rng.integers(0, V, (50, 8))
    total, _ = model.chunk_loss(cfg, p, ids, rng.integers(0, V, (50, 8)), model.zero_state(cfg, 8))
    assert abs(total / ids.size / np.log(V) - 1) < 0.03


def test_init_forget_bias_and_orthogonal():
    cfg = ModelConfig(kind="lstm", vocab_size=7, hidden=6, layers=2)
    p = model.carve(model.init_params(cfg, np.random.default_rng(0), dtype=np.float64), cfg)
    H = 6
    for l in range(2):
        b = p[f"L{l}.b"]
        assert np.all(b[H:2 * H] == 1) and np.all(b[:H] == 0) and np.all(b[2 * H:] == 0)
        for gate in range(4):
            q = p[f"L{l}.Wh"][:, gate * H:(gate + 1) * H]
            np.testing.assert_allclose(q.T @ q, np.eye(H), atol=1e-12)


def test_param_layout_is_the_flat_buffer():
    cfg = ModelConfig(kind="gru", vocab_size=11, hidden=5, layers=3, embed=4)
    flat = np.arange(model.num_params(cfg), dtype=np.float64)
    views = model.carve(flat, cfg)
    assert sum(v.size for v in views.values()) == flat.size
    assert all(np.shares_memory(v, flat) for v in views.values())
    # V*E + (E*15 + 5*15 + 15 + 5) + 2 * (5*15 + 5*15 + 15 + 5) + 5*11 + 11
    assert flat.size == 44 + 155 + 2 * 170 + 66


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_streams_split_across_threads(kind, monkeypatch):
    """With the streams cut into 3 ranges run by 3 threads (the recurrence alone in
    forward, the whole step in loss_and_grad and chunk_loss), the forward and the
    loss still equal the naive reference, the gradients still pass the
    finite-difference check, and float32 agrees with float64 and with one thread."""
    from charrnn import threads
    monkeypatch.setenv("CHARRNN_THREADS", "3")
    assert len(threads.ranges(12, 4)) == 3
    assert threads.step_ranges(12, 5, 20) == [(0, 4), (4, 8), (8, 12)]
    cfg, flat, ids, targets, state, masks = make(kind, 2, 3, dropout=0.3, N=12, T=3)
    p = model.carve(flat, cfg)
    logits, _, new_state = model.forward(cfg, p, ids, state, masks)
    ref_logits, ref_state = naive.forward(cfg, p, ids, state, masks)
    np.testing.assert_allclose(logits.reshape(ref_logits.shape), ref_logits, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new_state, ref_state, rtol=1e-12, atol=1e-12)
    calls = []
    parallel = threads.parallel
    monkeypatch.setattr(threads, "parallel", lambda fn, args, parts: calls.append(parts) or
                        parallel(fn, args, parts))
    check_gradients(cfg, flat, ids, targets, state, masks)
    assert calls[0] == [(0, 4), (4, 8), (8, 12)] and all(len(parts) == 1 for parts in calls[1:])
    calls.clear()
    total, end_state = model.chunk_loss(cfg, p, ids, targets, state)  # evaluation: no dropout
    assert calls[0] == [(0, 4), (4, 8), (8, 12)]
    ref_logits, ref_state = naive.forward(cfg, p, ids, state)
    assert total == pytest.approx(naive.mean_xent(ref_logits, targets) * ids.size, rel=1e-12)
    np.testing.assert_allclose(end_state, ref_state, rtol=1e-12, atol=1e-12)
    runs = {}
    for P, dtype in (("3", np.float64), ("3", np.float32), ("1", np.float64)):
        monkeypatch.setenv("CHARRNN_THREADS", P)
        q = flat.astype(dtype)
        g = np.zeros_like(q)
        loss, s = model.loss_and_grad(cfg, model.carve(q, cfg), model.carve(g, cfg), ids, targets,
                                      state.astype(dtype), masks.astype(dtype))
        assert s.dtype == dtype
        runs[P, dtype] = loss, g, s
    for key, rel in ((("3", np.float32), 1e-5), (("1", np.float64), 1e-12)):
        assert runs[key][0] == pytest.approx(runs["3", np.float64][0], rel=rel)
        np.testing.assert_allclose(runs[key][1], runs["3", np.float64][1], rtol=rel * 100, atol=rel)
        np.testing.assert_allclose(runs[key][2], runs["3", np.float64][2], rtol=rel * 10, atol=rel)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("P", [2, 3])
def test_units_split_across_threads(kind, P, monkeypatch):
    """With the hidden units cut into P parts (3 does not divide H = 7), run by P
    threads that meet at a barrier every step: the forward equals the naive
    reference, the gradients pass the finite-difference check, and float32 through
    numpy's sgemm agrees with float64."""
    from charrnn import threads
    monkeypatch.setenv("CHARRNN_THREADS", str(P))
    monkeypatch.setattr(threads, "cores", lambda: P)
    monkeypatch.setattr(threads, "MIN_UNITS", 1)
    monkeypatch.setattr(threads, "MIN_COLUMNS", 1)
    calls = []
    parallel = threads.parallel
    monkeypatch.setattr(threads, "parallel", lambda fn, args, parts: calls.append(parts) or
                        parallel(fn, args, parts))
    cfg, flat, ids, targets, state, masks = make(kind, 2, 3, dropout=0.3, H=7, N=4, T=3)
    p = model.carve(flat, cfg)
    logits, _, new_state = model.forward(cfg, p, ids, state, masks)
    calls = [[share for share, in parts] for parts in calls
             if isinstance(parts[0][0], threads.Share)]  # the recurrences: one Share a thread
    assert len(calls) == 2 and all([part[3:] for part in parts] == [(k * 7 // P, (k + 1) * 7 // P)
                                                                    for k in range(P)] for parts in calls)
    ref_logits, ref_state = naive.forward(cfg, p, ids, state, masks)
    np.testing.assert_allclose(logits.reshape(ref_logits.shape), ref_logits, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new_state, ref_state, rtol=1e-12, atol=1e-12)
    check_gradients(cfg, flat, ids, targets, state, masks)
    g64 = np.zeros_like(flat)
    loss64, _ = model.loss_and_grad(cfg, p, model.carve(g64, cfg), ids, targets, state, masks)
    f32 = flat.astype(np.float32)
    g32 = np.zeros_like(f32)
    loss32, s32 = model.loss_and_grad(cfg, model.carve(f32, cfg), model.carve(g32, cfg), ids,
                                      targets, state.astype(np.float32), masks.astype(np.float32))
    assert s32.dtype == np.float32 and loss32 == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("split", ["streams", "units"])
def test_wide_layers_directional_derivative(kind, split, monkeypatch):
    """Layers of 70 units and 20 streams, on 2 threads split either way: the
    recurrent products (packed.py) run over whole and partial panels, several row
    blocks, and two blocks of K (the LSTM's backward, 4H = 280). The forward equals
    the naive reference; the gradient along a random direction equals the central
    difference of the loss along it (a full check: 30,000 pairs of passes)."""
    from charrnn import threads
    monkeypatch.setenv("CHARRNN_THREADS", "2")
    monkeypatch.setenv("CHARRNN_SPLIT", split)
    monkeypatch.setattr(threads, "cores", lambda: 2)
    cfg, flat, ids, targets, state, masks = make(kind, 2, 3, dropout=0.3, H=70, N=20, T=3)
    p = model.carve(flat, cfg)
    logits, _, new_state = model.forward(cfg, p, ids, state, masks)
    ref_logits, ref_state = naive.forward(cfg, p, ids, state, masks)
    np.testing.assert_allclose(logits.reshape(ref_logits.shape), ref_logits, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new_state, ref_state, rtol=1e-12, atol=1e-12)
    grad = np.zeros_like(flat)
    model.loss_and_grad(cfg, p, model.carve(grad, cfg), ids, targets, state, masks)
    d = np.random.default_rng(1).standard_normal(flat.size)
    eps = 1e-6

    def loss_along(step):
        q = model.carve(flat + step * d, cfg)
        return naive.mean_xent(naive.forward(cfg, q, ids, state, masks)[0], targets)
    num = (loss_along(eps) - loss_along(-eps)) / (2 * eps)
    assert grad @ d == pytest.approx(num, rel=1e-6)


def test_split_setting(monkeypatch):
    """In training, units from MIN_UNITS units and MIN_COLUMNS gate columns a thread
    (2x512 LSTM and GRU, not 2x512 RNN nor 2x256 LSTM); in sampling from
    SAMPLE_MIN_BYTES of weights; streams otherwise. CHARRNN_SPLIT overrides the choice."""
    from charrnn import threads
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setenv("CHARRNN_THREADS", "2")
    assert (threads.MIN_UNITS, threads.MIN_COLUMNS) == (256, 512)
    assert threads.unit_ranges(512, 4 * 512) == [(0, 256), (256, 512)]
    assert threads.unit_ranges(512, 3 * 512) == [(0, 256), (256, 512)]
    assert threads.unit_ranges(512, 512) is None
    assert threads.unit_ranges(1024, 1024) == [(0, 512), (512, 1024)]
    assert threads.unit_ranges(300, 1200) is None and threads.unit_ranges(511, 2044) is None
    assert threads.step_ranges(50, 512, 2048) is None
    assert threads.step_ranges(50, 512, 512) == [(0, 25), (25, 50)]
    assert threads.step_ranges(50, 300, 1200) == [(0, 25), (25, 50)]
    least = threads.SAMPLE_MIN_BYTES
    assert threads.sample_unit_ranges(128, least) == [(0, 64), (64, 128)]
    assert threads.sample_unit_ranges(128, least - 1) is None
    monkeypatch.setenv("CHARRNN_SPLIT", "streams")
    assert threads.unit_ranges(512, 2048) is None
    assert threads.step_ranges(50, 512, 2048) == [(0, 25), (25, 50)]
    assert threads.sample_unit_ranges(128, 10 * least) is None
    monkeypatch.setenv("CHARRNN_SPLIT", "units")
    assert threads.unit_ranges(200, 200) == [(0, 100), (100, 200)] and threads.unit_ranges(1, 4) is None
    assert threads.sample_unit_ranges(128, 0) == [(0, 64), (64, 128)]
    monkeypatch.setenv("CHARRNN_THREADS", "1")
    assert threads.unit_ranges(1024, 4096) is None and threads.step_ranges(50, 1024, 4096) is None


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("P", [2, 3])
def test_barrier_that_sleeps_at_once(kind, P, monkeypatch):
    """With no spinning at all, every wait at the barrier goes to sleep (the futex)
    and is woken by the last thread in: the results still equal the reference."""
    from charrnn import native, threads
    if native.SYS_FUTEX == 0:
        assert not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "aarch64")
    monkeypatch.setattr(native, "SPINS", 0)
    monkeypatch.setenv("CHARRNN_THREADS", str(P))
    monkeypatch.setattr(threads, "cores", lambda: P)
    monkeypatch.setattr(threads, "MIN_UNITS", 1)
    monkeypatch.setattr(threads, "MIN_COLUMNS", 1)
    cfg, flat, ids, targets, state, masks = make(kind, 2, 3, H=7, N=4, T=20)
    p = model.carve(flat, cfg)
    for dtype in (np.float64, np.float32):
        q = {k: v.astype(dtype) for k, v in p.items()}
        logits, _, new_state = model.forward(cfg, q, ids, state.astype(dtype))
        ref_logits, ref_state = naive.forward(cfg, p, ids, state)
        tol = 1e-12 if dtype == np.float64 else 1e-4
        np.testing.assert_allclose(logits.reshape(ref_logits.shape), ref_logits, rtol=tol, atol=tol)
        np.testing.assert_allclose(new_state, ref_state, rtol=tol, atol=tol)
    check_gradients(cfg, flat, ids, targets, state, masks)


# the np.dot fallback compiled here for strided inputs is the path under test; numba's
# advice that it is faster on contiguous arrays is no news (it printed twice in make test)
@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")
def test_numpy_sgemm_is_found_and_exact():
    """native.gemm takes numpy's own sgemm (when numpy bundles OpenBLAS, as its wheels
    do), and its sgemv for one row, and gives the product for
    row-strided inputs, as the kernels pass them."""
    import glob
    import os
    from charrnn import native
    from numba import njit
    if glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*")):
        assert 0 not in native.blas_addresses()

    @njit
    def run(ctx, a, b, out):
        native.gemm(ctx, a, b, out)
    rng = np.random.default_rng(3)
    K, N = 512, 515  # one row: sgemv
    a, b = rng.normal(size=(6, K + 3)).astype(np.float32), rng.normal(size=(K, N + 4)).astype(np.float32)
    for rows, k, n in ((slice(1, 4), 5, 9), (slice(2, 3), K, N)):
        for ctx in (native.new_ctx(1), native.new_ctx(1, numpy_blas=False)):  # numpy's; np.dot
            out = np.full((rows.stop - rows.start, n), np.nan, dtype=np.float32)
            run(ctx, a[rows, :k], b[:k, 1:n + 1], out)
            np.testing.assert_allclose(out, a[rows, :k].astype(np.float64) @ b[:k, 1:n + 1],
                                       rtol=1e-5, atol=2e-4)


def test_matmul_helpers_split_rows_exactly(monkeypatch):
    from charrnn import threads
    monkeypatch.setenv("CHARRNN_THREADS", "3")
    rng = np.random.default_rng(5)
    a, b, bias = rng.normal(size=(200, 7)), rng.normal(size=(7, 5)), rng.normal(size=5)
    np.testing.assert_allclose(threads.matmul(a, b, bias), a @ b + bias, rtol=1e-13)
    out = rng.normal(size=(7, 5))
    c = rng.normal(size=(200, 5))
    expected = out + a.T @ c
    threads.matmul_tn_add(out, a, c)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert [r for r in threads.ranges(200, 64)] == [(0, 66), (66, 133), (133, 200)]


def test_barrier_without_the_compiler_keeps_threads_in_step():
    """native.barrier as plain Python (NUMBA_DISABLE_JIT=1), on the atomics' fallbacks:
    after each barrier a thread sees what the other wrote before it, never older."""
    import threading
    from charrnn import native
    ctx, steps = native.new_ctx(2), 30
    wrote, seen = np.zeros(2, dtype=np.int64), np.zeros((2, steps), dtype=np.int64)

    def worker(p):
        for t in range(steps):
            wrote[p] = t
            native.barrier.py_func(ctx)
            seen[p, t] = wrote[1 - p]
            native.barrier.py_func(ctx)  # nobody writes again before both have read
    others = threading.Thread(target=worker, args=(1,))
    others.start()
    worker(0)
    others.join()
    np.testing.assert_array_equal(seen, np.tile(np.arange(steps), (2, 1)))
    assert ctx[native.ARRIVED] == 0 and ctx[native.DONE] == 2 * steps
