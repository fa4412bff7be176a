"""benchmarks/figures.py: the Markdown tables it reads, and figures drawn from the
committed records whose points read back as the numbers in those records."""
import importlib.util
import pathlib
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tests.test_plot import SVG, axis, points, write_log, falling

pytest.importorskip("matplotlib")
ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("figures", ROOT / "benchmarks" / "figures.py")
figures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figures)

MD = """# Title

## 2026-12-01 04:30, a session

Some text | with a bar.

| model | impl | train ratio |
|---|---|---|
| rnn 2x128 | charrnn | 2.46x (2.10-3.02) |
| rnn 2x128 | torch | |

## Later
| a | b |
|:-|-:|
| 1 | 2 |
"""


def test_tables_are_read_with_their_headings(tmp_path):
    (tmp_path / "r.md").write_text(MD)
    assert figures.tables(tmp_path / "r.md") == [
        ("2026-12-01 04:30, a session", ["model", "impl", "train ratio"],
         [["rnn 2x128", "charrnn", "2.46x (2.10-3.02)"], ["rnn 2x128", "torch", ""]]),
        ("Later", ["a", "b"], [["1", "2"]])]
    assert figures.ratio("2.46x (2.10-3.02)") == (2.46, 2.10, 3.02)
    assert figures.number("1,083,969") == 1083969 and figures.number("1.47x") == 1.47


def axes_of(root, gid):
    """The <g id="axes_N"> holding the artist with this id."""
    return next(a for a in root.iter(f"{SVG}g") if a.get("id", "").startswith("axes_")
                and any(g.get("id") == gid for g in a.iter(f"{SVG}g")))


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    logs = tmp_path_factory.mktemp("logs")
    for kind in figures.KINDS:
        write_log(logs / f"{kind}-1x16.jsonl", range(10, 101, 10), falling)
    figures.OUT = str(out)
    figures.main(["--only", "quality", "--only", "speed"])
    figures.save(figures.quality_curves(sorted(map(str, logs.iterdir()))), "quality-curves", "test")
    return out


def test_speed_figure_reads_back_as_the_newest_table(drawn):
    heading, header, rows = next(t for t in figures.tables(ROOT / "benchmarks" / "RESULTS.md")
                                 if "train ratio" in t[1])
    root = ET.parse(drawn / "speed.svg").getroot()
    for kind in figures.KINDS:
        gid = f"speed-training-{kind}"
        a, b = axis(axes_of(root, gid), "y")
        xy = points(root, gid)
        want = [float(r[header.index("train ratio")].split("x")[0]) for r in rows
                if r[0].startswith(kind + " ") and r[header.index("train ratio")]]
        assert np.allclose(a * xy[:, 1] + b, want, atol=2e-3), (kind, want)
        assert np.allclose(np.diff(xy[:, 0], 2), 0, atol=1e-3)  # 128, 256, 512 evenly: log 2


def test_quality_figure_has_every_model_and_the_baseline(drawn):
    root = ET.parse(drawn / "quality.svg").getroot()
    ids = {g.get("id") for g in root.iter(f"{SVG}g")}
    assert {"quality-rnn", "quality-lstm", "quality-gru", "quality-ngram"} <= ids
    for kind in figures.KINDS:  # one marker a model: 3 layers x 2 sizes
        group = next(g for g in root.iter(f"{SVG}g") if g.get("id") == f"quality-{kind}")
        assert len(list(group.iter(f"{SVG}use"))) == 6
    a, b = axis(axes_of(root, "quality-ngram"), "y")
    assert a * points(root, "quality-ngram")[0, 1] + b == pytest.approx(1.6196, abs=2e-3)


def test_quality_curves_a_panel_a_cell_type(drawn):
    root = ET.parse(drawn / "quality-curves.svg").getroot()
    panels = {axes_of(root, f"{kind}-val-0").get("id") for kind in figures.KINDS}
    assert len(panels) == 3
    for kind in figures.KINDS:
        a, b = axis(root, "y")  # the panels share it; the first labels its ticks
        y = a * points(root, f"{kind}-val-0")[:, 1] + b
        assert np.allclose(y, [falling(s) + 0.1 for s in (50, 100)], atol=5e-3)
