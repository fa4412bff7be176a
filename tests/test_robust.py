"""Nothing lost, nothing crashes: kill -9 during training, signals, a lost stderr or
log, damaged checkpoints (a fuzz loop), and the files a run may write."""
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from charrnn import CharrnnError, checkpoint, outputs, synth
from charrnn.model import ModelConfig
from charrnn.train import Run, TrainConfig, run

TINY = ["--hidden", "16", "--layers", "1", "--batch-size", "4", "--seq-length", "16", "--seed", "1",
        "--epochs", "0"]


def charrnn(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "charrnn", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "synth.txt"
    path.write_text(synth.generate(20000, seed=3))
    return path


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("ck") / "good.npz")
    cfg = ModelConfig(kind="gru", hidden=8, layers=2, embed=4)
    tc = TrainConfig(batch_size=2, seq_length=8, max_steps=3, eval_every=2, seed=0)
    run(Run(synth.generate(2000), path, cfg, tc), progress=False)
    return path


def test_kill9_at_random_moments_never_damages_the_checkpoint(tmp_path, corpus):
    """20 runs killed with SIGKILL at random moments, most while writing a checkpoint
    every step: the checkpoint on disk always loads, and the next run resumes from it
    (so the lock a killed run held never blocks)."""
    out, log = str(tmp_path / "m.npz"), tmp_path / "log.jsonl"
    log.touch()
    rng = np.random.default_rng(0)
    steps, kills_while_training = [], 0
    for _ in range(20):
        resume = ["--resume", out] if os.path.exists(out) else []
        size = log.stat().st_size
        p = charrnn("train", str(corpus), "-o", out, *TINY, "--checkpoint-every", "1",
                    "--eval-every", "7", "--max-steps", "1000000", "-q", "--log", str(log),
                    *resume)
        deadline = time.time() + 600  # the first run may compile the kernels
        while log.stat().st_size == size and time.time() < deadline:
            time.sleep(0.01)  # until it has trained a few steps: the log grows every 10
        time.sleep(rng.uniform(0.0, 0.5))
        p.kill()
        p.communicate()
        assert p.returncode == -signal.SIGKILL, "the run ended before it was killed"
        if os.path.exists(out):
            step = checkpoint.load(out).meta["step"]  # raises if the file were torn
            kills_while_training += bool(steps) and step > steps[-1]
            steps.append(step)
    assert len(steps) == 20 and kills_while_training >= 15, (steps, kills_while_training)
    assert steps == sorted(steps)
    # a last run resumes from the last kill's checkpoint, ends normally, and has
    # removed the temporary files that killed writers left
    p = charrnn("train", str(corpus), "-o", out, *TINY, "--resume", out, "-q",
                "--max-steps", str(steps[-1] + 3))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert checkpoint.load(out).meta["step"] == steps[-1] + 3
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")], "temporary files left behind"


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                      (signal.SIGHUP, 129)])  # Ctrl-C, kill, terminal closed
def test_signal_saves_and_exits_nonzero(tmp_path, corpus, sig, code):
    out, log = str(tmp_path / "m.npz"), tmp_path / "log.jsonl"
    p = charrnn("train", str(corpus), "-o", out, *TINY, "--max-steps", "1000000",
                "--checkpoint-every", "1000000", "--eval-every", "1000000", "--log", str(log))
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.stat().st_size):
        time.sleep(0.1)  # until it trains (the log has a line every 10 steps), not compiles
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert f"interrupted by {sig.name}" in err and "saved" in err and "--resume" in err
    assert "Traceback" not in err
    ck = checkpoint.load(out)
    assert ck.meta["step"] > 0


def npy(a):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(a), allow_pickle=True)
    return buf.getvalue()


def write_members(path, members):
    """An .npz of members {name: .npy bytes}, stored as np.savez stores them."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)


BAD_VALUES = [None, -1, 0, 10 ** 12, 2 ** 70, 1.5, 1e308, float("nan"), "x", [], {}, True,
              "lstm", [1, 2]]


def structured(meta, arrays, rng):
    """Damage inside a valid zip: (meta as JSON text, {name: .npy bytes})."""
    m = json.loads(json.dumps(meta))
    members = {k: npy(a) for k, a in arrays.items()}
    kind = rng.integers(6)
    if kind == 0:  # a value of the wrong type or range, anywhere, train settings included
        where = [(m, k) for k in m] + [(m[d], k) for d in ("config", "train") for k in m[d]]
        obj, key = where[rng.integers(len(where))]
        obj[key] = BAD_VALUES[rng.integers(len(BAD_VALUES))]
    elif kind == 1:  # nesting, from plausible to far past the JSON parser's limit
        depth = int(rng.choice([2, 50, 900, 5000, 100_000]))
        text = json.dumps(m)[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
        return text, members
    elif kind == 2:  # an array of another shape, or of another dtype
        name = list(arrays)[rng.integers(len(arrays))]
        shape = tuple(int(d) for d in rng.integers(0, 9, rng.integers(0, 4)))
        dtype = [np.float32, np.float64, np.int32, np.uint8, np.float16][rng.integers(5)]
        members[name] = npy(np.ones(shape, dtype))
    elif kind == 3:  # a header that claims more (or less) than the data holds
        name = list(arrays)[rng.integers(len(arrays))]
        a = arrays[name]
        data = npy(a)
        members[name] = data[:len(data) - a.nbytes] + (
            rng.bytes(int(rng.integers(0, a.nbytes))) if rng.integers(2)
            else a.tobytes() + rng.bytes(int(rng.integers(1, 64))))
    elif kind == 4:  # sizes: a header claiming a huge array, or a config claiming a huge model
        if rng.integers(2):
            name = list(arrays)[rng.integers(len(arrays))]
            members[name] = npy_header(np.float32, (int(rng.integers(1 << 30, 1 << 40)),)) + bytes(8)
        else:
            m["config"].update(hidden=1 << 16, layers=64)
    else:  # an object array, which must never be unpickled, or a member nobody defined
        name = ["param/out.W", "opt/m", "x"][rng.integers(3)]
        members[name] = npy(np.array([{"evil": 1}], dtype=object))
    return json.dumps(m), members


def mutations(blob, meta, arrays, rng):
    """A damaged variant of a checkpoint: raw byte damage (bytes) or structured damage."""
    kind = rng.integers(5)
    b = bytearray(blob)
    if kind == 0:  # flip bytes
        for i in rng.integers(0, len(b), rng.integers(1, 9)):
            b[i] ^= int(rng.integers(1, 256))
        return bytes(b)
    if kind == 1:  # truncate
        return bytes(b[:rng.integers(0, len(b))])
    if kind == 2:  # insert junk
        i = rng.integers(0, len(b))
        return bytes(b[:i] + rng.bytes(int(rng.integers(1, 64))) + b[i:])
    return structured(meta, arrays, rng)


def test_fuzzed_checkpoints_give_only_the_clean_error(tmp_path, good_checkpoint):
    """1,000 damaged files: each is refused in one line, or loads into a model that
    samples and a run that resumes and trains a step; no load holds more than 16 MB
    (the good checkpoint is a few KB), whatever its headers or config claim."""
    import tracemalloc
    from charrnn.sample import Sampler
    blob = open(good_checkpoint, "rb").read()
    with np.load(good_checkpoint) as z:
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    meta = checkpoint.load(good_checkpoint).meta
    rng = np.random.default_rng(1234)
    path = str(tmp_path / "fuzz.npz")
    outcomes = {"refused": 0, "loaded": 0}
    tracemalloc.start()
    try:
        for case in range(1000):
            m = mutations(blob, meta, arrays, rng)
            if isinstance(m, bytes):
                with open(path, "wb") as f:
                    f.write(m)
            else:
                text, members = m
                write_members(path, dict(members, __meta__=npy(np.frombuffer(text.encode(),
                                                                             np.uint8))))
            tracemalloc.reset_peak()
            try:
                ck = checkpoint.load(path)
            except CharrnnError as e:
                assert "\n" not in str(e)
                outcomes["refused"] += 1
                continue
            finally:
                assert tracemalloc.get_traced_memory()[1] < 16 << 20, case
            # what loads must be usable: it samples, and a run resumes from it
            text = Sampler(ck.config, ck.params, ck.vocab).text(ck.vocab[0], 5, seed=0)
            assert len(text) == 5
            try:
                r = Run(synth.generate(2000), path, ck.config,
                        TrainConfig.from_dict(ck.meta["train"]), resume=ck)
                assert np.isfinite(r.train_step())
            except CharrnnError as e:  # a setting that does not fit this text, said in a line
                assert "\n" not in str(e)
            outcomes["loaded"] += 1
    finally:
        tracemalloc.stop()
    assert outcomes["refused"] >= 800, outcomes


BOMB = 256 << 20  # bytes of zeros a bomb member inflates to (about 250 KB deflated)


def npy_header(dtype, shape):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(
        np.dtype(dtype)), "fortran_order": False, "shape": shape})
    return buf.getvalue()


def write_bomb(path, good, name, header):
    """The good checkpoint's members plus (or with, in place of one) member name: header,
    then BOMB zero bytes, deflated: a small file that inflates to hundreds of MB."""
    with zipfile.ZipFile(good) as zin, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
        for info in zin.infolist():
            if info.filename != name + ".npy":
                zout.writestr(info.filename, zin.read(info))
        with zout.open(name + ".npy", "w", force_zip64=True) as f:
            f.write(header)
            zeros = bytes(1 << 20)
            for _ in range(BOMB >> 20):
                f.write(zeros)


def peak_rss_mb(*args):
    """(exit status, stderr, peak resident memory in MB) of `charrnn ARGS`, a child of its own."""
    p = subprocess.Popen([sys.executable, "-m", "charrnn", *args], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    err = p.stderr.read().decode()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, err, usage.ru_maxrss / 1024


BOMBS = {  # member: its header (V = 65 would be right for out.W)
    "junk": npy_header(np.uint8, (BOMB,)),  # a member the format does not define
    "param/out.W": npy_header(np.float32, (BOMB // 4,)),  # the wrong shape for the model
    "__meta__": npy_header(np.uint8, (BOMB,)),  # more metadata than any vocabulary needs
    "opt/m": npy_header(np.float32, (BOMB // 4,)),
}


@pytest.mark.parametrize("member", list(BOMBS))
def test_a_zip_bomb_is_refused_within_a_small_multiple_of_the_model(tmp_path, good_checkpoint,
                                                                    member):
    """Each bomb inflates to 256 MB; charrnn info refuses it, one line, having held no
    more memory than for loading the good checkpoint (its model is a few KB), plus 32 MB."""
    bomb = str(tmp_path / "bomb.npz")
    write_bomb(bomb, good_checkpoint, member, BOMBS[member])
    assert os.path.getsize(bomb) < 2 << 20
    code, err, good_mb = peak_rss_mb("info", good_checkpoint)
    assert code == 0, err
    code, err, bomb_mb = peak_rss_mb("info", bomb)
    assert code == 1 and err.count("\n") == 1 and err.startswith("charrnn: error: "), err
    assert bomb_mb < good_mb + 32, (bomb_mb, good_mb, err)


BINARY = [  # every place a text is read; /dev/zero and /dev/urandom never end
    ["train", "/dev/zero", "-o", "{tmp}/m.npz"],
    ["train", "/dev/urandom", "-o", "{tmp}/m.npz"],
    ["train", "-", "-o", "{tmp}/m.npz", "<", "/dev/zero"],
    ["eval", "{ck}", "/dev/zero"],
    ["eval", "{ck}", "/dev/urandom"],
    ["inspect-cells", "{ck}", "/dev/zero"],
    ["inspect-cells", "{ck}", "/dev/urandom", "--encoding", "utf-16"],
    ["inspect-cells", "{ck}", "{text}", "--spans", "/dev/zero"],
    ["inspect-cells", "{ck}", "{text}", "--feature", "/dev/urandom"],
    ["sample", "{ck}", "--prime-file", "/dev/zero"],
    ["sample", "{ck}", "--prime-file", "/dev/urandom", "--encoding", "utf-32"],
]


@pytest.mark.parametrize("args", BINARY, ids=[" ".join(a[:3]) for a in BINARY])
def test_endless_binary_input_is_refused_at_its_first_block(tmp_path, good_checkpoint, corpus, args):
    """Read whole, these grew without bound; read in blocks, the first block is refused."""
    args = [a.format(tmp=tmp_path, ck=good_checkpoint, text=corpus) for a in args]
    stdin = open(args.pop(), "rb") if "<" in args else subprocess.DEVNULL
    if stdin is not subprocess.DEVNULL:
        args.pop()
    p = subprocess.Popen([sys.executable, "-m", "charrnn", *args], stdin=stdin,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 1 and out == "" and err.count("\n") == 1, err
    assert err.startswith("charrnn: error: ") and ("looks binary" in err or "not valid" in err), err


def test_second_run_on_the_same_path_is_refused_until_the_first_ends(tmp_path):
    path = str(tmp_path / "m.npz")
    with outputs.Lock(path):
        with pytest.raises(CharrnnError, match="another charrnn run"):
            with outputs.Lock(path):
                pass
    with outputs.Lock(path):  # released: free again
        pass
    assert not os.path.exists(path + ".lock")


def test_a_text_of_thousands_of_distinct_characters_trains_and_samples(tmp_path):
    """A Chinese-sized vocabulary (3,000 code points, ids in uint16)."""
    rng = np.random.default_rng(0)
    chars = [chr(0x4E00 + i) for i in range(3000)]
    text = "".join(chars) + "".join(rng.choice(chars, 20000))  # every character at least once
    corpus = tmp_path / "zh.txt"
    corpus.write_text(text, encoding="utf-8")
    out = str(tmp_path / "zh.npz")
    p = charrnn("train", str(corpus), "-o", out, *TINY, "--max-steps", "5", "--embed", "8", "-q")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    ck = checkpoint.load(out)
    assert len(ck.vocab) == 3000 and ck.params["out.W"].shape == (16, 3000)
    p = charrnn("sample", out, "--length", "50", "--seed", "1")
    text_out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and len(text_out) == 51 and set(text_out[:-1]) <= set(chars), err


def test_a_second_run_on_the_same_checkpoint_is_refused(tmp_path, corpus):
    out = str(tmp_path / "m.npz")
    first = charrnn("train", str(corpus), "-o", out, *TINY, "--max-steps", "1000000", "-q",
                    "--checkpoint-every", "1")
    deadline = time.time() + 60
    while not os.path.exists(out) and time.time() < deadline:  # training, holding the lock
        time.sleep(0.05)
    second = charrnn("train", str(corpus), "-o", out, *TINY, "--max-steps", "5", "-q", "--force")
    _, err = second.communicate(timeout=60)
    first.terminate()
    first.communicate(timeout=60)
    assert second.returncode == 1 and err.startswith("charrnn: error: another charrnn run (pid")
    assert err.count("\n") == 1
    # the first run's checkpoint is intact, and now a new run may write it
    assert checkpoint.load(out).meta["step"] > 0
    again = charrnn("train", str(corpus), "-o", out, *TINY, "--max-steps", "2", "-q", "--force")
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err


def test_an_existing_checkpoint_is_never_replaced_by_a_new_run_by_accident(tmp_path, corpus):
    """A new run refuses a path that holds a checkpoint (unless --force); --resume
    without -o continues the checkpoint it names, not the default model.npz."""
    out = str(tmp_path / "m.npz")
    first = charrnn("train", str(corpus), "-o", out, *TINY, "--max-steps", "3", "-q")
    assert first.wait(timeout=60) == 0
    before = open(out, "rb").read()
    p = charrnn("train", str(corpus), "-o", out, *TINY, "--max-steps", "3", "-q")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1 and "already holds a checkpoint" in err and "--resume" in err
    assert open(out, "rb").read() == before
    p = charrnn("train", str(corpus), "--resume", out, "--max-steps", "5", "-q", cwd=tmp_path)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert checkpoint.load(out).meta["step"] == 5
    assert not os.path.exists(tmp_path / "model.npz")


# -- a lost stderr or log, Ctrl-C while compiling -----------------------------------

LONG = ["--max-steps", "40", "--eval-every", "5", "--checkpoint-every", "1000"]


def finished(out, steps=40):
    """The run trained to its limit and saved, best file included."""
    assert checkpoint.load(out).meta["step"] == steps
    assert os.path.exists(outputs.best_path(out))


@pytest.mark.parametrize("merged", [False, True])  # 2> >(head -c 20), 2>&1 | head -c 20
def test_a_closed_stderr_pipe_neither_stops_training_nor_loses_it(tmp_path, corpus, merged):
    """The reader of stderr (a tee, an ssh session) goes away after the first line; the
    progress bar and previews after it must not end the run: it trains on and saves."""
    out = str(tmp_path / "m.npz")
    p = subprocess.Popen([sys.executable, "-m", "charrnn", "train", str(corpus), "-o", out,
                          *TINY, *LONG], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT if merged else subprocess.PIPE)
    reader = p.stdout if merged else p.stderr
    assert reader.read(20).startswith(b"charrnn: ")
    reader.close()
    assert p.wait(timeout=120) == 0
    finished(out)


def test_a_full_stderr_neither_stops_training_nor_loses_it(tmp_path, corpus):
    out = str(tmp_path / "m.npz")
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "charrnn", "train", str(corpus), "-o", out,
                            *TINY, *LONG], stderr=full, timeout=120)
    assert p.returncode == 0
    finished(out)


def test_an_unwritable_log_is_given_up_with_one_warning(tmp_path, corpus):
    out = str(tmp_path / "m.npz")
    p = charrnn("train", str(corpus), "-o", out, *TINY, *LONG, "--log", "/dev/full", "-q")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert err == ("charrnn: warning: cannot write the log /dev/full (No space left on "
                   "device); training goes on without it\n")
    finished(out)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                      (signal.SIGHUP, 129)])
def test_a_signal_while_the_kernels_compile_ends_the_run_with_one_line(tmp_path, corpus, sig,
                                                                       code):
    """A fresh numba cache, so the kernels really compile; the signal once the notice
    says so. (Ctrl-C there was a traceback, or its KeyboardInterrupt was swallowed in
    a ctypes callback of numba's compiler and the run went on.)"""
    out = str(tmp_path / "m.npz")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    p = charrnn("train", str(corpus), "-o", out, *TINY, *LONG, "-q", env=env)
    assert p.stderr.readline().startswith("charrnn: compiling kernels")
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == code
    assert err == f"charrnn: interrupted by {sig.name} before training began; nothing was written\n"
    assert os.listdir(tmp_path) == ["numba"]  # no checkpoint, no lock file


# -- files that are not the run's own ------------------------------------------------

def train_cli(*args, cwd, steps=10):
    """(exit status, stderr but the notice of a compile)"""
    p = charrnn("train", *args, *TINY, "--max-steps", str(steps), "--eval-every", "5", "-q",
                cwd=cwd)
    _, err = p.communicate(timeout=300)
    return p.returncode, "".join(line for line in err.splitlines(keepends=True)
                                 if not line.startswith("charrnn: compiling kernels"))


def test_no_run_replaces_another_runs_files(tmp_path, corpus):
    """-o m.npz and -o m keep their own best files; a checkpoint, a best file (an
    orphan too) or the -o of a --resume is never replaced without --force."""
    c = str(corpus)
    assert train_cli(c, "-o", "m.npz", "--model", "lstm", cwd=tmp_path) == (0, "")
    lstm_best = (tmp_path / "m.best.npz").read_bytes()
    assert train_cli(c, "-o", "m", "--model", "gru", cwd=tmp_path) == (0, "")
    assert (tmp_path / "m.best.npz").read_bytes() == lstm_best
    assert checkpoint.load(tmp_path / "m.best").config.kind == "gru"
    code, err = train_cli(c, "-o", "m.best.npz", cwd=tmp_path)  # its checkpoint: m.npz's best
    assert code == 1 and err.startswith("charrnn: error: m.best.npz already holds a checkpoint")
    os.unlink(tmp_path / "m.npz")  # m.best.npz is an orphan now
    code, err = train_cli(c, "-o", "m.npz", cwd=tmp_path)
    assert code == 1 and err.startswith("charrnn: error: m.best.npz already exists")
    assert (tmp_path / "m.best.npz").read_bytes() == lstm_best
    before = (tmp_path / "m").read_bytes()
    code, err = train_cli(c, "--resume", "m.best.npz", "-o", "m", cwd=tmp_path)
    assert code == 1 and "--resume m.best.npz -o m would replace" in err and err.count("\n") == 1
    assert (tmp_path / "m").read_bytes() == before
    code, err = train_cli(c, "--resume", "m.best.npz", "-o", "m", "--force", cwd=tmp_path, steps=12)
    assert code == 0 and "error" not in err, err
    assert checkpoint.load(tmp_path / "m").meta["step"] == 12
    assert sorted(os.listdir(tmp_path)) == ["m", "m.best", "m.best.npz"]  # no temp or lock left
