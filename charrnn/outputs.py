"""The files a training run writes: NAME (its checkpoint) and NAME.best.EXT (the best
by validation loss), the rule for when it may replace them, and the lock that keeps
two runs from writing either at once.

Names are used as given: `-o m.npz` writes m.npz and m.best.npz; `-o m` writes m and
m.best, so the two never share a best file. Where one run's checkpoint is another's
best file (`-o m.best.npz` beside `-o m.npz`), the existence check and the lock,
which cover every file, keep them apart.
"""
import glob
import os

from charrnn import CharrnnError
from charrnn.checkpoint import TEMP_SUFFIX
from charrnn.paths import check_writable


def best_path(path):
    """m.npz -> m.best.npz, m -> m.best: the output's extension, if any, kept."""
    root, ext = os.path.splitext(path)
    return f"{root}.best{ext}"


def canonical(path):
    """The name a write replaces: the folder resolved, the file itself not (os.replace
    replaces a symlink, not its target)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(folder), name)


def targets(output):
    """The files a run writing output writes, [checkpoint, best], found writable."""
    paths = [output, best_path(output)]
    for path in paths:
        check_writable(path, "the checkpoint", "-o", "model.npz", replaced=True)
    return paths


def claim(output, resume=None, force=False):
    """Refuses a run that would replace a file that is not its own: the checkpoint and
    best file of output must not exist, unless force, or unless the run resumes output
    itself (then both are its own). Call it holding the Lock on them."""
    if force or (resume is not None and canonical(resume) == canonical(output)):
        return
    main, best = output, best_path(output)
    if os.path.lexists(main):
        if resume is None:
            raise CharrnnError(f"{main} already holds a checkpoint; continue it with --resume "
                               f"{main}, choose another -o, or pass --force to start over")
        raise CharrnnError(f"{main} already holds a checkpoint, which --resume {resume} -o {main} "
                           f"would replace; choose another -o, or pass --force to replace it")
    if os.path.lexists(best):
        raise CharrnnError(f"{best} already exists (another run's best checkpoint?) and a run "
                           f"writing {main} would replace it; move it away, choose another -o, "
                           f"or pass --force")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def remove_dead_temps(path):
    """Removes the temporary files that writers of path left when they died
    (checkpoint.save names them PATH.PID.XXXXXXXX.tmp); a live writer's are kept."""
    base = os.path.basename(path)
    for tmp in glob.glob(glob.escape(path) + ".*" + TEMP_SUFFIX):
        pid, dot, rand = os.path.basename(tmp)[len(base) + 1:-len(TEMP_SUFFIX)].partition(".")
        if not (pid.isdigit() and dot and rand and "." not in rand) or _alive(int(pid)):
            continue
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass  # another run removed it first


class Lock:
    """An exclusive lock on every file a run writes, for the length of the run: one
    flock on PATH.lock per path. The kernel drops it when its holder dies, even by
    kill -9, so a stale lock never blocks. Released by unlinking PATH.lock while still
    holding it; a taker checks, once it holds its flock, that the file it locked is
    still the one at PATH.lock, and otherwise tries again, so no two hold it at once."""

    def __init__(self, *paths):
        self.paths = sorted({canonical(p) for p in paths})
        self.held = []  # (lock path, fd)

    def __enter__(self):
        try:
            for path in self.paths:
                self.held.append((path + ".lock", _take(path)))
        except BaseException:
            self.__exit__()
            raise
        for path in self.paths:
            remove_dead_temps(path)
        return self

    def __exit__(self, *exc):
        self.release()

    def release(self):
        while self.held:
            lock, fd = self.held.pop()
            try:
                os.unlink(lock)  # while still held: whoever opened it before finds it replaced
            except OSError:
                pass
            os.close(fd)


def _take(path):
    """An fd holding the flock of path + '.lock', or a CharrnnError naming the holder."""
    import fcntl
    lock = path + ".lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise CharrnnError(f"another charrnn run (pid {holder}) is writing {path}; wait "
                               f"for it, choose another -o, or pass --no-lock")
        try:
            current = os.stat(lock)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
            return fd
        os.close(fd)  # its holder released and unlinked it after we opened it: take the new one
