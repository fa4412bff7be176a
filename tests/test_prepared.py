"""charrnn prepare: the id file round trip, training from it as from the text, and
one-line errors for what is not a prepared corpus."""
import json
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import CharrnnError, checkpoint, prepared, synth
from charrnn.cli import COMPILE_NOTICE, cli
from charrnn.data import read_corpus

TINY = ["--hidden", "16", "--layers", "1", "--batch-size", "4", "--seq-length", "16",
        "--max-steps", "20", "--eval-every", "10", "--seed", "3", "-q"]


def charrnn(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    return res.exit_code, res.stdout, res.stderr.replace(COMPILE_NOTICE + "\n", "")


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("texts")
    a, b = folder / "a.txt", folder / "b.txt"
    a.write_text(synth.generate(6000, seed=1).replace("cat", "càt✓"), encoding="utf-8")
    b.write_text(synth.generate(3000, seed=2), encoding="utf-8")
    return a, b


def test_round_trip_gives_the_ids_and_vocabulary_of_the_text(texts, tmp_path):
    out = tmp_path / "c.ids"
    code, stdout, err = charrnn("prepare", *texts, "-o", out)
    assert code == 0 and stdout == "" and "wrote" in err
    ids, vocab, meta = prepared.load(out)
    want_ids, want_vocab = read_corpus(texts)
    assert isinstance(ids, np.memmap) and not ids.flags.writeable
    assert np.array_equal(ids, want_ids) and ids.dtype == want_ids.dtype
    assert vocab == want_vocab and "✓" in vocab
    assert meta["chars"] == len(want_ids) and meta["sources"] == ["a.txt", "b.txt"]
    with zipfile.ZipFile(out) as z:  # stored, so that it maps
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())


def test_training_from_it_is_training_from_the_text(texts, tmp_path):
    ids = tmp_path / "c.ids"
    assert charrnn("prepare", *texts, "-o", ids)[0] == 0
    for name, src in (("text", texts), ("ids", [ids])):
        code, _, err = charrnn("train", *src, "-o", tmp_path / f"{name}.npz", *TINY)
        assert code == 0, err
    a, b = checkpoint.load(tmp_path / "text.npz"), checkpoint.load(tmp_path / "ids.npz")
    assert all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
    assert a.meta["val_loss"] == b.meta["val_loss"] and a.meta["vocab"] == b.meta["vocab"]
    # and resumed from it
    code, _, err = charrnn("train", ids, "--resume", tmp_path / "text.npz", "--max-steps", 25, "-q")
    assert code == 0, err
    assert checkpoint.load(tmp_path / "text.npz").meta["step"] == 25
    # and measured on
    results = [json.loads(charrnn("eval", tmp_path / "ids.npz", *src, "--json")[1])
               for src in (texts, [ids])]
    assert results[0] == results[1] and results[0]["chars"] == len(read_corpus(texts)[0]) - 1


def test_a_smaller_vocabulary_is_renumbered_on_resume(texts, tmp_path):
    """A corpus of some of the checkpoint's characters: its ids in the checkpoint's numbering."""
    sub = tmp_path / "sub.txt"
    sub.write_text("the càt sat. " * 400, encoding="utf-8")
    assert charrnn("prepare", sub, "-o", tmp_path / "sub.ids")[0] == 0
    ck_vocab = read_corpus(texts)[1]
    ids, vocab = prepared.read([str(tmp_path / "sub.ids")], vocab=ck_vocab)
    assert vocab == ck_vocab
    assert np.array_equal(ids, read_corpus([sub], vocab=ck_vocab)[0])
    with pytest.raises(CharrnnError, match=r"1 character\(s\) not in the model's vocabulary: 's'"):
        prepared.read([str(tmp_path / "sub.ids")], vocab=[c for c in ck_vocab if c != "s"])


def test_what_is_not_a_prepared_corpus_is_one_line(texts, tmp_path):
    ids = tmp_path / "c.ids"
    assert charrnn("prepare", texts[0], "-o", ids)[0] == 0
    code, _, err = charrnn("train", ids, texts[1], *TINY)
    assert code == 1 and err.startswith("charrnn: error: a prepared corpus trains alone")
    # a newer version, and ids past the vocabulary
    with zipfile.ZipFile(ids) as z:
        meta = json.loads(np.lib.format.read_array(z.open("__meta__.npy")).tobytes())
        real = np.lib.format.read_array(z.open("ids.npy"))
    for name, m, a in (("newer", dict(meta, version=2), real),
                       ("past", meta, np.full_like(real, 250))):
        bad = tmp_path / f"{name}.ids"
        checkpoint.write_npz(bad, {"__meta__": np.frombuffer(json.dumps(m).encode(), np.uint8),
                                   "ids": a})
        code, _, err = charrnn("train", bad, "-o", tmp_path / "m.npz", *TINY)
        assert code == 1 and len(err.splitlines()) == 1, err
        assert ("upgrade charrnn" if name == "newer" else "prepare it again") in err
    code, _, err = charrnn("prepare", tmp_path / "missing.txt", "-o", tmp_path / "x.ids")
    assert code == 1 and err.startswith("charrnn: error: cannot read") and len(err.splitlines()) == 1


def test_prepare_refuses_empty_and_binary_files(tmp_path):
    """prepare maps its files (data.read_bytes(mapped=True)): the checks still hold."""
    empty, binary = tmp_path / "empty.txt", tmp_path / "bin.txt"
    empty.write_bytes(b"")
    binary.write_bytes(b"abc" * 10 + b"\0def")
    for path, says in ((empty, "the text is empty"), (binary, "looks binary (NUL byte at offset 30)")):
        code, _, err = charrnn("prepare", path, "-o", tmp_path / "x.ids")
        assert code == 1 and len(err.splitlines()) == 1 and says in err, err
    assert not (tmp_path / "x.ids").exists()
