"""inspect/analyze.py and the pipeline: planted activations, the controls, the
verdicts, and a hand-set LSTM whose cells are known (catches any off-by-one)."""
import numpy as np
import pytest

from charrnn.inspect import analyze as an
from charrnn.inspect import hypotheses, inspect
from charrnn.inspect.features import Hypothesis
from charrnn.inspect.record import record
from tests.inspect_planted import STEP, VOCAB, planted_lstm, planted_text


def telegraph(T, p, rng):
    """A slowly flipping 0/1 state: persistent, like a quote or a bracket."""
    return (np.cumsum(rng.random(T) < p) % 2).astype(float)


def ar1(T, K, rho, rng):
    """K columns of slowly drifting noise, which correlate by chance with slow features."""
    x, e = np.zeros((T, K)), rng.standard_normal((T, K))
    for t in range(1, T):
        x[t] = rho * x[t - 1] + e[t]
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def planted_columns():
    rng = np.random.default_rng(0)
    T = 10_000
    f = telegraph(T, 0.02, rng)
    noise = ar1(T, 64, 0.98, rng)
    ids = rng.integers(0, 10, T)
    copy = (f + 0.7 * rng.standard_normal(T)).astype(np.float32)
    return f, noise, ids, copy


def run_columns(X, ids, f):
    res, _, _ = an.analyze(an.from_arrays([X]), [(0, "x")], [[0]], ids, [Hypothesis("f", f, True)],
                           seed=1)
    return res[0]


def test_planted_activation_ranks_first_and_is_tracked(planted_columns):
    f, noise, ids, copy = planted_columns
    X = np.concatenate([noise[:, :17], copy[:, None], noise[:, 17:]], axis=1)   # 65 columns
    res = run_columns(X, ids, f)
    assert res["cell"]["unit"] == 17 and res["cell"]["lag"] == 0 and res["cell"]["sign"] == 1
    assert res["p"] < 0.01 and res["cell"]["r"] > res["null99"]
    assert res["cell"]["auc"] > 0.8
    assert res["verdict"] == "TRACKED"


def test_without_it_nothing_is_found(planted_columns):
    f, noise, ids, _ = planted_columns
    res = run_columns(noise, ids, f)
    assert res["p"] > 0.01
    assert res["verdict"] == "NOT FOUND"


def test_a_cell_that_tracks_only_in_the_choosing_half_is_not_believed(planted_columns):
    """Chosen on the first half, reported on the second: the winner's curse is gone."""
    f, noise, ids, copy = planted_columns
    half = np.where(np.arange(len(f)) < len(f) // 2, copy, noise[:, 0])
    res = run_columns(np.concatenate([noise[:, 1:], half[:, None]], axis=1), ids, f)
    assert res["cell"]["unit"] == 63 and res["cell"]["r_select"] > 0.5
    assert abs(res["cell"]["r"]) < 0.3 and res["verdict"] == "NOT FOUND"


def test_a_feature_spread_over_many_units_is_distributed():
    rng = np.random.default_rng(5)
    T = 8000
    f = telegraph(T, 0.02, rng)
    mix = rng.standard_normal((T, 16)).astype(np.float32)
    X = mix.copy()
    X[:, :8] += 0.9 * f[:, None] * rng.choice([-1, 1], 8)          # each unit: weak r
    X[:, :8] += 2.5 * rng.standard_normal((T, 1)).astype(np.float32)  # shared noise a probe cancels
    res = run_columns(X, rng.integers(0, 5, T), f)
    assert abs(res["cell"]["r"]) < an.R_MIN and res["probe"] > an.R_MIN + 0.2
    assert res["verdict"] == "DISTRIBUTED"


@pytest.mark.parametrize("args,want", [
    # r, null99, p, untrained, local, probe, probe_untrained
    ((0.9, 0.1, 0.01, 0.2, 0.95, 0.9, 0.2), "LOCAL"),
    ((0.9, 0.1, 0.01, 0.2, 0.3, 0.9, 0.2), "TRACKED"),
    ((0.9, 0.95, 0.01, 0.2, 0.3, 0.9, 0.2), "DISTRIBUTED"),    # below the null: not the cell
    ((0.9, 0.1, 0.02, 0.2, 0.3, 0.9, 0.2), "DISTRIBUTED"),     # p too large
    ((0.9, 0.1, 0.01, 0.85, 0.3, 0.9, 0.85), "NOT FOUND"),     # untrained does as well
    ((0.6, 0.1, 0.01, 0.2, 0.7, 0.65, 0.2), "LOCAL"),          # locality explains it
    ((0.4, 0.1, 0.01, 0.1, 0.3, 0.8, 0.2), "DISTRIBUTED"),
    ((0.4, 0.1, 0.01, 0.1, 0.3, 0.45, 0.2), "NOT FOUND"),
    # ... probe_null99: a probe no better than on the rolled feature proves nothing
    ((0.4, 0.1, 0.01, 0.1, 0.3, 0.8, 0.2, 0.85), "NOT FOUND"),
    ((0.4, 0.1, 0.01, 0.1, 0.3, 0.8, 0.2, 0.6), "DISTRIBUTED"),
])
def test_verdict_rules(args, want):
    assert an.verdict(*args) == want


@pytest.mark.parametrize("args,why", [
    ((0.9, 0.1, 0.01, 0.2, 0.95, 0.9, 0.2), "local 0.95 >= 0.9"),
    ((0.9, 0.1, 0.01, 0.2, 0.3, 0.9, 0.2), "the cell beats its null"),
    ((0.9, 0.95, 0.01, 0.2, 0.3, 0.9, 0.2), "cell r 0.90 <= its null99 0.95; the probe beats"),
    ((0.4, 0.1, 0.01, 0.1, 0.3, 0.8, 0.2, 0.85),
     "cell r 0.40 < 0.5; probe 0.80 <= its null99 0.85"),
    ((0.9, 0.1, 0.01, 0.85, 0.3, 0.9, 0.85),
     "cell r 0.90 < untrained 0.85 + 0.1; probe 0.90 < untrained 0.85 + 0.1"),
])
def test_the_verdict_says_which_control_decided_it(args, why):
    assert why in an.decide(*args)[1]


# -- a hand-set LSTM ----------------------------------------------------------------

def test_planted_lstm_states_are_what_the_design_says():
    cfg, p = planted_lstm()
    text = 'ab"a b\n"c\nab'
    rec = record(cfg, p, np.array([VOCAB.index(ch) for ch in text]), chunk=4)   # chunks carry state
    inside = rec[(0, "c")][:, 0] > 0.99                     # 0 outside, 1 inside
    assert inside.astype(int).tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert np.all(np.abs(rec[(0, "c")][:, 0] - inside) < 1e-4)
    np.testing.assert_allclose(rec[(0, "c")][:, 1] / STEP, [1, 2, 3, 4, 5, 6, 0, 1, 2, 0, 1, 2],
                               atol=1e-3)
    np.testing.assert_allclose(rec[(0, "tanh_c")], np.tanh(rec[(0, "c")]), atol=1e-6)
    np.testing.assert_allclose(rec[(0, "h")], rec[(0, "o")] * rec[(0, "tanh_c")], atol=1e-5)


def test_planted_lstm_through_the_pipeline():
    cfg, p = planted_lstm()
    text = planted_text(6000)
    ins = inspect(cfg, p, VOCAB, text, hypotheses(text, only=("in_dquote", "column", "is_space")))
    got = {r["name"]: r for r in ins.results}
    q, col = got["in_dquote"], got["column"]
    # the parity is 0/1 exactly, so c, tanh(c) and h tie; the counter is linear in c
    assert (q["cell"]["unit"], q["cell"]["lag"]) == (0, 0) and q["cell"]["state"] in ("c", "tanh_c", "h")
    assert (col["cell"]["unit"], col["cell"]["lag"], col["cell"]["state"]) == (1, 0, "c")
    assert q["cell"]["r"] > 0.999 and col["cell"]["r"] > 0.999 and q["cell"]["auc"] == 1.0
    assert q["verdict"] == col["verdict"] == "TRACKED"
    assert q["untrained"] < 0.5 and q["local"] < 0.3
    assert got["is_space"]["verdict"] == "LOCAL"
    assert ins.skipped == []
