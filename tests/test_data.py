"""data.py: reading text, the vocabulary, compact ids and the minibatch stream layout."""
import io
import sys

import numpy as np
import pytest

from charrnn import CharrnnError
from charrnn.data import Batches, build_vocab, decode, encode, read_text, split

TEXTS = ["", "a", "hello world\n", "naïve café — “quotes” ✓ 🙂\tend\r\n"]


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(text):
    vocab = build_vocab(text)
    assert vocab == sorted(set(text))
    ids = encode(text, vocab)
    assert len(ids) == len(text)
    assert decode(ids, vocab) == text


def test_known_ids():
    vocab = build_vocab("hello")
    assert vocab == ["e", "h", "l", "o"]
    assert encode("hello", vocab).tolist() == [1, 0, 2, 2, 3]


def test_ascii_ids_are_one_byte():
    text = "The quick brown fox jumps over the lazy dog.\n" * 3
    ids = encode(text, build_vocab(text))
    assert ids.dtype == np.uint8


def test_exactly_256_chars_fit_in_a_byte():
    text = "".join(chr(c) for c in range(0x100, 0x200))
    vocab = build_vocab(text)
    ids = encode(text, vocab)
    assert len(vocab) == 256 and ids.dtype == np.uint8 and ids.max() == 255
    assert decode(ids, vocab) == text


def test_cjk_text_with_more_than_256_chars_uses_uint16():
    rng = np.random.default_rng(0)
    text = "".join(chr(c) for c in rng.integers(0x4E00, 0x4E00 + 600, 3000)) + "。\n"
    vocab = build_vocab(text)
    assert len(vocab) > 256
    ids = encode(text, vocab)
    assert ids.dtype == np.uint16
    assert decode(ids, vocab) == text
    assert ids.max() == len(vocab) - 1


def test_astral_plane_characters():
    text = "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀😀 a"
    vocab = build_vocab(text)
    assert decode(encode(text, vocab), vocab) == text


def test_encode_names_the_unseen_characters():
    vocab = build_vocab("abc")
    with pytest.raises(CharrnnError) as e:
        encode("abzcé", vocab, "the prime")
    msg = str(e.value)
    assert msg.startswith("the prime has 2 character(s)")
    assert "'z'" in msg and "'é'" in msg and "'a'" not in msg


@pytest.mark.parametrize("unseen", ["\x00", "~", "\U0010ffff"])
def test_encode_rejects_chars_below_and_above_the_vocabulary(unseen):
    vocab = build_vocab("mno")
    with pytest.raises(CharrnnError, match="not in the model's vocabulary"):
        encode("m" + unseen, vocab)


@pytest.mark.parametrize("n,frac", [(100, 0.1), (101, 0.1), (10, 0.0), (7, 0.5), (3, 0.99)])
def test_split_is_contiguous_with_the_right_sizes(n, frac):
    ids = np.arange(n)
    train, val = split(ids, frac)
    assert len(val) == int(n * frac)
    assert len(train) + len(val) == n
    assert np.array_equal(np.concatenate([train, val]), ids)


def test_batches_known_answer():
    ids = np.arange(20, dtype=np.uint8)  # 2 streams of 10: 0..9 and 10..19
    b = Batches(ids, batch_size=2, seq_length=3)
    assert b.steps_per_epoch == 3  # (10 - 1) // 3
    x0, y0 = b.batch(0)
    assert x0.dtype == np.int64 and x0.shape == (3, 2)
    assert x0.T.tolist() == [[0, 1, 2], [10, 11, 12]]
    assert y0.T.tolist() == [[1, 2, 3], [11, 12, 13]]
    x1, y1 = b.batch(1)
    assert x1.T.tolist() == [[3, 4, 5], [13, 14, 15]]
    x2, y2 = b.batch(2)
    assert y2.T.tolist() == [[7, 8, 9], [17, 18, 19]]


@pytest.mark.parametrize("n,N,T", [(103, 4, 5), (1000, 7, 13), (50, 1, 49)])
def test_batches_streams_continue_and_targets_shift(n, N, T):
    ids = np.random.default_rng(n).integers(0, 200, n).astype(np.uint8)
    b = Batches(ids, N, T)
    Ls = n // N
    assert b.steps_per_epoch == (Ls - 1) // T
    for k in range(b.steps_per_epoch):
        x, y = b.batch(k)
        assert x.shape == y.shape == (T, N)
        assert np.array_equal(x[1:], y[:-1])  # targets are the inputs shifted by one
        for s in range(N):
            start = s * Ls + k * T  # stream s at step k starts where step k-1 stopped
            assert np.array_equal(x[:, s], ids[start:start + T])
            assert np.array_equal(y[:, s], ids[start + 1:start + T + 1])


def test_batches_smallest_text_that_fits():
    b = Batches(np.arange(12), batch_size=2, seq_length=5)  # 2 x (5 + 1)
    assert b.steps_per_epoch == 1
    with pytest.raises(CharrnnError, match="too short.*--batch-size 2 x --seq-length 5.*at least 12"):
        Batches(np.arange(11), batch_size=2, seq_length=5)


def test_read_text_concatenates_files(tmp_path):
    (tmp_path / "a.txt").write_text("αβ\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("γ", encoding="utf-8")
    assert read_text([tmp_path / "a.txt", tmp_path / "b.txt"]) == "αβ\nγ"


def test_read_text_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("from stdin ✓\r\n".encode())))
    assert read_text(["-"]) == "from stdin ✓\r\n"


def test_read_text_preserves_crlf(tmp_path):
    (tmp_path / "crlf.txt").write_bytes(b"one\r\ntwo\r\n\rthree")
    text = read_text([str(tmp_path / "crlf.txt")])
    assert text == "one\r\ntwo\r\n\rthree"
    assert "\r" in build_vocab(text)


def test_read_text_invalid_utf8_names_the_byte_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("añb".encode() + b"\xff tail")  # 'ñ' is 2 bytes: the bad byte is at 4
    with pytest.raises(CharrnnError, match=r"bad\.txt is not valid utf-8 at byte 4;.*--encoding"):
        read_text([str(path)])
    assert read_text([str(path)], "latin-1").endswith("\xff tail")


def test_read_text_directory(tmp_path):
    with pytest.raises(CharrnnError, match="is a directory"):
        read_text([str(tmp_path)])


def test_read_text_missing_file(tmp_path):
    with pytest.raises(CharrnnError, match=r"cannot read .*nope\.txt: No such file"):
        read_text([str(tmp_path / "nope.txt")])


def test_read_text_unknown_encoding(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    with pytest.raises(CharrnnError, match="unknown encoding 'klingon'"):
        read_text([str(tmp_path / "a.txt")], "klingon")
