"""Checkpoint files: one .npz holding named float arrays and one JSON metadata entry.

Layout (format "charrnn-checkpoint", version 1; documented in docs/checkpoint.md):
    __meta__          uint8 array: UTF-8 JSON with "format", "version", "config"
                      (the model's), "train" (the run's settings), "vocab" (list of
                      characters), "step", "epoch", "losses", "rng" ...
    param/<name>      the model's parameters, names and shapes as in model.py
    opt/<name>        optimizer moment buffers, flat, same length as the parameters
    state/train       (L, S, N, H) hidden state carried into the next training step

Loaded with allow_pickle=False: no code in a file is ever run. Written atomically:
a temporary file in the same folder, flushed and fsync'd, then os.replace, so a
crash at any moment leaves either the old file or the new one, never a torn one.
"""
import json
import os
import tempfile
import zipfile

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


class Checkpoint:
    """A loaded checkpoint: .meta (dict), .config (ModelConfig), .vocab, .params, .arrays."""

    def __init__(self, meta, arrays):
        self.meta, self.arrays = meta, arrays
        try:
            self.config = ModelConfig(**meta["config"])
            self.vocab = list(meta["vocab"])
        except (KeyError, TypeError) as e:
            raise CharrnnError(f"checkpoint metadata is incomplete ({e})")
        self.params = {}
        for name, shape in param_shapes(self.config):
            a = arrays.get(f"param/{name}")
            if a is None:
                raise CharrnnError(f"checkpoint lacks the array param/{name}")
            if a.shape != tuple(shape) or a.dtype.kind != "f":
                raise CharrnnError(f"checkpoint array param/{name} has shape {a.shape} "
                                   f"{a.dtype}, expected {tuple(shape)} float")
            self.params[name] = a


def load(path):
    """Reads and validates a checkpoint; any problem is a CharrnnError with one line."""
    hint = "is it a charrnn checkpoint (written by 'charrnn train')?"
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise CharrnnError(f"checkpoint {path} does not exist")
    except IsADirectoryError:
        raise CharrnnError(f"checkpoint {path} is a directory")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise CharrnnError(f"cannot read checkpoint {path}: {str(e).splitlines()[0]}; {hint}")
    raw = arrays.pop("__meta__", None)
    if raw is None or raw.dtype != np.uint8:
        raise CharrnnError(f"{path} has no charrnn metadata; {hint}")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CharrnnError(f"{path} has damaged metadata (not JSON)")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CharrnnError(f"{path} is not a {FORMAT} file; {hint}")
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise CharrnnError(f"{path} has format version {meta.get('version')}, newer than this "
                           f"charrnn reads ({VERSION}); upgrade charrnn")
    return Checkpoint(meta, arrays)
