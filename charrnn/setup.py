"""The process set-up charrnn wants, made in one explicit call: configure().

Importing charrnn changes nothing in the process; the CLI calls configure() first,
and so do the tests (tests/conftest.py) and the benchmarks. A program that uses
charrnn as a library calls it before it imports numpy or numba:

    from charrnn import setup
    setup.configure()
    import numpy as np
    from charrnn.model import ModelConfig

Without it charrnn still computes the same results, but BLAS may start its own
threads, the allocator gives memory back between steps, and numba may load a
kernel compiled against an older version of a file it inlines.
"""
import ctypes
import os

# numba's own locators, tried after charrnn's (kernel_cache.py)
_NUMBA_LOCATORS = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator",
                   "IPythonCacheLocator", "ZipCacheLocator")
_done = False


def configure():
    """Sets the environment for numpy's BLAS and numba, and glibc's allocator, once
    per process (later calls do nothing). Variables the user set are kept."""
    global _done
    if _done:
        return
    _done = True
    for name, value in environment().items():
        os.environ.setdefault(name, value)
    keep_freed_memory()


def environment():
    """The variables configure() sets where they are unset. They are read once, when
    numpy loads its BLAS and numba its config, so they must be set before that."""
    # one BLAS thread: the recurrence is a chain of small GEMMs, and OpenBLAS's threads
    # spin-wait between them, which a busy machine punishes (charrnn splits the work
    # itself: threads.py)
    env = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    # a kernel is compiled afresh when any of charrnn's sources changed, not only its
    # own file (kernel_cache.py)
    env["NUMBA_CACHE_LOCATOR_CLASSES"] = ",".join(
        ["charrnn.kernel_cache.InTree", "charrnn.kernel_cache.UserWide", *_NUMBA_LOCATORS])
    return env


def keep_freed_memory():
    """A training step allocates and frees the same tens of MB of arrays each time;
    glibc's malloc gives such blocks back to the kernel (munmap, heap trimming), and
    the next step faults them in again, zero-filled. Keeping them for reuse saves
    that (benchmarks/RESULTS.md). Returns whether the allocator is glibc's."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    mallopt(M_MMAP_THRESHOLD, 32 << 20)  # glibc's ceiling: larger blocks are still mapped
    mallopt(M_TRIM_THRESHOLD, 2**31 - 1)  # never shrink the heap
    mallopt(M_TOP_PAD, 64 << 20)  # and grow it in large steps
    return True
