"""charrnn/setup.py: importing charrnn changes nothing in the process; the one
explicit call, configure(), sets up BLAS, numba's kernel cache and the allocator."""
import json
import os
import subprocess
import sys

import pytest

from charrnn import setup

VARS = tuple(setup.environment())


def python(code, **env):
    """Runs code in a fresh Python whose environment lacks the variables configure()
    sets, plus env; returns what it printed, parsed as JSON."""
    clean = {k: v for k, v in os.environ.items() if k not in VARS}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**clean, **env}, timeout=600)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_importing_charrnn_changes_nothing():
    """Every module imported, and not one variable set, no BLAS opened, no CPU probed,
    no module of numba's imported under a hidden SciPy."""
    seen = python("""if True:
        import json, os, sys
        before = dict(os.environ)
        import charrnn, charrnn.cli, charrnn.evaluate, charrnn.inspect, charrnn.train
        from charrnn import native, packed
        print(json.dumps({"env": dict(os.environ) == before, "numpy": "numpy" in sys.modules,
                          "blas": native.blas_addresses.cache_info().currsize,
                          "cpu": packed.tile_rows.cache_info().currsize}))
    """)
    assert seen == {"env": True, "numpy": True, "blas": 0, "cpu": 0}


def test_configure_sets_what_is_unset_once():
    seen = python("""if True:
        import json, os
        from charrnn import setup
        setup.configure()
        first = {k: os.environ.get(k) for k in setup.environment()}
        os.environ["MKL_NUM_THREADS"] = "7"
        setup.configure()  # idempotent: the second call changes nothing
        print(json.dumps([first, os.environ["MKL_NUM_THREADS"]]))
    """, OPENBLAS_NUM_THREADS="3")
    first, mkl = seen
    assert first["OPENBLAS_NUM_THREADS"] == "3"  # the user's value is kept
    assert first["MKL_NUM_THREADS"] == "1" and mkl == "7"
    assert first["NUMBA_CACHE_LOCATOR_CLASSES"].startswith("charrnn.kernel_cache.InTree,")


FAULTS = """if True:
    import json, resource
    from charrnn import setup
    {setup}
    import numpy as np

    def step():  # a training step's pattern: 30 arrays of about 1 MB, made and freed
        blocks = [np.ones((1 << 18) + 1024 * k, dtype=np.float32) for k in range(30)]
        del blocks
    for _ in range(2):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        step()
    print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3))
"""


@pytest.mark.skipif(not hasattr(os, "confstr"), reason="glibc's mallopt")
def test_kept_memory_is_not_faulted_in_again():
    """A step frees and allocates the same tens of MB each time: with glibc's defaults
    the freed heap is trimmed and the next step faults its 30 MB in afresh (7,570 page
    faults), kept by configure() it is reused. The same fresh process either way."""
    if "glibc" not in (os.confstr("CS_GNU_LIBC_VERSION") or ""):
        pytest.skip("not glibc")
    kept = python(FAULTS.format(setup="setup.keep_freed_memory()"))
    default = python(FAULTS.format(setup="pass"))
    assert kept * 10 < default, (kept, default)
