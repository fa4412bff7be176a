"""The model: parameter layout, initialisation, and forward/backward over a chunk.

Dimensions: T time steps, N streams, V vocabulary, E embedding size (0: one-hot),
H hidden units, L layers, G = gates * H, S = state arrays per layer (2 for LSTM: h, c).

All parameters live in one flat buffer carved into named views (llm.c's way), so
the optimizer and gradient clipping are single loops over one array, and a
checkpoint stores exactly the named views. Names and shapes, layer l = 0..L-1:

    embed.W   (V, E)     only when E > 0
    L{l}.Wx   (D_l, G)   D_0 = E, or V for one-hot input; D_l = H above
    L{l}.Wh   (H, G)
    L{l}.b    (G,)
    L{l}.bhn  (H,)       GRU only
    L{l}.leak (H,)       ESN only: the leak rate, fixed
    out.W     (H, V)
    out.b     (V,)

One-hot input is never materialised: x Wx for a one-hot x is the row Wx[id].
Dropout (inverted, rate p) is applied to every layer's output h, i.e. between
layers and before the output projection, as in char-rnn. Weight drop (DropConnect
on the recurrent weights, Wan et al. 2013, as AWD-LSTM uses it, Merity et al. 2017)
drops entries of every Wh, one mask per chunk shared by all its steps and streams,
so it regularises the recurrent path without breaking the memory a cell carries.

An echo state network (esn.py) is one fixed layer: its buffer puts the reservoir
(L0.Wx, L0.Wh, L0.b, L0.leak) first, so what is trained (embed.W, out.W, out.b) is
the tail flat[frozen(cfg):], the only part the optimizer updates.
"""
from dataclasses import asdict, dataclass

import numpy as np

from charrnn import threads
from charrnn.esn import ESN, Reservoir, embedding_grad, init_reservoir
from charrnn.gru import GRU
from charrnn.layers import scatter_add_rows, softmax_xent, xent
from charrnn.lstm import LSTM
from charrnn.rnn import RNN

CELLS = {cell.kind: cell for cell in (RNN, LSTM, GRU, ESN)}  # cell.py: what each provides
GATES = {kind: cell.blocks for kind, cell in CELLS.items()}
STATES = {kind: len(cell.states) for kind, cell in CELLS.items()}


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "lstm"      # rnn | lstm | gru | esn
    vocab_size: int = 65    # V, set from the corpus
    hidden: int = 128       # H
    layers: int = 2         # L
    embed: int = 0          # E; 0 means one-hot input
    dropout: float = 0.0    # rate on each layer's output while training

    def to_dict(self):
        return asdict(self)


def param_shapes(cfg):
    """[(name, shape)] in buffer order."""
    V, E, H, G = cfg.vocab_size, cfg.embed, cfg.hidden, GATES[cfg.kind] * cfg.hidden
    shapes = [("embed.W", (V, E))] if E else []
    if cfg.kind == "esn":  # the fixed reservoir first: see frozen()
        return [("L0.Wx", (E or V, H)), ("L0.Wh", (H, H)), ("L0.b", (H,)), ("L0.leak", (H,)),
                *shapes, ("out.W", (H, V)), ("out.b", (V,))]
    for l in range(cfg.layers):
        D = (E or V) if l == 0 else H
        shapes += [(f"L{l}.Wx", (D, G)), (f"L{l}.Wh", (H, G)), (f"L{l}.b", (G,))]
        if CELLS[cfg.kind].extra:  # the GRU's bhn
            shapes.append((f"L{l}.{CELLS[cfg.kind].extra}", (H,)))
    return shapes + [("out.W", (H, V)), ("out.b", (V,))]


def num_params(cfg):
    return sum(int(np.prod(s)) for _, s in param_shapes(cfg))


def describe_params(cfg):
    """'P parameters', and for an ESN how many of them are trained."""
    P, fixed = num_params(cfg), frozen(cfg)
    return f"{P:,} parameters" + (f" ({P - fixed:,} trained, the reservoir fixed)" if fixed else "")


def frozen(cfg):
    """How many leading entries of the flat buffer training never changes: an ESN's reservoir."""
    if cfg.kind != "esn":
        return 0
    return sum(int(np.prod(s)) for name, s in param_shapes(cfg) if name.startswith("L0."))


def carve(flat, cfg):
    """Named views into the flat buffer, in param_shapes order."""
    views, offset = {}, 0
    for name, shape in param_shapes(cfg):
        size = int(np.prod(shape))
        views[name] = flat[offset:offset + size].reshape(shape)
        offset += size
    assert offset == flat.size, "buffer size does not match the configuration"
    return views


NORMAL_SCALE = 0.01  # init="normal"'s standard deviation unless given: min-char-rnn's


def init_params(cfg, rng, dtype=np.float32, init="orthogonal", scale=0.0, reservoir=Reservoir()):
    """A new flat buffer. Weights U(-k, k), k = scale or 1/sqrt(H) as in PyTorch;
    recurrent weights orthogonal per gate block (init="orthogonal") or as the others;
    init="normal": every weight N(0, s^2), s = scale or 0.01 (min-char-rnn); embedding
    N(0, 1); biases 0 except the LSTM forget gate's, 1, so that the cell state is
    remembered from the start (Gers et al. 2000; Jozefowicz et al. 2015).
    An ESN's: esn.init_reservoir with the settings reservoir (esn.Reservoir)."""
    flat = np.zeros(num_params(cfg), dtype=dtype)
    p = carve(flat, cfg)
    if cfg.kind == "esn":
        init_reservoir(p, rng, reservoir)
        return flat
    H = cfg.hidden
    k = scale or 1.0 / np.sqrt(H)
    for name, w in p.items():
        if name == "embed.W":
            w[:] = rng.standard_normal(w.shape)
        elif name.endswith(".Wh") and init == "orthogonal":
            for gate in range(GATES[cfg.kind]):
                q, r = np.linalg.qr(rng.standard_normal((H, H)))
                w[:, gate * H:(gate + 1) * H] = q * np.sign(np.diag(r))  # uniform over O(H)
        elif (name.endswith((".Wx", ".Wh")) or name == "out.W") and init == "normal":
            w[:] = rng.standard_normal(w.shape) * (scale or NORMAL_SCALE)
        elif name.endswith((".Wx", ".Wh")) or name == "out.W":
            w[:] = rng.uniform(-k, k, w.shape)
        elif name.endswith(".b") and cfg.kind == "lstm" and name != "out.b":
            w[H:2 * H] = 1.0  # gate order i, f, o, g: f is the second block
    return flat


def zero_state(cfg, N, dtype=np.float32):
    """(L, S, N, H) hidden state: h (and c for LSTM) of every layer."""
    return np.zeros((cfg.layers, STATES[cfg.kind], N, cfg.hidden), dtype=dtype)


def _inverted_masks(rng, shape, rate, dtype):
    """0 where dropped (with probability rate), 1/(1-rate) where kept; None at rate 0."""
    if rate <= 0:
        return None
    keep = 1.0 - rate
    return ((rng.random(shape) < keep) / keep).astype(dtype)


def dropout_masks(cfg, rng, T, N, dtype=np.float32):
    """(L, T, N, H) inverted-dropout masks for every layer's output, or None."""
    return _inverted_masks(rng, (cfg.layers, T, N, cfg.hidden), cfg.dropout, dtype)


def weight_masks(cfg, rng, rate, dtype=np.float32):
    """(L, H, G) inverted-dropout masks for every layer's Wh, or None."""
    return _inverted_masks(rng, (cfg.layers, cfg.hidden, GATES[cfg.kind] * cfg.hidden), rate, dtype)


def _folds_embedding(cfg, M):
    """Whether layer 0 multiplies the V rows of the embedding by Wx rather than the
    M = T*N embedded characters: embed.W[ids] Wx = (embed.W Wx)[ids], the same map,
    and fewer FLOPs when V < M (65 rows against 2,500 for tiny Shakespeare's chunks)."""
    return cfg.embed and cfg.vocab_size < M


def _input_projection(cfg, p, l, x):
    """xw = x Wx + b for layer l, all T steps in one GEMM; x is ids (T, N) for l = 0."""
    Wx, b = p[f"L{l}.Wx"], p[f"L{l}.b"]
    if l == 0 and not cfg.embed:
        return Wx[x] + b                     # one-hot rows: a gather, no GEMM
    if l == 0 and _folds_embedding(cfg, x.size):
        return threads.matmul(p["embed.W"], Wx, b)[x]  # a (V, G) table, gathered
    if l == 0:
        x = p["embed.W"][x]                  # (T, N, E)
    T, N, D = x.shape
    return threads.matmul(x.reshape(T * N, D), Wx, b).reshape(T, N, -1)


def forward(cfg, p, ids, state, masks=None):
    """ids: (T, N) input characters; state: (L, S, N, H) carried in.
    Returns logits (T*N, V), the caches for backward (per layer: xw, h, what the cell
    saved by name, the layer's output after dropout), and the state after T steps."""
    T, N = ids.shape
    cell = CELLS[cfg.kind]
    x, caches, new_state = ids, [], np.empty_like(state)
    for l in range(cfg.layers):
        xw = _input_projection(cfg, p, l, x)
        h, saved, new_state[l] = cell.forward(xw, p[f"L{l}.Wh"], state[l], p.get(f"L{l}.{cell.extra}"))
        x = h if masks is None else h * masks[l]
        caches.append((xw, h, saved, x))
    logits = threads.matmul(x.reshape(T * N, -1), p["out.W"], p["out.b"])
    return logits, caches, new_state


def backward(cfg, p, g, dlogits, caches, ids, state, masks=None):
    """Accumulates the gradients of every parameter into the views g, given
    dlogits (T*N, V) and what forward saved (used up: the LSTM's and GRU's gates
    become their gradients). state is the state forward started from."""
    T, N = ids.shape
    H, cell = cfg.hidden, CELLS[cfg.kind]
    M = T * N
    top = caches[-1][3].reshape(M, H)
    threads.matmul_tn_add(g["out.W"], top, dlogits)
    g["out.b"] += dlogits.sum(axis=0)
    if cell.backward is None:  # an ESN: no backpropagation through time, the gradient stops at h
        if cfg.embed:
            dh = threads.matmul(dlogits, p["out.W"].T).reshape(T, N, H)
            dh = dh if masks is None else dh * masks[0]
            embedding_grad(p, g, dh, caches[0][2]["z"], ids, _folds_embedding(cfg, M))
        return
    dx = threads.matmul(dlogits, p["out.W"].T).reshape(T, N, H)  # BLAS reads the transpose as is
    for l in range(cfg.layers - 1, -1, -1):
        _, h, saved, _ = caches[l]
        dh = dx if masks is None else dx * masks[l]
        # da: the gradient of x Wx + b, dah: of h_prev Wh; the gradient of the carried
        # state is dropped (truncated BPTT)
        da, dah, _, biases = cell.backward(saved, dh, p[f"L{l}.Wh"], state[l])
        for name, grad in biases.items():
            g[f"L{l}.{name}"] += grad
        # dWh = h_prev^T dah, one GEMM per chunk: h[t-1] pairs with dah[t], the carried
        # state with dah[0] (a small second product rather than a copy of h)
        threads.matmul_tn_add(g[f"L{l}.Wh"], h[:-1].reshape(M - N, H), dah[1:].reshape(M - N, -1))
        g[f"L{l}.Wh"] += state[l][0].T @ dah[0]
        dx = _input_backward(cfg, p, g, l, da.reshape(M, -1), caches, ids)


def _input_backward(cfg, p, g, l, da, caches, ids):
    """Adds the gradients of layer l's input projection x Wx + b, given da (M, G), to
    g's Wx (and the embedding's, for l = 0); returns dx (T, N, H) for the layer below."""
    T, N = ids.shape
    M = T * N
    WxT = p[f"L{l}.Wx"].T
    if l > 0:
        x_in = caches[l - 1][3].reshape(M, -1)
        threads.matmul_tn_add(g[f"L{l}.Wx"], x_in, da)
        return threads.matmul(da, WxT).reshape(T, N, -1)
    if _folds_embedding(cfg, M):
        # the backward of the table: sum the gradient rows of each character first,
        # then two (V, .) GEMMs instead of two (M, .) ones
        dtable = np.zeros((cfg.vocab_size, da.shape[1]), dtype=da.dtype)
        scatter_add_rows(dtable, ids.reshape(M), da)
        g["L0.Wx"] += p["embed.W"].T @ dtable
        g["embed.W"] += dtable @ WxT
    elif cfg.embed:
        emb = p["embed.W"][ids].reshape(M, -1)
        threads.matmul_tn_add(g["L0.Wx"], emb, da)
        scatter_add_rows(g["embed.W"], ids.reshape(M), threads.matmul(da, WxT))
    else:
        scatter_add_rows(g["L0.Wx"], ids.reshape(M), da)
    return None


def loss_and_grad(cfg, p, g, ids, targets, state, masks=None, wmasks=None, per=None,
                  chars=None, reduce=None):
    """Mean cross-entropy (nats per character) of one chunk; gradients are added to g.
    masks: dropout_masks; wmasks: weight_masks. Returns (loss, state after the chunk).
    per: what the summed loss is divided by for the gradient: T*N (None), its mean per
    character; N, its sum over time per stream (min-char-rnn's and char-rnn's).
    Data-parallel (distributed.py), ids are this rank's streams of a chunk of chars
    characters, and reduce(total) sums g and the loss total over the ranks.
    Unless its layers are split by units (threads.py), the step is split by streams:
    each thread runs forward and backward of its streams into its own gradients,
    added in order at the end, so the threads wait for each other once per step
    rather than at each of 14 products."""
    if wmasks is not None:  # the chunk runs on Wh * mask; its gradient is masked the same way
        p = dict(p, **{f"L{l}.Wh": p[f"L{l}.Wh"] * wmasks[l] for l in range(cfg.layers)})
        g_wh = [g[f"L{l}.Wh"].copy() for l in range(cfg.layers)]  # what g held before
    M = chars or ids.size

    def part(ids, targets, state, masks, s0):
        gp = g if s0 == 0 else {k: np.zeros_like(v) for k, v in g.items()}
        logits, caches, new_state = forward(cfg, p, ids, state, masks)
        rows = logits.shape[0]
        total = sum(threads.run(softmax_xent, rows, logits, targets.reshape(rows),
                                1.0 / (per or M), min_rows=256))  # in place; partial sums added in order
        backward(cfg, p, gp, logits, caches, ids, state, masks)
        return total, new_state, gp
    done = _by_streams(cfg, part, ids, targets, state, masks)
    for _, _, gp in done[1:]:
        for name, v in gp.items():
            g[name] += v
    total = sum(d[0] for d in done)
    if reduce is not None:  # before the weight mask, which multiplies the sum as one
        total = reduce(total)
    new_state = np.concatenate([d[1] for d in done], axis=2)
    if wmasks is not None:
        for l in range(cfg.layers):
            w = g[f"L{l}.Wh"]
            w[:] = g_wh[l] + (w - g_wh[l]) * wmasks[l]
    return total / M, new_state


def _by_streams(cfg, fn, ids, targets, state, masks=None):
    """[fn(ids, targets, state, masks, s0) for each thread's streams s0..s1] (all of
    them when the step is not split by streams, see loss_and_grad), in order."""
    N = ids.shape[1]
    parts = threads.step_ranges(N, cfg.hidden, GATES[cfg.kind] * cfg.hidden) or [(0, N)]
    if len(parts) == 1:
        return [fn(ids, targets, state, masks, 0)]
    return threads.parallel(threads.alone(
        lambda s0, s1: fn(ids[:, s0:s1], targets[:, s0:s1], state[:, :, s0:s1],
                          None if masks is None else masks[:, :, s0:s1], s0)), (), parts)


def chunk_loss(cfg, p, ids, targets, state):
    """Summed cross-entropy of one chunk, no gradients, no dropout. Returns (sum, state).
    Split by streams as loss_and_grad is."""
    def part(ids, targets, state, masks, s0):
        logits, _, new_state = forward(cfg, p, ids, state)
        return xent(logits, targets.reshape(-1)), new_state
    done = _by_streams(cfg, part, ids, targets, state)
    return sum(d[0] for d in done), np.concatenate([d[1] for d in done], axis=2)


STATE_NAMES = {kind: (*cell.states[1:], "h", *cell.gates) for kind, cell in CELLS.items()}


def named_states(cfg, caches):
    """What each layer computed in forward(), by name: [{name: (T, N, H)}] per layer,
    the memory (c, h) and the activated gates (STATE_NAMES order). Views into the
    caches: copy what must outlive them."""
    cell = CELLS[cfg.kind]
    out = []
    for _, h, saved, _ in caches:
        H = h.shape[2]
        states = {"h": h}
        for name in cell.states[1:]:  # the LSTM's c
            states[name] = saved[name]
        for k, name in enumerate(cell.gates):  # they replace xw in place (lstm.py, gru.py)
            states[name] = saved["gates"][:, :, k * H:(k + 1) * H]
        out.append(states)
    return out
