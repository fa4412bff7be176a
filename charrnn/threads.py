"""Work split across threads: how charrnn uses more than one core.

BLAS runs one thread (see __init__.py), because a recurrence is a chain of small
GEMMs that BLAS threads only slow down. Instead, the N streams of a chunk are cut
into P contiguous ranges, one per thread, and each thread runs the whole
recurrence of its own streams: nothing to synchronise until the chunk ends. Large
products are cut by rows the same way. The numba kernels release the GIL
(nogil=True) and so do numpy's BLAS calls, so plain Python threads run in parallel.

P is CHARRNN_THREADS, or the number of cores this process may use. Sums over
threads (matmul_tn_add) are added in a fixed order, so results depend on P but
not on timing: a run is repeatable on the same machine and settings.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_pool = None


def count():
    env = os.environ.get("CHARRNN_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def ranges(n, min_rows):
    """Up to count() contiguous ranges covering 0..n, none shorter than min_rows."""
    P = max(1, min(count(), n // max(min_rows, 1)))
    return [(p * n // P, (p + 1) * n // P) for p in range(P)]


def run(fn, n, *args, min_rows=4):
    """[fn(*args, lo, hi) for each range of 0..n], the ranges run in parallel."""
    global _pool
    rs = ranges(n, min_rows)
    if len(rs) == 1:
        return [fn(*args, 0, n)]
    if _pool is None:
        _pool = ThreadPoolExecutor(count(), thread_name_prefix="charrnn")
    futures = [_pool.submit(fn, *args, lo, hi) for lo, hi in rs[1:]]
    first = fn(*args, *rs[0])  # this thread takes the first range itself
    return [first] + [f.result() for f in futures]


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
