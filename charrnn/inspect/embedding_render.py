"""Output of inspect-embedding: terminal text, JSON and a self-contained HTML/SVG page,
all from the dict embedding.analyse returns."""
import html
import json

from charrnn.inspect.embedding import group_of
from charrnn.inspect.render import _clean, visible

COLOURS = {"vowels": "#d62728", "consonants": "#1f77b4", "digits": "#2ca02c",
           "punctuation": "#ff7f0e", "upper case": "#9467bd", "space": "#7f7f7f",
           "other": "#8c564b"}


def _f(v, fmt="+.2f"):
    return "n/a" if v is None else format(v, fmt)


def header(rep):
    m, ex = rep["model"], rep["pca"]["explained"]
    return (f"embedding {m['embed']} of {len(rep['vocab'])} characters ({m['kind']} "
            f"{m['layers']}x{m['hidden']}); the map's two axes hold {100 * ex[0]:.1f}% and "
            f"{100 * ex[1]:.1f}% of the variance")


def group_lines(rep):
    s = rep["settings"]
    lines = [f"groups (cosine; control: as many characters, or pairs, drawn at random "
             f"{s['shuffles']:,} times)",
             f"  {'group':12} {'n':>3}  {'strength':>8}  {'control':>13}  {'z':>6}  {'p':>6}  members"]
    for g in rep["groups"]:
        ctl = (f"{g['control_mean']:+.2f} ± {g['control_sd']:.2f}"
               if g["control_mean"] is not None else "n/a")
        lines.append(f"  {g['name']:12} {g['n']:>3}  {g['value']:>+8.3f}  {ctl:>13}  "
                     f"{_f(g['z'], '+.1f'):>6}  {_f(g['p'], '.3f'):>6}  {g['members'][:40]}")
    if rep["skipped"]:
        lines.append(f"  not in this vocabulary (fewer than 2): {', '.join(rep['skipped'])}")
    lines.append("  strength: mean cosine within the group minus with the other characters; "
                 "case pairs: mean cosine of each letter with its capital")
    return lines


def scatter(rep, width=72, height=22):
    """The map as text: each character at its place (the first one wins a shared spot)."""
    xs, ys, vocab = rep["pca"]["x"], rep["pca"]["y"], rep["vocab"]
    lo_x, hi_x, lo_y, hi_y = min(xs), max(xs), min(ys), max(ys)
    grid = [[" "] * width for _ in range(height)]
    hidden = 0
    for ch, x, y in zip(vocab, xs, ys):
        c = int(round((x - lo_x) / ((hi_x - lo_x) or 1) * (width - 1)))
        r = int(round((hi_y - y) / ((hi_y - lo_y) or 1) * (height - 1)))
        shown = visible(ch) if ch != " " else "␣"
        if grid[r][c] == " ":
            grid[r][c] = shown
        else:
            hidden += 1
    rows = ["  |" + "".join(row) + "|" for row in grid]
    border = "  +" + "-" * width + "+"
    note = f"  ({hidden} characters hidden under others)" if hidden else ""
    return [border, *rows, border] + ([note] if note else [])


def terminal(rep):
    lines = [header(rep), "", *group_lines(rep), "",
             f"nearest neighbours (cosine similarity, {rep['settings']['neighbours']} each)"]
    for ch, near in zip(rep["vocab"], rep["neighbours"]):
        items = "  ".join(f"{visible(n['char']) if n['char'] != ' ' else '␣'} {n['cosine']:+.2f}"
                          for n in near)
        lines.append(f"  {visible(ch) if ch != ' ' else '␣':>3}   {items}")
    lines += ["", "map (the first two principal axes)", *scatter(rep)]
    return "\n".join(lines) + "\n"


def to_json(rep):
    return json.dumps(_clean(rep), indent=1, ensure_ascii=False) + "\n"


STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #111; background: #fff; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin: 1.4em 0 0.3em; }
table { border-collapse: collapse; font-family: monospace; font-size: 0.85em; }
td, th { padding: 0.1em 0.6em; text-align: right; border-bottom: 1px solid #ddd; }
svg text { font-family: monospace; font-size: 15px; }
.legend span { font-family: monospace; margin-right: 1em; }
"""

SCRIPT = """
(function () {
  var pts = document.querySelectorAll('svg .pt');
  var ok = pts.length > 0;
  pts.forEach(function (p) { var b = p.getBBox(); if (b.width <= 0 || b.height <= 0) ok = false; });
  document.body.setAttribute('data-points', String(pts.length));
  document.body.setAttribute('data-rendered', ok ? 'yes' : 'no');
})();
"""


def _svg(rep, size=(760, 520), pad=30):
    xs, ys, vocab = rep["pca"]["x"], rep["pca"]["y"], rep["vocab"]
    w, h = size
    lo_x, hi_x, lo_y, hi_y = min(xs), max(xs), min(ys), max(ys)
    px = lambda x: pad + (x - lo_x) / ((hi_x - lo_x) or 1) * (w - 2 * pad)  # noqa: E731
    py = lambda y: pad + (hi_y - y) / ((hi_y - lo_y) or 1) * (h - 2 * pad)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" role="img" aria-label="PCA map of the embedding">',
           f'<rect x="0" y="0" width="{w}" height="{h}" fill="#fafafa" stroke="#ccc"/>']
    for ch, x, y in zip(vocab, xs, ys):
        label = visible(ch) if ch != " " else "␣"
        out.append(f'<text class="pt" x="{px(x):.1f}" y="{py(y):.1f}" text-anchor="middle" '
                   f'fill="{COLOURS[group_of(ch)]}"><title>{html.escape(repr(ch))} '
                   f'({x:+.3f}, {y:+.3f})</title>{html.escape(label)}</text>')
    return "\n".join(out + ["</svg>"])


def _groups_table(rep):
    rows = ["<table><tr><th>group</th><th>n</th><th>strength</th><th>control mean</th>"
            "<th>control sd</th><th>z</th><th>p</th><th>members</th></tr>"]
    for g in rep["groups"]:
        rows.append(f"<tr><td>{html.escape(g['name'])}</td><td>{g['n']}</td>"
                    f"<td>{g['value']:+.3f}</td><td>{_f(g['control_mean'])}</td>"
                    f"<td>{_f(g['control_sd'], '.2f')}</td><td>{_f(g['z'], '+.1f')}</td>"
                    f"<td>{_f(g['p'], '.3f')}</td><td>{html.escape(g['members'])}</td></tr>")
    return "".join(rows) + "</table>"


def _neighbour_table(rep):
    rows = ["<table><tr><th>char</th><th>nearest (cosine)</th></tr>"]
    for ch, near in zip(rep["vocab"], rep["neighbours"]):
        items = " &nbsp; ".join(f"{html.escape(repr(n['char']))} {n['cosine']:+.2f}" for n in near)
        rows.append(f"<tr><td>{html.escape(repr(ch))}</td><td style=\"text-align:left\">"
                    f"{items}</td></tr>")
    return "".join(rows) + "</table>"


def to_html(rep):
    """One self-contained page: no external assets, no network."""
    legend = "".join(f'<span style="color:{c}">■ {html.escape(n)}</span>' for n, c in COLOURS.items())
    body = [f"<h1>charrnn inspect-embedding</h1><p>{html.escape(header(rep))}.</p>",
            "<h2>The map (first two principal axes; hover a character for its place)</h2>",
            f'<div class="legend">{legend}</div>', _svg(rep),
            "<h2>Groups</h2><p>Strength: the mean cosine within the group minus with the other "
            "characters (case pairs: the mean cosine of each letter with its capital), against "
            f"as many characters drawn at random {rep['settings']['shuffles']:,} times.</p>",
            _groups_table(rep), "<h2>Nearest neighbours</h2>", _neighbour_table(rep)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>charrnn inspect-embedding</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + f"\n<script>{SCRIPT}</script>\n</body></html>\n")


def main(ck, fmt="terminal", out=None, k=5, shuffles=1000, seed=0, log=None):
    """The inspect-embedding command after parsing: the report of checkpoint ck in fmt,
    to the file out or to stdout."""
    import sys
    from charrnn.paths import check_writable
    from charrnn.inspect.embedding import analyse
    if out:
        check_writable(out, "--out", "--out", "embedding.html")
    rep = analyse(ck.config, ck.params, ck.vocab, k, shuffles, seed)
    text = {"json": to_json, "html": to_html, "terminal": terminal}[fmt](rep)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    if log:
        log(f"charrnn: wrote {out}")
