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
import numpy as np

from charrnn.inspect import stats

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


def _half_lag(a, sl, lag):
    """Rows of a half with the activation lag applied: (activation rows, feature rows)."""
    return a[sl.start + lag:sl.stop], slice(sl.start, sl.stop - lag)


def scan(blocks, F, parts, lags=LAGS):
    """R[p, b, k]: (H, J) r of every unit of block b with every feature, at lag
    lags[k], on part p of the text. blocks: [(T, H)]; F: (T, J).

    The activations are never z-scored: the z-scored features sum to zero, so
    Za^T Zf = diag(1 / sd_a) A^T Zf, and sd_a at each lag comes from the part's
    sums minus the lag rows it drops (one pass over the block, not one per lag)."""
    R = np.empty((len(parts), len(blocks), len(lags), blocks[0].shape[1], F.shape[1]), np.float32)
    for p, sl in enumerate(parts):
        Zfs = [stats.zscore(F[sl.start:sl.stop - lag]) for lag in lags]
        for b, a in enumerate(blocks):
            part = a[sl]
            s1 = part.sum(axis=0, dtype=np.float64)
            s2 = np.square(part, dtype=np.float64).sum(axis=0)
            for k, lag in enumerate(lags):
                n = len(part) - lag
                head = part[:lag].astype(np.float64)  # steps whose activation is paired with no feature
                mean = (s1 - head.sum(axis=0)) / n
                var = np.maximum((s2 - np.square(head).sum(axis=0)) / n - mean * mean, 0.0)
                sd = np.sqrt(var)
                scale = np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > 1e-6 * (1 + np.abs(mean)))
                R[p, b, k] = (scale[:, None] * (part[lag:].T @ Zfs[k])) / n
    return R


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


def probe_steps(parts, lags=LAGS):
    """The steps s of each part the probe reads: every lag pairs X[s] with F[s - lag]."""
    return [slice(sl.start + max(lags), sl.stop) for sl in parts]


def probe_targets(F, parts, lags=LAGS, offsets=()):
    """Per part, the probe's right-hand sides: F[s - lag] for each lag, (n, Λ J), then
    F[s] rolled by each offset within the part, (n, S J)."""
    out = []
    for st in probe_steps(parts, lags):
        Y = [F[st.start - lag:st.stop - lag] for lag in lags]
        Y += [np.roll(F[st], o % (st.stop - st.start), axis=0) for o in offsets]
        out.append(np.concatenate(Y, axis=1))
    return out


def _probe(blocks, groups, F, parts, offsets=()):
    """r (Λ, J) of the best ridge probe over the groups of blocks, per lag, and
    (J, S) the best probe's r for F rolled by each offset. Every lag regresses
    F[s - lag] on X[s] over the same steps s, so one Gram matrix per group and half
    serves them all (lags and rolls stacked as right-hand sides)."""
    J, L = F.shape[1], len(LAGS)
    steps = probe_steps(parts)
    Ys = probe_targets(F, parts, LAGS, offsets)
    out = np.full(Ys[0].shape[1], -np.inf)
    for g in groups:
        X = np.concatenate([blocks[b] for b in g], axis=1)
        out = np.maximum(out, stats.ridge_r(X[steps[0]], Ys[0], X[steps[1]], Ys[1]))
    return out[:L * J].reshape(L, J), out[L * J:].reshape(len(offsets), J).T


def controls(blocks, groups, F, parts, seed, n_shifts):
    """What a model's blocks give, as arrays: R (scan), probe (Λ, J), null (J, S) and
    the probe's null (J, S') (None without shifts)."""
    R = scan(blocks, F, parts)
    b_sl = parts[1]
    rng = np.random.default_rng(seed)
    offsets = stats.shifts(b_sl.stop - b_sl.start, n_shifts, rng) if n_shifts else []
    probe, probe_null = _probe(blocks, groups, F, parts, offsets[:PROBE_SHIFTS])
    if not n_shifts:
        return R, probe, None, None
    Z = [stats.zscore(a[b_sl]) for a in blocks]
    null = np.stack([stats.shift_null(Z, F[b_sl, j], offsets) for j in range(F.shape[1])])
    return R, probe, null, probe_null


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


def analyze(blocks, names, groups, ids, hyps, untrained=None, seed=0, n_shifts=SHIFTS, top=3,
            progress=None):
    """blocks: [(T, H)] activations named names[b] = (layer, state); groups: lists of
    block indices for the probe; ids: (T,) the text; hyps: [Hypothesis] that apply;
    untrained: blocks of the untrained model, or None (its numbers are then None).
    Returns (results [dict per hypothesis], R)."""
    T = len(ids)
    parts = halves(T)
    F = np.stack([h.values for h in hyps], axis=1)                   # (T, J)
    say = progress or (lambda msg: None)
    say("correlating")
    R, probe, null, probe_null = controls(blocks, groups, F, parts, seed, n_shifts)
    if untrained is not None:
        say("the untrained baseline")
        Ru, probe_u, _, _ = controls(untrained, groups, F, parts, seed, 0)
    say("the locality baseline")
    local = np.stack([stats.local_r(ids, F, *parts, width=LOCAL_WIDTH, lag=lag) for lag in LAGS])
    results = []
    for j, h in enumerate(hyps):
        cells = [_cell(R, j, c, blocks, names, F, parts, h.binary) for c in best_cells(R, j, top)]
        best = cells[0]
        k = LAGS.index(best["lag"])
        r = max(0.0, best["sign"] * best["r"])     # held out, in the direction chosen
        res = {"name": h.name, "source": h.source, "binary": h.binary, "cell": best, "top": cells,
               "null99": float(np.quantile(null[j], 0.99)) if n_shifts else None,
               "p": stats.p_value(null[j], r) if n_shifts else None,
               "untrained": None, "probe_untrained": None,
               "probe_null99": float(np.quantile(probe_null[j], 0.99)) if n_shifts else None,
               "local": float(local[k, j]), "probe": float(probe[k, j])}
        if untrained is not None:
            bu, uu, ku = best_cells(Ru, j)[0]
            res["untrained"] = float(abs(Ru[1, bu, ku, uu, j]))
            res["probe_untrained"] = float(probe_u[k, j])
        res["verdict"], res["why"] = decide(r, res["null99"] or 0.0, res["p"] or 0.0,
                                            res["untrained"] or 0.0, res["local"], res["probe"],
                                            res["probe_untrained"] or 0.0,
                                            res["probe_null99"] or 0.0)
        results.append(res)
    return results, R


def _cell(R, j, cell, blocks, names, F, parts, binary):
    """One chosen cell's numbers; r and AUC are on the held-out half, signed by
    the choosing half, so a cell that flips sign shows a negative AUC margin."""
    b, unit, k = cell
    lag = LAGS[k]
    layer, state = names[b]
    r_sel = float(R[0, b, k, unit, j])
    sign = 1.0 if r_sel >= 0 else -1.0
    out = {"layer": layer, "state": state, "unit": unit, "lag": lag, "sign": int(sign),
           "r_select": r_sel, "r": float(R[1, b, k, unit, j]), "auc": None}
    if binary:
        a, fb = _half_lag(blocks[b][:, unit], parts[1], lag)
        out["auc"] = stats.auc(sign * a, F[fb, j])
    return out
