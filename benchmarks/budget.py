"""The best model for a time budget: `charrnn train` as a user runs it, scored on
held-out text (issue #22, benchmarks/QUALITY.md "Time budgets").

    python benchmarks/budget.py --budget 180                      # the defaults, no flag
    python benchmarks/budget.py --budget 180 --name gru -- --model gru --hidden 256
    python benchmarks/budget.py --corpus corpora/python.txt --budget 180 --name py-default
    python benchmarks/budget.py --budget 3600 --keep models -- --preset large
    python benchmarks/budget.py --table                           # the runs so far, as Markdown

The corpus is split as nanoGPT splits tiny Shakespeare, and as `charrnn train`
splits it by default (--val-frac 0.1): the run trains on the first 90% and holds
out the last 10%, which its validation reads. `charrnn train CORPUS --time-limit
BUDGET -o M FLAGS` runs in a fresh process with its log; `charrnn eval M TEST`
scores the -o file (the run's last weights, not its best file) on that last 10%.
Each run appends one JSON line to logs/budget/runs.jsonl with its flags, steps,
the load average around it and the test loss.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LOGS = os.path.join(HERE, "logs", "budget")
RUNS = os.path.join(LOGS, "runs.jsonl")
SHAKESPEARE = os.path.join(HERE, "..", "..", "shared", "corpora", "tinyshakespeare.txt")


def held_out(corpus, work):
    """The last 10% of corpus, as charrnn's split (data.split) holds it out, in a file."""
    from charrnn.data import decode, read_corpus, split
    ids, vocab = read_corpus([corpus])
    path = os.path.join(work, "test.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(decode(split(ids, 0.1)[1], vocab))
    return path


def charrnn(*args):
    return [sys.executable, "-m", "charrnn", *args]


def one(args, flags):
    os.makedirs(LOGS, exist_ok=True)
    name = args.name or "default"
    corpus = os.path.abspath(args.corpus)
    with tempfile.TemporaryDirectory() as work:
        test = held_out(corpus, work)
        model = os.path.join(work, "m.npz")
        log = os.path.join(LOGS, f"{name}.jsonl")
        if os.path.exists(log):
            os.remove(log)
        load0 = os.getloadavg()[0]
        t0 = time.time()
        cmd = charrnn("train", corpus, "--time-limit", str(args.budget), "-o", model,
                      "--seed", str(args.seed), "--log", log, *flags)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.time() - t0
        load1 = os.getloadavg()[0]
        if args.keep:      # the model outlives the run: for inspect-cells, inspect-embedding
            os.makedirs(args.keep, exist_ok=True)
            shutil.copy(model, os.path.join(args.keep, f"{name}.npz"))
        info = json.loads(subprocess.run(charrnn("info", model, "--json"), check=True,
                                         capture_output=True, text=True).stdout)
        ev = json.loads(subprocess.run(charrnn("eval", model, test, "--json"), check=True,
                                       capture_output=True, text=True).stdout)
    tr = info.get("train", {})
    rec = dict(name=name, corpus=os.path.basename(corpus), budget=args.budget, flags=flags,
               seed=args.seed, steps=info.get("step"), plan_steps=tr.get("plan_steps"),
               val=info.get("best_val_loss"), last_val=info.get("val_loss"),
               test=ev["loss_nats"], wall_s=round(wall, 1), load=[load0, load1],
               date=time.strftime("%Y-%m-%d %H:%M"))
    with open(RUNS, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec))


def table():
    rows = [json.loads(line) for line in open(RUNS)]
    print("| run | corpus | budget s | flags | steps | test nats | load |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['corpus']} | {r['budget']:g} | `{' '.join(r['flags']) or '(none)'}` | "
              f"{r['steps']:,} | {r['test']:.4f} | {max(r['load']):.1f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=SHAKESPEARE)
    ap.add_argument("--budget", type=float, default=180, help="--time-limit of the run")
    ap.add_argument("--name", default=None, help="the run's name in the log")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", metavar="DIR", help="copy the -o file to DIR/NAME.npz")
    ap.add_argument("--table", action="store_true", help="print the runs so far as Markdown")
    ap.add_argument("flags", nargs="*", help="after --: flags for charrnn train")
    args = ap.parse_args()
    if args.table:
        table()
    else:
        one(args, args.flags)


if __name__ == "__main__":
    main()
