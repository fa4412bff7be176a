"""The HTML page of inspect-cells in a real headless browser (Debian's chromium).

Skipped where chromium is not installed; CI installs it (apt-get install -y chromium).
The page is loaded from a local file: the DOM after its script ran must hold the
expected number of cell rows, all laid out; the browser must log nothing to the
console; and a screenshot must show coloured text, not a blank page."""
import re
import shutil
import subprocess
import zlib

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import checkpoint
from charrnn.cli import cli
from tests.inspect_planted import VOCAB, planted_lstm, planted_text

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0", "--no-first-run", "--disable-extensions"]
WIDTH, HEIGHT = 900, 600


def read_png(data):
    """(H, W, C) uint8 pixels of an 8-bit RGB or RGBA PNG, by the book (RFC 2083)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            depth, ctype = body[8], body[9]
        elif kind == b"IDAT":
            idat += body
        pos += n + 12
    assert depth == 8 and ctype in (2, 6)
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    out = np.zeros((h, stride), np.int64)
    prev = np.zeros(stride, np.int64)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int64)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 255
        else:
            cur = line.copy()
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) // 2
                else:                                    # Paeth
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur[i] = (cur[i] + pred) & 255
        out[y], prev = cur, cur
    return out.reshape(h, w, bpp).astype(np.uint8)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    d = tmp_path_factory.mktemp("html")
    cfg, p = planted_lstm()
    checkpoint.save(str(d / "m.npz"), p, {"config": cfg.to_dict(), "vocab": VOCAB})
    (d / "t.txt").write_text(planted_text(4000, seed=5))
    res = CliRunner().invoke(cli, ["inspect-cells", str(d / "m.npz"), str(d / "t.txt"), "-q",
                                   "--only", "in_dquote,column", "--maps", "2", "--saturation",
                                   "--format", "html", "--out", str(d / "page.html")])
    assert res.exit_code == 0, res.stderr
    return d / "page.html"


def chromium(*args):
    return subprocess.run([CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=120)


def test_page_is_self_contained(page):
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<svg" in html and html.count('class="cellrow"') == 4


def test_page_renders_in_chromium_without_console_errors(page):
    run = chromium("--dump-dom", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'data-rows="4"' in run.stdout                 # 2 hypotheses x 2 cells
    assert 'data-rendered="yes"' in run.stdout           # every row has a height
    assert "CONSOLE" not in run.stderr, [l for l in run.stderr.splitlines() if "CONSOLE" in l]


def test_screenshot_is_not_blank(page, tmp_path):
    shot = tmp_path / "shot.png"
    run = chromium(f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}", page.as_uri())
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    px = read_png(shot.read_bytes())[:, :, :3].astype(int)
    assert px.shape[:2] == (HEIGHT, WIDTH)
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    white = (r > 245) & (g > 245) & (b > 245)
    blue = (b - r > 80) & (b - g > 80)                  # the cells' positive activations
    dark = (r < 80) & (g < 80) & (b < 80)                # text
    assert white.mean() < 0.97 and blue.mean() > 0.002 and dark.mean() > 0.005
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 50
