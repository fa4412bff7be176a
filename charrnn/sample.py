"""Sampling: the model run one character at a time, inside compiled code.

Dimensions: N samples generated side by side (one batch), L layers, S state
arrays per layer, H hidden, G = gates * H, V vocabulary, K steps per call.

The first layer's input projection for every character is precomputed once as a
table (V, G) = embed.W @ L0.Wx + L0.b (or L0.Wx + L0.b for one-hot input), so a
step of layer 0 is a row lookup. sample_chunk runs K steps per call and the
Python side streams each chunk out as soon as it is made.
Randomness comes in as coins: uniform numbers drawn by the caller from seeded
generators (one per sample), so the same seed gives the same text.
"""
import numpy as np
from numba import njit
from numba.typed import List

from charrnn.gru import gru_step
from charrnn.lstm import lstm_step
from charrnn.rnn import rnn_step

KINDS = {"rnn": 0, "lstm": 1, "gru": 2}


@njit(cache=True)
def advance(state, tok, kind, table0, Wxs, Whs, bs, bhns, xw, a):
    """Feeds the characters tok (N,) to the model: state (L, S, N, H) in place.
    xw, a: (N, G) scratch buffers."""
    L = state.shape[0]
    N = tok.shape[0]
    for l in range(L):
        if l == 0:
            for n in range(N):
                xw[n, :] = table0[tok[n]]
        else:
            np.dot(state[l - 1, 0], Wxs[l], xw)
            xw += bs[l]
        np.dot(state[l, 0], Whs[l], a)
        if kind == 0:
            rnn_step(state[l, 0], a, xw)
        elif kind == 1:
            lstm_step(state[l, 0], state[l, 1], a, xw)
        else:
            gru_step(state[l, 0], a, xw, bhns[l])


@njit(cache=True)
def choose(logits, temperature, top_k, greedy, coin, probs):
    """Index drawn from softmax(logits / temperature), restricted to the top_k
    largest logits when 0 < top_k < V (ties at the k-th value are kept); argmax if greedy."""
    V = logits.shape[0]
    if greedy:
        return np.argmax(logits)
    floor = -np.inf
    if 0 < top_k < V:
        floor = np.sort(logits)[V - top_k]
    mx = np.max(logits)
    total = 0.0
    for v in range(V):
        probs[v] = np.exp((logits[v] - mx) / temperature) if logits[v] >= floor else 0.0
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


@njit(cache=True)
def sample_chunk(out, tok, state, coins, kind, table0, Wxs, Whs, bs, bhns, Wy, by,
                 temperature, top_k, greedy):
    """out: (K, N) generated ids; tok: (N,) the last character of each sample, not
    yet fed, updated in place; coins: (K, N) uniform in [0, 1)."""
    K, N = out.shape
    G = table0.shape[1]
    V = by.shape[0]
    L = state.shape[0]
    xw = np.empty((N, G), dtype=table0.dtype)
    a = np.empty((N, G), dtype=table0.dtype)
    logits = np.empty((N, V), dtype=table0.dtype)
    probs = np.empty(V, dtype=np.float64)
    for k in range(K):
        advance(state, tok, kind, table0, Wxs, Whs, bs, bhns, xw, a)
        np.dot(state[L - 1, 0], Wy, logits)
        for n in range(N):
            logits[n] += by
            tok[n] = choose(logits[n], temperature, top_k, greedy, coins[k, n], probs)
            out[k, n] = tok[n]


@njit(cache=True)
def feed(ids, state, kind, table0, Wxs, Whs, bs, bhns):
    """Conditions state (L, S, N, H) on the characters ids (P,), the same for every sample."""
    N = state.shape[2]
    G = table0.shape[1]
    xw = np.empty((N, G), dtype=table0.dtype)
    a = np.empty((N, G), dtype=table0.dtype)
    tok = np.empty(N, dtype=np.int64)
    for p in range(ids.shape[0]):
        tok[:] = ids[p]
        advance(state, tok, kind, table0, Wxs, Whs, bs, bhns, xw, a)


class Sampler:
    """Generates text from parameters {name: array} and a ModelConfig."""

    def __init__(self, cfg, params, vocab):
        f32 = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}
        self.cfg, self.vocab = cfg, vocab
        x0 = f32["embed.W"] @ f32["L0.Wx"] if cfg.embed else f32["L0.Wx"]
        self.table0 = np.ascontiguousarray(x0 + f32["L0.b"])
        lay = range(cfg.layers)
        self.Wxs = List([f32[f"L{l}.Wx"] for l in lay])
        self.Whs = List([f32[f"L{l}.Wh"] for l in lay])
        self.bs = List([f32[f"L{l}.b"] for l in lay])
        self.bhns = List([f32.get(f"L{l}.bhn", np.zeros(1, np.float32)) for l in lay])
        self.Wy, self.by = f32["out.W"], f32["out.b"]
        self.weights = (KINDS[cfg.kind], self.table0, self.Wxs, self.Whs, self.bs, self.bhns)

    def generate(self, prime_ids, length, num_samples=1, temperature=1.0, top_k=0,
                 greedy=False, seed=None, chunk=128):
        """Yields (K, N) arrays of new ids until length characters per sample are made.
        prime_ids (P >= 1,) conditions the state; its last character is the first input."""
        from charrnn.model import zero_state
        # one generator per sample, spawned from the seed: sample n is the same text
        # whatever num_samples is, and whatever the chunk size
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(num_samples)]
        state = zero_state(self.cfg, num_samples)
        prime_ids = np.asarray(prime_ids, dtype=np.int64)
        feed(prime_ids[:-1], state, *self.weights)
        tok = np.full(num_samples, prime_ids[-1], dtype=np.int64)
        made = 0
        while made < length:
            K = min(chunk, length - made)
            out = np.empty((K, num_samples), dtype=np.int64)
            coins = np.stack([r.random(K) for r in rngs], axis=1)
            sample_chunk(out, tok, state, coins, *self.weights, self.Wy, self.by,
                         float(temperature), int(top_k), bool(greedy))
            made += K
            yield out

    def text(self, prime, length, **kw):
        """The whole continuation of prime (a string) as one string, for previews and tests."""
        from charrnn.data import encode
        ids = encode(prime, self.vocab, "the prime")
        return "".join("".join(self.vocab[i] for i in out[:, 0])
                       for out in self.generate(ids, length, **kw))
