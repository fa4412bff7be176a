"""Gate saturation (Karpathy et al. 2015, section 4.3) and hypothesis-free discovery.

Saturation: a sigmoid gate unit is left-saturated at a step when its activation
is below 0.1 and right-saturated above 0.9; per unit, the fraction of steps of
each. (LSTM i, f, o; GRU r, z; the tanh candidates g and n are left out.)

Discovery: every memory cell (c, tanh_c, h for an LSTM; h otherwise) scored by
persistence (lag-1 autocorrelation) times bimodality (Sarle's coefficient
b = (skew^2 + 1) / (excess kurtosis + 3 (n-1)^2 / ((n-2)(n-3))), 5/9 for a
uniform, towards 1 for two separated modes). Each of the best is labelled with
the built-in hypothesis it correlates with most on the held-out half, when that
|r| passes R_MIN and the hypothesis' null99; the rest show the contexts where
they are highest and lowest.
"""
import html

import numpy as np

from charrnn.inspect import analyze as an

SIGMOID_GATES = {"lstm": "ifo", "gru": "rz", "rnn": "", "esn": ""}
LOW, HIGH = 0.1, 0.9
MEMORY = ("c", "tanh_c", "h")


def saturation(rec):
    """[{layer (from 1), gate, left (H,), right (H,)}] per layer and sigmoid gate."""
    out = []
    for layer in range(rec.layers):
        for g in SIGMOID_GATES[rec.kind]:
            a = rec[(layer, g)]
            out.append({"layer": layer + 1, "gate": g,
                        "left": (a < LOW).mean(axis=0).tolist(),
                        "right": (a > HIGH).mean(axis=0).tolist()})
    return out


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


def bimodality(a):
    """Sarle's bimodality coefficient of the columns of a (n, K)."""
    n = a.shape[0]
    z = (a - a.mean(axis=0)) / np.maximum(a.std(axis=0), 1e-12)
    skew = (z ** 3).mean(axis=0)
    kurt = (z ** 4).mean(axis=0) - 3
    return (skew ** 2 + 1) / (kurt + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def persistence(a):
    """Lag-1 autocorrelation of the columns of a (n, K)."""
    z = (a - a.mean(axis=0)) / np.maximum(a.std(axis=0), 1e-12)
    return (z[1:] * z[:-1]).mean(axis=0)


def _contexts(text, series, n=3, span=24, highest=True):
    """The n contexts (span characters ending at the step) where series is most
    extreme, at least span apart."""
    order = np.argsort(-series if highest else series, kind="stable")
    picked = []
    for t in order:
        if all(abs(int(t) - p) >= span for p in picked):
            picked.append(int(t))
            if len(picked) == n:
                break
    return [{"at": t, "value": float(series[t]), "context": text[max(0, t - span + 1):t + 1]}
            for t in picked]


def discover(ins, count=10):
    """The `count` best cells by persistence x bimodality, one state per cell."""
    rec, best = ins.rec, {}
    for b, (layer, state) in enumerate(rec.blocks):
        if state not in MEMORY:
            continue
        a = rec[(layer, state)].astype(np.float64)
        score = np.clip(persistence(a), 0, None) * bimodality(a)
        for u in range(a.shape[1]):
            key = (layer, u)
            if key not in best or score[u] > best[key][0]:
                best[key] = (float(score[u]), b, state)
    out = []
    for (layer, u), (score, b, state) in sorted(best.items(), key=lambda kv: -kv[1][0])[:count]:
        a = rec[(layer, state)][:, u].astype(np.float64)
        item = {"layer": layer + 1, "state": state, "unit": u, "score": score,
                "persistence": float(persistence(a[:, None])[0]),
                "bimodality": float(bimodality(a[:, None])[0]), "label": None}
        if ins.results:
            R = ins.R[1, b, :, u, :]                          # (Λ, J) held out
            k, j = np.unravel_index(np.argmax(np.abs(R)), R.shape)
            res = ins.results[j]
            r = float(R[k, j])
            if abs(r) >= an.R_MIN and (res["null99"] is None or abs(r) > res["null99"]):
                item["label"] = {"hypothesis": res["name"], "r": r, "lag": an.LAGS[k]}
        if item["label"] is None:
            item["top"] = _contexts(ins.text, a, highest=True)
            item["bottom"] = _contexts(ins.text, a, highest=False)
        out.append(item)
    return out


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


def discover_html(ins):
    return ("<h2>Discovered cells</h2><pre>" + html.escape(discover_text(ins.discovered))
            + "</pre>")
