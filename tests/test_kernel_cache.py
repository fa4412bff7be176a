"""numba compiles charrnn's kernels afresh when any of charrnn's sources changes
(charrnn/kernel_cache.py), not only the file that defines the kernel."""
import os
import shutil

from numba import njit
from numba.core import caching

from charrnn import kernel_cache, lstm, sample

OURS = (kernel_cache.InTree, kernel_cache.UserWide)


def test_charrnn_kernels_are_keyed_to_every_source(tmp_path, monkeypatch):
    """A kernel's key changes with an edit to a file it only inlines (native.py for
    lstm_forward), where numba's own key, its file's, stays the same."""
    for kernel in (lstm.lstm_forward, sample.sample_chunk):
        locator = kernel._cache._impl.locator
        if os.environ.get("NUMBA_CACHE_DIR"):  # the user's choice wins
            assert isinstance(locator, caching.UserProvidedCacheLocator)
            return
        assert isinstance(locator, OURS)
    root = tmp_path / "charrnn"
    shutil.copytree(kernel_cache.HERE, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(kernel_cache, "HERE", str(root))
    monkeypatch.setattr(kernel_cache, "_stamp", None)
    locator = lstm.lstm_forward._cache._impl.locator
    numbas = caching.InTreeCacheLocator.get_source_stamp(locator)
    before = locator.get_source_stamp()
    with open(root / "native.py", "a") as f:
        f.write("# changed\n")
    monkeypatch.setattr(kernel_cache, "_stamp", None)  # a new process
    assert locator.get_source_stamp() != before
    assert caching.InTreeCacheLocator.get_source_stamp(locator) == numbas


def test_kernels_outside_charrnn_keep_numbas_own_key():
    @njit(cache=True)
    def add_one(x):
        return x + 1
    assert add_one(1) == 2
    assert not isinstance(add_one._cache._impl.locator, OURS)


def test_the_stamp_follows_every_source_and_nothing_else(tmp_path):
    root = tmp_path / "charrnn"
    shutil.copytree(kernel_cache.HERE, root, ignore=shutil.ignore_patterns("__pycache__"))
    before = kernel_cache.tree_hash(root)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "lstm.lstm_forward-31.py311.nbi").write_bytes(b"index")
    (root / "notes.txt").write_text("not a source")
    assert kernel_cache.tree_hash(root) == before
    seen = {before}
    for change in ("layers.py", "inspect/stats.py"):  # an inlined helper; a subpackage
        with open(root / change, "a") as f:
            f.write("# changed\n")
        seen.add(kernel_cache.tree_hash(root))
    (root / "native.py").rename(root / "native2.py")
    seen.add(kernel_cache.tree_hash(root))
    assert len(seen) == 4
