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

Memory: T * H * (states per layer) * L float32s, e.g. 1.4 GB for 50,000
characters through a 2x512 LSTM.
"""
import numpy as np

from charrnn.esn import Reservoir
from charrnn.model import carve, forward, init_params, zero_state

STATES = {"lstm": ("c", "tanh_c", "h", "i", "f", "o", "g"),
          "gru": ("h", "r", "z", "n"),
          "rnn": ("h",), "esn": ("h",)}
GATE_NAMES = {"lstm": "ifog", "gru": "rzn", "rnn": "", "esn": ""}
DEFAULT_STATE = {"lstm": "tanh_c", "gru": "h", "rnn": "h", "esn": "h"}


class Recording:
    """blocks: [(layer, state)] in a fixed order; acts[(layer, state)]: (T, H) float32.
    Layers are 0-based here; renderers add 1."""

    def __init__(self, kind, layers, acts):
        self.kind, self.layers = kind, layers
        self.blocks = [(l, s) for l in range(layers) for s in STATES[kind]]
        self.acts = acts

    def __getitem__(self, block):
        return self.acts[block]

    @property
    def T(self):
        return self.acts[self.blocks[0]].shape[0]

    @property
    def H(self):
        return self.acts[self.blocks[0]].shape[1]


def _store(kind, out, l, t0, h, saved):
    """Copies one chunk's caches (T', 1, ...) into the (T, H) recordings of layer l."""
    n, H = h.shape[0], h.shape[2]
    rows = slice(t0, t0 + n)
    out[(l, "h")][rows] = h[:, 0]
    if kind == "lstm":
        gates, c = saved
        out[(l, "c")][rows] = c[:, 0]
        out[(l, "tanh_c")][rows] = np.tanh(c[:, 0])
    elif kind == "gru":
        gates = saved[0]
    else:
        return
    for k, name in enumerate(GATE_NAMES[kind]):
        out[(l, name)][rows] = gates[:, 0, k * H:(k + 1) * H]


def record(cfg, p, ids, chunk=1000, progress=None):
    """Runs the model with parameters p (named views) over ids (T,) in one stream.
    progress(n) is called with the characters done after each chunk."""
    T = len(ids)
    out = {(l, s): np.empty((T, cfg.hidden), np.float32)
           for l in range(cfg.layers) for s in STATES[cfg.kind]}
    dtype = next(iter(p.values())).dtype
    state = zero_state(cfg, 1, dtype=dtype)
    for t0 in range(0, T, chunk):
        x = np.asarray(ids[t0:t0 + chunk], dtype=np.int64)[:, None]   # (T', 1)
        _, caches, state = forward(cfg, p, x, state)
        for l, (_, h, saved, _) in enumerate(caches):
            _store(cfg.kind, out, l, t0, h, saved)
        if progress is not None:
            progress(len(x))
    return Recording(cfg.kind, cfg.layers, out)


def untrained_params(cfg, seed=0, reservoir=Reservoir()):
    """Parameters of the same architecture as training starts it (train.Run's init);
    an ESN's: another reservoir drawn with the same settings, and a zero readout."""
    return carve(init_params(cfg, np.random.default_rng(seed), reservoir=reservoir), cfg)

