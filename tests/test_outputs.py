"""outputs.py: the names of the files a run writes, when it may replace them, and
the lock on them (held by one process at a time, under stress too)."""
import os
import subprocess
import sys
import textwrap

import pytest

from charrnn import CharrnnError, outputs


def test_best_path_keeps_the_extension_so_m_and_m_npz_never_share_a_best():
    assert outputs.best_path("m.npz") == "m.best.npz"
    assert outputs.best_path("m") == "m.best"
    assert outputs.best_path("runs/a.b/m.ckpt") == "runs/a.b/m.best.ckpt"
    assert outputs.best_path("m.best.npz") == "m.best.best.npz"
    names = ["m", "m.npz", "m.best", "m.best.npz", "x/m", ".m", "m."]
    assert len({outputs.best_path(n) for n in names}) == len(names)


def test_targets_are_checked_writable(tmp_path):
    with pytest.raises(CharrnnError, match="does not exist"):
        outputs.targets(str(tmp_path / "no" / "m.npz"))
    with pytest.raises(CharrnnError, match="is a directory"):
        outputs.targets(str(tmp_path))
    assert outputs.targets(str(tmp_path / "m.npz")) == [str(tmp_path / "m.npz"),
                                                        str(tmp_path / "m.best.npz")]
    with pytest.raises(CharrnnError, match="is a directory"):  # the best file's name too
        os.mkdir(tmp_path / "d.best.npz")
        outputs.targets(str(tmp_path / "d.npz"))


def test_a_run_replaces_only_its_own_files(tmp_path):
    a, b = str(tmp_path / "a.npz"), str(tmp_path / "b.npz")
    for path in (a, outputs.best_path(a)):
        open(path, "w").close()
    outputs.claim(b)  # nothing there yet
    outputs.claim(a, resume=a)  # resuming a: both its files are its own
    outputs.claim(str(tmp_path / "." / "a.npz"), resume=a)  # however it is spelled
    with pytest.raises(CharrnnError, match="already holds a checkpoint; continue it with --resume"):
        outputs.claim(a)
    open(b, "w").close()
    with pytest.raises(CharrnnError, match=r"--resume .*a.npz -o .*b.npz would replace"):
        outputs.claim(b, resume=a)
    os.unlink(a)  # a.best.npz is now an orphan: still not a new run's to replace
    with pytest.raises(CharrnnError, match=r"a.best.npz already exists"):
        outputs.claim(a)
    with pytest.raises(CharrnnError, match=r"a.best.npz already exists"):
        outputs.claim(a, resume=b)
    outputs.claim(a, force=True)
    outputs.claim(b, resume=a, force=True)


def test_the_lock_covers_every_file_a_run_writes(tmp_path):
    """-o m.npz writes m.best.npz, which is -o m.best.npz's checkpoint."""
    m = str(tmp_path / "m.npz")
    with outputs.Lock(*outputs.targets(m)):
        other = str(tmp_path / "m.best.npz")
        taken = r"another charrnn run \(pid \d+\) is writing .*m.best.npz"
        with pytest.raises(CharrnnError, match=taken):
            with outputs.Lock(*outputs.targets(other)):
                pass
        assert not os.path.exists(outputs.best_path(other) + ".lock")  # given back on refusal
        with outputs.Lock(str(tmp_path / "m"), str(tmp_path / "m.best")):  # other names: free
            pass
    with outputs.Lock(*outputs.targets(other)):
        pass
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".lock")]


def dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_taking_the_lock_removes_only_dead_writers_temporary_files(tmp_path):
    m = str(tmp_path / "m.npz")
    live = tmp_path / f"m.npz.{os.getpid()}.abc123.tmp"  # a --no-lock run, still writing
    dead = tmp_path / f"m.npz.{dead_pid()}.abc123.tmp"  # a writer killed with kill -9
    old = tmp_path / "m.npz.abc123.tmp"  # no pid: whose it is cannot be told, so kept
    best_of_m = tmp_path / f"m.best.npz.{dead_pid()}.x_1.tmp"  # m.best.npz's: its own lock removes it
    other = tmp_path / f"m.npz.other.{dead_pid()}.x.tmp"  # not a name save() gives
    for f in (live, dead, old, best_of_m, other):
        f.touch()
    with outputs.Lock(m):
        pass
    assert live.exists() and old.exists() and best_of_m.exists() and other.exists()
    assert not dead.exists()
    with outputs.Lock(*outputs.targets(m)):
        pass
    assert not best_of_m.exists() and live.exists()


STRESS = textwrap.dedent("""
    import fcntl, os, random, sys, time
    from charrnn import CharrnnError, outputs
    path, marker, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    real_flock = fcntl.flock

    def flock_late(fd, operation):  # as if preempted between opening the file and locking it
        time.sleep(random.random() * 1e-3)
        return real_flock(fd, operation)

    fcntl.flock = flock_late
    held = clashes = 0
    end = time.time() + seconds
    while time.time() < end:
        try:
            with outputs.Lock(path):
                try:  # a holder creates the marker; finding it there means two hold the lock
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    clashes += 1
                    continue
                held += 1
                os.unlink(marker)
        except CharrnnError:
            pass
    print(held, clashes)
""")


def test_the_lock_is_never_held_twice_under_stress(tmp_path):
    """4 processes take and release the lock for 3 s, each pausing between opening the
    lock file and locking it, where the scheduler may stop it. When releasing unlinked
    the lock file and nothing checked it, this saw two holders at once 50 to 70 times a run."""
    m, marker = str(tmp_path / "m.npz"), str(tmp_path / "holder")
    procs = [subprocess.Popen([sys.executable, "-c", STRESS, m, marker, "3"],
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    counts = [tuple(map(int, p.communicate(timeout=120)[0].split())) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(c for _, c in counts) == 0, counts
    assert sum(h for h, _ in counts) >= 200, counts  # it was exercised
