"""charrnn inspect-cells: the command on a hand-set LSTM checkpoint, its formats,
the colour rules and the renderers."""
import csv
import re
import subprocess
import sys
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import checkpoint
from charrnn.cli import cli
from charrnn.inspect import render
from tests.inspect_planted import VOCAB, planted_lstm, planted_text


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inspect")
    cfg, p = planted_lstm()
    ck = d / "planted.npz"
    checkpoint.save(str(ck), p, {"config": cfg.to_dict(), "vocab": VOCAB})
    text = planted_text(4000, seed=3)
    (d / "text.txt").write_text(text, encoding="utf-8")
    return d, ck, d / "text.txt", text


def charrnn(*args, env=None):
    res = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=True)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    return res.exit_code, res.stdout, res.stderr


def inspect(files, *args, env=None):
    _, ck, txt, _ = files
    return charrnn("inspect-cells", ck, txt, "-q", "--shifts", "100", *args, env=env)


def verdicts(out):
    """{hypothesis: verdict line} from the terminal report."""
    return {line.split()[0]: line for line in out.splitlines() if " -> " in line and "=" in line
            and not line.split()[0].endswith(":")}


def test_default_report_finds_the_planted_cells(files):
    code, out, err = inspect(files, "--color", "never")
    assert code == 0 and err == ""
    v = verdicts(out)
    assert re.search(r"L1 (c|tanh_c|h)\[0\]", v["in_dquote"]) and "-> TRACKED:" in v["in_dquote"]
    assert "lag=+0" in v["in_dquote"] and "r=+1.00" in v["in_dquote"]
    assert "L1 c[1]" in v["column"] and "-> TRACKED:" in v["column"]
    assert "-> LOCAL:" in v["is_space"]
    assert "\x1b" not in out
    assert "# not in this text:" in out and "in_paren" in out
    assert any(set(line) <= set(render.GLYPHS) and line for line in out.splitlines())


def test_no_colour_off_a_terminal_and_colour_when_asked(files):
    assert "\x1b" not in inspect(files, "--only", "in_dquote")[1]          # CliRunner: no tty
    out = inspect(files, "--only", "in_dquote", "--color", "always", env={"COLORTERM": ""})[1]
    assert "\x1b[48;5;" in out and out.count(render.RESET) > 3
    out = inspect(files, "--only", "in_dquote", "--color", "always", env={"COLORTERM": "truecolor"})[1]
    assert "\x1b[48;2;" in out
    assert not any(set(line) <= set(render.GLYPHS) and line for line in out.splitlines())


class Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.mark.parametrize("mode,tty,no_color,want", [
    ("auto", True, None, True),
    ("auto", True, "", True),          # set but empty: ignored, as no-color.org says
    ("auto", True, "1", False),
    ("auto", False, None, False),
    ("never", True, None, False),
    ("always", False, None, True),
    ("always", True, "1", True),       # an explicit flag wins
])
def test_colour_rules(mode, tty, no_color, want):
    env = {} if no_color is None else {"NO_COLOR": no_color}
    assert render.use_color(mode, Stream(tty), env) is want


def test_colour_scale_and_glyphs():
    assert render.rgb(-1) == (255, 0, 0) and render.rgb(0) == (255, 255, 255)
    assert render.rgb(1) == (0, 0, 255) and render.rgb(7) == render.rgb(1)
    assert render.rgb(float("nan")) == (255, 255, 255)
    assert [render.glyph(v) for v in (-1, -5, 0, 1, 9)] == ["▁", "▁", "▅", "█", "█"]


def test_glyph_rows_line_up_with_the_text():
    text = "ab\tc\nlong line here\n\x01"
    out = render.heat_map(text, np.linspace(-1, 1, len(text)), 0, len(text), False, width=6)
    rows = out.split("\n")
    assert rows[0] == "ab→c↵" and rows[1][0] == "▁" and rows[-2] == "·"
    for t, g in zip(rows[::2], rows[1::2]):
        assert len(t) == len(g) and set(g) <= set(render.GLYPHS)
    assert max(len(r) for r in rows) <= 6


def test_json_is_the_full_result(files):
    code, out, _ = inspect(files, "--format", "json", "--top", "2")
    assert code == 0
    res = json.loads(out)
    assert res["format"] == "charrnn-inspect" and res["version"] == 2
    assert res["model"]["kind"] == "lstm" and res["chars"] == len(files[3])
    h = {x["name"]: x for x in res["hypotheses"]}
    assert h["in_dquote"]["verdict"] == "TRACKED" and len(h["in_dquote"]["top"]) == 2
    assert h["in_dquote"]["cell"] == dict(h["in_dquote"]["top"][0])
    assert h["in_dquote"]["cell"]["layer"] == 1 and h["in_dquote"]["cell"]["unit"] == 0
    assert h["column"]["cell"]["auc"] is None and h["in_dquote"]["cell"]["auc"] == 1.0
    for key in ("null99", "p", "untrained", "local", "probe", "probe_untrained", "probe_null99"):
        assert isinstance(h["in_dquote"][key], float)


def test_csv_has_a_row_per_cell_and_hypothesis(files):
    code, out, _ = inspect(files, "--format", "csv", "--only", "in_dquote,column")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 2 * 7 * 8                     # 7 states x 8 units each
    first = [r for r in rows if r["rank"] == "1"]
    assert [(r["hypothesis"], r["unit"], r["layer"]) for r in first] == \
        [("in_dquote", "0", "1"), ("column", "1", "1")]
    assert first[1]["state"] == "c"           # a count: the linear cell state, not tanh(c)
    assert float(first[0]["r"]) > 0.999


def test_user_hypotheses(files, tmp_path):
    d, _, _, text = files
    cols = tmp_path / "col.txt"
    col = np.zeros(len(text))
    for i, ch in enumerate(text):
        col[i] = 0 if ch == "\n" else col[i - 1] + 1 if i else 1
    cols.write_text("\n".join(f"{v:g}" for v in col))
    spans = tmp_path / "spans.txt"
    starts = [i for i, ch in enumerate(text) if ch == '"']
    spans.write_text("# quotes\n" + "\n".join(f"{a} {b}" for a, b in zip(starts[::2], starts[1::2])))
    code, out, err = inspect(files, "--only", "none", "--regex", "b+", "--spans", spans,
                             "--feature", cols, "--color", "never")
    assert code == 0, err
    v = verdicts(out)
    assert set(v) == {"regex:b+", f"spans:{spans}", f"feature:{cols}"}
    assert "[0]" in v[f"spans:{spans}"] and "TRACKED" in v[f"spans:{spans}"]
    assert "L1 c[1]" in v[f"feature:{cols}"] and "TRACKED" in v[f"feature:{cols}"]


def test_show_renders_cells_without_ranking(files):
    code, out, _ = inspect(files, "--show", "L1:0,L1:c:1", "--color", "never", "--chars", "60")
    assert code == 0 and not verdicts(out)
    assert "L1 tanh_c[0]" in out and "L1 c[1]" in out


def test_saturation_and_discover(files):
    code, out, _ = inspect(files, "--only", "in_dquote,column", "--saturation", "--discover",
                           "--color", "never")
    assert code == 0
    assert "# gate saturation" in out and re.search(r"L1 +f +0\.", out)
    disc = out[out.index("# discover"):]
    assert "-> in_dquote" in disc or "-> column" in disc


def test_progress_goes_to_stderr_and_out_writes_a_file(files, tmp_path):
    _, ck, txt, _ = files
    dest = tmp_path / "r.json"
    code, out, err = charrnn("inspect-cells", ck, txt, "--only", "in_dquote", "--format", "json",
                             "--out", dest)
    assert code == 0 and out == ""
    assert "charrnn: lstm 1x8" in err and f"wrote {dest}" in err
    assert json.loads(dest.read_text())["hypotheses"][0]["name"] == "in_dquote"


@pytest.mark.parametrize("args,message", [
    (["--show", "L3:1"], "layers L1..L1"),
    (["--show", "L1:x:1"], "not 'x'"),
    (["--show", "L1:99"], "units are 0..7"),
    (["--show", "what"], "LAYER:UNIT"),
    (["--only", "in_quote"], "no built-in hypothesis in_quote"),
    (["--regex", "("], "not a regular expression"),
    (["--lang", "c", "--only", "in_squote"], "in_squote not a feature of c text"),
    (["--format", "json", "--out", "/no/such/folder/r.json"], "cannot write --out"),
])
def test_one_line_errors(files, args, message):
    code, out, err = inspect(files, *args)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("charrnn: error:") and message in err


def test_text_outside_the_vocabulary_is_an_error(files, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("abc xyz" * 10)
    code, out, err = charrnn("inspect-cells", files[1], bad)
    assert code == 1 and "not in the model's vocabulary" in err


def test_help_has_examples_and_imports_no_numba():
    code, out, err = charrnn("inspect-cells", "--help")
    assert code == 0 and err == ""
    assert "Examples:" in out and "charrnn inspect-cells" in out.split("Examples:")[1]
    probe = ("import sys\nfrom charrnn.cli import cli\ntry:\n    cli(['inspect-cells', '--help'])\n"
             "except SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if m.split('.')[0] == "
             "'numba' or m.startswith('charrnn.inspect')), file=sys.stderr)")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr.strip() == "[]", p.stderr


def test_the_language_is_detected_shown_and_decides_the_features(files):
    code, out, err = inspect(files, "--color", "never")
    assert "# language prose (" in out                       # quotes and words: prose
    code, out, err = inspect(files, "--color", "never", "--lang", "c", "--format", "json")
    got = json.loads(out)
    assert got["lang"]["name"] == "c" and got["lang"]["why"] == "given"
    assert "in_dquote" in got["lang"]["left_out"] and "in_dquote" not in got["skipped"]
    assert all(h["name"] != "in_dquote" for h in got["hypotheses"])


def test_the_language_choices_are_the_packages():
    from charrnn.inspect import lang
    opt = next(p for p in cli.commands["inspect-cells"].params if p.name == "lang")
    assert list(opt.type.choices) == ["auto", *lang.LANGS]


def test_the_page_names_cjk_fonts_before_the_generic_ones(files, tmp_path):
    """CJK text needs a font that has it: the page lists common CJK families after
    the Latin ones, so a reader's browser uses one it has, and ends each list with
    the generic family, so a machine without any still shows the text."""
    dest = tmp_path / "p.html"
    code, _, _ = inspect(files, "--format", "html", "--out", dest)
    page = dest.read_text(encoding="utf-8")
    for rule in ("body", ".cellrow", ".verdict"):
        family = re.search(re.escape(rule) + r" \{[^}]*font-family: ([^;]+);", page).group(1)
        assert "Noto Sans" in family and "CJK" in family and "PingFang SC" in family
        assert family.rstrip().endswith(("monospace", "sans-serif"))
        assert family.index("DejaVu") < family.index("CJK")
