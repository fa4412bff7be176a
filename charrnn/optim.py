"""Optimizers and gradient clipping over the flat parameter buffer: one loop each.

Each update reads the flat parameters w, the flat gradient dw and the optimizer's
own flat buffers (named in BUFFERS, saved in checkpoints), and writes w in place.
t is the 1-based step count (Adam's bias correction needs it).
"""
import numpy as np
from numba import njit

from charrnn import threads
from charrnn.layers import FAST

BUFFERS = {"adam": ("m", "v"), "rmsprop": ("v",), "adagrad": ("v",), "sgd": ()}
EPS = 1e-8
# parameters a thread gets, at least, when an update is split across the cores: below
# about a million, handing half to another thread cost more than it saved
SPLIT_ROWS = 1 << 20
# the optimizers' constants, passed to the kernels in every call: a call to a numba
# kernel that leaves out an argument with a default misses numba's fast dispatch
BETA1, BETA2 = 0.9, 0.999
RMSPROP_DECAY = 0.95


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def adam_update(w, dw, m, v, lr, t, beta1, beta2):
    # in the buffers' precision (float32 when training): float64 arithmetic was slower
    one = w.dtype.type(1.0)
    b1, b2, eps, rate = w.dtype.type(beta1), w.dtype.type(beta2), w.dtype.type(EPS), w.dtype.type(lr)
    c1 = w.dtype.type(1.0 / (1.0 - beta1 ** t))  # bias corrections, as multipliers
    c2 = w.dtype.type(1.0 / (1.0 - beta2 ** t))
    for k in range(w.size):
        g = dw[k]
        mk = b1 * m[k] + (one - b1) * g
        vk = b2 * v[k] + (one - b2) * g * g
        m[k], v[k] = mk, vk
        w[k] -= rate * (mk * c1) / (np.sqrt(vk * c2) + eps)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def rmsprop_update(w, dw, v, lr, decay):
    one, d, eps, rate = w.dtype.type(1.0), w.dtype.type(decay), w.dtype.type(EPS), w.dtype.type(lr)
    for k in range(w.size):
        g = dw[k]
        vk = d * v[k] + (one - d) * g * g
        v[k] = vk
        w[k] -= rate * g / (np.sqrt(vk) + eps)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def adagrad_update(w, dw, v, lr):
    # eps inside the root, as min-char-rnn's `dparam / np.sqrt(mem + 1e-8)`, so that
    # --preset min-char-rnn follows its arithmetic exactly
    eps, rate = w.dtype.type(EPS), w.dtype.type(lr)
    for k in range(w.size):
        g = dw[k]
        vk = v[k] + g * g
        v[k] = vk
        w[k] -= rate * g / np.sqrt(vk + eps)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def sgd_update(w, dw, lr):
    rate = w.dtype.type(lr)
    for k in range(w.size):
        w[k] -= rate * dw[k]


@njit(cache=True, error_model="numpy", fastmath=FAST)
def clip_global_norm(dw, max_norm):
    """Scales dw in place so that its L2 norm is at most max_norm; returns the norm
    before clipping (float64 accumulation, so it does not overflow in float32; in
    vector lanes, which fast-math allows, faster than one sequential sum)."""
    s = 0.0
    for k in range(dw.size):
        s += dw[k] * dw[k]
    norm = np.sqrt(s)
    if max_norm > 0 and norm > max_norm:
        scale = max_norm / norm
        for k in range(dw.size):
            dw[k] *= scale
    return norm


@njit(cache=True, error_model="numpy", fastmath=FAST)
def clip_value(dw, max_value):
    """Clamps every element of dw in place to [-max_value, max_value] (min-char-rnn's
    np.clip, char-rnn's clamp); returns the L2 norm before clipping, as
    clip_global_norm does, so a run can tell a non-finite gradient either way."""
    s = 0.0
    for k in range(dw.size):
        s += dw[k] * dw[k]
    if max_value > 0:
        hi = dw.dtype.type(max_value)
        for k in range(dw.size):
            dw[k] = min(max(dw[k], -hi), hi)
    return np.sqrt(s)


CLIPS = {"norm": clip_global_norm, "value": clip_value}


class Optimizer:
    """Holds the moment buffers of one optimizer and applies its update."""

    def __init__(self, name, size, dtype=np.float32, buffers=None):
        if name not in BUFFERS:
            raise ValueError(f"unknown optimizer {name}")
        self.name = name
        self.buffers = buffers or {b: np.zeros(size, dtype=dtype) for b in BUFFERS[name]}

    def step(self, w, dw, lr, t):
        """The update, element by element: split across the cores in ranges of the
        buffer of SPLIT_ROWS or more (the same result on any number of them)."""
        threads.run(self._update, w.size, w, dw, lr, t, min_rows=SPLIT_ROWS)

    def _update(self, w, dw, lr, t, lo, hi):
        w, dw = w[lo:hi], dw[lo:hi]
        b = {name: v[lo:hi] for name, v in self.buffers.items()}
        if self.name == "adam":
            adam_update(w, dw, b["m"], b["v"], lr, t, BETA1, BETA2)
        elif self.name == "rmsprop":
            rmsprop_update(w, dw, b["v"], lr, RMSPROP_DECAY)
        elif self.name == "adagrad":
            adagrad_update(w, dw, b["v"], lr)
        else:
            sgd_update(w, dw, lr)
