"""paths.check_writable: each reason a file cannot be written, named with the option
to change, before any work is done."""
import os

import pytest

from charrnn import CharrnnError
from charrnn.paths import check_writable


def refused(path, replaced=False):
    with pytest.raises(CharrnnError) as e:
        check_writable(str(path), "the log", "--log", "log.jsonl", replaced=replaced)
    assert str(e.value).startswith(f"cannot write the log {path}: ")
    return str(e.value)


def test_a_new_file_in_a_writable_folder_passes(tmp_path):
    check_writable(str(tmp_path / "log.jsonl"), "the log", "--log", "log.jsonl")
    assert not (tmp_path / "log.jsonl").exists()  # a check: nothing is created


def test_a_directory_gets_a_file_name_suggested(tmp_path):
    assert refused(tmp_path).endswith(f"give a file name such as {tmp_path / 'log.jsonl'}")


def test_a_missing_folder(tmp_path):
    message = refused(tmp_path / "no" / "log.jsonl")
    assert f"its folder {tmp_path / 'no'} does not exist" in message and "another --log" in message


def test_a_read_only_folder_or_file(tmp_path, monkeypatch):
    """os.access is asked (as root every mode passes, so the answer is set here)."""
    (tmp_path / "log.jsonl").write_text("")
    monkeypatch.setattr(os, "access", lambda p, mode: str(p) != str(tmp_path))
    assert f"its folder {tmp_path} is not writable" in refused(tmp_path / "log.jsonl")
    monkeypatch.setattr(os, "access", lambda p, mode: not str(p).endswith("log.jsonl"))
    assert refused(tmp_path / "log.jsonl").endswith("the file is read-only; choose another --log")
    # a checkpoint is written beside it and renamed over it: its own mode does not matter
    check_writable(str(tmp_path / "log.jsonl"), "the log", "--log", "log.jsonl", replaced=True)
