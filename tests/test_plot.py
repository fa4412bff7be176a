"""`charrnn plot`: known logs drawn, then read back from the SVG.

The points are read back from the file alone: each curve's path by its id, and the
map from SVG coordinates to data from the axis ticks (their positions and labels),
so a curve drawn at the wrong place, in the wrong units or on the wrong axis fails."""
import json
import math
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import plot as pl
from charrnn.cli import cli

SVG = "{http://www.w3.org/2000/svg}"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ENG = {"k": 1e3, "M": 1e6, "G": 1e9}


def invoke(*args):
    res = CliRunner().invoke(cli, ["plot", *map(str, args)])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    return res.exit_code, res.stdout, res.stderr


def write_log(path, steps, loss, val_every=50, batch=4, seq=10, secs=0.5):
    """A log as `charrnn train --log` writes it: loss(step) smoothed, validation
    loss(step) + 0.1 every val_every steps, secs seconds a step."""
    with open(path, "w") as f:
        for s in steps:
            f.write(json.dumps({"step": s, "epoch": s / 100, "chars": s * batch * seq,
                                "train_loss": loss(s), "smooth_loss": loss(s),
                                "val_loss": loss(s) + 0.1 if s % val_every == 0 else None,
                                "lr": 2e-3, "chars_per_sec": 1e4, "elapsed_s": s * secs}) + "\n")
    return path


def falling(s):
    return 1.5 + 2.5 * math.exp(-s / 40)


def rising(s):
    return 2.0 + s / 200


def number(text):
    t = text.replace("\u2212", "-").strip()
    return float(t[:-1]) * ENG[t[-1]] if t and t[-1] in ENG else float(t)


def axis(root, name):
    """(a, b) with data = a * svg_coordinate + b, fitted to the ticks of an axis."""
    pos, val = [], []
    for tick in root.iter(f"{SVG}g"):
        if re.fullmatch(f"{name}tick_\\d+", tick.get("id", "")):
            use, text = next(tick.iter(f"{SVG}use")), next(tick.iter(f"{SVG}text"), None)
            if text is None:
                continue  # a panel sharing another's axis labels no ticks
            label = "".join(text.itertext())
            pos.append(float(use.get(name)))
            val.append(number(label))
    assert len(pos) >= 3, f"{name} axis has too few ticks"
    a, b = np.polyfit(pos, val, 1)
    assert np.allclose(np.multiply(a, pos) + b, val, atol=1e-6 * max(map(abs, val))), (pos, val)
    return a, b


def points(root, gid):
    """The (x, y) SVG coordinates of the line drawn with this id."""
    group = next(g for g in root.iter(f"{SVG}g") if g.get("id") == gid)
    path = next(p for p in group.iter(f"{SVG}path") if " L " in p.get("d", "").replace("\n", " "))
    nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", path.get("d"))]
    return np.array(nums).reshape(-1, 2)


def read_back(svg_path, gid, log_y=False):
    root = ET.parse(svg_path).getroot()
    (ax, bx), xy = axis(root, "x"), points(root, gid)
    if log_y:
        return ax * xy[:, 0] + bx, xy[:, 1]
    ay, by = axis(root, "y")
    return ax * xy[:, 0] + bx, ay * xy[:, 1] + by


def texts(svg_path):
    return ["".join(t.itertext()) for t in ET.parse(svg_path).getroot().iter(f"{SVG}text")]


@pytest.fixture
def logs(tmp_path):
    a = write_log(tmp_path / "lstm.jsonl", range(10, 201, 10), falling)
    b = write_log(tmp_path / "gru.jsonl", range(10, 101, 10), rising, val_every=20, secs=2)
    return a, b


# -- drawn and read back ------------------------------------------------------------

def test_two_runs_read_back_from_the_svg(logs, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "c.svg"
    code, stdout, err = invoke(*logs, "-o", out, "--ref", "1.47", "nanoGPT A100")
    assert code == 0 and stdout == "" and err.strip() == f"charrnn: wrote {out}", err
    for k, (loss, steps, every) in enumerate([(falling, range(10, 201, 10), 50),
                                              (rising, range(10, 101, 10), 20)]):
        x, y = read_back(out, f"train-{k}")
        assert np.allclose(x, list(steps), atol=0.05) and np.allclose(y, [loss(s) for s in steps], atol=2e-4)
        x, y = read_back(out, f"val-{k}")
        vs = [s for s in steps if s % every == 0]
        assert np.allclose(x, vs, atol=0.05) and np.allclose(y, [loss(s) + 0.1 for s in vs], atol=2e-4)
    _, y = read_back(out, "ref-0")
    assert np.allclose(y, 1.47, atol=2e-4)
    words = texts(out)
    assert "lstm validation" in words and "gru train (smoothed)" in words
    assert "nanoGPT A100 (1.47)" in words
    assert "step" in words and "loss (nats per character)" in words


def test_bits_and_characters_seen(logs, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "c.svg"
    code, _, err = invoke(logs[0], "-o", out, "--units", "bits", "--x", "chars", "--ref", "2", "two")
    assert code == 0, err
    x, y = read_back(out, "val-0")
    assert np.allclose(x, [s * 40 for s in (50, 100, 150, 200)], atol=1)
    assert np.allclose(y, [(falling(s) + 0.1) / math.log(2) for s in (50, 100, 150, 200)], atol=2e-4)
    assert np.allclose(read_back(out, "ref-0")[1], 2.0, atol=2e-4)  # the reference is in --units
    assert "characters seen" in texts(out) and "loss (bits per character)" in texts(out)


@pytest.mark.parametrize("secs, unit, div", [(0.5, "s", 1), (2, "min", 60)])
def test_wall_time_axis(tmp_path, secs, unit, div):
    pytest.importorskip("matplotlib")
    log = write_log(tmp_path / "r.jsonl", range(10, 201, 10), falling, secs=secs)
    out = tmp_path / "c.svg"
    assert invoke(log, "-o", out, "--x", "time")[0] == 0
    x, _ = read_back(out, "train-0")
    assert np.allclose(x, [s * secs / div for s in range(10, 201, 10)], atol=1e-3 * 200 * secs / div)
    assert f"wall time ({unit})" in texts(out)


def test_log_scale_is_linear_in_the_logarithm(logs, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "c.svg"
    assert invoke(logs[0], "-o", out, "--log-scale")[0] == 0
    _, py = read_back(out, "train-0", log_y=True)
    loss = np.array([falling(s) for s in range(10, 201, 10)])
    for f, linear in ((np.log, True), (np.asarray, False)):
        a, b = np.polyfit(f(loss), py, 1)
        assert (np.abs(a * f(loss) + b - py).max() < 0.01) == linear


# -- logs ------------------------------------------------------------------------------

def test_a_resumed_log_keeps_the_records_that_replaced_older_ones(tmp_path):
    log = tmp_path / "r.jsonl"
    lines = [{"step": s, "smooth_loss": v} for s, v in
             [(10, 4.0), (20, 3.0), (30, 2.5), (20, 2.9), (30, 2.4), (40, 2.2)]]
    log.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 50, "smoo')
    recs = pl.read_log(log)  # the torn last line of a killed run is left out
    assert [(r["step"], r["smooth_loss"]) for r in recs] == [(10, 4.0), (20, 2.9), (30, 2.4), (40, 2.2)]


def test_a_new_run_appended_to_a_log_replaces_it(tmp_path):
    log = write_log(tmp_path / "r.jsonl", range(10, 101, 10), falling)
    with open(log, "a") as f:
        f.write(json.dumps({"step": 10, "smooth_loss": 9.0}) + "\n")
    assert [(r["step"], r["smooth_loss"]) for r in pl.read_log(log)] == [(10, 9.0)]


def one_line_error(code, out, err, status, contains):
    assert code == status and out == "" and "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and err.startswith("charrnn: error: ") and contains in err, err


@pytest.mark.parametrize("content, contains", [
    ('{"step": 10, "smooth_loss": 2}\nnot json\n{"step": 30, "smooth_loss": 2}\n', "line 2"),
    ('{"step": "ten", "smooth_loss": 2}\n', "line 1"),
    ("\n\n", "holds no records"),
])
def test_bad_logs_are_one_line_errors(tmp_path, content, contains):
    pytest.importorskip("matplotlib")
    log = tmp_path / "bad.jsonl"
    log.write_text(content)
    one_line_error(*invoke(log, "-o", tmp_path / "c.svg"), 1, contains)
    assert not (tmp_path / "c.svg").exists()


def test_missing_log_and_missing_field(tmp_path):
    pytest.importorskip("matplotlib")
    one_line_error(*invoke(tmp_path / "nope.jsonl", "-o", tmp_path / "c.png"), 1, "nope.jsonl")
    old = tmp_path / "old.jsonl"
    old.write_text('{"step": 10, "smooth_loss": 2.0, "elapsed_s": 1}\n')
    one_line_error(*invoke(old, "--x", "chars", "-o", tmp_path / "c.png"), 1, "'chars'")


def test_unknown_output_format_is_a_usage_error(logs, tmp_path):
    one_line_error(*invoke(logs[0], "-o", tmp_path / "c.pdf"), 2, ".png, .svg, .html")


def test_without_matplotlib_it_says_how_to_get_it(logs, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    one_line_error(*invoke(logs[0], "-o", tmp_path / "c.png"), 1, "pip install 'charrnn[plot]'")


def test_png(logs, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "c.png"
    assert invoke(*logs, "-o", out)[0] == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (w, h) == (1125, 675)  # 7.5 x 4.5 inches at 150 dpi


# -- the HTML page -----------------------------------------------------------------------

@pytest.fixture
def page(logs, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "c.html"
    code, _, err = invoke(*logs, "-o", out, "--ref", "1.47", "<nanoGPT & co>")
    assert code == 0, err
    return out


def test_page_is_self_contained(page):
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert text.count("<svg") == 1 and "<?xml" not in text
    assert "&lt;nanoGPT &amp; co&gt; (1.47)" in text          # labels are escaped
    assert "<td>lstm</td><td>200</td><td>8,000</td>" in text  # the summary table
    assert "1.6168 at step 200" in text                      # lstm's best validation


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_page_renders_in_chromium_without_console_errors(page):
    run = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          "--enable-logging=stderr", "--v=0", "--no-first-run",
                          "--disable-extensions", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'data-rendered="yes"' in run.stdout
    assert 'id="val-1"' in run.stdout
    assert "CONSOLE" not in run.stderr, [line for line in run.stderr.splitlines() if "CONSOLE" in line]
