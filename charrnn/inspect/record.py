"""Running a model over one text and recording every layer's internal states.

Dimensions: T characters, H hidden units, L layers. The text is one stream
(batch N = 1), read in chunks with the hidden state carried between them and
no dropout, so step t of the recording is the state after reading text[t]:
exactly what the model has seen when it predicts text[t + 1].

Recorded per layer l (numbered from 1 on the screen, L{l-1}.* in the checkpoint):

    lstm   c, tanh_c, h, i, f, o, g     gates activated, order i, f, o, g
    gru    h, r, z, n                   gates activated, order r, z, n
    rnn    h
    esn    h                            the reservoir's (leaky) state

chunks() hands each chunk's states over and keeps nothing: inspect-cells
accumulates its statistics from them (stream.py). record() keeps them all,
T * H * (states per layer) * L float32s, for tests and short texts.
"""
import numpy as np

from charrnn.esn import Reservoir
from charrnn.model import carve, forward, init_params, named_states, zero_state

STATES = {"lstm": ("c", "tanh_c", "h", "i", "f", "o", "g"),
          "gru": ("h", "r", "z", "n"),
          "rnn": ("h",), "esn": ("h",)}
GATE_NAMES = {"lstm": "ifog", "gru": "rzn", "rnn": "", "esn": ""}
DEFAULT_STATE = {"lstm": "tanh_c", "gru": "h", "rnn": "h", "esn": "h"}
CHUNK_FLOATS = 1 << 21   # a chunk's recorded states, 8 MB of float32, whatever the model's size


def blocks(cfg):
    """[(layer, state)]: the recorded blocks in their fixed order."""
    return [(l, s) for l in range(cfg.layers) for s in STATES[cfg.kind]]


def memory_groups(cfg):
    """Per layer, the indices of the blocks the probe reads: its memory (c and h, or h)."""
    keep = ("c", "h") if cfg.kind == "lstm" else ("h",)
    names = blocks(cfg)
    return [[b for b, (l, s) in enumerate(names) if l == layer and s in keep]
            for layer in range(cfg.layers)]


def chunk_rows(cfg):
    """Rows of a chunk: CHUNK_FLOATS recorded floats, 100 to 1000 rows (a wide model's
    chunk, and the forward pass's saved values with it, would otherwise dominate)."""
    return int(np.clip(CHUNK_FLOATS // (cfg.hidden * len(blocks(cfg))), 100, 1000))


def chunks(cfg, p, ids, bounds=(), chunk=None):
    """Runs the model with parameters p (named views) over ids (T,) in one stream and
    yields (t0, [(c, H) float32 per block in blocks(cfg) order]) for rows t0..t0+c,
    c <= chunk (default chunk_rows); no chunk straddles a bound. The arrays are
    reused: use them before the next."""
    T = len(ids)
    chunk = chunk or chunk_rows(cfg)
    dtype = next(iter(p.values())).dtype
    state = zero_state(cfg, 1, dtype=dtype)
    cuts = sorted({0, T, *[b for b in bounds if 0 < b < T]})
    for a, b in zip(cuts, cuts[1:]):
        for t0 in range(a, b, chunk):
            x = np.asarray(ids[t0:min(b, t0 + chunk)], dtype=np.int64)[:, None]   # (c, 1)
            _, caches, state = forward(cfg, p, x, state)
            named = named_states(cfg, caches)
            out = []
            for l, s in blocks(cfg):
                a_ = np.tanh(named[l]["c"][:, 0]) if s == "tanh_c" else named[l][s][:, 0]
                out.append(np.ascontiguousarray(a_, dtype=np.float32))
            yield t0, out


class Recording:
    """Every state of every step, for tests and short texts: blocks: [(layer, state)];
    rec[(layer, state)]: (T, H) float32. Layers are 0-based here; renderers add 1."""

    def __init__(self, kind, layers, acts):
        self.kind, self.layers = kind, layers
        self.blocks = [(l, s) for l in range(layers) for s in STATES[kind]]
        self.acts = acts

    def __getitem__(self, block):
        return self.acts[block]


def record(cfg, p, ids, chunk=1000):
    """The whole Recording of the model over ids (T * H * states * L float32s)."""
    names = blocks(cfg)
    out = {name: np.empty((len(ids), cfg.hidden), np.float32) for name in names}
    for t0, states in chunks(cfg, p, ids, chunk=chunk):
        for name, a in zip(names, states):
            out[name][t0:t0 + len(a)] = a
    return Recording(cfg.kind, cfg.layers, out)


def untrained_params(cfg, seed=0, reservoir=Reservoir()):
    """Parameters of the same architecture as training starts it (train.Run's init);
    an ESN's: another reservoir drawn with the same settings, and a zero readout."""
    return carve(init_params(cfg, np.random.default_rng(seed), reservoir=reservoir), cfg)
