"""Output streams that a training run outlives: its stderr and its log may go away
(a closed pipe, a full disk, a dropped ssh session) without ending the run or losing
its checkpoint. At the first failed write such a stream stops writing, for good."""
import contextlib
import io
import os
import sys


class Guarded:
    """A text stream that drops everything after its first failed write, flush or
    close; on_fail(error) is called once then. (Not an io.TextIOBase: that would close
    the stream it wraps when it is collected.)"""

    def __init__(self, stream, on_fail=None):
        self.stream, self.on_fail, self.failed = stream, on_fail, None

    @property
    def encoding(self):
        return self.stream.encoding

    @property
    def errors(self):
        return self.stream.errors

    def isatty(self):
        return not self.failed and self.stream.isatty()

    def fileno(self):
        return self.stream.fileno()

    def writable(self):
        return True

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if self.failed is None:
            self._try(self.stream.write, s)
        return len(s)

    def flush(self):
        if self.failed is None:
            self._try(self.stream.flush)

    def close(self):
        if self.failed is None:
            self._try(self.stream.close)

    def _try(self, op, *args):
        try:
            op(*args)
        except (OSError, ValueError) as e:  # ValueError: the stream was closed under us
            self.failed = e
            if self.on_fail:
                self.on_fail(e)


def _silence(stream):
    """Points the stream's descriptor at /dev/null, so that nothing else (a warning, the
    interpreter's last flush at exit) fails on it either."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        pass  # not a file descriptor (a test's buffer): the guard alone keeps it quiet


@contextlib.contextmanager
def guarded_stderr():
    """Within it, a failed write to stderr silences stderr instead of raising."""
    original = sys.stderr
    sys.stderr = Guarded(original, lambda e: _silence(original))
    try:
        yield sys.stderr
    finally:
        sys.stderr = original


def open_log(path):
    """The JSON Lines log, appended to; a failed write stops it (see .failed)."""
    f = open(path, "a", encoding="utf-8")

    def close(error):
        try:
            f.close()
        except OSError:
            pass  # its buffer could not be flushed either: that is the failure itself
    return Guarded(f, close)
