"""Ranking cells against hypotheses, the honesty controls, and the verdicts.

Dimensions: T characters, B blocks (one per layer and recorded state), H units
per block, J hypotheses, Λ lags (0, 1, 2).

The text is cut in two contiguous halves: a cell is CHOSEN on the first (the
largest |r| over every block, unit and lag) and its numbers are REPORTED on the
second, so the reported r carries no winner's curse. The controls, all measured
on the second half:

  null99, p   circular-shift null: the feature rolled by S random offsets, the
              best |r| over all units each time; null99 is its 99th percentile and
              p = (1 + #{null >= |r|}) / (1 + S).
  untrained   the same choice and report with the same architecture untrained.
  local       how well the last 8 characters alone predict the feature (a
              context-mean table with back-off, fitted on the first half).
  probe       a ridge probe over each layer's memory (c and h, or h), fitted on
              the first half; the best layer. Its own controls: probe_null99, the
              99th percentile of the best probe when the feature is circularly
              rolled within each half (PROBE_SHIFTS offsets, lag 0), and
              probe_untrained, the probe over the untrained model.

Verdicts, in this order:
  LOCAL        local >= LOCAL_MIN: the last few characters already determine it.
  TRACKED      one cell: |r| >= R_MIN, |r| > null99, p <= P_MAX, |r| beats the
               untrained model by MARGIN and beats local.
  DISTRIBUTED  no single cell, but the probe reaches R_MIN, beats its null99 and
               beats the untrained probe and local by MARGIN.
  LOCAL        local >= R_MIN and nothing in the model does better.
  NOT FOUND    otherwise.
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from charrnn import threads
from charrnn.inspect import stats, stream

LAGS = (0, 1, 2)
R_MIN = 0.5       # held-out |r| a single cell (or the probe) needs
MARGIN = 0.1      # by how much it must beat the untrained model and locality
LOCAL_MIN = 0.9   # the last 8 characters predict the feature this well: LOCAL
P_MAX = 0.01
SHIFTS = 100      # circular shifts of the null; 1/(S+1) is the smallest p
PROBE_SHIFTS = 20  # of the probe's null: each refits a ridge per layer, so fewer
LOCAL_WIDTH = 8
LAG_COST = 0.002  # |r| a cell must gain per step of lag to be chosen at that lag


def halves(T):
    return slice(0, T // 2), slice(T // 2, T)


def best_cells(R, j, top=1):
    """The top cells for hypothesis j chosen on part 0: [(b, unit, lag index)],
    each cell once, at its best lag. A lag must buy LAG_COST of |r| per step, and
    an exact tie goes to the first block (c, tanh_c and h before the gates), so a
    gate that copies a cell's state one step later does not take its place."""
    a = np.abs(R[0, :, :, :, j]) - LAG_COST * np.arange(R.shape[2])[:, None]   # (B, Λ, H)
    k_best = a.argmax(axis=1)                            # (B, H)
    score = a.max(axis=1).ravel()
    order = np.argsort(-score, kind="stable")[:top]
    B, H = k_best.shape
    return [(int(i // H), int(i % H), int(k_best[i // H, i % H])) for i in order]


def _first_failed(tests):
    """The first (passed, text) whose test fails, or None when all pass."""
    return next((text for ok, text in tests if not ok), None)


def decide(r, null99, p, untrained, local, probe, probe_untrained, probe_null99=0.0):
    """(verdict, why): the verdict and the control that decided it. r: the chosen
    cell's held-out r in the direction chosen (0 if it flipped)."""
    if local >= LOCAL_MIN:
        return "LOCAL", f"local {local:.2f} >= {LOCAL_MIN}"
    cell = _first_failed([(r >= R_MIN, f"cell r {r:.2f} < {R_MIN}"),
                          (r > null99, f"cell r {r:.2f} <= its null99 {null99:.2f}"),
                          (p <= P_MAX, f"cell p {p:.3f} > {P_MAX}"),
                          (r >= untrained + MARGIN, f"cell r {r:.2f} < untrained {untrained:.2f} "
                                                    f"+ {MARGIN}"),
                          (r > local, f"cell r {r:.2f} <= local {local:.2f}")])
    if cell is None:
        return "TRACKED", "the cell beats its null, the untrained model and local"
    pr = _first_failed([(probe >= R_MIN, f"probe {probe:.2f} < {R_MIN}"),
                        (probe > probe_null99, f"probe {probe:.2f} <= its null99 "
                                               f"{probe_null99:.2f}"),
                        (probe >= probe_untrained + MARGIN, f"probe {probe:.2f} < untrained "
                                                            f"{probe_untrained:.2f} + {MARGIN}"),
                        (probe >= local + MARGIN, f"probe {probe:.2f} < local {local:.2f} "
                                                  f"+ {MARGIN}")])
    if pr is None:
        return "DISTRIBUTED", f"{cell}; the probe beats its null, the untrained probe and local"
    if local >= R_MIN and local >= max(r, probe):
        return "LOCAL", f"local {local:.2f} >= {R_MIN} and the model does no better"
    return "NOT FOUND", f"{cell}; {pr}"


def verdict(*args):
    return decide(*args)[0]


def from_arrays(blocks, chunk=1000):
    """A source of chunks over whole (T, H) arrays, as record.chunks is over a model."""
    def source(bounds):
        T = len(blocks[0])
        cuts = sorted({0, T, *[b for b in bounds if 0 < b < T]})
        for a, b in zip(cuts, cuts[1:]):
            for t0 in range(a, b, chunk):
                yield t0, [x[t0:min(b, t0 + chunk)] for x in blocks]
    return source


def _run(source, names, groups, hyps, parts, offsets=(), choose=None, observers=()):
    """Streams one model's chunks through a stream.Stream; at the half, choose(R0)
    names the cells (block, unit) whose second-half series are kept. Returns the
    Stream and {(block, unit): (n,) float32 over the second half}."""
    st = stream.Stream(names, groups, hyps, parts, LAGS, offsets, offsets[:PROBE_SHIFTS]) \
        if hyps else None
    half = parts[1].start
    kept = None

    def add(t0, states):
        for (b, u), v in (kept or {}).items():
            v[t0 - half:t0 - half + len(states[b])] = states[b][:, u]
        if st:
            st.add(int(t0 >= half), t0, states)
        for o in observers:
            o.add(t0, states)
    # a chunk's sums are taken in a second thread while the model reads the next chunk:
    # one chunk in flight, added in order, so the sums are those of a single thread
    with ThreadPoolExecutor(1) as sums:
        pending = None
        for t0, states in source((half,)):
            states = [a.copy() for a in states]        # the source reuses its arrays
            if pending:
                pending.result()
            if t0 >= half and kept is None:
                if st:
                    st.half_done()
                cells = choose(st.scan(0)[None] if st else None) if choose else []
                kept = {c: np.empty(parts[1].stop - half, np.float32) for c in cells}
            pending = sums.submit(add, t0, states)
        if pending:
            pending.result()
    return st, kept


def analyze(source, names, groups, ids, hyps, untrained=None, seed=0, n_shifts=SHIFTS, top=3,
            keep=(), observers=(), progress=None):
    """source(bounds): chunks (t0, [(c, H) per block]) of the model, blocks named
    names[b] = (layer, state) (record.chunks, or from_arrays); groups: lists of block
    indices for the probe; ids: (T,) the text; hyps: [Hypothesis] that apply;
    untrained: a source for the untrained model, or None (its numbers are then None);
    keep: more (block, unit) whose second half to keep; observers: more sums fed
    every chunk of the model. Returns (results [dict per hypothesis], R, kept)."""
    parts = halves(len(ids))
    J = len(hyps)
    say = progress or (lambda msg: None)
    rng = np.random.default_rng(seed)
    b_sl = parts[1]
    offsets = stats.shifts(b_sl.stop - b_sl.start, n_shifts, rng) if n_shifts and J else []

    def choose(R):
        return sorted({c[:2] for j in range(J) for c in best_cells(R, j, top)} | set(keep))
    # the untrained model streams in a second thread (the kernels release the GIL); then
    # each model's recurrence runs in its own thread, unsplit: two split recurrences would
    # wait at each other's barriers on the same cores
    pool = ThreadPoolExecutor(1) if untrained is not None and J else None
    run = threads.alone(_run) if pool else _run
    if pool:
        ufuture = pool.submit(run, untrained, names, groups, hyps, parts)
    st, kept = run(source, names, groups, hyps, parts, offsets, choose, observers)
    if not J:
        return [], None, kept
    R = np.stack([st.scan(0), st.scan(1)])
    pr = st.probe.r()
    L = len(LAGS)
    probe, probe_null = pr[:L * J].reshape(L, J), pr[L * J:].reshape(-1, J).T
    null = st.shift_null() if n_shifts else None
    if pool:
        say("the untrained baseline")
        ust, _ = ufuture.result()
        pool.shutdown()
        Ru, probe_u = np.stack([ust.scan(0), ust.scan(1)]), ust.probe.r()[:L * J].reshape(L, J)
    say("the locality baseline")
    local = np.stack([stats.local_r(ids, [h.values for h in hyps], *parts,
                                    width=LOCAL_WIDTH, lag=lag) for lag in LAGS])
    results = []
    for j, h in enumerate(hyps):
        cells = [_cell(R, j, c, kept, names, h, parts) for c in best_cells(R, j, top)]
        best = cells[0]
        k = LAGS.index(best["lag"])
        r = max(0.0, best["sign"] * best["r"])     # held out, in the direction chosen
        res = {"name": h.name, "source": h.source, "binary": h.binary, "cell": best, "top": cells,
               "null99": float(np.quantile(null[j], 0.99)) if n_shifts else None,
               "p": stats.p_value(null[j], r) if n_shifts else None,
               "untrained": None, "probe_untrained": None,
               "probe_null99": float(np.quantile(probe_null[j], 0.99)) if n_shifts else None,
               "local": float(local[k, j]), "probe": float(probe[k, j])}
        if pool:
            bu, uu, ku = best_cells(Ru, j)[0]
            res["untrained"] = float(abs(Ru[1, bu, ku, uu, j]))
            res["probe_untrained"] = float(probe_u[k, j])
        res["verdict"], res["why"] = decide(r, res["null99"] or 0.0, res["p"] or 0.0,
                                            res["untrained"] or 0.0, res["local"], res["probe"],
                                            res["probe_untrained"] or 0.0,
                                            res["probe_null99"] or 0.0)
        results.append(res)
    return results, R, kept


def _cell(R, j, cell, kept, names, h, parts):
    """One chosen cell's numbers; r and AUC are on the held-out half, signed by
    the choosing half, so a cell that flips sign shows a negative AUC margin."""
    b, unit, k = cell
    lag = LAGS[k]
    layer, state = names[b]
    r_sel = float(R[0, b, k, unit, j])
    sign = 1.0 if r_sel >= 0 else -1.0
    out = {"layer": layer, "state": state, "unit": unit, "lag": lag, "sign": int(sign),
           "r_select": r_sel, "r": float(R[1, b, k, unit, j]), "auc": None}
    if h.binary:
        sl = parts[1]
        out["auc"] = stats.auc(sign * kept[(b, unit)][lag:], h.values[sl.start:sl.stop - lag])
    return out
