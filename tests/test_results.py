"""benchmarks/results.py end to end: one tiny model for 2 seconds on a synthetic
corpus, in its own process, and the table it writes."""
import importlib.util
import json
import math
import pathlib

import numpy as np
import pytest

from charrnn import synth

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("results", ROOT / "benchmarks" / "results.py")
results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results)


def table(text, heading):
    """The rows of the Markdown table under heading, as lists of cells."""
    block = text.split(f"## {heading}\n", 1)[1].strip().split("\n\n")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()]
    return rows[0], rows[2:]


def test_splits_are_the_last_tenth_halved(tmp_path):
    corpus = tmp_path / "synth.txt"
    corpus.write_text(synth.generate(10_001, seed=4))
    train, val, test, vocab = results.read_splits(str(corpus))
    assert (len(train), len(val), len(test)) == (9_001, 500, 500)
    text = corpus.read_text()
    assert "".join(vocab[i] for i in np.concatenate([train, val, test])) == text


def test_tiny_budget_end_to_end(tmp_path):
    corpus = tmp_path / "synth.txt"
    corpus.write_text(synth.generate(30_000, seed=4))
    out = tmp_path / "QUALITY.md"
    results.main(["--budget", "2", "--models", "lstm", "--layers", "1", "--hidden", "16",
                  "--corpus", str(corpus), "--ngram-order", "3", "--out", str(out)])
    text = out.read_text()
    assert "finished" in text and "synth.txt" in text and "cores" in text
    head, rows = table(text, "Every run")
    assert head == results.COLUMNS
    assert [r[:3] for r in rows] == [["lstm", "1", "16"], ["3-gram KN", "-", "-"]]
    for r in rows:
        assert len(r) == len(head)
        cell = dict(zip(head, r))
        test_nats = float(cell["test nats"])
        assert 0 < test_nats < math.log(40)  # below uniform over the 35-odd characters
        assert float(cell["test bits/char"]) == pytest.approx(test_nats / math.log(2), abs=2e-4)
    lstm = dict(zip(head, rows[0]))
    assert int(lstm["steps"].replace(",", "")) > 0
    assert 1.5 < float(lstm["time s"]) < 30
    log = tmp_path / "logs" / "quality" / "lstm-1x16.jsonl"
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps and steps[-1] == int(lstm["steps"].replace(",", ""))  # the curve ends at the end
    head, rows = table(text, "Test loss in nats per character")
    assert head == ["model", "layers", "H = 16"]
    assert [r[:2] for r in rows] == [["LSTM", "1"], ["3-gram KN", ""]]


def test_esn_rows(tmp_path):
    """Echo state networks train at their own reservoir sizes, one layer, into a table
    of their own, below the RNNs'."""
    corpus = tmp_path / "synth.txt"
    corpus.write_text(synth.generate(30_000, seed=4))
    out = tmp_path / "QUALITY.md"
    results.main(["--budget", "2", "--models", "esn", "esn-ridge", "--esn-hidden", "24",
                  "--corpus", str(corpus), "--ngram-order", "3", "--out", str(out)])
    text = out.read_text()
    head, rows = table(text, "Every run")
    assert [r[:3] for r in rows] == [["esn", "1", "24"], ["esn-ridge", "1", "24"],
                                     ["3-gram KN", "-", "-"]]
    for r in rows:
        assert 0 < float(dict(zip(head, r))["test nats"]) < math.log(40)
    esn = text.split("| echo state network | readout | H = 24 |", 1)[1].splitlines()
    assert esn[2].startswith("| ESN | optimizer | ") and esn[3].startswith("| ESN-RIDGE | ridge | ")
