"""Model quality under one wall-clock budget: RNN, LSTM and GRU at 1, 2 and 3
layers and two sizes on tiny Shakespeare, beside an n-gram baseline, written as a
table like Table 1 of Karpathy, Johnson and Fei-Fei (2015), "Visualizing and
Understanding Recurrent Networks".

    python benchmarks/results.py                                   # 18 models x 600 s: hours
    python benchmarks/results.py --models lstm gru --layers 2 --hidden 256 --budget 1800
    python benchmarks/results.py --budget 5 --models lstm --layers 1 --hidden 32 --out /tmp/q.md

The split, contiguous as nanoGPT's: the first 90% of the text is for training
(exactly what `charrnn train` uses with its default --val-frac 0.1); of the last
10%, the first half is the validation part (it only picks the best checkpoint)
and the second half the test part, never used for any choice. Each model trains
in a fresh process (its own memory, no kernels or caches shared in RAM) through
the charrnn API, with the text up to the end of the validation part and a
val_frac that makes charrnn hold out exactly that part, until the budget runs
out (epochs unlimited; validation counts in the time, compilation does not).
Its best checkpoint by validation loss is then scored on the test part with
charrnn.evaluate. The table is rewritten after every model, so a long run that
stops early leaves what it finished. Each model's training log (a record every
100 steps, as `charrnn train --log` writes it) goes to logs/quality/ beside the
report, for its loss curve in benchmarks/figures.py.
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

import charrnn.setup

charrnn.setup.configure()  # before numpy: one BLAS thread, as the CLI sets it
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ngram  # noqa: E402  (benchmarks/ is not a package)

DEFAULT_OUT = os.path.join(HERE, "QUALITY.md")
# echo state networks, by their readout: one reservoir layer, one-hot input, sizes --esn-hidden
ESN_READOUTS = {"esn": "optimizer", "esn-ridge": "ridge"}
COLUMNS = ["model", "layers", "hidden", "parameters", "steps", "epochs", "time s",
           "val nats", "test nats", "test bits/char"]


def read_splits(path):
    """(train, val, test, vocab): the first 90% of the corpus, then the two halves
    of the last 10%. The vocabulary is the whole text's."""
    from charrnn.data import read_corpus, split
    ids, vocab = read_corpus([path])
    train, held = split(ids, 0.1)
    half = len(held) // 2
    return train, held[:half], held[half:], vocab


# -- one model, in a child process ----------------------------------------------------

def child(kind, layers, hidden, budget, corpus, seed, logs):
    from charrnn import checkpoint
    from charrnn import train as tr
    from charrnn.evaluate import evaluate
    from charrnn.model import ModelConfig, num_params
    train, val, test, vocab = read_splits(corpus)
    seen = np.concatenate([train, val])
    # int(len * val_frac) must be exactly len(val): aim half a character above it
    val_frac = (len(val) + 0.5) / len(seen)
    tc = tr.TrainConfig(time_limit=budget, epochs=0, val_frac=val_frac, val_chars=0, seed=seed,
                        log_every=100, readout=ESN_READOUTS.get(kind, "optimizer"))
    os.makedirs(logs, exist_ok=True)
    log = os.path.join(logs, f"{kind}-{layers}x{hidden}.jsonl")
    open(log, "w").close()  # a new run, not appended to an older one
    cfg = ModelConfig(kind="esn", hidden=hidden, layers=1) if kind in ESN_READOUTS else \
        ModelConfig(kind=kind, hidden=hidden, layers=layers, embed=hidden)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "model.npz")
        run = tr.Run((seen, vocab), out, cfg, tc, fit_batches=True)
        assert len(run.train_ids) == len(train) and len(run.val_ids) == len(val)
        for w in run.warnings:
            print(f"results: warning: {w}", file=sys.stderr)
        tr.warm_up(run.cfg, tc.optimizer)
        tr.run(run, progress=False, log_file=log)
        best = tr.best_path(out)
        ck = checkpoint.load(best if os.path.exists(best) else out)
        test_loss, n = evaluate(ck.config, ck.params, test)
    return {"model": kind, "layers": layers, "hidden": hidden, "parameters": num_params(run.cfg),
            "steps": run.step, "epochs": run.step / run.batches.steps_per_epoch,
            "time_s": run.elapsed, "best_step": ck.meta["step"],
            "val": ck.meta.get("best_val_loss") or float("nan"),
            "test": test_loss, "test_chars": n}


def train_one(kind, layers, hidden, args):
    cmd = [sys.executable, __file__, "--child", json.dumps(
        [kind, layers, hidden, args.budget, args.corpus, args.seed, args.logs])]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if p.returncode:
        sys.exit(f"results: {kind} {layers}x{hidden} failed (exit {p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


def baseline(order, train, val, test, V):
    t = time.perf_counter()
    m = ngram.KneserNey(train, V, order)
    fit_s = time.perf_counter() - t
    return {"model": f"{order}-gram KN", "layers": "-", "hidden": "-", "parameters": m.size,
            "steps": "-", "epochs": "-", "time_s": fit_s, "val": m.loss(val)[0],
            "test": m.loss(test)[0], "test_chars": len(test) - 1}


# -- the report -----------------------------------------------------------------------

def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def row(r):
    def num(x, fmt):
        return format(x, fmt) if isinstance(x, (int, float)) else str(x)
    cells = [r["model"], r["layers"], r["hidden"], num(r["parameters"], ","), num(r["steps"], ","),
             num(r["epochs"], ".2f"), num(r["time_s"], ".0f" if r["time_s"] >= 10 else ".2f"),
             num(r["val"], ".4f"), num(r["test"], ".4f"), num(r["test"] / math.log(2), ".4f")]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def grid(results, base, args):
    """Test nats per character: model x layers down, sizes across (the paper's layout)."""
    by = {(r["model"], r["layers"], r["hidden"]): r["test"] for r in results}
    lines = ["| model | layers | " + " | ".join(f"H = {h}" for h in args.hidden) + " |",
             "|---|---|" + "---|" * len(args.hidden)]
    for kind in args.models:
        for L in [] if kind in ESN_READOUTS else args.layers:
            cells = [f"{by[kind, L, h]:.3f}" if (kind, L, h) in by else "..." for h in args.hidden]
            lines.append(f"| {kind.upper()} | {L} | " + " | ".join(cells) + " |")
    lines.append(f"| {base['model']} | | " + " | ".join(f"{base['test']:.3f}" for _ in args.hidden)
                 + " |")
    esns = [k for k in args.models if k in ESN_READOUTS]
    if esns:  # reservoirs are sized apart: a table of their own
        lines += ["", "| echo state network | readout | " +
                  " | ".join(f"H = {h}" for h in args.esn_hidden) + " |",
                  "|---|---|" + "---|" * len(args.esn_hidden)]
        for kind in esns:
            cells = [f"{by[kind, 1, h]:.3f}" if (kind, 1, h) in by else "..." for h in args.esn_hidden]
            lines.append(f"| {kind.upper()} | {ESN_READOUTS[kind]} | " + " | ".join(cells) + " |")
    return lines


def plan(args):
    """[(kind, layers, hidden)] in the order they train."""
    runs = []
    for kind in args.models:
        if kind in ESN_READOUTS:
            runs += [(kind, 1, h) for h in args.esn_hidden]
        else:
            runs += [(kind, L, h) for L in args.layers for h in args.hidden]
    return runs


def report(results, base, sizes, args, started):
    train, val, test, V = sizes
    lines = [
        "# Model quality at an equal time budget",
        "",
        f"Written by `benchmarks/results.py` (`make results`), started {started}, "
        f"{'finished' if len(results) == args.total else 'in progress'} "
        f"{time.strftime('%Y-%m-%d %H:%M %z')}.",
        f"Machine: {machine()}; load average at the start {args.load:.2f}; "
        f"Python {platform.python_version()}, numpy {np.__version__}.",
        "",
        f"Corpus `{os.path.basename(args.corpus)}`, V = {V}: the first {train:,} characters (90%) "
        f"train; of the last 10%, the first {val:,} are the validation part (only to keep the best "
        f"checkpoint) and the last {test:,} the test part (never used for a choice). "
        f"Every model trains for {args.budget:g} s of wall-clock time (validation included, "
        f"kernel compilation not) with charrnn's defaults (batch 50 x sequence 50, Adam at 2e-3 "
        f"decaying 0.95 per epoch, clipping at 5, no dropout, validation every 200 steps), an "
        f"embedding as wide as the hidden layer (an echo state network: one-hot input into "
        f"one fixed reservoir, its readout trained by Adam without backpropagation through "
        f"time, or by ridge regression), seed {args.seed}; test loss is that of the best "
        f"checkpoint by validation loss, scored by `charrnn.evaluate` (every character after the "
        f"first, as in one pass over the test part). Uniform guessing: "
        f"ln V = {math.log(V):.3f} nats.",
        "",
        "## Test loss in nats per character",
        "",
        *grid(results, base, args),
        "",
        "![Test loss against parameters](figures/quality.svg) "
        "![Loss against minutes](figures/quality-curves.svg)",
        "",
        "The figures are drawn from this table and the runs' logs (logs/quality/) by "
        "`python benchmarks/figures.py`.",
        "",
        "## Every run",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *[row(r) for r in results + [base]],
        "",
        f"The {base['model']} row is an interpolated Kneser-Ney model with estimated discounts "
        f"(`benchmarks/ngram.py`) fitted to the same training part: its parameters are its "
        f"stored n-gram counts, its time the fit; it scores every test character after the "
        f"first from up to {args.ngram_order - 1} characters before it.",
        "",
    ]
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    kinds = ["rnn", "lstm", "gru", *ESN_READOUTS]
    ap.add_argument("--models", nargs="+", choices=kinds, default=kinds)
    ap.add_argument("--layers", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--hidden", nargs="+", type=int, default=[128, 256])
    ap.add_argument("--esn-hidden", nargs="+", type=int, default=[1000, 3000],
                    help="reservoir sizes of the echo state networks (one layer)")
    ap.add_argument("--budget", type=float, default=600, help="training seconds per model")
    ap.add_argument("--out", default=DEFAULT_OUT, help="the Markdown report (default: %(default)s)")
    ap.add_argument("--corpus", default=None, help="text file (default: tiny Shakespeare)")
    ap.add_argument("--ngram-order", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(*json.loads(args.child))))
        return
    args.corpus = os.path.abspath(args.corpus or ngram.corpus_path())
    args.logs = os.path.join(os.path.dirname(os.path.abspath(args.out)), "logs", "quality")
    args.total = len(plan(args))
    args.load = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M %z")
    train, val, test, vocab = read_splits(args.corpus)
    base = baseline(args.ngram_order, train, val, test, len(vocab))
    sizes = (len(train), len(val), len(test), len(vocab))
    print(f"results: {base['model']}: test {base['test']:.4f} nats/char", file=sys.stderr)
    results = []
    report(results, base, sizes, args, started)
    for kind, L, H in plan(args):
        print(f"results: training {kind} {L}x{H} for {args.budget:g} s "
              f"({len(results) + 1}/{args.total})", file=sys.stderr, flush=True)
        r = train_one(kind, L, H, args)
        results.append(r)
        print(f"results: {kind} {L}x{H}: {r['steps']:,} steps, val {r['val']:.4f}, "
              f"test {r['test']:.4f} nats/char", file=sys.stderr, flush=True)
        report(results, base, sizes, args, started)
    print(f"results: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
