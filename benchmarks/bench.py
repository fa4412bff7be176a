"""Training and sampling throughput of charrnn, optionally side by side with PyTorch.

    python benchmarks/bench.py                      # charrnn alone
    python benchmarks/bench.py --peer torch         # and PyTorch, alternating, with ratios
    python benchmarks/bench.py --models lstm --hidden 128 256 --repeats 5

Every measurement runs in a fresh process (so peak RSS is that model's alone),
after warm-up steps that absorb compilation. The setting is the one torch-rnn
published: batch 50, sequence 50, 2 layers, a learned embedding of size H, Adam,
gradient clipping at 5, on tiny Shakespeare. GFLOP/s counts the recurrent and
input GEMMs of forward and backward: 2 * 3 * (D + H) * G per character and layer
with D = H, i.e. 48 H^2 per layer for LSTM (G = 4H), 36 H^2 for GRU, 12 H^2 for RNN.
The same nominal count for both: charrnn's first layer does fewer (it multiplies the
V rows of the embedding by Wx, not every character's), so its GFLOP/s is per the
model, not per arithmetic done. The results are medians over --repeats runs; charrnn and
the peer alternate, and a ratio is the median of the ratios of each pair of runs made one
after the other (with their range), so the noise of a shared machine hits both alike.
A second table times the sampler's products alone, right after the sampler in the same
processes (products_alone_seconds): a sampled character reads every weight once, so they
bound how fast sampling can go.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CORPORA = [os.path.join(HERE, "..", "..", "shared", "corpora", "tinyshakespeare.txt"),
           os.path.join(HERE, "..", "corpora", "shakespeare.txt")]


def corpus_path():
    for p in CORPORA:
        if os.path.exists(p):
            return os.path.abspath(p)
    sys.exit("bench: no corpus; put tinyshakespeare.txt in ../shared/corpora or run 'make corpora'")


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- one measurement, in a child process -------------------------------------------

def configure_charrnn():
    """The process set-up the CLI makes (one BLAS thread, ...), before numpy loads."""
    import charrnn.setup
    charrnn.setup.configure()


def child_charrnn(kind, H, steps, warmup, sample_chars):
    configure_charrnn()
    import numpy as np
    from charrnn.model import ModelConfig
    from charrnn.sample import Sampler
    from charrnn.train import Run, TrainConfig
    text = open(corpus_path(), encoding="utf-8").read()
    cfg = ModelConfig(kind=kind, hidden=H, layers=2, embed=H)
    run = Run(text, os.devnull, cfg, TrainConfig(batch_size=50, seq_length=50, seed=0))
    for _ in range(warmup):
        run.train_step()
    t = time.perf_counter()
    for _ in range(steps):
        run.train_step()
    train_s = time.perf_counter() - t
    s = Sampler(run.cfg, run.p, run.vocab)
    prime = np.array([0])
    for _ in s.generate(prime, 50, seed=0):  # compile / warm up
        pass
    t = time.perf_counter()
    for _ in s.generate(prime, sample_chars, seed=0):
        pass
    sample_s = time.perf_counter() - t
    return {"train_s": train_s, "sample_s": sample_s, "rss_mb": peak_rss_mb(),
            "products_s": products_alone_seconds(s, sample_chars), "threads": len(s.parts),
            "weight_bytes": s.weight_bytes}


def child_torch(kind, H, steps, warmup, sample_chars):
    import numpy as np
    import torch
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    text = open(corpus_path(), encoding="utf-8").read()
    vocab = sorted(set(text))
    ids = torch.tensor(np.searchsorted(np.array([ord(c) for c in vocab]),
                                       np.frombuffer(text.encode("utf-32-le"), np.uint32)))
    V, N, T = len(vocab), 50, 50
    ids = ids[:int(len(ids) * 0.9)]
    streams = ids[:len(ids) // N * N].view(N, -1)
    rnn_cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(V, H)
            self.rnn = rnn_cls(H, H, 2)
            self.out = torch.nn.Linear(H, V)

        def forward(self, x, h):
            y, h = self.rnn(self.embed(x), h)
            return self.out(y), h

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    h = None

    def step(k):
        nonlocal h
        x = streams[:, k * T:k * T + T].T.contiguous()
        y = streams[:, k * T + 1:k * T + T + 1].T.contiguous()
        if h is not None:  # truncated BPTT: carry the state, cut the graph
            h = tuple(a.detach() for a in h) if isinstance(h, tuple) else h.detach()
        logits, h = net(x, h)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()

    for k in range(warmup):
        step(k)
    t = time.perf_counter()
    for k in range(warmup, warmup + steps):
        step(k)
    train_s = time.perf_counter() - t
    with torch.no_grad():  # the per-step sampling loop a PyTorch user writes
        def sample(n):
            x, hs = torch.zeros(1, 1, dtype=torch.long), None
            for _ in range(n):
                logits, hs = net(x, hs)
                x = torch.multinomial(torch.softmax(logits[0, 0], -1), 1).view(1, 1)
        sample(50)
        t = time.perf_counter()
        sample(sample_chars)
        sample_s = time.perf_counter() - t
    return {"train_s": train_s, "sample_s": sample_s, "rss_mb": peak_rss_mb()}


def child_big_corpus(path, steps):
    """Reads a large corpus and trains a few steps: read speed and peak RSS."""
    configure_charrnn()
    from charrnn.data import read_corpus
    from charrnn.model import ModelConfig
    from charrnn.train import Run, TrainConfig
    t = time.perf_counter()
    corpus = read_corpus([path])
    read_s = time.perf_counter() - t
    run = Run(corpus, os.devnull, ModelConfig(), TrainConfig(seed=0))
    for _ in range(steps):
        run.train_step()
    run.validate()
    return {"read_MB_s": os.path.getsize(path) / read_s / 1e6, "rss_mb": peak_rss_mb(),
            "chars": len(corpus[0]), "dtype": str(corpus[0].dtype)}


def products_alone_seconds(sampler, chars):
    """Seconds that the sampler's products alone take for chars characters: each
    thread of its split (threads.sample_unit_ranges) multiplies one row by its share
    of every weight matrix a character reads, with the same sgemv calls, without the
    cells, the draws or the meetings. Sampling reads every weight once a character,
    so it cannot run faster than this."""
    import numpy as np
    from numba import njit
    from charrnn import threads
    from charrnn.native import gemm, new_ctx

    @njit(nogil=True)
    def products(ctx, Wxs, Whs, Wy, reps):
        x = np.ones((1, Whs.shape[1]), np.float32)
        a = np.empty((1, Whs.shape[2]), np.float32)
        y = np.empty((1, Wy.shape[1]), np.float32)
        for _ in range(reps):
            for l in range(Whs.shape[0]):
                if l > 0:
                    gemm(ctx, x, Wxs[l], a)
                gemm(ctx, x, Whs[l], a)
            if Wy.shape[0]:
                gemm(ctx, x, Wy, y)
    none = np.zeros((0, sampler.Wy.shape[1]), np.float32)  # the first thread's alone
    shares = [(part.net.Wxs, part.net.Whs, sampler.Wy if i == 0 else none)
              for i, part in enumerate(sampler.parts)]

    def run(i, n):
        products(new_ctx(1), *shares[i], n)
    threads.parallel(run, (), [(i, 10) for i in range(len(shares))])  # compile, warm caches
    t = time.perf_counter()
    threads.parallel(run, (), [(i, chars) for i in range(len(shares))])
    return time.perf_counter() - t


def child_num_samples(counts, chars):
    """Aggregate sampling chars/s of a 2x128 LSTM for each --num-samples in counts."""
    configure_charrnn()
    import numpy as np
    from charrnn.model import ModelConfig, carve, init_params
    from charrnn.sample import Sampler
    cfg = ModelConfig(kind="lstm", vocab_size=65, hidden=128, layers=2, embed=128)
    s = Sampler(cfg, carve(init_params(cfg, np.random.default_rng(0)), cfg), [chr(32 + i) for i in range(65)])
    out = {}
    for n in counts:
        list(s.generate(np.array([0]), 20, num_samples=n, seed=0))
        t = time.perf_counter()
        list(s.generate(np.array([0]), chars, num_samples=n, seed=0))
        out[n] = n * chars / (time.perf_counter() - t)
    return out


# -- the driver -----------------------------------------------------------------

def measure(impl, kind, H, args):
    cmd = [sys.executable, __file__, "--child", impl, kind, str(H), str(args.steps),
           str(args.warmup), str(args.sample_chars)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"bench: {impl} {kind} {H} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def paired(runs, peer, key):
    """charrnn's speed over the peer's: the median of the ratios of runs made one after
    the other (the machine's speed drifts by the minute), and their range."""
    ratios = sorted(p[key] / c[key] for c, p in zip(runs["charrnn"], runs[peer]))
    text = f"{statistics.median(ratios):.2f}x"
    return text + (f" ({ratios[0]:.2f}-{ratios[-1]:.2f})" if len(ratios) > 1 else "")


def command_seconds(argv, repeats=5):
    """Median wall time of a whole command (startup included)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer", choices=["torch"], default=None)
    ap.add_argument("--models", nargs="+", default=["rnn", "lstm", "gru"])
    ap.add_argument("--hidden", nargs="+", type=int, default=[128, 256, 512])
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per run")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--sample-chars", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--big-corpus-mb", type=int, default=500,
                    help="size of the corpus for the memory test; 0 skips it")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child and args.child[0] == "samples":
        print(json.dumps(child_num_samples([1, 4, 16, 64], 2000)))
        return
    if args.child and args.child[0] == "big":
        print(json.dumps(child_big_corpus(args.child[1], int(args.child[2]))))
        return
    if args.child:
        impl, kind, H, steps, warmup, chars = args.child
        f = child_charrnn if impl == "charrnn" else child_torch
        print(json.dumps(f(kind, int(H), int(steps), int(warmup), int(chars))))
        return
    impls = ["charrnn"] + ([args.peer] if args.peer else [])
    print(f"# charrnn benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, corpus "
          f"{os.path.basename(corpus_path())}; batch 50 x seq 50, 2 layers, embedding H, Adam")
    print(f"# medians of {args.repeats} runs of {args.steps} steps; OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    head = "| model | impl | train chars/s | ms/minibatch | GFLOP/s | sample chars/s | peak RSS MB |"
    print(head + (" train ratio | sample ratio |" if args.peer else ""))
    print("|" + "---|" * (head.count("|") - 1 + (2 if args.peer else 0)))
    chars = 50 * 50 * args.steps
    sampled = {}  # (kind, H): charrnn's runs, the peer's sample chars/s
    for kind in args.models:
        for H in args.hidden:
            runs = {i: [] for i in impls}
            for _ in range(args.repeats):
                for impl in impls:  # alternate, so drifts in machine load hit both
                    runs[impl].append(measure(impl, kind, H, args))
            rows = {}
            for impl in impls:
                tr = statistics.median(r["train_s"] for r in runs[impl])
                sa = statistics.median(r["sample_s"] for r in runs[impl])
                rss = statistics.median(r["rss_mb"] for r in runs[impl])
                flops = 2 * 3 * 2 * H * GATES[kind] * H * 2 * chars
                rows[impl] = (chars / tr, tr / args.steps * 1e3, flops / tr / 1e9,
                              args.sample_chars / sa, rss)
            sampled[kind, H] = runs["charrnn"], rows[impls[-1]][3]
            for impl in impls:
                cps, ms, gf, scps, rss = rows[impl]
                line = (f"| {kind} 2x{H} | {impl} | {cps:,.0f} | {ms:.1f} | {gf:.1f} | "
                        f"{scps:,.0f} | {rss:.0f} |")
                if args.peer:
                    line += (f" {paired(runs, args.peer, 'train_s')} | "
                             f"{paired(runs, args.peer, 'sample_s')} |" if impl == "charrnn"
                             else " | |")
                print(line, flush=True)
    print("\nSampling reads every weight once a character. The sampler's products alone (its "
          "sgemv calls on each thread's share of the weights, without cells, draws or meetings, "
          "timed in the same processes right after the sampler) bound its speed:")
    print("| model | weights a char | threads | products alone chars/s | read GB/s | charrnn "
          "chars/s | of the bound |" + (" 20x the peer needs GB/s |" if args.peer else ""))
    print("|" + "---|" * (7 + bool(args.peer)))
    for (kind, H), (runs, peer_cps) in sampled.items():
        nbytes = runs[0]["weight_bytes"]
        bound = args.sample_chars / statistics.median(r["products_s"] for r in runs)
        got = args.sample_chars / statistics.median(r["sample_s"] for r in runs)
        share = statistics.median(r["products_s"] / r["sample_s"] for r in runs)
        line = (f"| {kind} 2x{H} | {nbytes / 1e6:.2f} MB | {runs[0]['threads']} | {bound:,.0f} | "
                f"{bound * nbytes / 1e9:.0f} | {got:,.0f} | {share:.0%} |")
        print(line + (f" {20 * peer_cps * nbytes / 1e9:.0f} |" if args.peer else ""), flush=True)
    p = subprocess.run([sys.executable, __file__, "--child", "samples"], capture_output=True,
                       text=True, check=True)
    rates = json.loads(p.stdout.strip().splitlines()[-1])
    print("\n--num-samples N (2x128 LSTM), aggregate chars/s: "
          + ", ".join(f"N={n}: {r:,.0f}" for n, r in rates.items()))
    exe = [sys.executable, "-m", "charrnn"]
    print(f"\n`charrnn --help`: {command_seconds(exe + ['--help']) * 1e3:.0f} ms wall (median of 5)")
    with tempfile.TemporaryDirectory() as tmp:
        ck = os.path.join(tmp, "m.npz")
        subprocess.run(exe + ["train", corpus_path(), "-o", ck, "--max-steps", "1", "-q", "--seed", "0"],
                       check=True)
        t = command_seconds(exe + ["sample", ck, "--length", "200", "--seed", "1"])
        print(f"`charrnn sample CKPT --length 200 > /dev/null` (2x128 LSTM, kernels cached): "
              f"{t * 1e3:.0f} ms wall (median of 5)")
        if args.big_corpus_mb:
            big = os.path.join(tmp, "big.txt")
            text = open(corpus_path(), "rb").read()
            with open(big, "wb") as f:
                for _ in range(args.big_corpus_mb * 10 ** 6 // len(text) + 1):
                    f.write(text)
            p = subprocess.run([sys.executable, __file__, "--child", "big", big, "3"],
                               capture_output=True, text=True, check=True)
            r = json.loads(p.stdout.strip().splitlines()[-1])
            print(f"{os.path.getsize(big) / 1e6:,.0f} MB corpus ({r['chars']:,} characters as "
                  f"{r['dtype']}): read at {r['read_MB_s']:.0f} MB/s; peak RSS {r['rss_mb']:,.0f} MB "
                  f"while training a 2x128 LSTM on it")


if __name__ == "__main__":
    main()
