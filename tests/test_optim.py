"""The optimizers against plain float64 numpy written from their papers, and clipping."""
import numpy as np
import pytest

from charrnn.optim import EPS, Optimizer, clip_global_norm, clip_value


def reference(name, w, grads, lr):
    """w after one update per gradient in grads, in float64."""
    w, m, v = w.astype(np.float64), np.zeros(w.size), np.zeros(w.size)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if name == "adam":  # Kingma & Ba 2015, Algorithm 1
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            w = w - lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + EPS)
        elif name == "rmsprop":
            v = 0.95 * v + 0.05 * g * g
            w = w - lr * g / (np.sqrt(v) + EPS)
        elif name == "adagrad":
            v = v + g * g  # eps inside the root, as min-char-rnn has it
            w = w - lr * g / np.sqrt(v + EPS)
        else:
            w = w - lr * g
    return w


@pytest.mark.parametrize("name", ["adam", "rmsprop", "adagrad", "sgd"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_updates_match_the_float64_reference(name, dtype):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=1000).astype(dtype)
    grads = [rng.normal(size=1000).astype(dtype) * s for s in (1.0, 0.01, 3.0, 0.5, 1e-4)]
    w = w0.copy()
    opt = Optimizer(name, w.size, dtype=dtype)
    for t, g in enumerate(grads, start=1):
        opt.step(w, g, 2e-3, t)
    assert w.dtype == dtype
    expected = reference(name, w0, grads, 2e-3)
    assert np.abs(expected - w0).max() > 1e-3  # the updates moved the weights
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(w, expected, rtol=0, atol=tol * max(1.0, np.abs(w0).max()))


@pytest.mark.parametrize("name", ["adam", "rmsprop", "adagrad", "sgd"])
def test_updates_split_across_threads_are_the_same(name, monkeypatch):
    """A buffer of 3 * SPLIT_ROWS + 5 parameters is updated in 3 ranges by 3 threads
    (each of at least SPLIT_ROWS): the result equals one thread's, bit for bit, and
    the optimizer's own buffers too."""
    from charrnn import threads
    from charrnn.optim import SPLIT_ROWS
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=3 * SPLIT_ROWS + 5).astype(np.float32)
    grads = [rng.normal(size=w0.size).astype(np.float32) for _ in range(3)]
    out, run = {}, threads.run
    for P in ("1", "3"):
        monkeypatch.setenv("CHARRNN_THREADS", P)
        calls = []
        monkeypatch.setattr(threads, "run", lambda *a, **k: calls.append(threads.ranges(
            a[1], k["min_rows"])) or run(*a, **k))
        w, opt = w0.copy(), Optimizer(name, w0.size)
        for t, g in enumerate(grads, start=1):
            opt.step(w, g, 1e-3, t)
        assert len(calls[0]) == int(P)
        out[P] = w, opt.buffers
    np.testing.assert_array_equal(out["1"][0], out["3"][0])
    for b in out["1"][1]:
        np.testing.assert_array_equal(out["1"][1][b], out["3"][1][b])


def test_clip_scales_to_the_limit_and_returns_the_norm():
    g = np.array([3.0, 4.0], dtype=np.float32)
    assert clip_global_norm(g, 10.0) == pytest.approx(5.0) and list(g) == [3.0, 4.0]
    assert clip_global_norm(g, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(g, [0.6, 0.8], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_value_clamps_each_element_as_np_clip(dtype):
    rng = np.random.default_rng(2)
    g = (rng.normal(size=500) * 8).astype(dtype)
    expected, before = np.clip(g, -5, 5), np.linalg.norm(g.astype(np.float64))
    assert clip_value(g, 5.0) == pytest.approx(before, rel=1e-6)
    assert (np.abs(expected) == 5).sum() > 50  # some elements were clipped
    np.testing.assert_array_equal(g, expected)


def test_clip_value_returns_the_norm_before_clipping_and_zero_disables():
    g = np.array([3.0, -40.0], dtype=np.float32)
    assert clip_value(g, 0.0) == pytest.approx(np.hypot(3, 40)) and list(g) == [3.0, -40.0]
    assert clip_value(g, 5.0) == pytest.approx(np.hypot(3, 40)) and list(g) == [3.0, -5.0]
