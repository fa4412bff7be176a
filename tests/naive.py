"""Slow, obviously right reference implementations, one step and one gate at a time,
written from the equations in the cell modules' docstrings (float64 numpy)."""
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def cell_step(kind, p, l, x, state):
    """One step of layer l for one stream. x: input vector (D,); state: list of (H,) arrays."""
    Wx, Wh, b = p[f"L{l}.Wx"], p[f"L{l}.Wh"], p[f"L{l}.b"]
    H = Wh.shape[0]
    ax = x @ Wx + b
    h_prev = state[0]
    ah = h_prev @ Wh
    if kind == "rnn":
        return [np.tanh(ax + ah)]
    if kind == "esn":
        leak = p[f"L{l}.leak"]
        return [(1 - leak) * h_prev + leak * np.tanh(ax + ah)]
    if kind == "lstm":
        blk = lambda a, k: a[k * H:(k + 1) * H]  # noqa: E731 - gate order i, f, o, g
        i = sigmoid(blk(ax, 0) + blk(ah, 0))
        f = sigmoid(blk(ax, 1) + blk(ah, 1))
        o = sigmoid(blk(ax, 2) + blk(ah, 2))
        g = np.tanh(blk(ax, 3) + blk(ah, 3))
        c = f * state[1] + i * g
        return [o * np.tanh(c), c]
    r = sigmoid(ax[:H] + ah[:H])
    z = sigmoid(ax[H:2 * H] + ah[H:2 * H])
    n = np.tanh(ax[2 * H:] + r * (ah[2 * H:] + p[f"L{l}.bhn"]))
    return [(1 - z) * n + z * h_prev]


def forward(cfg, p, ids, state, masks=None):
    """ids: (T, N); state: (L, S, N, H). Returns logits (T, N, V) and the final state,
    looping over streams, steps and layers one at a time."""
    T, N = ids.shape
    V = cfg.vocab_size
    logits = np.zeros((T, N, V))
    final = np.array(state, dtype=np.float64, copy=True)
    for n in range(N):
        st = [[final[l, s, n].copy() for s in range(final.shape[1])] for l in range(cfg.layers)]
        for t in range(T):
            if cfg.embed:
                x = p["embed.W"][ids[t, n]]
            else:
                x = np.zeros(V)
                x[ids[t, n]] = 1.0
            for l in range(cfg.layers):
                st[l] = cell_step(cfg.kind, p, l, x, st[l])
                x = st[l][0] if masks is None else st[l][0] * masks[l, t, n]
            logits[t, n] = x @ p["out.W"] + p["out.b"]
        for l in range(cfg.layers):
            for s, v in enumerate(st[l]):
                final[l, s, n] = v
    return logits, final


def mean_xent(logits, targets):
    """Mean cross-entropy in nats of logits (..., V) against integer targets (...)."""
    z = logits.reshape(-1, logits.shape[-1])
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(z)), targets.reshape(-1)].mean()
