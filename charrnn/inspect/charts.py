"""One small chart per hypothesis for the inspect-cells HTML page, so a verdict can be
read at a glance: on an axis of correlation r from 0 to 1, the chosen cell's held-out
r against its shifted-feature null (the band up to the null's 99th percentile), the
untrained model's best cell, the locality baseline (what the last characters alone
predict) and R_MIN; beneath, the same for the linear probe over all cells.

Hand-written SVG, no plotting library: inspect-cells needs nothing optional.
"""
import html

from charrnn.inspect import analyze as an

W, H = 460, 104
X0, X1 = 96, 440            # r = 0 and r = 1
ROWS = {"cell": 20, "probe": 48}
AXIS_Y = 66
COLORS = {"r": "#1f77b4", "null": "#dddddd", "untrained": "#ff7f0e", "local": "#9467bd",
          "threshold": "#555555"}


def x_of(r):
    """The horizontal position of a correlation, clipped to the axis."""
    return X0 + (X1 - X0) * min(1.0, max(0.0, float(r)))


def _tick(cls, r, y0, y1, dash="", title=""):
    x = x_of(r)
    return (f'<line class="{cls}" data-r="{r:.4f}" x1="{x:.2f}" x2="{x:.2f}" y1="{y0}" y2="{y1}" '
            f'stroke="{COLORS[cls]}" stroke-width="2"{dash}><title>{title} {r:.3f}</title></line>')


def _dot(cls, r, y, title):
    return (f'<circle class="{cls}" data-r="{r:.4f}" cx="{x_of(r):.2f}" cy="{y}" r="5" '
            f'fill="{COLORS["r"]}"><title>{title} {r:.3f}</title></circle>')


def verdict_svg(res):
    """The chart of one hypothesis's result (analyze.analyze's dict)."""
    cell = res["cell"]
    r = max(0.0, cell["sign"] * cell["r"])  # held out, in the direction chosen (as the verdict)
    parts = [f'<svg class="verdict-chart" xmlns="http://www.w3.org/2000/svg" width="{W}" '
             f'height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11" '
             f'role="img" aria-label="{html.escape(res["name"])}: {res["verdict"]}">']
    for name, y in ROWS.items():
        parts.append(f'<text x="4" y="{y + 4}">{"best cell" if name == "cell" else "probe, all cells"}</text>')
    if res.get("null99") is not None:
        w = x_of(res["null99"]) - X0
        parts.append(f'<rect class="null" data-r="{res["null99"]:.4f}" x="{X0}" y="{ROWS["cell"] - 8}" '
                     f'width="{w:.2f}" height="16" fill="{COLORS["null"]}">'
                     f'<title>null, 99th percentile {res["null99"]:.3f}</title></rect>')
    top, bottom = ROWS["cell"] - 12, ROWS["probe"] + 12
    parts.append(_tick("threshold", an.R_MIN, top, bottom, ' stroke-dasharray="1 3"', "R_MIN"))
    parts.append(_tick("local", res["local"], top, bottom, ' stroke-dasharray="4 3"',
                       "locality baseline"))
    for name, key in (("cell", "untrained"), ("probe", "probe_untrained")):
        if res.get(key) is not None:
            y = ROWS[name]
            parts.append(_tick("untrained", res[key], y - 9, y + 9, "", "untrained model"))
    parts.append(_dot("r", r, ROWS["cell"], "chosen cell, held-out r"))
    parts.append(_dot("r", res["probe"], ROWS["probe"], "probe, held-out r"))
    parts.append(f'<line x1="{X0}" x2="{X1}" y1="{AXIS_Y}" y2="{AXIS_Y}" stroke="#000"/>')
    for t in (0, 0.25, 0.5, 0.75, 1):
        x = x_of(t)
        parts.append(f'<line x1="{x:.2f}" x2="{x:.2f}" y1="{AXIS_Y}" y2="{AXIS_Y + 4}" stroke="#000"/>'
                     f'<text class="tick" x="{x:.2f}" y="{AXIS_Y + 15}" text-anchor="middle">{t:g}</text>')
    parts.append(_legend(AXIS_Y + 32))
    return "".join(parts) + "</svg>"


def _legend(y):
    items = [("r", "held-out r"), ("null", "null 99%"), ("untrained", "untrained"),
             ("local", "local"), ("threshold", "R_MIN")]
    out, x = [], 4
    for cls, label in items:
        if cls == "r":
            out.append(f'<circle cx="{x + 5}" cy="{y - 4}" r="4" fill="{COLORS[cls]}"/>')
        else:
            out.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{COLORS[cls]}"/>')
        out.append(f'<text x="{x + 14}" y="{y}">{label}</text>')
        x += 16 + 7 * len(label)
    return "".join(out)
