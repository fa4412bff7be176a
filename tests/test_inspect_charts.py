"""The per-hypothesis verdict charts of the inspect-cells HTML page: every mark sits
where its number says on the chart's own axis (read back from its tick labels), and
the page holds one chart per hypothesis."""
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import checkpoint
from charrnn.cli import cli
from charrnn.inspect import analyze as an
from charrnn.inspect.charts import verdict_svg
from tests.inspect_planted import VOCAB, planted_lstm, planted_text

NS = "{http://www.w3.org/2000/svg}"
RES = {"name": "in_<dquote>", "verdict": "TRACKED", "null99": 0.12, "local": 0.31,
       "untrained": 0.22, "probe": 0.97, "probe_untrained": 0.4,
       "cell": {"sign": -1, "r": -0.83}}


def read_back(svg):
    """{class: [r of each mark]} from the positions, mapped through the tick labels."""
    root = ET.fromstring(svg)
    ticks = [(float(t.get("x")), float(t.text)) for t in root.iter(f"{NS}text")
             if t.get("class") == "tick"]
    a, b = np.polyfit(*zip(*ticks), 1)
    marks = {}
    for el in root:
        cls = el.get("class")
        if not cls or cls == "tick":
            continue  # the axis and the legend
        if el.tag == f"{NS}circle":
            x = float(el.get("cx"))
        elif el.tag == f"{NS}line":
            x = float(el.get("x1"))
        elif el.tag == f"{NS}rect":
            x = float(el.get("x")) + float(el.get("width"))
        else:
            continue
        marks.setdefault(cls, []).append(round(a * x + b, 3))
    return marks


def test_marks_sit_at_their_numbers():
    marks = read_back(verdict_svg(RES))
    assert marks == {"null": [0.12], "threshold": [an.R_MIN], "local": [0.31],
                     "untrained": [0.22, 0.4], "r": [0.83, 0.97]}  # r: the cell's, signed as chosen


def test_missing_controls_draw_nothing_and_r_is_clipped():
    res = dict(RES, null99=None, untrained=None, probe_untrained=None, local=-0.2,
               cell={"sign": 1, "r": -0.1})
    marks = read_back(verdict_svg(res))
    assert "null" not in marks and "untrained" not in marks
    assert marks["r"] == [0.0, 0.97] and marks["local"] == [0.0]
    assert 'aria-label="in_&lt;dquote&gt;: TRACKED"' in verdict_svg(res)


def test_the_page_has_a_chart_per_hypothesis_drawn_from_its_results(tmp_path):
    cfg, p = planted_lstm()
    checkpoint.save(str(tmp_path / "m.npz"), p, {"config": cfg.to_dict(), "vocab": VOCAB})
    (tmp_path / "t.txt").write_text(planted_text(3000, seed=5))
    args = ["inspect-cells", str(tmp_path / "m.npz"), str(tmp_path / "t.txt"), "-q",
            "--only", "in_dquote,column"]
    res = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert res.exit_code == 0, res.stderr
    hyps = json.loads(res.stdout)["hypotheses"]
    res = CliRunner().invoke(cli, [*args, "--format", "html", "--out", str(tmp_path / "p.html")])
    assert res.exit_code == 0, res.stderr
    page = (tmp_path / "p.html").read_text()
    charts = ['<svg class="verdict-chart"' + c.split("</svg>")[0] + "</svg>"
              for c in page.split('<svg class="verdict-chart"')[1:]]
    assert len(charts) == len(hyps) == 2
    for chart, h in zip(charts, hyps):
        marks = read_back(chart)
        r = max(0.0, h["cell"]["sign"] * h["cell"]["r"])
        assert marks["r"] == pytest.approx([min(1, r), min(1, h["probe"])], abs=2e-3)
        assert marks["local"] == pytest.approx([max(0, h["local"])], abs=2e-3)
        assert marks["null"] == pytest.approx([h["null99"]], abs=2e-3)
