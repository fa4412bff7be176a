"""Where numba caches charrnn's compiled kernels, and when it compiles them afresh.

numba keys a cached kernel to the contents of the file that defines it. charrnn's
kernels inline functions from other files (native.py, layers.py, the cells in
lstm.py, gru.py, rnn.py), so an edit or an upgrade that changed only one of those
would leave the others loading stale machine code. These locators (numba's own,
put first in NUMBA_CACHE_LOCATOR_CLASSES by setup.configure()) key every charrnn kernel
to a hash of all of charrnn's sources instead: any change compiles them all again,
once. They keep numba's places: __pycache__ beside the sources, or the user's cache
folder when the package folder is read-only. Kernels outside charrnn, and
everything when NUMBA_CACHE_DIR is set, are left to numba's own locators, and so is
everything in a process that imported numba before it called setup.configure()
(numba reads the setting once, when it loads).
"""
import hashlib
import os

from numba.core import caching, config

HERE = os.path.dirname(os.path.abspath(__file__))
_stamp = None


def tree_hash(root):
    """The sha256 of the .py files under root: their paths and contents, in order."""
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.digest()


def sources_stamp():
    """tree_hash of this package, computed once per process."""
    global _stamp
    if _stamp is None:
        _stamp = tree_hash(HERE)
    return _stamp


class _ChangesWithAnySource:
    def get_source_stamp(self):
        return sources_stamp()

    @classmethod
    def from_function(cls, py_func, py_file):
        if config.CACHE_DIR or not os.path.abspath(py_file).startswith(HERE + os.sep):
            return None
        return super().from_function(py_func, py_file)


class InTree(_ChangesWithAnySource, caching.InTreeCacheLocator):
    pass


class UserWide(_ChangesWithAnySource, caching.UserWideCacheLocator):
    pass
