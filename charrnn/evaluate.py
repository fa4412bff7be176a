"""Loss of a model on a text: every character after the first predicted from all the
ones before it, as if the model read the whole text in one pass.

One pass at batch 1 is slow (each step a matrix-vector product), so the text is cut
into up to max_streams contiguous parts, run side by side as one batch. A part that
started from the zero state at an arbitrary point of the text would find its first
characters harder than they are (50 such parts added 0.003 nats/char on tiny
Shakespeare's held-out 10%), so every part but the first starts from the state reached
by reading the burn_in characters before it, unscored. The parts cover every character; the few left over when the text
does not split evenly are read at the end of the last part, whose state has reached
them. A test checks the result against the one pass at batch 1."""
import numpy as np

from charrnn.model import chunk_loss, forward, zero_state

MIN_PART = 200  # characters per part at least: more parts would be mostly burn-in


def num_parts(n, max_streams=50):
    """How many parts evaluate cuts a text of n characters into."""
    return max(1, min(max_streams, (n - 1) // MIN_PART))


def layout(ids, max_streams=50, burn_in=200):
    """How evaluate reads ids (n >= 2 characters). Returns (hist, xs, ys, tail_x, tail_y):
    hist (B, W): the W characters before each part, read first (row 0, the first part,
    has no history: it is read anyway and its state zeroed after); xs, ys (B, Ls):
    inputs and targets of each part; tail_x, tail_y: the last part's continuation."""
    n = len(ids)
    B = num_parts(n, max_streams)
    Ls = (n - 1) // B
    W = min(burn_in, Ls) if B > 1 else 0
    hist = np.stack([ids[b * Ls - W:b * Ls] if b else ids[:W] for b in range(B)])
    xs = ids[:B * Ls].reshape(B, Ls)
    ys = ids[1:B * Ls + 1].reshape(B, Ls)
    return hist, xs, ys, ids[B * Ls:n - 1], ids[B * Ls + 1:n]


def evaluate(cfg, p, ids, chunk=100, max_streams=50, burn_in=200, progress=None):
    """Mean loss in nats per character over ids[1:], and the number of characters
    predicted (len(ids) - 1)."""
    if len(ids) < 2:
        return float("nan"), 0
    total = 0.0
    for s in chunk_sums(cfg, p, ids, chunk, max_streams, burn_in, progress):
        total += s
    n = len(ids) - 1
    return total / n, n


def chunk_sums(cfg, p, ids, chunk=100, max_streams=50, burn_in=200, progress=None, parts=None):
    """The summed losses of evaluate's chunks in order: those of the parts, then those
    of the last part's continuation. parts=(b0, b1): only those parts of the layout
    (and the continuation when b1 is the last), one rank's share in distributed.py."""
    hist, xs, ys, tail_x, tail_y = layout(ids, max_streams, burn_in)
    B = xs.shape[0]
    b0, b1 = parts or (0, B)
    if b0 >= b1:
        return []
    state = zero_state(cfg, b1 - b0, dtype=next(iter(p.values())).dtype)
    if hist.shape[1]:
        _, _, state = forward(cfg, p, np.ascontiguousarray(hist[b0:b1].T, dtype=np.int64), state)
        if b0 == 0:
            state[:, :, 0] = 0  # the first part starts the text: nothing before it
    sums = []
    for k in range(0, xs.shape[1], chunk):
        x = xs[b0:b1, k:k + chunk].T.astype(np.int64)
        s, state = chunk_loss(cfg, p, x, ys[b0:b1, k:k + chunk].T.astype(np.int64), state)
        sums.append(s)
        if progress is not None:
            progress(x.size)
    if b1 < B:
        return sums
    state = np.ascontiguousarray(state[:, :, -1:])  # the last part reads on
    for k in range(0, len(tail_x), chunk):
        x = tail_x[k:k + chunk, None].astype(np.int64)
        s, state = chunk_loss(cfg, p, x, tail_y[k:k + chunk, None].astype(np.int64), state)
        sums.append(s)
    return sums
