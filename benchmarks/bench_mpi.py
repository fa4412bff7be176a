"""Data-parallel training on one host: 1 process x 2 threads against 2 ranks x 1 thread,
over shared memory and over loopback TCP, and the step model of benchmarks/SCALING.md.

    python benchmarks/bench_mpi.py                  # measure 2x128 and 2x512 LSTMs, then the model
    python benchmarks/bench_mpi.py --model-only     # the step model alone (no measurement)
    python benchmarks/bench_mpi.py --hidden 512 --steps 60

The setting is bench.py's (torch-rnn's): batch 50, sequence 50, 2 layers, an embedding
of size H, Adam, on tiny Shakespeare. Training speed is the last chars/s of the --log
(steps only, after the first, which loads kernels). The allreduce is timed alone, under
mpirun -n 2, on a flat float32 buffer of the model's size: the median of 30 calls of
distributed.Mpi.reduce, against the step time of the 2-rank run. Needs a quiet machine.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from bench import corpus_path  # noqa: E402  (benchmarks/bench.py)

BIN = os.path.dirname(sys.executable)
ROOT_OK = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
TRANSPORTS = {"shared memory": ["--mca", "btl", "self,sm"], "loopback TCP": ["--mca", "btl", "self,tcp"]}
# the step model: one host's training speed (chars/s, 2 cores, batch 50 x 50): measured in
# RESULTS.md for 2x128 and 2x512, and for 3x1024 from its FLOPs (48 H^2 L a character) at
# the 240 GFLOP/s the 2x512 LSTM reaches there
HOST_CHARS_PER_S = {(2, 128): 120_638, (2, 512): 9_641, (3, 1024): 240e9 / (48 * 1024 ** 2 * 3)}
LATENCY_S = 25e-6  # one message between hosts (TCP over Ethernet)
GBITS = (10, 25, 100)
HOSTS = (4, 16, 64)


def params(layers, hidden, V=65):
    """num_params of an LSTM with an embedding of size H (model.param_shapes)."""
    G = 4 * hidden
    return V * hidden + layers * (2 * hidden * G + G) + hidden * V + V


def allreduce_s(P, hosts, gbits):
    """A ring allreduce of 4P bytes: 2(N-1)/N of them through each link, 2(N-1) latencies
    (the reduce-scatter and allgather of distributed.Mpi.reduce move the same bytes)."""
    return 2 * (hosts - 1) / hosts * 4 * P * 8 / (gbits * 1e9) + 2 * (hosts - 1) * LATENCY_S


def model_table():
    rows = ["| model | P | step on 1 host | hosts | streams a host | 10 Gb/s | 25 Gb/s | 100 Gb/s |",
            "|---|---|---|---|---|---|---|---|"]
    for (L, H), c in HOST_CHARS_PER_S.items():
        P, step = params(L, H), 2500 / c
        for n in HOSTS:
            for streams, compute in ((50 / n, step / n), (50, step)):  # global 50, or 50 a host
                if streams < 1:
                    continue
                eff = [compute / (compute + allreduce_s(P, n, g)) for g in GBITS]
                rows.append(f"| {L}x{H} | {P / 1e6:.2f}M | {step * 1e3:.0f} ms | {n} | {streams:g} | "
                            + " | ".join(f"{e:.0%}" for e in eff) + " |")
    return "\n".join(rows)


def train(corpus, hidden, steps, ranks, mca=()):
    """chars/s of a run: one process of 2 threads (ranks=0) or `ranks` of one thread."""
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.jsonl")
        args = [os.path.join(BIN, "charrnn"), "train", corpus, "-o", os.path.join(tmp, "m.npz"),
                "--hidden", str(hidden), "--embed", str(hidden), "--max-steps", str(steps),
                "--eval-every", "100000", "--log", log, "--seed", "1", "-q"]
        env = dict(os.environ, **ROOT_OK, CHARRNN_THREADS="1" if ranks else "2")
        cmd = [os.path.join(BIN, "mpirun"), "-n", str(ranks), *mca, "-x", "CHARRNN_THREADS", *args] \
            if ranks else args
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode:
            sys.exit(f"bench_mpi: {' '.join(cmd)} failed:\n{res.stderr}")
        return [json.loads(line) for line in open(log)][-1]["chars_per_sec"]


def reduce_main(P):
    """Under mpirun: the median seconds of Mpi.reduce on P floats (rank 0 prints it)."""
    import numpy as np
    from charrnn import distributed
    comm = distributed.communicator()
    g = np.ones(P, dtype=np.float32)
    times = []
    for _ in range(30):
        comm.agree(0)  # start together
        t0 = time.perf_counter()
        comm.reduce(g, 0.0)
        times.append(time.perf_counter() - t0)
    if comm.is_root:
        print(statistics.median(times))


def reduce_s(P, mca):
    cmd = [os.path.join(BIN, "mpirun"), "-n", "2", *mca, sys.executable, __file__, "--reduce", str(P)]
    out = subprocess.run(cmd, env=dict(os.environ, **ROOT_OK), check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def measure(corpus, hiddens, steps):
    rows = ["| model | transport | 1 x 2 threads chars/s | 2 ranks x 1 chars/s | ratio | allreduce | of a step |",
            "|---|---|---|---|---|---|---|"]
    for H in hiddens:
        threaded = train(corpus, H, steps, 0)
        for name, mca in TRANSPORTS.items():
            ranked = train(corpus, H, steps, 2, mca)
            ar = reduce_s(params(2, H), mca)
            step = 2500 / ranked
            rows.append(f"| 2x{H} | {name} | {threaded:,.0f} | {ranked:,.0f} | {ranked / threaded:.2f}x "
                        f"| {ar * 1e3:.2f} ms | {ar / step:.1%} |")
            print(rows[-1], file=sys.stderr, flush=True)
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--steps", type=int, default=40,
                    help="steps a run, 20 or more (the chars/s of the last ten is reported)")
    ap.add_argument("--corpus", help="training text [default: tiny Shakespeare, as bench.py]")
    ap.add_argument("--model-only", action="store_true", help="print the step model only")
    ap.add_argument("--reduce", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.reduce:
        return reduce_main(a.reduce)
    if not a.model_only:
        print(measure(a.corpus or corpus_path(), a.hidden, a.steps) + "\n")
    print(model_table())


if __name__ == "__main__":
    main()
