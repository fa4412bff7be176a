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
import sys

import numpy as np

from charrnn import CharrnnError


BLOCK = 1 << 24  # bytes read and decoded at a time: the text is never held as one Python str
# encodings in which every ASCII byte is its own character, so pure-ASCII blocks
# need no decoding and a NUL byte is a NUL character
ASCII_COMPATIBLE = {"utf-8", "iso8859-1", "ascii", "cp1252"}
# codecs that decode bytes into str but read escapes or labels, not a text file
NOT_FILE_ENCODINGS = {"unicode-escape", "raw-unicode-escape", "undefined", "idna", "punycode"}


def text_codec(encoding):
    """The codec name of encoding, refused unless it decodes bytes to text
    (hex, base64, rot13, zlib are bytes-to-bytes or str-to-str transforms)."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise CharrnnError(f"unknown encoding {encoding!r}; try utf-8 or latin-1")
    if not getattr(info, "_is_text_encoding", True) or info.name in NOT_FILE_ENCODINGS:
        raise CharrnnError(f"--encoding {encoding} is not an encoding of text files; "
                           f"try utf-8 or latin-1")
    return info.name


def _raw_blocks(path):
    """The bytes of a file ('-' is standard input), BLOCK at a time."""
    if path == "-" and sys.stdin is None:
        raise CharrnnError("standard input is closed: nothing to read from '-'")
    try:
        f = sys.stdin.buffer if path == "-" else open(path, "rb")
    except IsADirectoryError:
        raise CharrnnError(f"{path} is a directory; give text files (or - for standard input)")
    except OSError as e:
        raise CharrnnError(f"cannot read {path}: {e.strerror}")
    try:
        while True:
            try:
                raw = f.read(BLOCK)
            except OSError as e:
                raise CharrnnError(f"cannot read {path}: {e.strerror}")
            if not raw:
                return
            yield raw
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def decoded_blocks(path, encoding, raws=None):
    """Yields (raw, piece) for each block of the file (or of the blocks raws, read
    before): piece is the block's text, or the raw bytes themselves when they are pure
    ASCII in an ASCII-compatible encoding. Binary input is refused at the first block
    that shows it, at its first NUL or undecodable byte, before any more is read."""
    name = text_codec(encoding)
    dec = codecs.getincrementaldecoder(name)()
    offset = chars = 0
    for raw in raws if raws is not None else _raw_blocks(path):
        pending = len(dec.getstate()[0])  # bytes of a character split by the last block
        if name in ASCII_COMPATIBLE:
            nul = raw.find(b"\0")
            if nul >= 0:  # valid UTF-8, but no text has NULs: a binary file given by mistake
                _raise_binary(path, f"NUL byte at offset {offset + nul}")
            if not pending and raw.isascii():
                yield raw, raw
                offset += len(raw)
                chars += len(raw)
                continue
        try:
            piece = dec.decode(raw)
        except UnicodeDecodeError as e:
            _raise_undecodable(path, encoding, offset - pending + e.start)
        if "\0" in piece:
            _raise_binary(path, f"NUL character at character {chars + piece.index(chr(0))}")
        yield raw, piece
        offset += len(raw)
        chars += len(piece)
    try:
        tail = dec.decode(b"", final=True)
    except UnicodeDecodeError as e:
        _raise_undecodable(path, encoding, offset - len(dec.getstate()[0]) + e.start)
    if tail:
        yield b"", tail


def _raise_binary(path, where):
    raise CharrnnError(f"{path} looks binary ({where}); charrnn reads text files")


def _raise_undecodable(path, encoding, at):
    raise CharrnnError(f"{path} is not valid {encoding} at byte {at}; "
                       f"pass --encoding (e.g. --encoding latin-1)")


def _code_points(piece):
    return np.frombuffer(piece, dtype=np.uint8) if isinstance(piece, bytes) else code_points(piece)


def read_text(paths, encoding="utf-8"):
    """The concatenated text of the files in paths ('-' is standard input), for
    small inputs such as a prime; corpora go through read_corpus."""
    return "".join(p.decode("ascii") if isinstance(p, bytes) else p
                   for path in paths for _, p in decoded_blocks(path, encoding))


def read_corpus(paths, encoding="utf-8", vocab=None, what="the training text",
                unknown="error", hint=""):
    """(ids, vocab) of the concatenated files, in two passes over their bytes: one
    while reading, for the character count and, if vocab is None, the vocabulary;
    one over the kept bytes to fill the compact id array. Peak memory is the files'
    bytes plus the ids, plus a block. A character outside a given vocab is an error
    naming it (and then hint), or, with unknown="extend", added to the vocab in sorted
    place."""
    ids, vocab, _ = read_known(paths, encoding, vocab, what, unknown, hint)
    return ids, vocab


def read_known(paths, encoding, vocab, what="the text", unknown="error", hint=""):
    """read_corpus, and with unknown="skip" the characters outside vocab left out:
    returns (ids, vocab, how many were left out)."""
    raws = []
    total, seen = _count(paths, encoding, raws)
    known = None
    if vocab is None:
        vocab = [chr(c) for c in np.flatnonzero(seen)]
    else:
        unseen = np.flatnonzero(seen & ~_in_vocab(vocab))
        if len(unseen) and unknown == "extend":
            vocab = sorted(set(vocab) | {chr(c) for c in unseen})
        elif len(unseen) and unknown == "skip":
            known = _in_vocab(vocab)
        elif len(unseen):
            _raise_unseen([chr(c) for c in unseen], what, hint)
    table = _id_table(vocab)
    ids = np.empty(total, dtype=table.dtype)
    o = 0
    for path, blocks in raws:
        for _, piece in decoded_blocks(path, encoding, blocks):
            cps = _code_points(piece)
            if known is not None:
                cps = cps[known[cps]]
            ids[o:o + len(cps)] = table[cps]
            o += len(cps)
    return ids[:o], vocab, total - o


def _count(paths, encoding, keep=None):
    """(characters, (0x110000,) bool of the code points seen) of the files, a block at
    a time; keep, a list, gets [(path, its raw blocks)] to decode again unread."""
    seen = np.zeros(0x110000, dtype=bool)
    total = 0
    for path in paths:
        blocks = []
        if keep is not None:
            keep.append((path, blocks))
        for raw, piece in decoded_blocks(path, encoding):
            if keep is not None:
                blocks.append(raw)
            cps = _code_points(piece)
            total += len(cps)
            seen[np.unique(cps) if len(cps) < 4096 else np.flatnonzero(np.bincount(cps))] = True
    return total, seen


def _id_table(vocab):
    """(0x110000,) ids by code point, in the smallest dtype that holds them."""
    table = np.zeros(0x110000, dtype=id_dtype(len(vocab)))
    table[[ord(ch) for ch in vocab]] = np.arange(len(vocab))
    return table


def scan(paths, encoding):
    """(characters, vocabulary) of the files, read a block at a time and kept nowhere."""
    total, seen = _count(paths, encoding)
    return total, [chr(c) for c in np.flatnonzero(seen)]


def id_blocks(paths, encoding, vocab):
    """Yields the ids of the files in vocab, a block at a time (the files read again, so
    that a text larger than memory passes through)."""
    table = _id_table(vocab)
    for path in paths:
        for _, piece in decoded_blocks(path, encoding):
            yield table[_code_points(piece)]


def known_text(text, vocab, unknown="error", what="the text", hint=""):
    """(text, how many characters were left out): with unknown="skip" those outside
    vocab are left out; with "error" one is an error naming it (and then hint)."""
    if unknown == "skip":
        allowed = set(vocab)
        kept = "".join(ch for ch in text if ch in allowed)
        return kept, len(text) - len(kept)
    encode(text, vocab, what, hint)
    return text, 0


def _in_vocab(vocab):
    mask = np.zeros(0x110000, dtype=bool)
    mask[[ord(ch) for ch in vocab]] = True
    return mask


def _raise_unseen(unseen, what, hint=""):
    shown = " ".join(repr(ch) for ch in unseen[:10]) + (" ..." if len(unseen) > 10 else "")
    raise CharrnnError(f"{what} has {len(unseen)} character(s) not in the model's "
                       f"vocabulary: {shown}" + (f"; {hint}" if hint else ""))


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


def encode(text, vocab, what="text", hint=""):
    """Compact id array of text in vocab; a character outside vocab is an error naming it."""
    cps = code_points(text)
    table = np.array([ord(ch) for ch in vocab], dtype=np.uint32)
    pos = np.searchsorted(table, cps)
    pos_clipped = np.minimum(pos, len(table) - 1)
    bad = table[pos_clipped] != cps
    if bad.any():
        _raise_unseen(sorted({chr(c) for c in cps[bad]}), what, hint)
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
