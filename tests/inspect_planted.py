"""A hand-set LSTM for the inspect-cells tests: unit 0 holds the parity of the
double quotes read so far, unit 1 counts the characters since the last newline.
Every other unit is off. Gate order i, f, o, g; one-hot input, so Wx[id] is the
input's contribution to the pre-activations.

    quote parity   on '"': f = 0, i = 1, g = tanh(10 (tanh(1) - h_prev)), so c flips
                   between 0 (outside, as at the start: h_prev = 0, g = 1) and 1
                   (inside: h_prev = tanh(1), g = 0); on anything else f = 1,
                   i = 0: c is kept.
    column         on '\\n': f = 0, i = 0, so c = 0; otherwise f = 1, i = 1,
                   g = STEP: c = STEP * column.
"""
import numpy as np

from charrnn.model import ModelConfig, carve, num_params

VOCAB = ["\n", " ", '"', "a", "b", "c"]
STEP = 0.01
BIG = 15.0      # saturates a sigmoid to within 3e-7


def planted_lstm(hidden=8):
    V, H = len(VOCAB), hidden
    cfg = ModelConfig(kind="lstm", vocab_size=V, hidden=H, layers=1)
    p = carve(np.zeros(num_params(cfg), np.float32), cfg)
    i, f, o, g = (slice(k * H, (k + 1) * H) for k in range(4))
    q, nl = VOCAB.index('"'), VOCAB.index("\n")
    b, Wx, Wh = p["L0.b"], p["L0.Wx"], p["L0.Wh"]
    b[i], b[f], b[o] = -BIG, BIG, BIG          # every unit: keep c, let nothing in
    # unit 0: quote parity
    Wx[q, 0] = 2 * BIG                          # i opens on '"'
    Wx[q, H] = -2 * BIG                         # f forgets on '"'
    Wh[0, 3 * H] = -10.0                        # g = tanh(10 (tanh(1) - h_prev))
    b[3 * H] = 10.0 * np.tanh(1.0)
    # unit 1: column counter
    b[1] = BIG                                  # i open, except on '\n'
    Wx[nl, 1] = -2 * BIG
    Wx[nl, H + 1] = -2 * BIG                    # f closed on '\n'
    b[3 * H + 1] = np.arctanh(STEP)             # g = STEP
    return cfg, p


def planted_text(n, seed=0):
    """Lines of words over VOCAB with quotes that open and close on any line;
    the same characters inside and outside quotes."""
    rng = np.random.default_rng(seed)
    out, size = [], 0
    while size < n:
        width = int(rng.integers(5, 60))
        line = []
        for _ in range(width):
            r = rng.random()
            line.append('"' if r < 0.04 else " " if r < 0.25 else "abc"[int(rng.integers(3))])
        out.append("".join(line) + "\n")
        size += width + 1
    return "".join(out)[:n]
