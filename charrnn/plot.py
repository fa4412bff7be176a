"""Loss curves from training logs (`charrnn plot`), drawn with matplotlib, an
optional extra (pip install 'charrnn[plot]'): charrnn trains and samples without it.

A log is the JSON Lines file of `charrnn train --log`: one record every log_every
steps with step, chars, elapsed_s, smooth_loss and, at validations, val_loss. A log
appended to by a resumed run may step back (the run resumed from an older checkpoint
than the log's end); the records the resumed run replaced are dropped.

Every drawn artist has an id in the SVG (train-K, val-K for the K-th log, ref-J for
the J-th reference line), so tests and tools can read the points back.
"""
import html
import json
import math
import os

from charrnn import CharrnnError

INSTALL_HINT = "plotting needs matplotlib, an optional extra: pip install 'charrnn[plot]'"
FORMATS = ("png", "svg", "html")
UNITS = {"nats": 1.0, "bits": 1 / math.log(2)}
X_FIELDS = {"step": "step", "chars": "chars", "time": "elapsed_s"}
# matplotlib settings for every figure: text stays text in an SVG (small, readable
# back), no simplification drops a logged point, and equal inputs give equal files
RC = {"svg.fonttype": "none", "svg.hashsalt": "charrnn", "path.simplify": False,
      "font.size": 10, "axes.grid": True, "grid.alpha": 0.3}


def matplotlib():
    """The matplotlib module, or a CharrnnError that says how to get it."""
    try:
        import matplotlib
        import matplotlib.figure  # noqa: F401 - no pyplot: no GUI backend, no global state
        import matplotlib.ticker  # noqa: F401
    except ImportError:
        raise CharrnnError(INSTALL_HINT) from None
    return matplotlib


def format_of(path):
    """'png', 'svg' or 'html' from the file name, or None."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    return {"htm": "html"}.get(ext, ext) if ext in FORMATS + ("htm",) else None


# -- logs ---------------------------------------------------------------------

def read_log(path):
    """The records of a training log, in step order (see the module's docstring)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise CharrnnError(f"cannot read the log {path}: {getattr(e, 'strerror', None) or e}")
    records = []
    for n, line in enumerate(lines, start=1):
        if not line.strip() or (n == len(lines) and not _record(line)):
            continue  # blank, or the torn last line of a run killed while writing it
        rec = _record(line)
        if rec is None:
            raise CharrnnError(f"{path} line {n} is not a record of 'charrnn train --log' "
                               f"(a JSON object with step and smooth_loss)")
        while records and records[-1]["step"] >= rec["step"]:
            records.pop()  # a resumed run replaced these
        records.append(rec)
    if not records:
        raise CharrnnError(f"the log {path} holds no records; write one with 'charrnn train --log {path}'")
    return records


def _record(line):
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    ok = isinstance(rec, dict) and type(rec.get("step")) is int and \
        isinstance(rec.get("smooth_loss"), (int, float))
    return rec if ok else None


def curves(records, x, scale=1.0, path="the log"):
    """((x, y) of the smoothed training loss, (x, y) of the validation loss): x the
    record's X_FIELDS[x] field, y the loss times scale."""
    field = X_FIELDS[x]
    if any(not isinstance(r.get(field), (int, float)) for r in records):
        raise CharrnnError(f"{path} has no '{field}' in its records (an older charrnn wrote "
                           f"it); use --x step")
    train = ([r[field] for r in records], [r["smooth_loss"] * scale for r in records])
    val = [r for r in records if isinstance(r.get("val_loss"), (int, float))]
    return train, ([r[field] for r in val], [r["val_loss"] * scale for r in val])


def labels(paths):
    """Legend names: the file names without .jsonl, or the paths where names repeat."""
    names = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


# -- figures ------------------------------------------------------------------

def new_axes(width=7.5, height=4.5):
    """(figure, axes) of a pyplot-free matplotlib figure."""
    fig = matplotlib().figure.Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def time_unit(seconds):
    """('s' or 'min', divisor) for a time axis reaching this many seconds."""
    return ("min", 60.0) if seconds > 300 else ("s", 1.0)


def draw_curves(ax, runs, x="step", units="nats", prefix=""):
    """Draws runs [(label, records)] on ax, each in its colour: the smoothed training
    loss thin (id PREFIXtrain-K), the validation loss thick with dots (PREFIXval-K).
    Returns the x axis's label."""
    scale, div = UNITS[units], 1.0
    drawn = [(label, *curves(recs, x, scale, label)) for label, recs in runs]
    if x == "time":
        unit, div = time_unit(max(max(t[0], default=0) for _, t, _ in drawn))
    for k, (label, (tx, ty), (vx, vy)) in enumerate(drawn):
        color = f"C{k % 10}"
        ax.plot([v / div for v in tx], ty, color=color, lw=1, alpha=0.55, gid=f"{prefix}train-{k}",
                label=f"{label} train (smoothed)")
        if vx:
            ax.plot([v / div for v in vx], vy, color=color, lw=1.8, marker="o", ms=3,
                    gid=f"{prefix}val-{k}", label=f"{label} validation")
    if x == "chars":
        ax.xaxis.set_major_formatter(matplotlib().ticker.EngFormatter(sep=""))  # 500k, 1.5M
    ax.set_ylabel(f"loss ({units} per character)")
    return {"step": "step", "chars": "characters seen",
            "time": f"wall time ({unit if x == 'time' else ''})"}[x]


def loss_figure(runs, x="step", units="nats", log_scale=False, refs=(), title=None):
    """runs: [(label, records)]; refs: [(loss in `units`, label)]. The figure."""
    fig, ax = new_axes()
    ax.set_xlabel(draw_curves(ax, runs, x, units))
    for j, (loss, label) in enumerate(refs):
        ax.axhline(loss, color="0.35", ls=(0, (4, 3)), lw=1, gid=f"ref-{j}",
                   label=f"{label} ({loss:g})")
    if log_scale:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def save(fig, path, title="charrnn loss curves", caption=""):
    """Writes the figure as PNG, SVG or one self-contained HTML page, by path's extension."""
    fmt = format_of(path)
    mpl = matplotlib()
    try:
        with mpl.rc_context(RC):
            if fmt == "html":
                import io
                buf = io.StringIO()
                fig.savefig(buf, format="svg", metadata={"Date": None})
                with open(path, "w", encoding="utf-8") as f:
                    f.write(page(buf.getvalue(), title, caption))
            else:
                fig.savefig(path, format=fmt, dpi=150,
                            metadata={"Date": None} if fmt == "svg" else {"Software": None})
    except OSError as e:
        raise CharrnnError(f"cannot write {path}: {e.strerror or e}")


def page(svg, title, caption):
    """One HTML file holding the SVG inline: nothing is fetched from anywhere. The script
    marks the body rendered once the figure has a size, for a browser test to read."""
    svg = svg[svg.index("<svg"):]  # without the XML prologue and doctype
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em auto; max-width: 60em; color: #222; }}
svg {{ max-width: 100%; height: auto; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<figure>{svg}</figure>
{caption}
<script>
const fig = document.querySelector("figure svg").getBoundingClientRect();
document.body.dataset.rendered = fig.width > 0 && fig.height > 0 ? "yes" : "no";
</script>
</body></html>
"""


def summary(runs, units="nats"):
    """An HTML table: per run its last step, characters, time and losses."""
    scale = UNITS[units]
    rows = []
    for label, recs in runs:
        last, val = recs[-1], [r for r in recs if isinstance(r.get("val_loss"), (int, float))]
        best = min(val, key=lambda r: r["val_loss"]) if val else None
        cells = [label, f"{last['step']:,}", f"{last.get('chars', 0):,}",
                 f"{last.get('elapsed_s', 0) / 60:.1f}", f"{last['smooth_loss'] * scale:.4f}",
                 f"{best['val_loss'] * scale:.4f} at step {best['step']:,}" if best else "n/a"]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = ["run", "steps", "characters", "minutes", f"train ({units}, smoothed)",
            f"best validation ({units})"]
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>\n"
            + "\n".join(rows) + "</table>")


def plot_logs(paths, out, x="step", units="nats", log_scale=False, refs=()):
    """`charrnn plot`: the curves of the logs at paths, written to out."""
    matplotlib()  # says how to get it before any log is read
    runs = list(zip(labels(paths), [read_log(p) for p in paths]))
    fig = loss_figure(runs, x, units, log_scale, refs)
    save(fig, out, caption=summary(runs, units) if format_of(out) == "html" else "")
