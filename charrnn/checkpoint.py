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
a temporary file in the same folder, flushed and fsync'd, then os.replace, so a
crash at any moment leaves either the old file or the new one, never a torn one.
"""
import glob
import json
import os
import tempfile

import numpy as np

from charrnn import CharrnnError
from charrnn.model import ModelConfig, param_shapes

FORMAT = "charrnn-checkpoint"
VERSION = 1


def save(path, params, meta, extra=None):
    """params: {name: array}; meta: JSON-able dict; extra: more {key: array}."""
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays.update(extra or {})
    meta = dict(meta, format=FORMAT, version=VERSION)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide the model from other users
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
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


# what a sane configuration looks like: checked before any shape is computed from
# it, so a damaged file cannot make the loader allocate or loop without bound
LIMITS = {"hidden": (1, 1 << 16), "layers": (1, 64), "embed": (0, 1 << 16),
          "vocab_size": (2, 0x110000)}


def _config(meta):
    c = meta.get("config")
    if not isinstance(c, dict) or set(c) != set(ModelConfig.__dataclass_fields__):
        raise ValueError("its model configuration is missing or incomplete")
    if c["kind"] not in ("rnn", "lstm", "gru", "esn"):
        raise ValueError(f"unknown model kind {c['kind']!r}")
    if c["kind"] == "esn" and c["layers"] != 1:
        raise ValueError(f"an esn has one reservoir layer, not {c['layers']!r}")
    for k, (lo, hi) in LIMITS.items():
        if type(c[k]) is not int or not lo <= c[k] <= hi:
            raise ValueError(f"config {k} = {c[k]!r} is out of range")
    if type(c["dropout"]) not in (int, float) or not 0 <= c["dropout"] < 1:
        raise ValueError(f"config dropout = {c['dropout']!r} is out of range")
    return ModelConfig(**c)


def _vocab(meta, V):
    v = meta.get("vocab")
    if not isinstance(v, list) or len(v) != V or \
            not all(isinstance(ch, str) and len(ch) == 1 for ch in v) or v != sorted(set(v)):
        raise ValueError("its vocabulary is not a sorted list of distinct characters of the model's size")
    return v


class Checkpoint:
    """A loaded checkpoint: .meta (dict), .config (ModelConfig), .vocab, .params, .arrays."""

    def __init__(self, meta, arrays):
        self.meta, self.arrays = meta, arrays
        self.config = _config(meta)
        self.vocab = _vocab(meta, self.config.vocab_size)
        self.params = {}
        for name, shape in param_shapes(self.config):
            a = arrays.get(f"param/{name}")
            if a is None:
                raise ValueError(f"it lacks the array param/{name}")
            if a.shape != tuple(shape) or a.dtype not in (np.float32, np.float64):
                raise ValueError(f"its array param/{name} is {a.dtype} {a.shape}, "
                                 f"expected float32 {tuple(shape)}")
            if not np.isfinite(a).all():
                raise ValueError(f"its array param/{name} holds NaN or infinite values")
            self.params[name] = a.astype(np.float32, copy=False)  # one dtype for the kernels
        for key, kind in (("step", int), ("train", dict), ("rng", dict),
                          ("smooth_seq_loss", (int, float))):
            if key in meta and not isinstance(meta[key], kind) or meta.get("step", 0) < 0:
                raise ValueError(f"its metadata field {key!r} is damaged")
        for name, a in arrays.items():
            if name.startswith(("opt/", "state/", "ridge/")) and \
                    (a.dtype not in (np.float32, np.float64) or not np.isfinite(a).all()):
                raise ValueError(f"its array {name} is not finite float data")


def load(path):
    """Reads and validates a checkpoint; any problem is a CharrnnError with one line."""
    hint = "is it a charrnn checkpoint (written by 'charrnn train')?"
    if os.path.isdir(path):
        raise CharrnnError(f"checkpoint {path} is a directory")
    if not os.path.exists(path):
        raise CharrnnError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("it is a single .npy array, not an .npz archive")
            arrays = {k: z[k] for k in z.files}
    except (Exception, MemoryError) as e:
        # a damaged file can fail in the zip layer, the .npy header parser, or with an
        # absurd shape: whatever it is, it is the file's fault, so one line
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        if "pickle" in first:  # numpy's advice to allow pickles is not ours to give
            first = "it is not an .npz archive"
        raise CharrnnError(f"cannot read checkpoint {path}: {first}; {hint}")
    raw = arrays.pop("__meta__", None)
    if raw is None or raw.dtype != np.uint8:
        raise CharrnnError(f"{path} has no charrnn metadata; {hint}")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CharrnnError(f"{path} has damaged metadata (not JSON)")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CharrnnError(f"{path} is not a {FORMAT} file; {hint}")
    version = meta.get("version")
    if type(version) is not int or version < 1:
        raise CharrnnError(f"{path} has a damaged format version ({version!r})")
    if version > VERSION:
        raise CharrnnError(f"{path} has format version {meta.get('version')}, newer than this "
                           f"charrnn reads ({VERSION}); upgrade charrnn")
    try:
        return Checkpoint(meta, arrays)
    except ValueError as e:
        raise CharrnnError(f"checkpoint {path} is damaged: {e}")


class Lock:
    """An exclusive lock on checkpoint paths for the length of a training run, so
    two runs never write the same file. It is an flock on FIRST_PATH.lock: the kernel
    drops it when its holder dies, even by kill -9, so a stale lock never blocks.
    Holding it, the run also removes the temporary files a killed writer left."""

    def __init__(self, path, *more_paths):
        self.path = path + ".lock"
        self.guarded = (path, *more_paths)
        self.fd = None

    def __enter__(self):
        import fcntl
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self.fd, 64, 0).decode("ascii", "replace").strip() or "?"
            os.close(self.fd)
            raise CharrnnError(f"another charrnn run (pid {holder}) is writing "
                               f"{self.path[:-5]}; wait for it, choose another -o, or pass --no-lock")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode("ascii"), 0)
        for path in self.guarded:  # the names save() gives its temporary files
            for tmp in glob.glob(glob.escape(path) + ".*.tmp"):
                os.unlink(tmp)
        return self

    def __exit__(self, *exc):
        try:
            os.unlink(self.path)  # while still held, so no other run holds this name
        except OSError:
            pass
        os.close(self.fd)
