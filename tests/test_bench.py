"""benchmarks/bench.py's ratios: each pair of runs made one after the other."""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_ratio_is_the_median_of_paired_ratios():
    # charrnn's times against the peer's, pair by pair: 1.5x, 1.0x, 1.3x. The ratio of
    # the medians would be 1.5 / 1.0 = 1.5x: the slow second pair would decide it.
    runs = {"charrnn": [{"t": 1.0}, {"t": 2.0}, {"t": 1.0}],
            "torch": [{"t": 1.5}, {"t": 2.0}, {"t": 1.3}]}
    assert bench.paired(runs, "torch", "t") == "1.30x (1.00-1.50)"
    assert bench.paired({"charrnn": [{"t": 2.0}], "torch": [{"t": 3.0}]}, "torch", "t") == "1.50x"

