"""charrnn against PyTorch at an equal wall-clock budget: the same model, the same
starting weights, the same batches in the same order, the same optimizer, learning
rate schedule, clipping and validation; only the implementation differs, so the
validation loss each reaches in the budget measures how much training each fits in.

    python benchmarks/equal_budget.py                       # 2x128 LSTM, 600 s each
    python benchmarks/equal_budget.py --kind gru --hidden 256 --embed 64 --budget 300
    python benchmarks/equal_budget.py --budget 5 --out /tmp/eb.md   # a quick check

Each side runs in a fresh process, one after the other, on all cores (charrnn's
threads; torch.set_num_threads). The clock starts after compilation (charrnn's
warm-up) and includes the validations, every --eval-every steps, on the whole
held-out last 10% of tiny Shakespeare (or --corpus), scored as charrnn.evaluate
scores it (50 contiguous parts side by side, each after 200 characters of burn-in).
PyTorch starts from charrnn's initial weights, copied as docs/checkpoint.md says;
before training both score those weights, and the two scores must agree (the check
that both sides evaluate the same model on the same characters). Needs PyTorch
(pip install torch==2.13.0); charrnn never does.
"""
import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import time

import charrnn.setup  # noqa: E402

charrnn.setup.configure()  # before numpy (results imports it): one BLAS thread, as the CLI

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import corpus_path, peak_rss_mb  # noqa: E402  (benchmarks/ is not a package)
from results import machine  # noqa: E402

DOC = os.path.join(HERE, "..", "docs", "checkpoint.md")


def setup(args):
    """The charrnn run both sides start from: its data, batches, schedule and weights."""
    from charrnn.data import read_corpus
    from charrnn.model import ModelConfig
    from charrnn.train import Run, TrainConfig
    tc = TrainConfig(time_limit=args["budget"], epochs=0, val_chars=0, eval_every=args["eval_every"],
                     checkpoint_every=10**9, seed=args["seed"])
    cfg = ModelConfig(kind=args["kind"], hidden=args["hidden"], layers=args["layers"], embed=args["embed"])
    return Run(read_corpus([args["corpus"]]), os.devnull, cfg, tc)


def child_charrnn(args):
    from charrnn import train as tr
    from charrnn.evaluate import evaluate
    run = setup(args)
    run.save = lambda path: None  # nothing to keep; the clock should not count disk writes
    tr.warm_up(run.cfg, run.tc.optimizer)
    initial, _ = evaluate(run.cfg, run.p, run.val_ids)
    curve = []
    validate = run.validate

    def logged(scheduled=True):  # every validation, with the training time it took to reach
        loss = validate(scheduled)
        curve.append((run.step, time.time() - started, loss))
        return loss
    run.validate = logged
    started = time.time()
    tr.run(run, progress=False)
    return {"initial": initial, "steps": run.step, "seconds": time.time() - started,
            "curve": curve, "rss_mb": peak_rss_mb()}


def child_torch(args):
    import numpy as np
    import torch
    from charrnn.evaluate import layout
    run = setup(args)
    torch.set_num_threads(os.cpu_count())
    ns = {"__name__": "doc_torch"}  # to_torch, from the document itself
    text = open(DOC, encoding="utf-8").read()
    section = text[text.index("\n## Loading into PyTorch"):]
    exec(re.search(r"```python\n(.*?)```", section, re.S).group(1), ns)
    p64 = {k: v.astype(np.float64) for k, v in run.p.items()}
    cfg = run.cfg.to_dict()
    emb, rnn, out = ns["to_torch"](p64, cfg)
    mods = [m.float() for m in (emb, rnn, out) if m is not None]
    params = [q for m in mods for q in m.parameters()]
    opt = torch.optim.Adam(params, lr=run.tc.lr, betas=(0.9, 0.999), eps=1e-8)
    L, S, N, H = cfg["layers"], 2 if cfg["kind"] == "lstm" else 1, run.tc.batch_size, cfg["hidden"]
    xent = torch.nn.functional.cross_entropy

    def forward(ids, state):  # docs/checkpoint.md's torch_forward, in float32
        x = emb(ids) if emb is not None else torch.nn.functional.one_hot(ids, cfg["vocab_size"]).float()
        if cfg["kind"] == "lstm":
            y, (hT, cT) = rnn(x, (state[:, 0].contiguous(), state[:, 1].contiguous()))
            return out(y), torch.stack([hT, cT], dim=1)
        y, hT = rnn(x, state[:, 0].contiguous())
        return out(y), hT[:, None]

    def evaluate(ids, chunk=100):  # charrnn.evaluate, in torch
        hist, xs, ys, tail_x, tail_y = (torch.from_numpy(a.astype(np.int64)) for a in layout(ids))
        state, total = torch.zeros(L, S, xs.shape[0], H), 0.0
        with torch.no_grad():
            if hist.shape[1]:
                _, state = forward(hist.T.contiguous(), state)
                state[:, :, 0] = 0
            for k in range(0, xs.shape[1], chunk):
                logits, state = forward(xs[:, k:k + chunk].T.contiguous(), state)
                total += xent(logits.reshape(-1, cfg["vocab_size"]),
                              ys[:, k:k + chunk].T.reshape(-1), reduction="sum").item()
            if len(tail_x):
                logits, _ = forward(tail_x[:, None], state[:, :, -1:].contiguous())
                total += xent(logits.reshape(-1, cfg["vocab_size"]), tail_y, reduction="sum").item()
        return total / (len(ids) - 1)

    initial = evaluate(run.val_ids)
    bt, tc = run.batches, run.tc
    state = torch.zeros(L, S, N, H)
    curve, step = [], 0
    started = time.time()
    while time.time() - started < tc.time_limit:
        k = step % bt.steps_per_epoch
        if k == 0:
            state.zero_()
        x, y = (torch.from_numpy(a) for a in bt.batch(k))
        logits, new_state = forward(x, state)
        loss = xent(logits.reshape(-1, cfg["vocab_size"]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        for group in opt.param_groups:
            group["lr"] = run.lr(step)
        opt.step()
        state = new_state.detach()
        step += 1
        if step % tc.eval_every == 0:
            curve.append((step, time.time() - started, evaluate(run.val_ids)))
    if step % tc.eval_every:
        curve.append((step, time.time() - started, evaluate(run.val_ids)))
    return {"initial": initial, "steps": step, "seconds": time.time() - started,
            "curve": curve, "rss_mb": peak_rss_mb()}


def spawn(impl, args):
    cmd = [sys.executable, __file__, "--child", json.dumps([impl, vars(args)])]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if p.returncode:
        sys.exit(f"equal_budget: the {impl} run failed (exit {p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


def best_by(curve, seconds):
    """The best validation loss among those reached within seconds."""
    losses = [loss for _, t, loss in curve if t <= seconds]
    return min(losses) if losses else math.nan


def report(res, args, started):
    a, b = res["charrnn"], res["torch"]
    T, N = 50, 50
    marks = [m for m in (60, 180, 300, 600, 1800) if m < args.budget]
    cols = ["", "steps", "chars/s", "peak RSS MB"] + [f"best val by {m:g} s" for m in marks] + [
        "best val at the end"]

    def line(name, r):
        cells = [name, f"{r['steps']:,}", f"{r['steps'] * T * N / r['seconds']:,.0f}",
                 f"{r['rss_mb']:.0f}"] + [f"{best_by(r['curve'], m):.4f}" for m in marks] + [
            f"{best_by(r['curve'], math.inf):.4f}"]
        return "| " + " | ".join(cells) + " |"
    model = f"{args.layers}x{args.hidden} {args.kind.upper()}" + (
        f", embedding {args.embed}" if args.embed else ", one-hot input")
    lines = [
        "# charrnn against PyTorch at an equal time budget",
        "",
        f"Written by `benchmarks/equal_budget.py`, {started}. Machine: {machine()}; "
        f"Python {platform.python_version()}; load average at the start {args.load:.2f}.",
        "",
        f"{model}; batch {N} x sequence {T}, Adam at 2e-3 decaying 0.95 per epoch, clipping "
        f"at 5, no dropout (charrnn's defaults), seed {args.seed}; {args.budget:g} s of "
        f"wall-clock time each, validations every {args.eval_every} steps included. Both "
        f"start from the same weights and see the same batches; the initial validation "
        f"loss: charrnn {a['initial']:.6f}, PyTorch {b['initial']:.6f} nats/char.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
        line("charrnn", a),
        line("PyTorch " + args.torch_version, b),
        "",
        f"Steps ratio charrnn / PyTorch: {a['steps'] / b['steps']:.2f}. Validation loss "
        f"(nats/char) at every validation, as (step, seconds, loss):",
        "",
        *[f"- {name}: " + ", ".join(f"({s}, {t:.0f}, {loss:.4f})" for s, t, loss in r["curve"])
          for name, r in (("charrnn", a), ("PyTorch", b))],
        "",
    ]
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print("\n".join(lines[:12]), file=sys.stderr)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=["rnn", "lstm", "gru"], default="lstm")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--embed", type=int, default=0, help="0: one-hot input (charrnn's default)")
    ap.add_argument("--budget", type=float, default=600, help="training seconds for each side")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corpus", default=None, help="text file (default: tiny Shakespeare)")
    ap.add_argument("--out", default=os.path.join(HERE, "EQUAL_BUDGET.md"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        impl, child_args = json.loads(args.child)
        f = child_charrnn if impl == "charrnn" else child_torch
        print(json.dumps(f(child_args)))
        return
    try:
        import torch
    except ImportError:
        sys.exit("equal_budget: needs PyTorch: pip install torch==2.13.0")
    args.corpus = os.path.abspath(args.corpus or corpus_path())
    args.torch_version = torch.__version__.split("+")[0]
    args.load = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M %z")
    res = {}
    for impl in ("charrnn", "torch"):
        print(f"equal_budget: training {impl} for {args.budget:g} s", file=sys.stderr, flush=True)
        res[impl] = spawn(impl, args)
    if not math.isclose(res["charrnn"]["initial"], res["torch"]["initial"], rel_tol=1e-4):
        sys.exit(f"equal_budget: the two sides score the initial weights differently "
                 f"({res['charrnn']['initial']} against {res['torch']['initial']})")
    report(res, args, started)
    print(f"equal_budget: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
