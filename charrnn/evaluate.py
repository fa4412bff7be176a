"""Loss of a model on a text: every character predicted from the ones before it
in its stream, the hidden state carried through the whole stream."""
import numpy as np

from charrnn.data import eval_streams
from charrnn.model import chunk_loss, zero_state


def evaluate(cfg, p, ids, chunk=100, max_streams=50, progress=None):
    """Mean loss in nats per character over ids, and the number of characters
    predicted. The text is cut into up to max_streams contiguous streams run side
    by side; the first character of each stream has no context and is not scored."""
    streams = eval_streams(ids, max_streams)
    B, Ls = streams.shape
    if Ls < 2:
        return float("nan"), 0
    state = zero_state(cfg, B, dtype=next(iter(p.values())).dtype)
    total = 0.0
    for k in range(0, Ls - 1, chunk):
        x = streams[:, k:min(k + chunk, Ls - 1)].T.astype(np.int64)
        y = streams[:, k + 1:min(k + chunk, Ls - 1) + 1].T.astype(np.int64)
        s, state = chunk_loss(cfg, p, x, y, state)
        total += s
        if progress is not None:
            progress(x.size)
    return total / (B * (Ls - 1)), B * (Ls - 1)
