"""The check that a file can be written, made before the work that would write it:
a checkpoint before training, a log before the corpus is read, a report before
minutes of analysis."""
import os

from charrnn import CharrnnError


def check_writable(path, what, option, example, replaced=False):
    """A CharrnnError naming what (the checkpoint, the log, --out) and the option to
    change unless path can be written: not a directory, in an existing writable
    folder, and not an existing read-only file (unless replaced: written elsewhere
    and renamed over it, as checkpoints are, when its own mode does not matter).
    example: a file name to suggest when path is a directory."""
    fail = f"cannot write {what} {path}:"
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CharrnnError(f"{fail} it is a directory; give a file name such as "
                           f"{os.path.join(path, example)}")
    if not os.path.isdir(folder):
        raise CharrnnError(f"{fail} its folder {folder} does not exist; create it or choose "
                           f"another {option}")
    if not os.access(folder, os.W_OK):
        raise CharrnnError(f"{fail} its folder {folder} is not writable; choose another {option}")
    if not replaced and os.path.exists(path) and not os.access(path, os.W_OK):
        raise CharrnnError(f"{fail} the file is read-only; choose another {option}")
