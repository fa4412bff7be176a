"""Optimizers and gradient clipping over the flat parameter buffer: one loop each.

Each update reads the flat parameters w, the flat gradient dw and the optimizer's
own flat buffers (named in BUFFERS, saved in checkpoints), and writes w in place.
t is the 1-based step count (Adam's bias correction needs it).
"""
import numpy as np
from numba import njit

BUFFERS = {"adam": ("m", "v"), "rmsprop": ("v",), "adagrad": ("v",), "sgd": ()}
EPS = 1e-8


@njit(cache=True, error_model="numpy")
def adam_update(w, dw, m, v, lr, t, beta1=0.9, beta2=0.999):
    c1 = 1.0 - beta1 ** t
    c2 = 1.0 - beta2 ** t
    for k in range(w.size):
        m[k] = beta1 * m[k] + (1 - beta1) * dw[k]
        v[k] = beta2 * v[k] + (1 - beta2) * dw[k] * dw[k]
        w[k] -= lr * (m[k] / c1) / (np.sqrt(v[k] / c2) + EPS)


@njit(cache=True, error_model="numpy")
def rmsprop_update(w, dw, v, lr, decay=0.95):
    for k in range(w.size):
        v[k] = decay * v[k] + (1 - decay) * dw[k] * dw[k]
        w[k] -= lr * dw[k] / (np.sqrt(v[k]) + EPS)


@njit(cache=True, error_model="numpy")
def adagrad_update(w, dw, v, lr):
    for k in range(w.size):
        v[k] += dw[k] * dw[k]
        w[k] -= lr * dw[k] / (np.sqrt(v[k]) + EPS)


@njit(cache=True, error_model="numpy")
def sgd_update(w, dw, lr):
    for k in range(w.size):
        w[k] -= lr * dw[k]


@njit(cache=True, error_model="numpy")
def clip_global_norm(dw, max_norm):
    """Scales dw in place so that its L2 norm is at most max_norm; returns the norm
    before clipping (float64 accumulation, so it does not overflow in float32)."""
    s = 0.0
    for k in range(dw.size):
        s += dw[k] * dw[k]
    norm = np.sqrt(s)
    if max_norm > 0 and norm > max_norm:
        scale = max_norm / norm
        for k in range(dw.size):
            dw[k] *= scale
    return norm


class Optimizer:
    """Holds the moment buffers of one optimizer and applies its update."""

    def __init__(self, name, size, dtype=np.float32, buffers=None):
        if name not in BUFFERS:
            raise ValueError(f"unknown optimizer {name}")
        self.name = name
        self.buffers = buffers or {b: np.zeros(size, dtype=dtype) for b in BUFFERS[name]}

    def step(self, w, dw, lr, t):
        b = self.buffers
        if self.name == "adam":
            adam_update(w, dw, b["m"], b["v"], lr, t)
        elif self.name == "rmsprop":
            rmsprop_update(w, dw, b["v"], lr)
        elif self.name == "adagrad":
            adagrad_update(w, dw, b["v"], lr)
        else:
            sgd_update(w, dw, lr)
