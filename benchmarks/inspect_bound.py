"""inspect-cells against the floor of its two recurrences, side by side in one run.

    python benchmarks/inspect_bound.py MODEL.npz TEXT [--repeat 2]

inspect-cells runs the trained model and an untrained one of the same shape over every
character, one stream each, on two threads. Each step of each layer multiplies one
row by W_hh (H, gates*H), so the recurrences read every W_hh once a character: their
products alone, timed here with charrnn's own packed kernel on two threads at once,
are a floor that no change to the statistics can get under. Prints one Markdown row
per repeat: inspect-cells' seconds, the products' seconds, and their ratio.
"""
import argparse
import os
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def products_alone(layers, H, G):
    """A timer of two models' layers x T products h (1, H) @ W_hh (H, G), float32, one
    model a thread, as inspect-cells runs the trained and the untrained model; compiled
    and warmed once, so that each repeat times the same products."""
    from numba import njit
    from numba.typed import List
    from charrnn.packed import mul, pack

    @njit(nogil=True)
    def recurrence(h, Whs, a, T):  # the products only: no cell, so nothing but W_hh is read
        for _ in range(T):
            for W in Whs:
                mul(h, W, a)

    def model(seed):
        rng = np.random.default_rng(seed)
        Whs = List()
        for _ in range(layers):
            Whs.append(pack((rng.standard_normal((H, G)) / np.sqrt(H)).astype(np.float32)))
        return np.full((1, H), 0.1, np.float32), Whs, np.empty((1, G), np.float32)

    models = [model(1), model(2)]

    def seconds(T):
        ts = [threading.Thread(target=recurrence, args=(*m, T)) for m in models]
        t = time.perf_counter()
        [x.start() for x in ts]
        [x.join() for x in ts]
        return time.perf_counter() - t
    seconds(10)  # compile, warm caches
    return seconds


def inspect_seconds(model, text):
    """Wall seconds of `charrnn inspect-cells model text -q --format json`."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "charrnn", "inspect-cells", model, text, "-q",
                    "--format", "json"], check=True, stdout=subprocess.DEVNULL,
                   cwd=os.path.dirname(HERE))
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    from charrnn import checkpoint
    from charrnn.model import GATES
    from charrnn.data import read_corpus
    cfg = checkpoint.load(args.model).config
    T = len(read_corpus([args.text])[0])
    G = GATES[cfg.kind] * cfg.hidden
    print(f"{cfg.kind} {cfg.layers}x{cfg.hidden}, {T:,} characters; W_hh "
          f"{cfg.hidden * G * 4 / 1e6:.1f} MB a layer, two models\n")
    print("| inspect-cells s | products alone s | read GB/s | inspect / products |")
    print("|---|---|---|---|")
    products = products_alone(cfg.layers, cfg.hidden, G)
    gb = 2 * cfg.layers * T * cfg.hidden * G * 4 / 1e9
    for _ in range(args.repeat):
        s = inspect_seconds(args.model, args.text)
        p = products(T)
        print(f"| {s:.1f} | {p:.1f} | {gb / p:.0f} | {s / p:.2f} |", flush=True)


if __name__ == "__main__":
    main()
