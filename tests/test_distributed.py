"""Data-parallel training under mpirun (distributed.py), run as subprocesses on tiny
models: the same checkpoint as threads, repeatable over shared memory and TCP,
resumable across rank counts, faults, and only rank 0 writing.

The equalities are exact: N ranks of one thread sum their gradients in the order one
process sums N threads' parts (CHARRNN_SPLIT=streams), so the checkpoints match bit
for bit. Open MPI refuses root without the two OMPI_ALLOW_* variables (CI runs as root).
"""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from charrnn import checkpoint, distributed, synth

MPIRUN = Path(sys.executable).parent / "mpirun"
pytestmark = pytest.mark.skipif(
    not MPIRUN.exists() or importlib.util.find_spec("mpi4py") is None,
    reason="needs the [mpi] extra: pip install -e '.[mpi]' (make install does)")

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           CHARRNN_SPLIT="streams", CHARRNN_THREADS="1")
# dropout and weight drop: their masks are drawn whole on every rank and cut by streams
TINY = ["--hidden", "16", "--layers", "2", "--dropout", "0.1", "--weight-drop", "0.1",
        "--batch-size", "6", "--seq-length", "12", "--eval-every", "10", "--val-chars", "3000",
        "--seed", "5", "-q"]


def mpirun(n, *args, mca=(), threads=1, timeout=300, **kw):
    """`mpirun -n n python -m charrnn ARGS`, one thread a rank."""
    cmd = [MPIRUN, "-n", str(n), "--oversubscribe", *mca, "-x", "CHARRNN_THREADS",
           "-x", "CHARRNN_SPLIT", sys.executable, "-m", "charrnn", *map(str, args)]
    return subprocess.run(cmd, env=dict(ENV, CHARRNN_THREADS=str(threads)), capture_output=True,
                          text=True, timeout=timeout, **kw)


def single(*args, threads=2):
    """One process of `threads` threads, its step split by streams."""
    return subprocess.run([sys.executable, "-m", "charrnn", *map(str, args)], capture_output=True,
                          text=True, env=dict(ENV, CHARRNN_THREADS=str(threads)), timeout=300)


def ok(res):
    assert res.returncode == 0, res.stderr
    return res


def assert_same(a, b):
    """Every array of two checkpoints equal bit for bit, and the losses too."""
    za, zb = np.load(a), np.load(b)
    assert sorted(za.files) == sorted(zb.files)
    for k in za.files:
        if k != "__meta__":
            assert np.array_equal(za[k], zb[k]), k
    ma, mb = checkpoint.load(a).meta, checkpoint.load(b).meta
    for k in ("step", "train_loss", "val_loss", "best_val_loss", "rng"):
        assert ma[k] == mb[k], k


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    path.write_text(synth.generate(20000, seed=4), encoding="utf-8")
    return path


def test_world_is_read_from_the_launchers_environment(monkeypatch):
    for size, rank in distributed.ENV:
        monkeypatch.delenv(size, raising=False)
        monkeypatch.delenv(rank, raising=False)
    assert distributed.world() == (0, 1)
    assert isinstance(distributed.communicator(), distributed.Single)
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.setenv("PMI_RANK", "3")
    assert distributed.world() == (3, 4)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "1")
    assert distributed.world() == (1, 2)


def test_train_without_mpirun_never_imports_mpi4py(corpus, tmp_path):
    code = ("import sys\nfrom charrnn.cli import cli\n"
            f"try:\n    cli([{str(corpus)!r}, '-o', {str(tmp_path / 'm.npz')!r}, '--max-steps', '2',"
            " '--hidden', '8', '--layers', '1', '-q'], prog_name='charrnn')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('mpi4py' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code.replace("cli([", "cli(['train', ")],
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_the_reduction_adds_the_ranks_in_order(tmp_path):
    """Known answer: float32 sums whose result depends on the order of the terms; and
    the parameter check, which every rank must answer alike."""
    script = tmp_path / "reduce.py"
    script.write_text(
        "import numpy as np\nfrom charrnn import CharrnnError, distributed\n"
        "c = distributed.communicator()\n"
        "parts = [np.float32([1e8, 1, 3]), np.float32([1, -1e8, 5]), np.float32([-1e8, 1e8, 7])]\n"
        "g = parts[c.rank].copy()\n"
        "total = c.reduce(g, [0.1, 0.2, 0.3][c.rank])\n"
        "want = (parts[0] + parts[1]) + parts[2]\n"
        "assert np.array_equal(g, want), (g, want)\n"
        "assert total == 0.1 + 0.2 + 0.3, total\n"
        "assert c.agree(c.rank) == 2\n"
        "c.check(g, 7)  # the same on every rank: nothing to say\n"
        "try:\n"
        "    c.check(np.float32([c.rank == 1]), 7)\n"
        "    raise SystemExit('a difference went unseen')\n"
        "except CharrnnError as e:\n"
        "    assert 'rank(s) 1 differ' in str(e) and 'step 7' in str(e), e\n"
        "print('ok', g.tolist())\n")
    res = subprocess.run([MPIRUN, "-n", "3", "--oversubscribe", sys.executable, script],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert res.returncode == 0, res.stderr
    # in rank order 1e8 + 1 rounds the 1 away: 0 (1e8 - 1e8 + 1, another order, gives 1)
    assert res.stdout.splitlines() == ["ok [0.0, 0.0, 15.0]"] * 3


def test_two_ranks_give_the_checkpoint_of_two_threads(corpus, tmp_path):
    ok(single("train", corpus, "-o", tmp_path / "threads.npz", "--max-steps", 30, *TINY))
    ok(mpirun(2, "train", corpus, "-o", tmp_path / "ranks.npz", "--max-steps", 30, *TINY))
    assert_same(tmp_path / "threads.npz", tmp_path / "ranks.npz")
    assert_same(tmp_path / "threads.best.npz", tmp_path / "ranks.best.npz")
    # resumed the other way round: one process to step 15, two ranks on to 30
    ok(single("train", corpus, "-o", tmp_path / "half.npz", "--max-steps", 15, *TINY))
    ok(mpirun(2, "train", corpus, "--resume", tmp_path / "half.npz", "--max-steps", 30, "-q"))
    assert_same(tmp_path / "threads.npz", tmp_path / "half.npz")


def test_three_ranks_repeat_over_tcp_and_resume_on_one_process(corpus, tmp_path):
    ok(mpirun(3, "train", corpus, "-o", tmp_path / "shm.npz", "--max-steps", 30, *TINY))
    ok(mpirun(3, "train", corpus, "-o", tmp_path / "tcp.npz", "--max-steps", 30, *TINY,
              mca=["--mca", "btl", "tcp,self"]))
    assert_same(tmp_path / "shm.npz", tmp_path / "tcp.npz")
    ok(mpirun(3, "train", corpus, "-o", tmp_path / "half.npz", "--max-steps", 15, *TINY))
    ok(single("train", corpus, "--resume", tmp_path / "half.npz", "--max-steps", 30, "-q",
              threads=3))
    assert_same(tmp_path / "shm.npz", tmp_path / "half.npz")


def test_only_rank_0_writes_or_talks(corpus, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    res = ok(mpirun(2, "train", corpus, "-o", out / "m.npz", "--log", out / "log.jsonl",
                    *[a for a in TINY if a != "-q"], "--max-steps", 20, cwd=out))
    assert sorted(p.name for p in out.iterdir()) == ["log.jsonl", "m.best.npz", "m.npz"]
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 20
    assert res.stderr.count("parameters, vocabulary") == 1
    assert res.stderr.count("--- sample at step") == 2  # the validations at 10 and 20
    assert res.stderr.count("; saved ") == 1
    assert res.stdout == ""


def _rank_pid(marker, rank):
    """The pid of rank `rank` of the run whose command line holds marker."""
    for proc in Path("/proc").iterdir():
        try:
            if marker in (proc / "cmdline").read_bytes() and \
                    f"OMPI_COMM_WORLD_RANK={rank}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                return int(proc.name)
        except (OSError, ValueError):
            continue
    return None


def _start_long_run(corpus, out):
    cmd = [MPIRUN, "-n", "2", "-x", "CHARRNN_THREADS", sys.executable, "-m", "charrnn",
           "train", str(corpus), "-o", str(out), "--max-steps", "100000", "--checkpoint-every", "5",
           *TINY]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not out.exists():  # the first checkpoint: kernels are loaded, steps running
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    return proc


def test_kill_9_of_a_rank_ends_all_and_the_checkpoint_resumes(corpus, tmp_path):
    out = tmp_path / "m.npz"
    proc = _start_long_run(corpus, out)
    pid = _rank_pid(str(out).encode(), 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    t0 = time.time()
    proc.communicate(timeout=60)
    assert time.time() - t0 < 30 and proc.returncode != 0
    step = checkpoint.load(out).meta["step"]
    assert step > 0
    res = ok(single("train", corpus, "--resume", out, "--max-steps", step + 3, "-q"))
    assert checkpoint.load(out).meta["step"] == step + 3, res.stderr


def test_sigusr1_to_mpirun_saves_on_rank_0(corpus, tmp_path):
    out = tmp_path / "m.npz"
    proc = _start_long_run(corpus, out)
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = [line for line in err.splitlines() if line.startswith("charrnn: interrupted")]
    assert len(lines) == 1 and "SIGUSR1" in lines[0], err
    step = int(lines[0].split(" at step ")[1].split(";")[0].replace(",", ""))
    assert checkpoint.load(out).meta["step"] == step


def test_sigint_to_mpirun_ends_every_rank_and_keeps_a_checkpoint(corpus, tmp_path):
    out = tmp_path / "m.npz"
    proc = _start_long_run(corpus, out)
    proc.send_signal(signal.SIGINT)
    t0 = time.time()
    proc.communicate(timeout=60)
    assert time.time() - t0 < 30 and proc.returncode != 0
    assert checkpoint.load(out).meta["step"] > 0  # the last one written, whole
    assert _rank_pid(str(out).encode(), 0) is None and _rank_pid(str(out).encode(), 1) is None


def test_an_error_on_one_rank_is_one_line_naming_it(corpus, tmp_path):
    """mpirun's MPMD form gives rank 1 a corpus its host lacks."""
    args = ["train", "-o", tmp_path / "m.npz", "--max-steps", 5, *TINY]
    missing = tmp_path / "nowhere.txt"
    cmd = [MPIRUN, "-n", "1", sys.executable, "-m", "charrnn", args[0], corpus, *args[1:], ":",
           "-n", "1", sys.executable, "-m", "charrnn", args[0], missing, *args[1:]]
    t0 = time.time()
    res = subprocess.run(list(map(str, cmd)), env=ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and time.time() - t0 < 60
    ours = [line for line in res.stderr.splitlines() if "charrnn: error" in line]
    assert len(ours) == 1 and "rank 1: cannot read" in ours[0] and "nowhere.txt" in ours[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "m.npz").exists()


def test_a_usage_error_is_said_once(corpus, tmp_path):
    res = mpirun(2, "train", corpus, "--hidden", "0", timeout=120)
    assert res.returncode == 2
    ours = [line for line in res.stderr.splitlines() if "charrnn: error" in line]
    assert len(ours) == 1 and "--hidden" in ours[0], res.stderr
    res = mpirun(3, "train", corpus, "-o", tmp_path / "m.npz", "--batch-size", "2", timeout=120)
    ours = [line for line in res.stderr.splitlines() if "charrnn: error" in line]
    assert res.returncode == 1 and len(ours) == 1 and "--batch-size 2" in ours[0], res.stderr
