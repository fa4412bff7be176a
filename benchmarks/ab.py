"""Two checkouts of charrnn side by side: the training step and sampling of each, in
fresh processes that alternate (old, new, old, new...), so a refactor's cost is a
ratio measured under the same load.

    git worktree add /tmp/old COMMIT
    python benchmarks/ab.py /tmp/old . --models lstm gru --hidden 256 512 --repeats 5

Each measurement is benchmarks/bench.py's own child (the tree's bench.py, its
charrnn on PYTHONPATH). Prints per model the medians and the median of the paired
ratios new/old (with their range) of the training step and sampling times.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def measure(tree, kind, H, args):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    cmd = [sys.executable, os.path.join(tree, "benchmarks", "bench.py"), "--child", "charrnn",
           kind, str(H), str(args.steps), "3", str(args.sample_chars)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)
    if p.returncode:
        sys.exit(f"ab: {tree} {kind} {H} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--models", nargs="+", default=["rnn", "lstm", "gru"])
    ap.add_argument("--hidden", nargs="+", type=int, default=[256])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sample-chars", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print("| model | train ms old | new | ratio new/old (range) | sample ms old | new | ratio (range) |")
    print("|---|---|---|---|---|---|---|")
    for kind in args.models:
        for H in args.hidden:
            pairs = [(measure(args.old, kind, H, args), measure(args.new, kind, H, args))
                     for _ in range(args.repeats)]
            cells = []
            for key, scale in (("train_s", 1e3 / args.steps), ("sample_s", 1e3)):
                old = statistics.median(o[key] for o, _ in pairs) * scale
                new = statistics.median(n[key] for _, n in pairs) * scale
                ratios = [n[key] / o[key] for o, n in pairs]
                cells.append(f"{old:.1f} | {new:.1f} | {statistics.median(ratios):.3f} "
                             f"({min(ratios):.2f}-{max(ratios):.2f})")
            print(f"| {kind} 2x{H} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
