"""Prepared corpora: a text encoded once into ids, read back memory-mapped.

`charrnn prepare a.txt b.txt -o corpus.ids` writes one uncompressed .npz (a zip of
stored .npy members; format "charrnn-ids", version 1, docs/prepared.md):
    __meta__   uint8 array: UTF-8 JSON {"format", "version", "vocab", "chars", "sources"}
    ids        (chars,) uint8, uint16 or uint32 (by len(vocab), as data.id_dtype): the
               text's characters as indices into vocab
`charrnn train corpus.ids` maps ids straight from the file: nothing is decoded, the
ranks of a host share one page-cached copy, and a corpus larger than memory trains
(each step reads only its streams' pages).
"""
import io
import json
import os
import zipfile

import numpy as np

from charrnn import CharrnnError, checkpoint, data
from charrnn.data import _raise_unseen, id_blocks, id_dtype, scan

FORMAT = "charrnn-ids"
VERSION = 1
SCAN = 1 << 24  # ids checked at a time for ones outside the vocabulary


def prepare(paths, out, encoding="utf-8"):
    """Encodes the files in paths into out; returns (characters, vocabulary size).
    The files are read twice, a block at a time, and their ids written a block at a
    time: a text larger than memory prepares too."""
    if "-" in paths:
        raise CharrnnError("prepare reads its files twice, so not standard input: save it "
                           "to a file and prepare that")
    chars, vocab = scan(paths, encoding)
    if chars == 0:
        raise CharrnnError("the text is empty: nothing to prepare")
    meta = {"format": FORMAT, "version": VERSION, "vocab": vocab, "chars": chars,
            "sources": [os.path.basename(p) for p in paths]}
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(id_dtype(len(vocab)))),
              "fortran_order": False, "shape": (chars,)}

    def fill(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
            with z.open("__meta__.npy", "w") as m:
                np.lib.format.write_array(m, np.frombuffer(json.dumps(meta).encode(), np.uint8))
            with z.open("ids.npy", "w", force_zip64=True) as m:
                np.lib.format.write_array_header_2_0(m, header)
                for block in id_blocks(paths, encoding, vocab):
                    m.write(block.tobytes())
    try:
        checkpoint.write_atomically(out, fill)
    except OSError as e:
        raise CharrnnError(f"cannot write {out}: {e.strerror or e}")
    return chars, len(vocab)


def is_prepared(path):
    """Whether path is a zip with the members of a prepared corpus (not text)."""
    try:
        with zipfile.ZipFile(path) as z:
            return {"__meta__.npy", "ids.npy"} <= set(z.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def _member_offset(path, z, name):
    """Where the data of the stored member name begins in the file."""
    info = z.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"its member {name} is compressed; prepare it again")
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)  # the local file header: its name and extra field follow
        if local[:4] != b"PK\x03\x04":
            raise ValueError("its zip directory is damaged")
        start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + \
            int.from_bytes(local[28:30], "little")
        f.seek(start)
        fmt = np.lib.format
        read_header = fmt.read_array_header_1_0 if fmt.read_magic(f) == (1, 0) else \
            fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if fortran and len(shape) > 1:
            raise ValueError(f"its member {name} is not in C order")
        return f.tell(), shape, dtype


def load(path):
    """(ids, vocab, meta) of a prepared corpus, ids memory-mapped read-only."""
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(_npy_bytes(z.read("__meta__.npy")))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError("it is not a charrnn-ids file")
            if type(meta.get("version")) is not int or meta["version"] > VERSION:
                raise ValueError(f"its format version {meta.get('version')!r} is not one this "
                                 f"charrnn reads ({VERSION}); upgrade charrnn")
            offset, shape, dtype = _member_offset(path, z, "ids.npy")
        vocab = meta.get("vocab")
        if not isinstance(vocab, list) or len(vocab) < 2 or vocab != sorted(set(vocab)) or \
                not all(isinstance(c, str) and len(c) == 1 for c in vocab):
            raise ValueError("its vocabulary is not a sorted list of distinct characters")
        if shape != (meta.get("chars"),) or dtype != id_dtype(len(vocab)):
            raise ValueError(f"its ids are {dtype} {shape}, expected "
                             f"{np.dtype(id_dtype(len(vocab)))} ({meta.get('chars')},)")
        ids = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise CharrnnError(f"cannot read the prepared corpus {path}: "
                           f"{getattr(e, 'strerror', None) or e}")
    if _largest(path, ids.offset, ids.dtype, len(ids)) >= len(vocab):
        raise CharrnnError(f"the prepared corpus {path} is damaged: an id past its "
                           f"vocabulary of {len(vocab)}; prepare it again")
    return ids, vocab, meta


def _largest(path, offset, dtype, n):
    """The largest of n ids at offset, read in blocks rather than through the map, whose
    touched pages would count in this process's resident memory for the whole run."""
    top = 0
    with open(path, "rb") as f:
        f.seek(offset)
        for o in range(0, n, SCAN):
            block = np.fromfile(f, dtype=dtype, count=min(SCAN, n - o))
            top = max(top, int(block.max()))
    return top


def _npy_bytes(data):
    """The JSON text of the __meta__ member (a uint8 .npy) from its raw bytes."""
    a = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    if a.dtype != np.uint8 or a.ndim != 1:
        raise ValueError("its metadata is not text")
    return a.tobytes().decode("utf-8")


def read(files, encoding="utf-8", vocab=None, what="the training text", unknown="error",
         hint=""):
    """(ids, vocab) for training or evaluation: one prepared corpus (mapped; with a
    given vocab, the checkpoint's, remapped into it), or text files through
    data.read_corpus; unknown and hint as there."""
    ids, vocab, _ = read_known(files, encoding, vocab, what, unknown, hint)
    return ids, vocab


def read_known(files, encoding, vocab, what="the text", unknown="error", hint=""):
    """read, and with unknown="skip" the characters outside vocab left out: returns
    (ids, vocab, how many were left out), as data.read_known."""
    if not any(f != "-" and os.path.isfile(f) and is_prepared(f) for f in files):
        return data.read_known(files, encoding, vocab, what, unknown, hint)
    if len(files) > 1:
        raise CharrnnError("a prepared corpus trains alone: give just it, or prepare all "
                           "the files into one with 'charrnn prepare'")
    ids, own, _ = load(files[0])
    if vocab is None or own == vocab:
        return ids, own, 0
    unseen = sorted(set(own) - set(vocab))
    n = len(ids)
    if unseen and unknown == "extend":
        vocab = sorted(set(vocab) | set(unseen))
    elif unseen and unknown == "skip":
        known = set(vocab)
        ids = ids[np.array([ch in known for ch in own])[ids]]
    elif unseen:
        _raise_unseen(unseen, what, hint)
    index = {ch: i for i, ch in enumerate(vocab)}
    table = np.array([index.get(ch, 0) for ch in own], dtype=id_dtype(len(vocab)))
    return table[ids], vocab, n - len(ids)  # a copy in the checkpoint's numbering
