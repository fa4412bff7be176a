"""Output of an Inspection: terminal (ANSI colour or glyphs), HTML, JSON and CSV.

Colour scale, fixed on [-1, 1] as in Karpathy et al. 2015: -1 red, 0 white,
+1 blue; values beyond are clipped. On a terminal the colour is the background
of each character (truecolor when COLORTERM says so, else the 256-colour cube);
without colour a row of glyphs ▁▂▃▄▅▆▇█ under each line of text shows the value.
Newlines are drawn as '↵', tabs as '→', other control characters as '·'.
"""
import csv
import html
import json
import math
import os

import numpy as np

from charrnn.inspect import analyze as an

GLYPHS = "▁▂▃▄▅▆▇█"
RESET = "\x1b[0m"


def use_color(mode, stream, environ=os.environ):
    """--color: 'always' and 'never' as said; 'auto' colours only a terminal, and
    not when NO_COLOR is set and non-empty. An explicit 'always' wins over NO_COLOR,
    as no-color.org asks of per-invocation flags."""
    if mode == "always":
        return True
    if mode == "never" or environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def rgb(v):
    """The diverging colour of a value: (r, g, b) 0..255."""
    v = 0.0 if not math.isfinite(v) else max(-1.0, min(1.0, float(v)))
    w = int(round(255 * (1 - abs(v))))
    return (255, w, w) if v < 0 else (w, w, 255)


def dark(v):
    """Whether rgb(v) is dark enough that text on it must be white to stay readable."""
    return math.isfinite(v) and abs(v) > 0.55


def glyph(v):
    v = 0.0 if not math.isfinite(v) else max(-1.0, min(1.0, float(v)))
    return GLYPHS[int(round((v + 1) / 2 * (len(GLYPHS) - 1)))]


def visible(ch):
    return "↵" if ch == "\n" else "→" if ch == "\t" else "·" if ord(ch) < 32 or ch == "\x7f" else ch


def _ansi(v, truecolor):
    r, g, b = rgb(v)
    if truecolor:
        fg = "255;255;255" if dark(v) else "0;0;0"
        return f"\x1b[48;2;{r};{g};{b}m\x1b[38;2;{fg}m"
    cube = 16 + 36 * round(r / 51) + 6 * round(g / 51) + round(b / 51)
    return f"\x1b[48;5;{cube}m\x1b[38;5;{231 if dark(v) else 16}m"


def _lines(text, a, b, width):
    """[(start, stop)] of the displayed lines of text[a:b]: broken after each
    newline and at width characters."""
    out, start = [], a
    for i in range(a, b):
        if text[i] == "\n" or i + 1 - start >= width:
            out.append((start, i + 1))
            start = i + 1
    if start < b:
        out.append((start, b))
    return out


def heat_map(text, values, a, b, color, truecolor=False, width=100):
    """text[a:b] with values[a:b] as background colours, or as glyph rows."""
    rows = []
    for s, e in _lines(text, a, b, width):
        shown = [visible(text[i]) for i in range(s, e)]
        if color:
            rows.append("".join(_ansi(values[i], truecolor) + ch for i, ch in zip(range(s, e), shown))
                        + RESET)
        else:
            rows.append("".join(shown))
            rows.append("".join(glyph(values[i]) for i in range(s, e)))
    return "\n".join(rows)


def cell_name(cell):
    """'L1 tanh_c[52]' from a cell dict (layer 0-based) or (layer, state, unit)."""
    if isinstance(cell, dict):
        cell = (cell["layer"], cell["state"], cell["unit"])
    return f"L{cell[0] + 1} {cell[1]}[{cell[2]}]"


def _num(v, fmt=".2f", signed=False):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "  -  "
    return format(v, ("+" if signed else "") + fmt)


def verdict_line(res, name_width=16):
    c = res["cell"]
    return (f"{res['name']:<{name_width}} {cell_name(c):<14} r={_num(c['r'], signed=True)}  "
            f"AUC={_num(c['auc'])}  lag={c['lag']:+d}  null99={_num(res['null99'])}  "
            f"p={_num(res['p'], '.3f')}  untrained={_num(res['untrained'])}  "
            f"local={_num(res['local'])}  probe={_num(res['probe'])} "
            f"(null99 {_num(res.get('probe_null99'))}, untrained {_num(res['probe_untrained'])})"
            f" -> {res['verdict']}: {res.get('why', '')}")


def lang_line(ins):
    """'# language c (file name x.h); not features of c: in_dquote, ...'"""
    lang, why = ins.lang
    left = f"; not features of {lang}: {', '.join(ins.left_out)}" if ins.left_out else ""
    return f"# language {lang} ({why}){left}"


def terminal(ins, color=False, truecolor=False, chars=320, maps=1, width=100):
    """The default report: verdict lines, then per hypothesis its heat maps."""
    out = []
    w = max([len(r["name"]) for r in ins.results] + [10]) + 1
    if ins.results:
        out.append(f"# {len(ins.text):,} characters; cells chosen on the first half, "
                   f"numbers from the second (see docs/inspect.md)")
        out += [verdict_line(r, w) for r in ins.results]
    out.append(lang_line(ins))
    if ins.skipped:
        out.append(f"# not in this text: {', '.join(ins.skipped)}")
    b_sl = an.halves(len(ins.text))[1]
    for res, h in zip(ins.results, ins.hyps):
        a, b = ins_window(ins, h.values, b_sl, chars)
        for cell in res["top"][:maps]:
            out.append("")
            out.append(f"{res['name']}: {cell_name(cell)}  r={_num(cell['r'], signed=True)}  "
                       f"lag={cell['lag']:+d}  -> {res['verdict']}  (characters {a:,}..{b:,})")
            out.append(heat_map(ins.text, colour_values(ins, cell), a, b, color, truecolor, width))
    for layer, state, unit in ins.shown:
        a, b = b_sl.start, min(b_sl.stop, b_sl.start + chars)
        out.append("")
        out.append(f"{cell_name((layer, state, unit))}  (characters {a:,}..{b:,})")
        out.append(heat_map(ins.text, colour_values(ins, (layer, state, unit)), a, b, color,
                            truecolor, width))
    if ins.saturation is not None:
        out += ["", saturation_text(ins.saturation).rstrip("\n")]
    if ins.discovered is not None:
        out += ["", discover_text(ins.discovered).rstrip("\n")]
    return "\n".join(out) + "\n"


def colour_values(ins, cell):
    """What a cell's colours show: its activation, and for the unbounded LSTM cell
    state c, tanh(c), so the fixed [-1, 1] scale stays readable."""
    layer, state, unit = (cell["layer"], cell["state"], cell["unit"]) if isinstance(cell, dict) \
        else cell
    v = ins.series(layer, state, unit)
    return v.map(np.tanh) if state == "c" else v


def ins_window(ins, values, part, chars):
    return window(values, part.start, part.stop, chars, ins.text)


def window(values, start, stop, width, text):
    """[a, b) of at most width characters within [start, stop) where the feature
    varies most, beginning at a line start when one is near; for rendering."""
    n = stop - start
    if n <= width:
        return start, stop
    v = np.asarray(values[start:stop], np.float64)
    c1 = np.concatenate([[0.0], np.cumsum(v)])
    c2 = np.concatenate([[0.0], np.cumsum(v * v)])
    s1, s2 = c1[width:] - c1[:-width], c2[width:] - c2[:-width]
    var = s2 / width - (s1 / width) ** 2
    a = start + int(np.argmax(var > var.max() - 1e-9))
    nl = text.rfind("\n", max(start, a - width // 4), a)
    a = nl + 1 if nl >= 0 else a
    return a, min(stop, a + width)



# -- the extras (extras.py computes them) ----------------------------------------

def saturation_text(sat, size=(17, 41)):
    """A table of the means, and per layer a scatter of units: x the right-saturated
    fraction, y the left-saturated one, each unit drawn as its gate's letter."""
    if not sat:
        return "# saturation: this model has no sigmoid gates\n"
    lines = ["# gate saturation: fraction of steps below 0.1 (left) and above 0.9 (right)",
             "layer gate  mean_left  mean_right  units_mostly_left  units_mostly_right"]
    for s in sat:
        left, right = np.array(s["left"]), np.array(s["right"])
        lines.append(f"L{s['layer']:<4} {s['gate']:<4}  {left.mean():9.3f}  {right.mean():10.3f}  "
                     f"{int((left > 0.5).sum()):17d}  {int((right > 0.5).sum()):18d}")
    rows, cols = size
    for layer in sorted({s["layer"] for s in sat}):
        grid = [[" "] * cols for _ in range(rows)]
        for s in (s for s in sat if s["layer"] == layer):
            for lf, rt in zip(s["left"], s["right"]):
                y, x = rows - 1 - int(round(lf * (rows - 1))), int(round(rt * (cols - 1)))
                grid[y][x] = s["gate"] if grid[y][x] in (" ", s["gate"]) else "*"
        lines.append(f"L{layer}: y = fraction left-saturated (0..1 up), x = right-saturated (0..1); "
                     f"* = several gates")
        lines += ["  |" + "".join(r) for r in grid]
        lines.append("  +" + "-" * cols)
    return "\n".join(lines) + "\n"


COLORS = {"i": "#1f77b4", "f": "#2ca02c", "o": "#d62728", "r": "#9467bd", "z": "#ff7f0e"}


def saturation_svg(sat, size=220):
    """Inline SVG scatter plots, one per layer."""
    plots = []
    for layer in sorted({s["layer"] for s in sat}):
        pad, w = 30, size
        dots = []
        for s in (s for s in sat if s["layer"] == layer):
            for lf, rt in zip(s["left"], s["right"]):
                cx, cy = pad + rt * (w - pad - 5), w - pad - lf * (w - pad - 5)
                dots.append(f'<circle class="dot" cx="{cx:.1f}" cy="{cy:.1f}" r="2.5" '
                            f'fill="{COLORS.get(s["gate"], "#333")}" fill-opacity="0.7">'
                            f'<title>{s["gate"]} left {lf:.2f} right {rt:.2f}</title></circle>')
        legend = "".join(f'<text x="{pad + 12 + 28 * k}" y="12" font-size="11" '
                         f'fill="{COLORS[g]}">{g}</text>'
                         for k, g in enumerate(sorted({s["gate"] for s in sat if s["layer"] == layer})))
        plots.append(
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{w}" '
            f'viewBox="0 0 {w} {w}" class="saturation">'
            f'<rect x="{pad}" y="5" width="{w - pad - 5}" height="{w - pad - 5}" fill="none" '
            f'stroke="#888"/>{legend}'
            f'<text x="{w / 2}" y="{w - 8}" font-size="11" text-anchor="middle">right-saturated'
            f'</text><text x="12" y="{w / 2}" font-size="11" text-anchor="middle" '
            f'transform="rotate(-90 12 {w / 2})">left-saturated</text>'
            f'<text x="{pad}" y="{w - 20}" font-size="10">L{layer}</text>{"".join(dots)}</svg>')
    return "<div>" + "".join(plots) + "</div>"


def saturation_table_html(sat):
    rows = "".join(f"<tr><td>L{s['layer']}</td><td>{s['gate']}</td>"
                   f"<td>{np.mean(s['left']):.3f}</td><td>{np.mean(s['right']):.3f}</td></tr>"
                   for s in sat)
    return ("<table><tr><th>layer</th><th>gate</th><th>mean left</th><th>mean right</th></tr>"
            f"{rows}</table>")


def discover_text(items):
    lines = ["# discover: cells by persistence x bimodality (no hypothesis needed)"]
    for d in items:
        head = (f"L{d['layer']} {d['state']}[{d['unit']}]  persistence={d['persistence']:.2f}  "
                f"bimodality={d['bimodality']:.2f}")
        if d["label"]:
            lab = d["label"]
            lines.append(f"{head} -> {lab['hypothesis']} (r={lab['r']:+.2f}, lag={lab['lag']:+d})")
            continue
        lines.append(f"{head} -> ?")
        for side in ("top", "bottom"):
            shown = "  ".join(repr(c["context"]) for c in d[side])
            lines.append(f"    {side:<6} {shown}")
    return "\n".join(lines) + "\n"


def discover_html(items):
    return ("<h2>Discovered cells</h2><pre>" + html.escape(discover_text(items))
            + "</pre>")


# -- for scripts -----------------------------------------------------------------

def _clean(x):
    """JSON has no NaN: None instead; numpy scalars to Python."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def to_json(ins):
    return json.dumps(_clean(ins.to_dict()), indent=1) + "\n"


CSV_FIELDS = ("hypothesis", "verdict", "rank", "layer", "state", "unit", "lag", "r_select", "r")


def to_csv(ins, stream):
    """One row per cell and hypothesis, best first: the cell's best lag on the
    choosing half, its r there and on the reporting half. Layers from 1."""
    w = csv.writer(stream, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for j, res in enumerate(ins.results):
        R = ins.R
        cells = an.best_cells(R, j, top=R.shape[1] * R.shape[3])
        for rank, (b, unit, k) in enumerate(cells, 1):
            layer, state = ins.names[b]
            w.writerow([res["name"], res["verdict"], rank, layer + 1, state, unit, an.LAGS[k],
                        f"{R[0, b, k, unit, j]:.4f}", f"{R[1, b, k, unit, j]:.4f}"])


# -- HTML ------------------------------------------------------------------------

# Latin fonts first, then CJK ones where the reader's machine has any (a browser
# takes each character from the first listed font that has it), then the generic
MONO = ('ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, "Noto Sans Mono CJK SC", '
        '"Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei Mono", "PingFang SC", '
        '"Hiragino Sans", "Microsoft YaHei", "MS Gothic", "Malgun Gothic", monospace')
SANS = ('system-ui, "DejaVu Sans", Helvetica, Arial, "Noto Sans CJK SC", "Source Han Sans SC", '
        '"PingFang SC", "Hiragino Sans", "Microsoft YaHei", "Malgun Gothic", sans-serif')

STYLE = """
body { font-family: SANS; margin: 1.5em; color: #111; background: #fff; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin: 1.4em 0 0.3em; }
.verdict { font-family: MONO; white-space: pre; font-size: 0.85em; }
.cellrow { font-family: MONO; font-size: 0.9em; margin: 0.2em 0 0.8em; overflow-x: auto; }
.line { white-space: pre; line-height: 1.35; color: #000; }
.feat { white-space: pre; line-height: 0; height: 5px; margin-bottom: 3px; color: transparent;
  overflow: hidden; }
.feat span { display: inline-block; height: 5px; vertical-align: top; }
.label { font-family: MONO; font-size: 0.8em; color: #555; margin-top: 0.6em; }
table { border-collapse: collapse; font-family: MONO; font-size: 0.85em; }
pre { font-family: MONO; }
td, th { padding: 0.1em 0.6em; text-align: right; border-bottom: 1px solid #ddd; }
""".replace("MONO", MONO).replace("SANS", SANS)

SCRIPT = """
(function () {
  var rows = document.querySelectorAll('.cellrow');
  var ok = true;
  rows.forEach(function (r) { if (r.getBoundingClientRect().height <= 0) ok = false; });
  document.body.setAttribute('data-rows', String(rows.length));
  document.body.setAttribute('data-rendered', ok ? 'yes' : 'no');
})();
"""


def _spans(text, a, b, colour, title, white=lambda i: False):
    return "".join(f'<span style="background:rgb{colour(i)}{";color:#fff" if white(i) else ""}" '
                   f'title="{title(i)}">{html.escape(visible(text[i]))}</span>' for i in range(a, b))


def _html_cell(text, values, raw, feat, scale, a, b):
    """One cell: per line of text, the characters coloured by values (the raw
    activation on hover) and beneath them a bar as dark as |feature| (scaled to
    the window's largest), so each character sits over its own feature value."""
    rows = []
    for s, e in _lines(text, a, b, 10 ** 9):
        rows.append('<div class="line">' + _spans(text, s, e, lambda i: rgb(values[i]),
                                                  lambda i: f"{raw[i]:+.3f}",
                                                  lambda i: dark(values[i])) + "</div>")
        if feat is not None:
            grey = lambda i: (lambda g: (g, g, g))(int(round(255 - 175 * min(1.0, abs(float(feat[i]))))))  # noqa: E731
            rows.append('<div class="feat">' + _spans(text, s, e, grey,
                                                      lambda i: f"{feat[i] * scale:g}") + "</div>")
    return f'<div class="cellrow">{"".join(rows)}</div>'


def to_html(ins, chars=600, maps=3):
    """One self-contained page: no external assets, no network."""
    from charrnn.inspect.charts import verdict_svg
    c = ins.cfg
    body = [f"<h1>charrnn inspect-cells: {c.kind} {c.layers}x{c.hidden}, "
            f"{len(ins.text):,} characters</h1>",
            "<p>Cells chosen on the first half of the text, numbers from the second. "
            "Colour: the activation on a fixed scale, -1 red, 0 white, +1 blue (hover for the "
            "value); the grey bar beneath is the feature.</p>",
            f"<p>{html.escape(lang_line(ins)[2:])}.</p>"]
    b_sl = an.halves(len(ins.text))[1]
    for res, h in zip(ins.results, ins.hyps):
        body.append(f'<h2>{html.escape(res["name"])}: {res["verdict"]}</h2>')
        body.append(f'<div class="verdict">{html.escape(verdict_line(res))}</div>')
        body.append(verdict_svg(res))
        a, b = ins_window(ins, h.values, b_sl, chars)
        f = h.values
        scale = max(1.0, float(np.abs(f[a:b]).max()) if b > a else 1.0)
        feat = f / scale
        for cell in res["top"][:maps]:
            body.append(f'<div class="label">{html.escape(cell_name(cell))}  '
                        f'r={_num(cell["r"], signed=True)}  lag={cell["lag"]:+d}</div>')
            raw = ins.series(cell["layer"], cell["state"], cell["unit"])
            body.append(_html_cell(ins.text, colour_values(ins, cell), raw, feat, scale, a, b))
    for layer, state, unit in ins.shown:
        a, b = b_sl.start, min(b_sl.stop, b_sl.start + chars)
        body.append(f'<h2>{html.escape(cell_name((layer, state, unit)))}</h2>')
        body.append(_html_cell(ins.text, colour_values(ins, (layer, state, unit)),
                               ins.series(layer, state, unit), None, 1.0, a, b))
    if ins.saturation is not None:
        body.append("<h2>Gate saturation</h2>")
        body.append(saturation_table_html(ins.saturation))
        body.append(saturation_svg(ins.saturation))
    if ins.discovered is not None:
        body.append(discover_html(ins.discovered))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>charrnn inspect-cells</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + f"\n<script>{SCRIPT}</script>\n</body></html>\n")
