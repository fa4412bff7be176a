"""Checkpoint files: one .npz holding named float arrays and one JSON metadata entry.

Layout (format "charrnn-checkpoint", version 1; documented in docs/checkpoint.md):
    __meta__          uint8 array: UTF-8 JSON with "format", "version", "config"
                      (the model's), "train" (the run's settings), "vocab" (list of
                      characters), "step", "epoch", "train_loss", "val_loss", "rng" ...
    param/<name>      the model's parameters, names and shapes as in model.py
    opt/<name>        optimizer moment buffers, flat, as long as the trained parameters
    ridge/A, ridge/BT the sums of an ESN's --readout ridge run (esn.py)
    state/train       (L, S, N, H) hidden state carried into the next training step

Loaded with allow_pickle=False: no code in a file is ever run. Written atomically:
a temporary file in the same folder (NAME.PID.XXXXXXXX.tmp), flushed and fsync'd,
then os.replace, so a crash at any moment leaves either the old file or the new
one, never a torn one. The lock on the files a run writes is in outputs.py.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from charrnn import CharrnnError, schema
from charrnn.model import ModelConfig, param_shapes

FORMAT = "charrnn-checkpoint"
VERSION = 1
TEMP_SUFFIX = ".tmp"


def save(path, params, meta, extra=None):
    """params: {name: array}; meta: JSON-able dict; extra: more {key: array}."""
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays.update(extra or {})
    meta = dict(meta, format=FORMAT, version=VERSION)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    write_npz(path, arrays)


def write_npz(path, arrays):
    """An uncompressed .npz of arrays at path, written atomically (see the top)."""
    write_atomically(path, lambda f: np.savez(f, **arrays))


def write_atomically(path, fill):
    """path holds what fill(f) writes into a new binary file f, or is left as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    # NAME.PID.XXXXXXXX.tmp: the pid tells a later run whether its writer is still alive
    fd, tmp = tempfile.mkstemp(prefix=f"{os.path.basename(path)}.{os.getpid()}.",
                               suffix=TEMP_SUFFIX, dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide the model from other users
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
    except OSError:
        pass


# the most __meta__ may hold: a vocabulary of every code point is about 20 MB of JSON
META_MAX = 64 << 20
READ_CHUNK = 1 << 20  # bytes read at a time from a member
DIRECTORY_MAX = 1 << 20  # bytes of zip directory: a 64-layer GRU's 263 members need 30 KB


class Checkpoint:
    """A loaded checkpoint: .meta (dict, checked by schema.meta, defaults filled in),
    .config (ModelConfig), .vocab, .params, .arrays."""

    def __init__(self, meta, arrays):
        """arrays: {name: array}, or read(name, (shape, dtypes)) giving the array or None,
        which load() uses to read a member only once its expected shape is known."""
        read = arrays if callable(arrays) else lambda name, spec: arrays.get(name)
        self.meta = meta = schema.meta(meta)
        self.config = ModelConfig(**meta["config"])
        self.vocab = meta["vocab"]
        self.arrays = {}
        for name, spec in schema.arrays(self.config, meta).items():
            a = read(name, spec)
            if a is None:
                continue
            shape, dtypes = spec
            if a.shape != shape or a.dtype not in dtypes:
                raise ValueError(f"its array {name} is {a.dtype} {a.shape}, expected float32 {shape}")
            if not name.startswith("ridge/"):  # sums of many states keep float64
                with np.errstate(over="ignore"):  # refused below, in one line, not warned about
                    a = a.astype(np.float32, copy=False)  # one dtype for the kernels
            if not np.isfinite(a).all():  # float64 beyond float32's range is inf by now
                raise ValueError(f"its array {name} holds NaN or infinite values "
                                 f"(or values too large for float32)")
            self.arrays[name] = a
        self.params = {}
        for name, _ in param_shapes(self.config):
            if f"param/{name}" not in self.arrays:
                raise ValueError(f"it lacks the array param/{name}")
            self.params[name] = self.arrays[f"param/{name}"]


def load(path):
    """Reads and validates a checkpoint; any problem is a CharrnnError with one line.
    Reads only the members the format defines, each only after its .npy header has the
    shape and dtype the metadata implies: memory stays within what the model needs."""
    hint = "is it a charrnn checkpoint (written by 'charrnn train')?"
    if os.path.isdir(path):
        raise CharrnnError(f"checkpoint {path} is a directory")
    if not os.path.exists(path):
        raise CharrnnError(f"checkpoint {path} does not exist")
    if not os.path.isfile(path):  # zipfile reads a device (/dev/zero) or a pipe to its end
        raise CharrnnError(f"checkpoint {path} is not a regular file; {hint}")
    try:
        with open(path, "rb") as f:
            cd = _directory_size(f)
        if cd > DIRECTORY_MAX:  # zipfile would build an object for every entry in it
            raise ValueError(f"its zip directory claims {cd:,} bytes (a checkpoint's is "
                             f"a few KB)")
        zf = zipfile.ZipFile(path)
    except (Exception, MemoryError) as e:  # the zip layer's many failures are all the file's
        what = "it is not an .npz archive" if isinstance(e, zipfile.BadZipFile) else _line(e)
        raise CharrnnError(f"cannot read checkpoint {path}: {what}; {hint}")
    with zf:
        try:
            members = _members(zf)
            if "__meta__" not in members:
                raise CharrnnError(f"{path} has no charrnn metadata; {hint}")
            raw = _read(zf, members["__meta__"], None, (np.dtype(np.uint8),))
            meta = _meta(path, raw, hint)
            ck = Checkpoint(meta, lambda name, spec: _read(zf, members.pop(name), *spec)
                            if name in members else None)
            members.pop("__meta__")
            if members:  # nothing unread may hide in a file
                raise ValueError(f"its member {sorted(members)[0]} is not part of the "
                                 f"{FORMAT} format")
            return ck
        except ValueError as e:
            raise CharrnnError(f"checkpoint {path} is damaged: {_line(e)}")


def _directory_size(f):
    """The size of the zip's central directory, as its end record says (0 if none is
    found: zipfile then says what is wrong)."""
    f.seek(0, 2)
    f.seek(max(0, f.tell() - 22 - 0xFFFF))  # the end record, after a comment of up to 64 KB
    tail = f.read(22 + 0xFFFF)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return 0
    size = int.from_bytes(tail[at + 12:at + 16], "little")
    if size == 0xFFFFFFFF and tail[at - 20:at - 16] == b"PK\x06\x07":  # zip64's own record
        f.seek(int.from_bytes(tail[at - 12:at - 4], "little"))
        rec = f.read(56)
        if rec[:4] == b"PK\x06\x06" and len(rec) == 56:
            size = int.from_bytes(rec[40:48], "little")
    return size


def _line(e):
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


def _members(zf):
    """{array name: ZipInfo} of the archive's .npy members."""
    out = {}
    for info in zf.infolist():
        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if name in out:
            raise ValueError(f"it holds the member {name} twice")
        out[name] = info
    return out


def _read(zf, info, shape, dtypes):
    """The array of one .npy member, read only if its header declares dtype in dtypes
    and the given shape (or, shape None, a 1-D array of at most META_MAX bytes); its
    data must be exactly that long. Never more than the declared array is held."""
    name = info.filename[:-4]
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f".npy format version {version}")
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            got, fortran, dtype = header(f)
            if dtype not in dtypes or (got != shape if shape is not None else
                                       len(got) != 1 or got[0] > META_MAX):
                want = "1-D" if shape is None else str(shape)
                raise ValueError(f"is {dtype} {got}, expected {dtypes[0]} {want}")
            a = np.empty(got[::-1] if fortran else got, dtype)
            buf = memoryview(a.reshape(-1).view(np.uint8))
            done = 0
            while done < a.nbytes:
                n = f.readinto(buf[done:done + READ_CHUNK])
                if not n:
                    raise ValueError("is shorter than its header says")
                done += n
            if f.read(1):
                raise ValueError("is longer than its header says")
    except (Exception, MemoryError) as e:  # zip, zlib, .npy header: the file's fault
        raise ValueError(f"its array {name} {_line(e)}" if isinstance(e, ValueError) and
                         str(e).startswith(("is ", ".npy")) else
                         f"its array {name} cannot be read: {_line(e)}")
    return a.T if fortran else a


def _meta(path, raw, hint):
    """The JSON object of __meta__, with a known format and version."""
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CharrnnError(f"{path} has damaged metadata (not JSON)")
    except RecursionError:  # the C parser's depth check; no charrnn file nests past 3
        raise CharrnnError(f"{path} has damaged metadata (JSON nested too deeply)")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CharrnnError(f"{path} is not a {FORMAT} file; {hint}")
    version = meta.get("version")
    if type(version) is not int or version < 1:
        raise CharrnnError(f"{path} has a damaged format version ({version!r})")
    if version > VERSION:
        raise CharrnnError(f"{path} has format version {version}, newer than this "
                           f"charrnn reads ({VERSION}); upgrade charrnn")
    return meta
