"""Work split across threads: how charrnn uses more than one core.

BLAS runs one thread (see setup.py), because a recurrence is a chain of small
GEMMs that BLAS threads only slow down. Instead charrnn splits the work itself,
in one of two ways:
- by streams (step_ranges(), model.loss_and_grad): the N streams of a chunk are
  cut into P contiguous ranges, and each thread runs the whole training step of its
  own streams, forward and backward, into its own gradients, added in order at the
  end: the threads wait for each other once per step. Every product is then a
  thread's own, of N/P streams; the recurrent ones read all of Wh.
- by units (recurrence()): each thread computes its H/P hidden units (their columns
  of Wh) for all N streams, and the threads meet at a barrier after every step
  (native.py). Twice the rows per GEMM against half the weights: with 256 units and
  512 gate columns a thread or more, the step ran faster than split by streams, with
  fewer slower (benchmarks/RESULTS.md). The sampler, one row per
  step, splits by units when its weights are large enough (sample_unit_ranges):
  each core reads only its share of them.
Where the units are split, the large products are cut by rows. The numba kernels
release the GIL (nogil=True) and so do numpy's BLAS calls, so plain Python threads
run in parallel.

CHARRNN_SPLIT=streams or =units overrides the choice (the results can differ in
the last bits).

P is CHARRNN_THREADS, or the number of cores this process may use. Sums over
threads are added in a fixed order, so results depend on P but not on timing: a
run is repeatable on the same machine and settings.
"""
import os
import threading
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from charrnn.native import new_ctx

_pool, _pool_size = None, 0
# one thread's part of a kernel, passed to it as one argument: streams s0..s1 and
# units u0..u1; ctx: the barrier its threads meet at, and numpy's BLAS (native.py)
Share = namedtuple("Share", "ctx s0 s1 u0 u1")
# split by units in training when every thread gets at least MIN_UNITS units and
# MIN_COLUMNS gate columns, and in sampling when a character reads SAMPLE_MIN_BYTES of
# weights (see the top of this file)
MIN_UNITS, MIN_COLUMNS = 256, 512
SAMPLE_MIN_BYTES = 384 << 10


def cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_alone = threading.local()  # .on: this thread runs one part of a step split whole


def count():
    if getattr(_alone, "on", False):
        return 1
    env = os.environ.get("CHARRNN_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return cores()


def ranges(n, min_rows):
    """Up to count() contiguous ranges covering 0..n, none shorter than min_rows."""
    P = max(1, min(count(), n // max(min_rows, 1)))
    return [(p * n // P, (p + 1) * n // P) for p in range(P)]


def run(fn, n, *args, min_rows=4):
    """[fn(*args, lo, hi) for each range of 0..n], the ranges run in parallel."""
    return parallel(fn, args, ranges(n, min_rows))


def parallel(fn, args, parts):
    """[fn(*args, *part) for part in parts], run at the same time, one thread each."""
    global _pool, _pool_size
    if len(parts) == 1:
        return [fn(*args, *parts[0])]
    if _pool_size < len(parts) - 1:  # the split by units needs every part running at once
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool_size = len(parts) - 1
        _pool = ThreadPoolExecutor(_pool_size, thread_name_prefix="charrnn")
    futures = [_pool.submit(fn, *args, *part) for part in parts[1:]]
    first = fn(*args, *parts[0])  # this thread takes the first part itself
    return [first] + [f.result() for f in futures]


def _units(H, wide):
    """One range of units for each of P cores when wide(P) (or CHARRNN_SPLIT=units),
    else None (also with CHARRNN_SPLIT=streams, or one core)."""
    P = min(count(), cores(), H)
    split = os.environ.get("CHARRNN_SPLIT", "")
    if P > 1 and (split == "units" or split != "streams" and wide(P)):
        return [(p * H // P, (p + 1) * H // P) for p in range(P)]
    return None


def unit_ranges(H, G):
    """The units of each thread when training's layers of H units and G gate columns
    are split by units (MIN_UNITS and MIN_COLUMNS a thread, or CHARRNN_SPLIT decides),
    or None when not. GRU 2x512 (768 columns a thread) stays split by units: the two
    splits tie on it."""
    return _units(H, lambda P: H // P >= MIN_UNITS and G // P >= MIN_COLUMNS)


def sample_unit_ranges(H, weight_bytes):
    """unit_ranges for the sampler, which reads weight_bytes of weights a character:
    split when they are SAMPLE_MIN_BYTES or more. A split halves each core's reading
    and adds three meetings a character; the bytes predicted which wins better than
    gate columns a thread did (benchmarks/RESULTS.md)."""
    return _units(H, lambda P: weight_bytes >= SAMPLE_MIN_BYTES)


def step_ranges(N, H, G):
    """The streams of each thread when a training step is split by streams (whenever
    its layers of H units and G gate columns are not split by units), or None for one
    thread."""
    if unit_ranges(H, G) is not None:
        return None
    parts = ranges(N, 1)
    return parts if len(parts) > 1 else None


def alone(fn):
    """fn, made to run with count() = 1 in its thread: one part of a step split
    whole, whose products and recurrence must not split again."""
    def part(*args):
        _alone.on = True
        try:
            return fn(*args)
        finally:
            _alone.on = False
    return part


def recurrence(fn, N, H, G, *args):
    """Runs the recurrence kernel fn(*args, share) over N streams, H units and G gate
    columns, one Share a thread, split by units (see unit_ranges), or by streams (inside
    a part of a step split whole, one range; for a forward pass on its own, as
    evaluation's burn-in and inspect-cells run, up to count()). The split by units
    makes its threads wait for each other at every step, so it never runs more
    threads than there are cores."""
    units = unit_ranges(H, G)
    if units:
        ctx = new_ctx(len(units))
        shares = [Share(ctx, 0, N, u0, u1) for u0, u1 in units]
    else:
        shares = [Share(new_ctx(1), lo, hi, 0, H) for lo, hi in ranges(N, 4)]
    return parallel(fn, args, [(share,) for share in shares])


def matmul(a, b, bias=None):
    """a @ b (+ bias), a (M, K), b (K, G): rows of the result split across threads."""
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))

    def rows(lo, hi):
        np.dot(a[lo:hi], b, out=out[lo:hi])
        if bias is not None:
            out[lo:hi] += bias
    run(rows, a.shape[0], min_rows=64)
    return out


def matmul_tn_add(out, a, b):
    """out += a.T @ b, a (M, K), b (M, G): the weight-gradient product. It sums over
    M, so each thread sums its rows into a partial product; partials add in order."""
    parts = run(lambda lo, hi: a[lo:hi].T @ b[lo:hi], a.shape[0], min_rows=64)
    for part in parts:
        out += part
