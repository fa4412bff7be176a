"""inspect/stats.py and the scan of analyze.py against slow, obviously right
references: np.corrcoef per pair, AUC by counting pairs, the null by rolling."""
import itertools

import numpy as np
import pytest

from charrnn.inspect import analyze as an
from charrnn.inspect import stats
from tests import inspect_memory as memory


def brute_auc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("lag", [0, 1, 2])
def test_corr_is_corrcoef_of_every_pair(lag):
    rng = np.random.default_rng(lag)
    A = rng.standard_normal((300, 5)).astype(np.float32)
    F = np.stack([rng.random(300) < 0.3, rng.standard_normal(300)], axis=1).astype(float)
    A[:, 2] = 7.0                                    # constant: r is 0, not nan
    r = stats.corr(A, F, lag)
    assert r.shape == (5, 2)
    for k, j in itertools.product(range(5), range(2)):
        if k == 2:
            assert r[k, j] == 0
            continue
        want = np.corrcoef(A[lag:, k], F[:300 - lag, j])[0, 1]
        assert r[k, j] == pytest.approx(want, abs=1e-5)


def test_scan_is_corr_on_each_half_and_lag():
    rng = np.random.default_rng(1)
    T = 201
    blocks = [rng.standard_normal((T, 4)).astype(np.float32) for _ in range(3)]
    F = rng.standard_normal((T, 2))
    parts = an.halves(T)
    R = memory.scan(blocks, F, parts)
    assert R.shape == (2, 3, 3, 4, 2)
    for p, b, k, u, j in itertools.product(range(2), range(3), range(3), range(4), range(2)):
        sl, lag = parts[p], an.LAGS[k]
        a = blocks[b][sl.start + lag:sl.stop, u]
        f = F[sl.start:sl.stop - lag, j]
        assert R[p, b, k, u, j] == pytest.approx(np.corrcoef(a, f)[0, 1], abs=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_auc_counts_pairs_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, 60).astype(float)    # many ties
    labels = rng.random(60) < 0.4
    assert stats.auc(scores, labels) == pytest.approx(brute_auc(scores, labels))


def test_auc_known_answers():
    assert stats.auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert stats.auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert stats.auc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5
    assert np.isnan(stats.auc([1, 2], [1, 1]))


def test_shift_null_is_the_max_over_units_of_rolled_correlations():
    rng = np.random.default_rng(2)
    blocks = [rng.standard_normal((120, 3)).astype(np.float32) for _ in range(2)]
    f = np.cumsum(rng.standard_normal(120))
    offsets = stats.shifts(120, 7, rng)
    assert np.all((offsets >= 12) & (offsets <= 108))
    null = memory.shift_null([stats.zscore(a) for a in blocks], f, offsets)
    for s, got in zip(offsets, null):
        want = max(abs(np.corrcoef(a[:, k], np.roll(f, s))[0, 1]) for a in blocks for k in range(3))
        assert got == pytest.approx(want, abs=1e-5)


def test_a_null_past_its_memory_bound_is_refused_naming_it():
    from charrnn import CharrnnError, limits
    limits.check_shifts(14 * 512, 17, 100)  # a 2x512 LSTM's default null: about 0.1 GiB
    with pytest.raises(CharrnnError, match=r"--shifts 10000 over 7,168 cells and 17 hypotheses "
                                           r"needs 9\.1 GiB of sums; the limit is 1 GiB"):
        limits.check_shifts(14 * 512, 17, 10_000)


def test_p_value_never_zero():
    null = np.array([0.1, 0.2, 0.3, 0.4])
    assert stats.p_value(null, 0.5) == pytest.approx(1 / 5)
    assert stats.p_value(null, -0.25) == pytest.approx(3 / 5)
    assert stats.p_value(null, 0.0) == 1.0


def test_ridge_probe_finds_a_linear_mix_and_not_noise():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((2000, 10))
    y = X[:, [1, 4]] @ [1.0, -2.0] + 0.1 * rng.standard_normal(2000)
    Y = np.stack([y, rng.standard_normal(2000)], axis=1)
    r = memory.ridge_r(X[:1000], Y[:1000], X[1000:], Y[1000:])
    assert r[0] > 0.99 and abs(r[1]) < 0.1


def test_context_key_tells_contexts_apart_exactly():
    ids = np.array([0, 1, 0, 1, 2, 0, 1])
    # the two characters ending at t: (-,0) (0,1) (1,0) (0,1) (1,2) (2,0) (0,1)
    k2 = stats.context_key(ids, 2)
    assert k2[1] == k2[3] == k2[6] and len({k2[0], k2[1], k2[2], k2[4], k2[5]}) == 5
    lagged = stats.context_key(ids, 2, lag=1)
    assert lagged[0] == k2[1] and lagged[5] == k2[6]
    assert lagged[6] not in set(k2)              # runs past the end


def test_locality_baseline():
    """A function of the last 3 characters is local; a hidden persistent state is not."""
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 4, 6000)
    recent = (ids == 3) | (np.roll(ids, 2) == 3)                   # a '3' now or 2 back
    hidden = np.cumsum(rng.random(6000) < 0.01) % 2                 # a coin flipping slowly
    Y = np.stack([recent, hidden], axis=1).astype(float)
    r = stats.local_r(ids, Y.T, slice(0, 3000), slice(3000, 6000))
    assert r[0] > 0.99 and abs(r[1]) < 0.1
    # with lag 2 the context ends 2 later: 'a 3 now' is then '3 two back'
    now = [(ids == 3).astype(float)]
    assert stats.local_r(ids, now, slice(0, 3000), slice(3000, 6000), width=3, lag=2)[0] > 0.99
    assert stats.local_r(ids, now, slice(0, 3000), slice(3000, 6000), width=2, lag=2)[0] < 0.1


def test_average_ranks_share_ties_as_rankdata_does():
    from charrnn.inspect.stats import average_ranks
    assert average_ranks([3.0, 1.0, 3.0, 2.0]).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert average_ranks([0, 0, 0]).tolist() == [2.0, 2.0, 2.0]
    assert average_ranks([5.0]).tolist() == [1.0]


def test_locality_baseline_equals_a_table_of_contexts():
    """local_r against a dictionary of context tuples, longest context first."""
    rng = np.random.default_rng(5)
    T = 1500
    ids = rng.integers(0, 6, T)          # 216 contexts of 3: some seen once, some never
    cols = [np.convolve(ids == 2, [1, 1, 1])[:T].astype(np.float32), rng.random(T)]
    a, b = slice(0, 700), slice(700, T)
    for width, lag in ((3, 0), (2, 1)):
        def context(t, k):
            return tuple(ids[u] if 0 <= u < T else -1 for u in range(t + lag - k + 1, t + lag + 1))
        tables = [{} for _ in range(width + 1)]
        for k, table in enumerate(tables):
            for s in range(a.start, a.stop):
                table.setdefault(context(s, k), []).append(s)
        pred = np.zeros((b.stop - b.start, len(cols)))
        for i, t in enumerate(range(b.start, b.stop)):
            seen = next(tables[k][context(t, k)] for k in range(width, -1, -1)
                        if len(tables[k].get(context(t, k), ())) >= 2)
            pred[i] = [c[seen].mean() for c in cols]
        want = [np.corrcoef(pred[:, j], c[b])[0, 1] for j, c in enumerate(cols)]
        np.testing.assert_allclose(stats.local_r(ids, cols, a, b, width=width, lag=lag), want,
                                   atol=1e-5)
