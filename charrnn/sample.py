"""Sampling: the model run one character at a time, inside compiled code.

Dimensions: N samples generated side by side (one batch), L layers, S state
arrays per layer, H hidden, G = gates * H, V vocabulary, K steps per call.

The first layer's input projection for every character is precomputed once as a
table (V, G) = embed.W @ L0.Wx + L0.b (or L0.Wx + L0.b for one-hot input), so a
step of layer 0 is a row lookup. sample_chunk runs K steps per call and the
Python side streams each chunk out as soon as it is made; chunks grow while they
take under FLUSH_S, so text still arrives every few milliseconds while the cost of
starting a call (waking the other threads when they split the units) is spread thin.
Randomness comes in as coins: uniform numbers drawn by the caller from seeded
generators (one per sample), so the same seed gives the same text.

Layers wide enough are split by units across the cores (threads.py):
each thread advances its units of every layer, reading only their columns of the
weights, and the threads meet at barriers; one of them draws the characters.

Beam search runs the W beams as a batch of N = W states: each step expands every
beam by every character, keeps the W best of the W*V candidates by their sum of
log-probabilities, and reorders the states to follow their parents. Back-pointers
(T, W) are kept and the best continuation is traced back at the end, so it cannot
stream. Stop cuts the texts at a delimiter as they arrive, chunk by chunk.
"""
import time
from collections import namedtuple

import numpy as np
from numba import njit

from charrnn import threads
from charrnn.esn import esn_cell
from charrnn.gru import gru_cell
from charrnn.layers import EXP_LO, FAST, exp
from charrnn.lstm import lstm_cell
from charrnn.model import CELLS, zero_state
from charrnn.native import barrier, gate_columns, gemm, new_ctx
from charrnn.rnn import rnn_cell

# a chunk that took less than this is followed by one twice as long, up to MAX_CHUNK,
# so that waking the other threads is paid once for many characters
FLUSH_S = 0.01
MAX_CHUNK = 1 << 14
MAX_CHUNK_CELLS = 1 << 20  # K * N of a chunk, so that many samples do not make it huge

# The weights a character reads: a thread's units' columns of them, gate by gate
# (U = u1 - u0 a gate, gU = gates * U): table0 (V, gU), Wxs, Whs (L, H, gU), bs (L, gU),
# extras (L, U) (the GRU's bhn, or the ESN's leak); the readout Wy (H, V), by (V,)
# whole; step: the cell's Cell.step
Net = namedtuple("Net", "step table0 Wxs Whs bs extras Wy by")
Draw = namedtuple("Draw", "temperature top_k top_p greedy")  # how choose() draws a character
# advance()'s scratch for N samples: xw, a (N, gU), ahn (U,) (the GRU's)
Scratch = namedtuple("Scratch", "xw a ahn")
Part = namedtuple("Part", "net ctx u0 u1")  # a thread's weights, and its units of every layer
RNN, LSTM, GRU, ESN = (CELLS[kind].step for kind in ("rnn", "lstm", "gru", "esn"))


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def advance(old, new, tok, net, buf, share):
    """Feeds the characters tok (N,) to the model: from the state old (L, S, N, H)
    into new, the share's units u0..u1 of every layer (all of them, or this thread's;
    see Sampler). new may be old itself for one thread; threads that split the units
    need two: no thread then waits for the others to read old before it writes
    (one barrier per layer, not two). net: a Net of those units' columns;
    buf: a Scratch."""
    ctx, _, _, u0, u1 = share
    xw, a, ahn = buf
    L = old.shape[0]
    N = tok.shape[0]
    for l in range(L):
        if l == 0:
            for n in range(N):
                xw[n, :] = net.table0[tok[n]]
        else:
            gemm(ctx, new[l - 1, 0], net.Wxs[l], xw)
            xw += net.bs[l]
        gemm(ctx, old[l, 0], net.Whs[l], a)
        if u1 - u0 == old.shape[3]:  # contiguous rows: the cell loops vectorize
            cell_step(net.step, old[l, 0], old[l, -1], new[l, 0], new[l, -1], a, xw, net.extras[l], ahn)
        else:
            cell_step(net.step, old[l, 0][:, u0:u1], old[l, -1][:, u0:u1], new[l, 0][:, u0:u1],
                      new[l, -1][:, u0:u1], a, xw, net.extras[l], ahn)
        barrier(ctx)  # the next layer, and the next step, read all of this one's h


@njit(cache=True, error_model="numpy", inline="always")
def scratch(N, net):
    """advance()'s Scratch for N samples."""
    gU = net.table0.shape[1]
    return Scratch(np.empty((N, gU), dtype=net.table0.dtype), np.empty((N, gU), dtype=net.table0.dtype),
                   np.empty(net.extras.shape[1], dtype=net.table0.dtype))


@njit(cache=True, error_model="numpy", inline="always")
def cell_step(step, h_prev, c_prev, h, c, a, xw, extra, ahn):
    """One step of the cell numbered step (Cell.step) from h_prev (N, U) (and c_prev,
    for the LSTM) to h (and c), which may be the same arrays: the training kernels'
    cells, on this part's columns (so with u0 = 0). xw is used up: the LSTM's and
    GRU's cells turn it into their gates. extra: the GRU's bhn, or the ESN's leak."""
    for n in range(h.shape[0]):
        if step == RNN:
            rnn_cell(h[n], a[n], xw[n])
        elif step == ESN:
            esn_cell(h[n], a[n], xw[n], h_prev[n], extra)
        elif step == LSTM:
            lstm_cell(h[n], c[n], xw[n], a[n], c_prev[n], 0)
        else:
            gru_cell(h[n], xw[n], ahn, a[n], extra, h_prev[n], 0)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def output_row(h, Wy, by, logits):
    """logits (V,) = h (H,) Wy (H, V) + by for one sample: four rows of Wy a pass over
    logits, in the loop LLVM vectorizes; faster than sgemv on so few columns (V = 65
    is 4 vectors and 1)."""
    H = h.shape[0]
    for v in range(logits.shape[0]):
        logits[v] = by[v]
    k4 = H - H % 4
    for k in range(0, k4, 4):
        x0, x1, x2, x3 = h[k], h[k + 1], h[k + 2], h[k + 3]
        r0, r1, r2, r3 = Wy[k], Wy[k + 1], Wy[k + 2], Wy[k + 3]
        for v in range(logits.shape[0]):
            logits[v] += x0 * r0[v] + x1 * r1[v] + x2 * r2[v] + x3 * r3[v]
    for k in range(k4, H):
        x, r = h[k], Wy[k]
        for v in range(logits.shape[0]):
            logits[v] += x * r[v]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def softmax_weights(logits, mx, temperature, floor, probs):
    """probs[v] = exp((logits[v] - mx) / temperature) for the logits at or above floor,
    0 for the others (and where the weight is below e^-87, where layers.exp stops);
    returns their sum. In float32 through layers.exp, which vectorizes, unlike np.exp
    in float64."""
    # the division is a product with the reciprocal (fast-math), which overflows below
    # 5.6e-309 (and 0 * inf is NaN); at 1e-30 every weight but the largest is 0 already
    inv_t = 1.0 / max(temperature, 1e-30)
    total = 0.0
    for v in range(logits.shape[0]):
        x = np.float32((logits[v] - mx) * inv_t)
        w = exp(x) if x > EXP_LO and logits[v] >= floor else np.float32(0.0)
        probs[v] = w
        total += w
    return total


@njit(cache=True, error_model="numpy")
def choose(logits, draw, coin, probs, work):
    """Index drawn from softmax(logits / temperature), restricted first to the top_k
    largest logits when 0 < top_k < V, then, when top_p < 1, to the nucleus: the
    fewest most likely of those left whose probability adds up to at least top_p of
    theirs. Ties at either cut are kept. argmax if greedy. draw: a Draw of those four;
    coin: uniform in [0, 1); probs, work: (V,) float64 scratch."""
    temperature, top_k, top_p, greedy = draw
    V = logits.shape[0]
    if greedy:
        return np.argmax(logits)
    floor = -np.inf
    if 0 < top_k < V:
        work[:] = logits
        work.sort()
        floor = work[V - top_k]
    total = softmax_weights(logits, np.max(logits), temperature, floor, probs)
    if top_p < 1.0:
        work[:] = probs
        work.sort()
        j = V - 1
        acc = work[j]
        while acc < top_p * total and j > 0:  # j > 0: rounding can leave acc short
            j -= 1
            acc += work[j]
        pmin = work[j]
        total = 0.0
        for v in range(V):
            if probs[v] < pmin:
                probs[v] = 0.0
            total += probs[v]
    u = coin * total
    acc = 0.0
    last = 0
    for v in range(V):
        if probs[v] > 0:
            acc += probs[v]
            last = v
            if acc > u:
                return v
    return last  # u within rounding of total


@njit(cache=True, nogil=True, error_model="numpy")
def sample_chunk(out, tok, state, spare, coins, draw, net, share):
    """out: (K, N) generated ids; tok: (N,) the last character of each sample, not
    yet fed, updated in place; state: (L, S, N, H), in and out; spare: the same
    shape, what advance() steps into and back (state itself for one thread);
    coins: (K, N) uniform in [0, 1); draw: a Draw; net: the share's Net. The thread
    with units from 0 also draws the characters while the others wait."""
    ctx, _, _, u0, u1 = share
    K, N = out.shape
    V = net.by.shape[0]
    L = state.shape[0]
    buf = scratch(N, net)
    logits = np.empty((N, V), dtype=net.table0.dtype)
    probs = np.empty(V, dtype=np.float64)
    work = np.empty(V, dtype=np.float64)
    for k in range(K):
        old, new = (state, spare) if k % 2 == 0 else (spare, state)
        advance(old, new, tok, net, buf, share)
        if u0 == 0:
            if N == 1:
                output_row(new[L - 1, 0, 0], net.Wy, net.by, logits[0])
            else:
                gemm(ctx, new[L - 1, 0], net.Wy, logits)
                for n in range(N):
                    logits[n] += net.by
            for n in range(N):
                tok[n] = choose(logits[n], draw, coins[k, n], probs, work)
                out[k, n] = tok[n]
        barrier(ctx)  # tok is drawn
    if K % 2 == 1:  # the last step went into spare: this thread's units back into state
        state[..., u0:u1] = spare[..., u0:u1]


@njit(cache=True, error_model="numpy")
def feed(ids, state, net, share):
    """Conditions state (L, S, N, H) on the characters ids (P,), the same for every
    sample; share: all of the units."""
    N = state.shape[2]
    buf = scratch(N, net)
    tok = np.empty(N, dtype=np.int64)
    for p in range(ids.shape[0]):
        tok[:] = ids[p]
        advance(state, state, tok, net, buf, share)


@njit(cache=True, error_model="numpy")
def log_softmax(logp, logits):
    """logp (V,) float64 out: log softmax(logits)."""
    mx = np.max(logits)
    s = 0.0
    for v in range(logits.shape[0]):
        s += np.exp(logits[v] - mx)
    lse = mx + np.log(s)
    for v in range(logits.shape[0]):
        logp[v] = logits[v] - lse


@njit(cache=True, error_model="numpy")
def beam_select(scores, parent, char, cand):
    """The W best of the candidates cand (W, V), best first, into scores, parent and
    char (W,). Ties go to the lower beam, then the lower character, so width 1 is
    argmax. Slots left over when fewer than W are finite stay -inf (dead beams)."""
    W, V = cand.shape
    scores[:] = -np.inf
    parent[:] = 0
    char[:] = 0
    for w in range(W):
        for v in range(V):
            c = cand[w, v]
            if c > scores[W - 1]:  # insertion into the sorted W kept
                j = W - 1
                while j > 0 and scores[j - 1] < c:
                    scores[j], parent[j], char[j] = scores[j - 1], parent[j - 1], char[j - 1]
                    j -= 1
                scores[j], parent[j], char[j] = c, w, v


@njit(cache=True, error_model="numpy")
def beam_search(parents, chars, scores, tok, state, net, share):
    """T steps of beam search over W beams. parents, chars: (T, W) out, the beam each
    step's survivor came from and the character it added; scores (W,): sums of
    log-probabilities, in and out; tok (W,), state (L, S, W, H): in and out;
    share: all of the units."""
    T, W = parents.shape
    L, V = state.shape[0], net.by.shape[0]
    buf = scratch(W, net)
    logits = np.empty((W, V), dtype=net.table0.dtype)
    cand = np.empty((W, V), dtype=np.float64)
    spare = np.empty_like(state)
    for t in range(T):
        advance(state, state, tok, net, buf, share)
        gemm(share.ctx, state[L - 1, 0], net.Wy, logits)
        for w in range(W):
            logits[w] += net.by
            log_softmax(cand[w], logits[w])
            cand[w] += scores[w]
        beam_select(scores, parents[t], chars[t], cand)
        for w in range(W):
            spare[:, :, w] = state[:, :, parents[t, w]]
            tok[w] = chars[t, w]
        state[:] = spare


@njit(cache=True, error_model="numpy")
def beam_backtrack(out, parents, chars):
    """out (T,): the characters of the final beam 0 (the best), traced back through parents."""
    w = 0
    for t in range(parents.shape[0] - 1, -1, -1):
        out[t] = chars[t, w]
        w = parents[t, w]


def start_text(context, vocab):
    """What an unprimed sample reads first, unprinted: the checkpoint's start_context
    (training text ending a line), or, in a file older than it, a newline."""
    return context or ("\n" if "\n" in vocab else vocab[0])


class Sampler:
    """Generates text from parameters {name: array} and a ModelConfig."""

    def __init__(self, cfg, params, vocab):
        f32 = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}
        self.cfg, self.vocab = cfg, vocab
        x0 = f32["embed.W"] @ f32["L0.Wx"] if cfg.embed else f32["L0.Wx"]
        self.table0 = np.ascontiguousarray(x0 + f32["L0.b"])
        # the layers stacked into (L, ...) arrays, which index to contiguous 2-D
        # views in compiled code (a numba typed List is slow to build);
        # layer 0's Wx is in table0, so its slot in Wxs stays zero
        L, H, G = cfg.layers, cfg.hidden, self.table0.shape[1]
        self.Wxs = np.zeros((L, H, G), dtype=np.float32)
        for l in range(1, L):
            self.Wxs[l] = f32[f"L{l}.Wx"]
        self.Whs = np.stack([f32[f"L{l}.Wh"] for l in range(L)])
        self.bs = np.stack([f32[f"L{l}.b"] for l in range(L)])
        extra = CELLS[cfg.kind].extra  # the GRU's bhn, or the ESN's leak
        self.extras = np.stack([f32[f"L{l}.{extra}"] if extra else np.zeros(H, np.float32)
                                for l in range(L)])
        self.Wy, self.by = f32["out.W"], f32["out.b"]
        self.net = Net(CELLS[cfg.kind].step, self.table0, self.Wxs, self.Whs, self.bs, self.extras,
                       self.Wy, self.by)
        # sample_chunk splits large layers (a 2x128 GRU's and up) across the cores
        # by units (threads.py): each thread reads only its units' columns of the
        # weights, so two cores stream them from memory twice as fast (or a share
        # stays in its core's cache where the whole would not)
        # the bytes of weights a character reads: every Wh, the Wx above layer 0, out.W
        self.weight_bytes = self.Whs.nbytes + self.Wxs[1:].nbytes + self.Wy.nbytes
        units = threads.sample_unit_ranges(H, self.weight_bytes)
        if units is None:  # one thread: the whole weights, not a copy of them
            self.parts = [Part(self.net, new_ctx(1), 0, H)]
            return
        ctx = new_ctx(len(units))
        self.parts = [Part(self.net._replace(**{k: gate_columns(getattr(self.net, k), H, u0, u1)
                                                for k in ("table0", "Wxs", "Whs", "bs", "extras")}),
                           ctx, u0, u1) for u0, u1 in units]

    def whole(self, N):
        """The Net and a Share of every unit, for one thread stepping N samples."""
        return self.net, threads.Share(new_ctx(1), 0, N, 0, self.cfg.hidden)

    def generate(self, prime_ids, length, num_samples=1, temperature=1.0, top_k=0,
                 greedy=False, seed=None, chunk=128, top_p=1.0, flush_s=FLUSH_S):
        """Yields (K, N) arrays of new ids until length characters per sample are made,
        K = chunk first, then twice the last K whenever that took under flush_s.
        prime_ids (P >= 1,) conditions the state; its last character is the first input."""
        # one generator per sample, spawned from the seed: sample n is the same text
        # whatever num_samples is, and whatever the chunk size
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(num_samples)]
        state = zero_state(self.cfg, num_samples)
        prime_ids = np.asarray(prime_ids, dtype=np.int64)
        feed(prime_ids[:-1], state, *self.whole(num_samples))
        tok = np.full(num_samples, prime_ids[-1], dtype=np.int64)
        spare = state if len(self.parts) == 1 else np.empty_like(state)
        draw = Draw(float(temperature), int(top_k), float(top_p), bool(greedy))
        shares = [(net, threads.Share(ctx, 0, num_samples, u0, u1)) for net, ctx, u0, u1 in self.parts]
        made = 0
        while made < length:
            K = min(chunk, length - made)
            out = np.empty((K, num_samples), dtype=np.int64)
            coins = np.stack([r.random(K) for r in rngs], axis=1)
            start = time.perf_counter()
            threads.parallel(sample_chunk, (out, tok, state, spare, coins, draw), shares)
            if time.perf_counter() - start < flush_s:  # (K, N) ids and coins stay 16 MB at most
                chunk = min(2 * chunk, MAX_CHUNK, max(chunk, MAX_CHUNK_CELLS // num_samples))
            made += K
            yield out

    def beam(self, prime_ids, length, width):
        """The most likely continuation of length characters that a beam of width finds,
        as (ids (length,), its log-probability). Exact when width >= V ** (length - 1).
        Scored with the model's own probabilities (temperature 1)."""
        prime_ids = np.asarray(prime_ids, dtype=np.int64)
        state = zero_state(self.cfg, 1)
        feed(prime_ids[:-1], state, *self.whole(1))
        state = np.ascontiguousarray(np.repeat(state, width, axis=2))
        tok = np.full(width, prime_ids[-1], dtype=np.int64)
        scores = np.full(width, -np.inf)
        scores[0] = 0.0  # one live beam at first: the others would be its copies
        parents = np.empty((length, width), dtype=np.int64)
        chars = np.empty((length, width), dtype=np.int64)
        beam_search(parents, chars, scores, tok, state, *self.whole(width))
        out = np.empty(length, dtype=np.int64)
        beam_backtrack(out, parents, chars)
        return out, float(scores[0])

    def text(self, prime, length, **kw):
        """The whole continuation of prime (a string) as one string, for previews and tests."""
        from charrnn.data import encode
        ids = encode(prime, self.vocab, "the prime")
        return "".join("".join(self.vocab[i] for i in out[:, 0])
                       for out in self.generate(ids, length, **kw))


class Stop:
    """Ends each of N texts right after the first occurrence of stop, as the texts
    arrive in pieces. A piece is cut to what can be shown now: the end that could
    begin a match split across pieces (at most len(stop) - 1 characters) is held
    back until the next piece or flush.

    >>> s = Stop("\\n\\n", 1)
    >>> s.cut(0, "ab\\n"), s.cut(0, "\\ncd"), s.cut(0, "ef"), s.done
    ('ab', '\\n\\n', '', True)
    """

    def __init__(self, stop, N):
        assert stop, "an empty stop string would end every text at once"
        self.stop = stop
        self.held = [""] * N
        self.ended = [False] * N

    @property
    def done(self):
        return all(self.ended)

    def cut(self, n, piece):
        if self.ended[n]:
            return ""
        s = self.held[n] + piece
        i = s.find(self.stop)
        if i >= 0:
            self.ended[n], self.held[n] = True, ""
            return s[:i + len(self.stop)]
        keep = next((k for k in range(min(len(self.stop) - 1, len(s)), 0, -1)
                     if s.endswith(self.stop[:k])), 0)
        self.held[n] = s[len(s) - keep:]
        return s[:len(s) - keep]

    def flush(self, n):
        """What was held back of text n, at its end."""
        rest, self.held[n] = self.held[n], ""
        return rest
