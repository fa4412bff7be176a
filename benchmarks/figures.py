"""The benchmark records' figures, drawn by charrnn's own plotting code
(charrnn/plot.py) from the records' tables and logs, and written as SVG into
benchmarks/figures/, where the records link to them.

    python benchmarks/figures.py                  # every figure whose data exists
    python benchmarks/figures.py --only speed     # quality, curves, speed, demo, scaling

- quality.svg: QUALITY.md's test loss of every model against its parameters, the
  n-gram baseline as a line.
- quality-curves.svg: loss against minutes of every model of `make results`, from
  its logs (benchmarks/logs/quality/, written since results.py keeps them).
- speed.svg: RESULTS.md's training and sampling speed ratios to PyTorch by hidden
  size, from the newest session's table (medians, with the range of the pairs).
- demo-curves.svg: loss against wall time of the runs in benchmarks/logs/demo/.
- scaling.svg: SCALING.md's measured 2 ranks against 2 threads, and the step model's
  predicted efficiency by hosts and network.
"""
import argparse
import glob
import os
import re
import sys

from charrnn import plot as pl

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "figures")
KINDS = ("rnn", "lstm", "gru")


def tables(path):
    """[(heading, header, rows)] of the Markdown tables in path, in file order: the
    nearest '#' heading above each, its header cells, and its rows of cells."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    found, heading = [], ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("# ").strip()
        if line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-|: ]+\|$", lines[i + 1]):
            header, rows, i = cells(line), [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(cells(lines[i]))
                i += 1
            found.append((heading, header, rows))
            continue
        i += 1
    return found


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def number(text):
    """'1,083,969' -> 1083969.0, '2.46x' -> 2.46."""
    return float(text.replace(",", "").rstrip("x"))


def save(fig, name, note):
    """Writes OUT/name.svg with the note as the figure's caption at its foot."""
    fig.supxlabel(note, fontsize=7, color="0.4", x=0.005, ha="left")  # laid out, not overlaid
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"{name}.svg")
    pl.save(fig, path)
    print(f"figures: wrote {os.path.relpath(path)}", file=sys.stderr)


# -- QUALITY.md -------------------------------------------------------------------------

def quality(md=os.path.join(HERE, "QUALITY.md")):
    """Test loss against parameters, one colour a cell type, labelled layers x hidden."""
    rows = next(r for _, h, r in tables(md) if h[:2] == ["model", "layers"] and "test nats" in h)
    fig, ax = pl.new_axes(7.5, 4.8)
    for k, kind in enumerate(KINDS):
        mine = [r for r in rows if r[0] == kind]
        x, y = [number(r[3]) for r in mine], [number(r[8]) for r in mine]
        ax.plot(x, y, "o", color=f"C{k}", label=kind.upper(), gid=f"quality-{kind}")
        for r, xi, yi in zip(mine, x, y):
            ax.annotate(f"{r[1]}x{r[2]}", (xi, yi), textcoords="offset points",
                        xytext=(4, -9 if kind == "rnn" else 3),  # apart where models meet
                        fontsize=7, color=f"C{k}")
    base = next(r for r in rows if "gram" in r[0])
    ax.axhline(number(base[8]), color="0.35", ls=(0, (4, 3)), lw=1,
               label=f"{base[0]} ({number(base[8]):.3f})", gid="quality-ngram")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("test loss (nats per character)")
    with open(md, encoding="utf-8") as f:
        budget = re.search(r"trains for ([\d.]+) s", f.read())
    ax.set_title(f"Test loss after {budget.group(1) if budget else '?'} s of training, tiny Shakespeare")
    ax.legend(fontsize=8)
    return fig


def quality_curves(logs):
    """Loss against minutes of every model of a quality run: a panel a cell type."""
    mpl_fig = pl.matplotlib().figure.Figure(figsize=(11, 4), layout="constrained")
    axes = mpl_fig.subplots(1, len(KINDS), sharey=True)
    for ax, kind in zip(axes, KINDS):
        mine = sorted(p for p in logs if os.path.basename(p).startswith(kind + "-"))
        runs = list(zip(pl.labels(mine), map(pl.read_log, mine)))
        if runs:
            ax.set_xlabel(pl.draw_curves(ax, runs, "time", prefix=f"{kind}-"))
            ax.legend(fontsize=6)
        ax.set_title(kind.upper())
    return mpl_fig


# -- RESULTS.md -------------------------------------------------------------------------

def ratio(cell):
    """'2.46x (2.10-3.02)' -> (2.46, 2.10, 3.02)."""
    m = re.match(r"([\d.]+)x \(([\d.]+)-([\d.]+)\)", cell)
    return tuple(map(float, m.groups()))


def speed(md=os.path.join(HERE, "RESULTS.md")):
    """The newest session's train and sample ratios (charrnn / PyTorch) by hidden size."""
    heading, header, rows = next(t for t in tables(md) if "train ratio" in t[1])
    ti, si = header.index("train ratio"), header.index("sample ratio")
    fig = pl.matplotlib().figure.Figure(figsize=(9, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, col, what in ((axes[0], ti, "training"), (axes[1], si, "sampling one text")):
        for k, kind in enumerate(KINDS):
            mine = [r for r in rows if r[0].startswith(kind + " ") and r[col]]
            H = [int(r[0].split("x")[-1]) for r in mine]
            med, lo, hi = zip(*(ratio(r[col]) for r in mine))
            bars = ax.errorbar(H, med, yerr=[[m - a for m, a in zip(med, lo)],
                                             [b - m for m, b in zip(med, hi)]],
                               marker="o", capsize=3, color=f"C{k}", label=f"{kind.upper()} 2 layers")
            bars.lines[0].set_gid(f"speed-{what.split()[0]}-{kind}")  # the medians' line alone
        ax.axhline(1, color="0.35", lw=1)
        target = 1.5 if what == "training" else 20  # issue #3's targets
        ax.axhline(target, color="0.35", lw=1, ls=(0, (4, 3)), label=f"target {target:g}x")
        ax.set_xscale("log", base=2)
        ax.set_xticks([128, 256, 512], ["128", "256", "512"])
        ax.set_xlabel("hidden units per layer")
        ax.set_ylabel("charrnn / PyTorch (x)")
        ax.set_title(f"{what}: speed ratio")
        ax.set_ylim(bottom=0 if what == "training" else 1)
        if what != "training":
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.suptitle(f"RESULTS.md, {heading.split(',')[0]}", fontsize=10)
    return fig


# -- demo logs --------------------------------------------------------------------------

def demo(logs):
    """The demo runs against wall time and against steps, side by side: which model
    is ahead at a time, and whether by faster steps or by better ones."""
    runs = list(zip(pl.labels(logs), map(pl.read_log, logs)))
    fig = pl.matplotlib().figure.Figure(figsize=(10, 4), layout="constrained")
    for ax, x in zip(fig.subplots(1, 2, sharey=True), ("time", "step")):
        ax.set_xlabel(pl.draw_curves(ax, runs, x, prefix=f"{x}-"))
    ax.legend(fontsize=8)
    secs = max(recs[-1].get("elapsed_s", 0) for _, recs in runs)
    fig.suptitle(f"{len(runs)} models side by side, {secs:.0f} s each, on a busy machine "
                 f"(a demo, not a benchmark)", fontsize=10)
    return fig


# -- SCALING.md -------------------------------------------------------------------------

def scaling(md=os.path.join(HERE, "SCALING.md")):
    """Left: the measured ratio of 2 ranks to 2 threads by model and transport, beside
    issue #20's 0.9x; right: the step model's efficiency against hosts, 50 streams a
    host, for each model and network speed."""
    found = tables(md)
    _, mh, measured = next(t for t in found if "ratio" in t[1])
    _, ph, model = next(t for t in found if "hosts" in t[1])
    fig = pl.matplotlib().figure.Figure(figsize=(10, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    labels = [f"{r[0]}\n{r[1]}" for r in measured]
    ratios = [number(r[mh.index("ratio")]) for r in measured]
    bars = left.bar(range(len(ratios)), ratios, color=["C0", "C1"] * (len(ratios) // 2 + 1))
    for i, bar in enumerate(bars):
        bar.set_gid(f"scaling-measured-{i}")
    left.axhline(0.9, color="0.35", lw=1, ls=(0, (4, 3)), label="target 0.9x")
    left.axhline(1.0, color="0.35", lw=1)
    left.set_xticks(range(len(ratios)), labels, fontsize=8)
    left.set_ylabel("2 ranks x 1 thread / 1 process x 2 threads")
    left.set_title("measured on this machine")
    left.legend(fontsize=8)
    nets = [h for h in ph if h.endswith("Gb/s")]
    for m, name in enumerate(dict.fromkeys(r[0] for r in model)):
        rows = [r for r in model if r[0] == name and r[ph.index("streams a host")] == "50"]
        hosts = [int(r[ph.index("hosts")]) for r in rows]
        for k, net in enumerate(nets):
            eff = [number(r[ph.index(net)].rstrip("%")) for r in rows]
            line, = right.plot(hosts, eff, marker="o", color=f"C{m}", ls=["-", "--", ":"][k],
                               label=f"{name}, {net}")
            line.set_gid(f"scaling-{name}-{net.split()[0]}")
    right.set_xscale("log", base=2)
    right.set_xticks([4, 16, 64], ["4", "16", "64"])
    right.set_xlabel("hosts (50 streams a host)")
    right.set_ylabel("predicted efficiency (%)")
    right.set_title("the step model")
    right.legend(fontsize=7, ncol=3)
    fig.suptitle("SCALING.md: data-parallel training over MPI", fontsize=10)
    return fig


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["quality", "curves", "speed", "demo", "scaling"],
                    action="append")
    args = ap.parse_args(argv)
    want = set(args.only or ["quality", "curves", "speed", "demo", "scaling"])
    if "quality" in want:
        save(quality(), "quality", "from benchmarks/QUALITY.md by benchmarks/figures.py")
    qlogs = sorted(glob.glob(os.path.join(HERE, "logs", "quality", "*.jsonl")))
    if "curves" in want and qlogs:
        save(quality_curves(qlogs), "quality-curves",
             "from benchmarks/logs/quality/ (make results) by benchmarks/figures.py")
    if "speed" in want:
        save(speed(), "speed", "from benchmarks/RESULTS.md by benchmarks/figures.py; "
             "dots: medians of paired runs, bars: their range")
    dlogs = sorted(glob.glob(os.path.join(HERE, "logs", "demo", "*.jsonl")))
    if "demo" in want and dlogs:
        save(demo(dlogs), "demo-curves", "from benchmarks/logs/demo/ by benchmarks/figures.py; "
             "see benchmarks/logs/demo/README.md for how they were made")
    if "scaling" in want:
        save(scaling(), "scaling", "from benchmarks/SCALING.md by benchmarks/figures.py; "
             "left: one run of each; right: the model, not a measurement")


if __name__ == "__main__":
    main()
