"""Text in, ids out: reading files or stdin, the vocabulary, and the minibatch layout.

The vocabulary is the sorted set of code points of the training text. The corpus
is held as one compact id array (uint8 when V <= 256, else uint16 or uint32),
never as Python objects: one byte per character for ordinary text.

Minibatches (truncated BPTT, as char-rnn and torch-rnn): the training ids are cut
into N contiguous streams; step k of an epoch reads columns k*T .. k*T+T of every
stream as input and the next character as target, so stream n at step k+1
continues exactly where it stopped at step k and the hidden state is carried.

    ids:      [ stream 0 | stream 1 | ... | stream N-1 ]   each of length Ls
    step k:   x = streams[:, kT : kT+T],  y = streams[:, kT+1 : kT+T+1]
"""
import codecs
import mmap
import sys

import numpy as np

from charrnn import CharrnnError


BLOCK = 1 << 24  # bytes decoded at a time: the text is never held as one Python str


def read_bytes(path, encoding, mapped=False):
    """The bytes of a file ('-' is standard input), refused if it looks binary.
    mapped: a read-only mmap of a regular file instead, whose pages the kernel may drop."""
    try:
        if path == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                raw = _mapped(f) if mapped else f.read()
    except IsADirectoryError:
        raise CharrnnError(f"{path} is a directory; give text files (or - for standard input)")
    except OSError as e:
        raise CharrnnError(f"cannot read {path}: {e.strerror}")
    nul = _find_nul(raw) if _ascii_compatible(encoding) else -1
    if nul >= 0:  # valid UTF-8, but no text has NULs: a binary file given by mistake
        raise CharrnnError(f"{path} looks binary (NUL byte at offset {nul}); charrnn trains "
                           f"on text files")
    return raw


def _mapped(f):
    try:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (ValueError, OSError):  # empty, or not a regular file
        return f.read()


def _ascii_compatible(encoding):
    return encoding.replace("-", "").replace("_", "").lower() in ("utf8", "latin1", "ascii",
                                                                  "iso88591", "cp1252")


def code_point_blocks(path, raw, encoding):
    """Yields the code points of raw as uint8/uint32 arrays of up to BLOCK characters.
    Pure ASCII in an ASCII-compatible encoding is its own code points (no decoding)."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    if _ascii_compatible(encoding) and (len(buf) == 0 or _max_byte(raw, buf) < 128):
        for o in range(0, len(buf), BLOCK):
            yield buf[o:o + BLOCK]
            _release(raw, o)
        return
    try:
        dec = codecs.getincrementaldecoder(encoding)()
    except LookupError:
        raise CharrnnError(f"unknown encoding {encoding!r}; try utf-8 or latin-1")
    for o in range(0, max(len(raw), 1), BLOCK):
        pending = len(dec.getstate()[0])  # bytes of a character split by the last block
        try:
            text = dec.decode(raw[o:o + BLOCK], final=o + BLOCK >= len(raw))
        except UnicodeDecodeError as e:
            _raise_undecodable(path, encoding, o - pending + e.start)
        _release(raw, o)
        yield code_points(text)


def _find_nul(raw):
    """raw.find(b"\0"), a block at a time (see _release)."""
    for o in range(0, len(raw), BLOCK):
        at = raw.find(b"\0", o, o + BLOCK)
        _release(raw, o)
        if at >= 0:
            return at
    return -1


def _max_byte(raw, buf):
    """buf.max() of raw's bytes buf, a block at a time (see _release)."""
    top = 0
    for o in range(0, len(buf), BLOCK):
        top = max(top, int(buf[o:o + BLOCK].max()))
        _release(raw, o)
    return top


def _release(raw, o):
    """Drops block o of a mapped file from this process's resident pages, once read
    (the page cache keeps them), so that a text larger than memory passes through."""
    if isinstance(raw, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        raw.madvise(mmap.MADV_DONTNEED, o, min(BLOCK, len(raw) - o))


def _raise_undecodable(path, encoding, at):
    raise CharrnnError(f"{path} is not valid {encoding} at byte {at}; "
                       f"pass --encoding (e.g. --encoding latin-1)")


def read_text(paths, encoding="utf-8"):
    """The concatenated text of the files in paths ('-' is standard input), for
    small inputs such as a prime; corpora go through read_corpus."""
    parts = []
    for path in paths:
        raw = read_bytes(path, encoding)
        try:
            parts.append(raw.decode(encoding))
        except UnicodeDecodeError as e:
            _raise_undecodable(path, encoding, e.start)
        except LookupError:
            raise CharrnnError(f"unknown encoding {encoding!r}; try utf-8 or latin-1")
    return "".join(parts)


def read_corpus(paths, encoding="utf-8", vocab=None, what="the training text"):
    """(ids, vocab) of the concatenated files, in two passes over their bytes: one
    for the character count and, if vocab is None, the vocabulary; one to fill the
    compact id array. Peak memory is the files' bytes plus the ids, plus a block.
    A character outside a given vocab is an error naming it."""
    raws = [(path, read_bytes(path, encoding)) for path in paths]
    total, vocab = scan(raws, encoding, vocab, what)
    ids = np.empty(total, dtype=id_dtype(len(vocab)))
    o = 0
    for block in id_blocks(raws, encoding, vocab):
        ids[o:o + len(block)] = block
        o += len(block)
    return ids, vocab


def scan(raws, encoding, vocab=None, what="the training text"):
    """(characters, vocabulary) of [(path, bytes)]: the given vocab checked, or the
    text's own."""
    seen = np.zeros(0x110000, dtype=bool)
    total = 0
    for path, raw in raws:
        for cps in code_point_blocks(path, raw, encoding):
            total += len(cps)
            seen[np.unique(cps) if len(cps) < 4096 else np.flatnonzero(np.bincount(cps))] = True
    if vocab is None:
        return total, [chr(c) for c in np.flatnonzero(seen)]
    unseen = np.flatnonzero(seen & ~_in_vocab(vocab))
    if len(unseen):
        _raise_unseen([chr(c) for c in unseen], what)
    return total, vocab


def id_blocks(raws, encoding, vocab):
    """Yields the ids of [(path, bytes)] in vocab, a block at a time."""
    table = np.zeros(0x110000, dtype=id_dtype(len(vocab)))
    table[[ord(ch) for ch in vocab]] = np.arange(len(vocab))
    for path, raw in raws:
        for cps in code_point_blocks(path, raw, encoding):
            yield table[cps]


def _in_vocab(vocab):
    mask = np.zeros(0x110000, dtype=bool)
    mask[[ord(ch) for ch in vocab]] = True
    return mask


def _raise_unseen(unseen, what):
    shown = " ".join(repr(ch) for ch in unseen[:10]) + (" ..." if len(unseen) > 10 else "")
    raise CharrnnError(f"{what} has {len(unseen)} character(s) not in the model's "
                       f"vocabulary: {shown}")


def code_points(text):
    """(len(text),) uint32 array of the code points, without a Python object per character."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def id_dtype(V):
    return np.uint8 if V <= 256 else np.uint16 if V <= 65536 else np.uint32


def build_vocab(text):
    """Sorted list of the distinct characters of text.

    >>> build_vocab("hello")
    ['e', 'h', 'l', 'o']
    """
    return [chr(c) for c in np.unique(code_points(text))]


def encode(text, vocab, what="text"):
    """Compact id array of text in vocab; a character outside vocab is an error naming it."""
    cps = code_points(text)
    table = np.array([ord(ch) for ch in vocab], dtype=np.uint32)
    pos = np.searchsorted(table, cps)
    pos_clipped = np.minimum(pos, len(table) - 1)
    bad = table[pos_clipped] != cps
    if bad.any():
        _raise_unseen(sorted({chr(c) for c in cps[bad]}), what)
    return pos_clipped.astype(id_dtype(len(vocab)))


def decode(ids, vocab):
    return "".join(vocab[i] for i in ids)


def split(ids, val_frac):
    """The last val_frac of the text is held out for validation (contiguous)."""
    n_val = int(len(ids) * val_frac)
    return ids[:len(ids) - n_val], ids[len(ids) - n_val:]


class Batches:
    """The stream layout above. batch(k) gives step k of an epoch as (T, N) int64 arrays."""

    def __init__(self, ids, batch_size, seq_length):
        N, T = batch_size, seq_length
        Ls = len(ids) // N
        if Ls < T + 1:
            raise CharrnnError(
                f"the training text ({len(ids)} characters) is too short for "
                f"--batch-size {N} x --seq-length {T}; it needs at least {N * (T + 1)}: "
                f"lower --batch-size or --seq-length")
        self.streams = ids[:N * Ls].reshape(N, Ls)  # a view: no copy of the corpus
        self.T, self.N = T, N
        self.steps_per_epoch = (Ls - 1) // T

    def batch(self, k, s0=0, s1=None):
        """Streams s0..s1 only (a rank's block): the others' pages are never read."""
        T, rows = self.T, self.streams[s0:s1]
        x = rows[:, k * T:k * T + T].T.astype(np.int64)
        y = rows[:, k * T + 1:k * T + T + 1].T.astype(np.int64)
        return x, y
