"""charrnn: character-level RNN, LSTM and GRU language models on the CPU.

Layers of the package (see README "Code map"):
  kernels   rnn.py, lstm.py, gru.py, layers.py   numba, arrays in and out, no I/O
  model     model.py, optim.py, data.py, checkpoint.py
  loops     train.py, sample.py, evaluate.py
  CLI       cli.py (the only module that imports click)
"""

import ctypes
import os

__version__ = "0.1.0"

# One BLAS thread: the recurrence is a chain of small GEMMs, and OpenBLAS's own
# threads spin-wait between them; with another busy process on the machine that
# made a step 14x slower (40 steps of a 2x128 LSTM: 4.8 s with one BLAS thread,
# 67 s with two). charrnn uses the cores itself instead (threads.py:
# CHARRNN_THREADS). Set before numpy or scipy load their BLAS, which read it once.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# numba compiles charrnn's kernels afresh when any of its sources changed, not only
# the kernel's own file (kernel_cache.py). Set before numba is imported, which reads it.
os.environ.setdefault("NUMBA_CACHE_LOCATOR_CLASSES", ",".join([
    "charrnn.kernel_cache.InTree", "charrnn.kernel_cache.UserWide",  # then numba's own:
    "UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator",
    "IPythonCacheLocator", "ZipCacheLocator"]))


def _keep_freed_memory():
    """A training step allocates and frees the same tens of MB of arrays each time.
    glibc's malloc gives such blocks back to the kernel (munmap, heap trimming), so
    the next step faults them in again, zero-filled: 8,000 page faults and 8% of the
    CPU time in the kernel per step of a 2x384 LSTM. Kept for reuse, the step runs
    11% faster (benchmarks/RESULTS.md)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    mallopt(M_MMAP_THRESHOLD, 32 << 20)  # glibc's ceiling: larger blocks are still mapped
    mallopt(M_TRIM_THRESHOLD, 2**31 - 1)  # never shrink the heap
    mallopt(M_TOP_PAD, 64 << 20)  # and grow it in large steps


_keep_freed_memory()


class CharrnnError(Exception):
    """An error caused by the user's input: the CLI prints its message on one line and exits 1."""
