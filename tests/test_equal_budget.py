"""benchmarks/equal_budget.py end to end on a synthetic corpus: both sides train the
same tiny model for a second, from the same weights, and the report shows both.
Optional: skipped where torch is not installed (it is never a dependency of charrnn)."""
import importlib.util
import pathlib
import re

import pytest

from charrnn import synth

pytest.importorskip("torch")

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("equal_budget", ROOT / "benchmarks" / "equal_budget.py")
equal_budget = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(equal_budget)


@pytest.mark.parametrize("kind,embed", [("lstm", 0), ("gru", 6)])
def test_both_sides_start_from_the_same_model_and_report(tmp_path, kind, embed):
    corpus = tmp_path / "synth.txt"
    corpus.write_text(synth.generate(40_000, seed=5))
    out = tmp_path / "eb.md"
    # main() exits if the two sides score the initial weights differently
    equal_budget.main(["--kind", kind, "--hidden", "12", "--embed", str(embed), "--budget", "1",
                       "--eval-every", "5", "--corpus", str(corpus), "--out", str(out)])
    text = out.read_text()
    a, b = (float(x) for x in re.search(r"charrnn ([\d.]+), PyTorch ([\d.]+) nats", text).groups())
    assert a == pytest.approx(b, rel=1e-5)
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "charrnn" in rows and any(k.startswith("PyTorch") for k in rows)
    for line in text.splitlines():
        if line.startswith("- "):  # the validation curves: every loss below the untrained one
            losses = [float(x) for x in re.findall(r", ([\d.]+)\)", line)]
            assert losses and max(losses) < a
