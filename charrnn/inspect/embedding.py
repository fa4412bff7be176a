"""inspect-embedding: where a model trained with --embed puts each character.

    neighbours   each character's K nearest others by cosine similarity
    pca2         the 2-D map: the rows projected on their two principal axes
    groups       how tightly known groups sit together, against shuffled labels

Dimensions: V characters, E embedding size; W = embed.W (V, E). Cosine similarity
of rows a and b: a.b / (|a| |b|), 0 where a row is zero.

A group's strength is the mean cosine within it minus the mean cosine between its
members and the other characters; upper/lower case pairs score the mean cosine of
the pairs. The control draws the same number of characters (or of pairs) from the
vocabulary at random, `shuffles` times: z is the strength in standard deviations
of that null, p the share of draws at least as strong (with the observed one).

    >>> groups_of(list("aebz09,."))[:2]
    [('vowels', 'ae'), ('consonants', 'bz')]
"""
import string

import numpy as np

from charrnn import CharrnnError

FORMAT, VERSION = "charrnn-embedding", 1
GROUPS = (("vowels", "aeiou"), ("consonants", "bcdfghjklmnpqrstvwxyz"),
          ("digits", string.digits), ("punctuation", string.punctuation))
CASE_PAIRS = "case pairs"
MIN_MEMBERS = 2  # a group needs two characters in the vocabulary to have a within


def groups_of(vocab):
    """[(name, members)] of the known groups with at least MIN_MEMBERS in vocab;
    case pairs as 'aA bB ...'."""
    have = set(vocab)
    out = [(name, "".join(c for c in chars if c in have)) for name, chars in GROUPS]
    pairs = " ".join(c + c.upper() for c in string.ascii_lowercase if c in have and c.upper() in have)
    out.append((CASE_PAIRS, pairs))
    return [(n, m) for n, m in out if len(m.split() if n == CASE_PAIRS else m) >= MIN_MEMBERS]


def cosine_matrix(W):
    """(V, V) cosine similarities of the rows of W, float64."""
    W = np.asarray(W, np.float64)
    norm = np.linalg.norm(W, axis=1)
    U = W / np.where(norm > 0, norm, 1.0)[:, None]
    return U @ U.T


def neighbours(S, k):
    """(V, k) indices of each row's k most similar other rows, most similar first
    (ties by index)."""
    V = S.shape[0]
    k = min(k, V - 1)
    masked = S.copy()
    np.fill_diagonal(masked, -np.inf)
    return np.argsort(-masked, axis=1, kind="stable")[:, :k]


def pca2(W):
    """(coords (V, 2), explained (2,)): the centred rows on the two principal axes
    (each axis's sign fixed so that its largest coordinate is positive) and the share
    of the variance each holds."""
    X = np.asarray(W, np.float64)
    X = X - X.mean(axis=0)
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    coords = np.zeros((X.shape[0], 2))
    n = min(2, len(s))
    coords[:, :n] = U[:, :n] * s[:n]
    for a in range(n):
        if -coords[:, a].min() > coords[:, a].max():
            coords[:, a] *= -1
    total = float((s ** 2).sum())
    explained = [(float(s[a] ** 2) / total if total > 0 and a < n else 0.0) for a in range(2)]
    return coords, explained


def strength(S, members):
    """(within, between): mean cosine over pairs of members, and between members and
    the rest of the vocabulary."""
    m = np.zeros(S.shape[0], bool)
    m[members] = True
    k = int(m.sum())
    within = (S[np.ix_(m, m)].sum() - np.trace(S[np.ix_(m, m)])) / (k * (k - 1))
    between = S[np.ix_(m, ~m)].mean() if (~m).any() else 0.0
    return float(within), float(between)


def _null(values, observed):
    values = np.asarray(values)
    sd = float(values.std())
    return {"control_mean": float(values.mean()), "control_sd": sd,
            "z": (observed - float(values.mean())) / sd if sd > 0 else None,
            "p": float((1 + (values >= observed).sum()) / (1 + len(values)))}


def group_report(S, vocab, shuffles=1000, seed=0):
    """One dict per known group in vocab: its members, strength and control."""
    index = {c: i for i, c in enumerate(vocab)}
    rng = np.random.default_rng(seed)
    V = len(vocab)
    out = []
    for name, members in groups_of(vocab):
        if name == CASE_PAIRS:
            pairs = np.array([[index[p[0]], index[p[1]]] for p in members.split()])
            value = float(S[pairs[:, 0], pairs[:, 1]].mean())
            row = {"name": name, "members": members, "n": len(pairs), "statistic": "pair cosine",
                   "value": value}
            draws = [rng.permutation(V)[:2 * len(pairs)].reshape(-1, 2) for _ in range(shuffles)]
            null = [S[d[:, 0], d[:, 1]].mean() for d in draws]
        else:
            ids = [index[c] for c in members]
            within, between = strength(S, ids)
            value = within - between
            row = {"name": name, "members": members, "n": len(ids),
                   "statistic": "within - between", "value": value,
                   "within": within, "between": between}
            null = [(lambda w, b: w - b)(*strength(S, rng.permutation(V)[:len(ids)]))
                    for _ in range(shuffles)]
        row.update(_null(null, value) if shuffles else
                   {"control_mean": None, "control_sd": None, "z": None, "p": None})
        out.append(row)
    return out


def analyse(cfg, params, vocab, k=5, shuffles=1000, seed=0):
    """The whole report as a JSON-able dict (docs/inspect.md, inspect-embedding)."""
    if not cfg.embed:
        raise CharrnnError(
            "this model reads characters one-hot (no --embed): each is its own axis, at the "
            "same distance from every other, so there is no map to draw; train one with "
            "--embed 16 (or more) to see where it puts them")
    W = params["embed.W"]
    S = cosine_matrix(W)
    coords, explained = pca2(W)
    near = neighbours(S, k)
    groups = group_report(S, vocab, shuffles, seed)
    present = {g["name"] for g in groups}
    return {
        "format": FORMAT, "version": VERSION, "model": cfg.to_dict(), "vocab": list(vocab),
        "settings": {"neighbours": int(near.shape[1]), "shuffles": shuffles, "seed": seed},
        "neighbours": [[{"char": vocab[j], "cosine": float(S[i, j])} for j in row]
                       for i, row in enumerate(near)],
        "pca": {"explained": explained, "x": coords[:, 0].tolist(), "y": coords[:, 1].tolist()},
        "groups": groups,
        "skipped": [n for n in [g for g, _ in GROUPS] + [CASE_PAIRS] if n not in present],
    }


def group_of(ch):
    """The group a character is coloured by on the map."""
    if ch.isupper():
        return "upper case"
    for name, chars in GROUPS:
        if ch in chars:
            return name
    return "space" if ch.isspace() else "other"
