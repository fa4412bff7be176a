"""The command line: help, streams, exit statuses and one-line errors.

Most tests run the CLI in-process with click's CliRunner (fast); the ones about the
process itself (imports, pipes, the installed entry point) run a subprocess."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import __version__, checkpoint, synth
from charrnn.cli import COMPILE_NOTICE, cli

TINY = ["--hidden", "16", "--layers", "1", "--batch-size", "4", "--seq-length", "16",
        "--max-steps", "20", "--eval-every", "10"]
# non-ASCII characters, so that lengths in characters and in bytes differ
TEXT = synth.generate(5000, seed=2).replace("cat", "càt✓")
PRIME = "the càt✓"


def charrnn(*args, input=None):
    """Runs the CLI in-process; returns (exit status, stdout, stderr)."""
    res = CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=True)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    # the compile notice depends on whether numba's cache is warm, not on the command
    return res.exit_code, res.stdout, res.stderr.replace(COMPILE_NOTICE + "\n", "")


def run(*args, input=None, **kw):
    """Runs `python -m charrnn` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "charrnn", *map(str, args)], input=input,
                          capture_output=True, **kw)


def assert_one_line_error(code, out, err, status=(1, 2), contains=""):
    assert code in status, (code, err)
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("charrnn: error: "), err
    assert contains in lines[0], err


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ckpt(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m.npz"
    code, _, err = charrnn("train", corpus, "-o", out, *TINY, "--seed", "1", "-q")
    assert code == 0, err
    return out


# -- help and version ------------------------------------------------------------

@pytest.mark.parametrize("command", [[]] + [[name] for name in sorted(cli.commands)],
                         ids=lambda c: " ".join(["charrnn", *c]))
def test_help_has_examples(command):
    """Every command, a new one too: its help on stdout, with examples of itself."""
    code, out, err = charrnn(*command, "--help")
    assert code == 0 and err == ""
    assert "Examples:" in out and " ".join(["charrnn", *command, ""]) in out.split("Examples:")[1]


def test_version():
    code, out, _ = charrnn("--version")
    assert code == 0 and out.strip() == f"charrnn, version {__version__}"
    p = run("-V")
    assert p.returncode == 0 and __version__ in p.stdout.decode()


def test_help_does_not_import_numba():
    code = ("import sys\nfrom charrnn.cli import cli\n"
            "try:\n    cli(['--help'], prog_name='charrnn')\nexcept SystemExit:\n    pass\n"
            "try:\n    cli(['train', '--help'], prog_name='charrnn')\nexcept SystemExit:\n    pass\n"
            "print('NUMBA', sorted(m for m in sys.modules if m.split('.')[0] == 'numba' "
            "or m in ('charrnn.model', 'charrnn.sample', 'charrnn.train')), file=sys.stderr)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "Examples:" in p.stdout
    assert p.stderr.strip().endswith("NUMBA []"), p.stderr


def test_warm_sample_does_not_import_scipy_linalg(ckpt):
    """scipy.linalg is slow to import (benchmarks/RESULTS.md), which numba does for
    np.dot; with numpy's BLAS found (native.py) a warm `charrnn sample` never needs it."""
    from charrnn import native
    code = ("import sys\nfrom charrnn.cli import cli\n"
            f"try:\n    cli(['sample', {str(ckpt)!r}, '--length', '20'], prog_name='charrnn')\n"
            "except SystemExit:\n    pass\n"
            "print('SCIPY_LINALG', 'scipy.linalg' in sys.modules, file=sys.stderr)")
    for _ in range(2):  # the first run may compile kernels, and np.dot's fallback with them
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    assert p.stderr.strip().endswith(f"SCIPY_LINALG {native.blas_addresses()[1] == 0}"), p.stderr


def test_bare_command_shows_the_help():
    """The help, not an error message; click 8.2 and later count it a usage error and
    print it on stderr, older versions print it on stdout and exit 0."""
    from charrnn.cli import NO_ARGS_IS_HELP
    code, out, err = charrnn()
    if NO_ARGS_IS_HELP:
        assert (code, out) == (2, "") and err.startswith("Usage: ")
    else:
        assert (code, err) == (0, "") and out.startswith("Usage: ")
    assert "Commands:" in out + err and "charrnn: error" not in err


def test_unknown_command_points_at_the_top_help():
    code, out, err = charrnn("bogus")
    assert_one_line_error(code, out, err, status=(2,), contains="(see 'charrnn --help')")


# -- the product on stdout ----------------------------------------------------------

def test_end_to_end_train_sample_eval_info(corpus, tmp_path):
    out = tmp_path / "e2e.npz"
    log = tmp_path / "log.jsonl"
    p = run("train", corpus, "-o", out, *TINY, "--seed", "3", "--log", log, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""  # training talks on stderr only
    assert "parameters" in p.stderr and "ln V" in p.stderr and "saved" in p.stderr
    assert out.exists() and (tmp_path / "e2e.best.npz").exists() and log.read_text()

    p = run("sample", out, "--prime", PRIME, "--length", "300", "--seed", "1")
    assert p.returncode == 0 and p.stderr == b""
    text = p.stdout.decode("utf-8")
    assert text.startswith(PRIME) and text.endswith("\n")
    assert len(text) == len(PRIME) + 300 + 1
    assert set(text[len(PRIME):-1]) <= set(TEXT)

    p = run("eval", out, corpus, "--json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert {"loss_nats", "bits_per_char", "chars"} <= set(res)
    assert res["bits_per_char"] == pytest.approx(res["loss_nats"] / np.log(2))
    assert 0 < res["loss_nats"] < np.log(len(set(TEXT))) + 0.1
    assert res["chars"] > 0.95 * len(TEXT)

    p = run("info", out, text=True)
    assert p.returncode == 0 and "step 20" in p.stdout and "gru" in p.stdout  # the default model


def test_sample_stdout_is_only_the_text(ckpt):
    code, out, err = charrnn("sample", ckpt, "--prime", PRIME, "--length", "257", "--seed", "4")
    assert code == 0 and err == ""
    assert out.startswith(PRIME) and out.endswith("\n") and len(out) == len(PRIME) + 257 + 1
    again = charrnn("sample", ckpt, "--prime", PRIME, "--length", "257", "--seed", "4")[1]
    assert again == out


def test_sample_without_prime_is_not_echoed(ckpt):
    code, out, _ = charrnn("sample", ckpt, "--length", "50", "--seed", "4")
    assert code == 0 and len(out) == 51 and out.endswith("\n")
    code, out, _ = charrnn("sample", ckpt, "--length", "0", "--prime", "ab")
    assert code == 0 and out == "ab\n"


def test_sample_prime_file(ckpt, tmp_path):
    prime = tmp_path / "prime.txt"
    prime.write_text("a (b)\n", encoding="utf-8")
    code, out, _ = charrnn("sample", ckpt, "--prime-file", prime, "--length", "40", "--seed", "2")
    assert code == 0 and out.startswith("a (b)\n") and len(out) == 6 + 40 + 1
    same = charrnn("sample", ckpt, "--prime", "a (b)\n", "--length", "40", "--seed", "2")[1]
    assert same == out


def test_num_samples_layout(ckpt):
    code, out, _ = charrnn("sample", ckpt, "--prime", PRIME, "--length", "60", "--num-samples", "3",
                           "--separator", "<SEP>", "--seed", "5")
    assert code == 0 and out.endswith("\n")
    parts = out[:-1].split("<SEP>")
    assert len(parts) == 3
    for part in parts:
        assert part.startswith(PRIME) and len(part) == len(PRIME) + 60
    assert len(set(parts)) == 3


def test_argmax_ignores_the_seed(ckpt):
    a = charrnn("sample", ckpt, "--argmax", "--length", "80", "--seed", "1")[1]
    b = charrnn("sample", ckpt, "--argmax", "--length", "80", "--seed", "2")[1]
    assert a == b and len(a) == 81


def test_top_p_is_sampling_restricted_to_the_nucleus(ckpt):
    base = ["sample", ckpt, "--length", "300", "--seed", "6"]
    assert charrnn(*base, "--top-p", "1")[1] == charrnn(*base)[1]  # 1 is off
    tiny = charrnn(*base, "--top-p", "1e-6")
    assert tiny[0] == 0 and tiny[1] == charrnn("sample", ckpt, "--length", "300", "--argmax")[1]
    code, out, err = charrnn(*base, "--top-p", "0.8", "--top-k", "5")
    assert code == 0 and err == "" and len(out) == 301 and out != charrnn(*base)[1]


def test_beam(ckpt):
    """--beam 1 is --argmax; a wider beam prints Sampler.beam's text after the prime."""
    from charrnn.data import encode
    from charrnn.sample import Sampler
    one = charrnn("sample", ckpt, "--beam", "1", "--length", "80", "--prime", PRIME)
    assert one == charrnn("sample", ckpt, "--argmax", "--length", "80", "--prime", PRIME)
    code, out, err = charrnn("sample", ckpt, "--beam", "6", "--length", "80", "--prime", PRIME)
    assert code == 0 and err == ""
    ck = checkpoint.load(ckpt)
    ids, _ = Sampler(ck.config, ck.params, ck.vocab).beam(encode(PRIME, ck.vocab), 80, 6)
    assert out == PRIME + "".join(ck.vocab[i] for i in ids) + "\n"


def test_stop_at_across_the_chunk_boundary(ckpt):
    """The text is made in chunks of 128: a delimiter straddling the first boundary
    still ends the sample right after it."""
    full = charrnn("sample", ckpt, "--prime", PRIME, "--length", "600", "--seed", "3")[1]
    cont = full[len(PRIME):-1]
    stop = cont[125:131]
    assert cont.find(stop) == 125  # first seen across the boundary at 128
    code, out, err = charrnn("sample", ckpt, "--prime", PRIME, "--length", "600", "--seed", "3",
                             "--stop-at", stop)
    assert code == 0 and err == ""
    assert out == PRIME + cont[:131] + "\n"


def test_stop_at_ignores_the_prime_and_stops_each_sample(ckpt):
    args = ["sample", ckpt, "--prime", PRIME, "--length", "200", "--seed", "8",
            "--num-samples", "3", "--separator", "<SEP>"]
    whole = charrnn(*args)[1][:-1].split("<SEP>")
    assert " " in PRIME
    code, out, err = charrnn(*args, "--stop-at", " ")
    assert code == 0 and err == ""
    parts = out[:-1].split("<SEP>")
    want = []
    for w in whole:
        cont = w[len(PRIME):]
        want.append(PRIME + cont[:cont.index(" ") + 1])  # the first space after the prime
    assert parts == want
    assert len({len(p) for p in parts}) > 1


def test_stop_at_never_found_prints_everything(ckpt):
    """What was held back for a match that never came is printed at the end."""
    args = ["sample", ckpt, "--length", "100", "--seed", "2", "--num-samples", "2"]
    whole = charrnn(*args)[1]
    for part in whole[:-1].split("\n\n"):
        stop = part[-1] + "✓✓✓✓"  # the text ends with the start of a match
        assert stop not in whole
        assert charrnn(*args, "--stop-at", stop)[1] == whole


def test_eval_and_info_json(ckpt, corpus):
    code, out, _ = charrnn("eval", ckpt, corpus, "--json")
    assert code == 0
    res = json.loads(out)
    assert {"loss_nats", "bits_per_char", "chars"} <= set(res)
    code, out, _ = charrnn("eval", ckpt, corpus)
    assert code == 0 and "bits/char" in out
    code, out, _ = charrnn("info", ckpt, "--json")
    info = json.loads(out)
    assert code == 0 and info["step"] == 20 and info["config"]["hidden"] == 16
    assert info["vocab_size"] == len(set(TEXT)) and info["format_version"] == 1


def test_train_from_stdin(tmp_path):
    out = tmp_path / "stdin.npz"
    code, stdout, err = charrnn("train", "-", "-o", out, *TINY, "--seed", "1", "-q",
                                input=TEXT.encode("utf-8"))
    assert code == 0, err
    assert stdout == ""
    ck = checkpoint.load(out)
    assert ck.vocab == sorted(set(TEXT)) and ck.meta["step"] == 20


def test_sample_into_head_is_quiet(ckpt, tmp_path):
    err = tmp_path / "err.txt"
    cmd = (f'"{sys.executable}" -m charrnn sample "{ckpt}" --length 100000 --seed 1 2>"{err}" '
           f'| head -c 100 >/dev/null; exit "${{PIPESTATUS[0]}}"')
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert err.read_text().replace(COMPILE_NOTICE + "\n", "") == ""
    assert p.returncode == 0


def test_same_seed_same_checkpoint(corpus, tmp_path):
    params = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        out = tmp_path / f"{name}.npz"
        code, _, err = charrnn("train", corpus, "-o", out, *TINY, "--seed", seed, "--dropout", "0.1",
                               "-q")
        assert code == 0, err
        params.append(checkpoint.load(out).params)
    a, b, c = params
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_resume_continues_the_run(corpus, tmp_path):
    out = tmp_path / "r.npz"
    assert charrnn("train", corpus, "-o", out, *TINY, "--seed", "1", "-q")[0] == 0
    code, _, err = charrnn("train", corpus, "--resume", out, "-o", out, "--max-steps", "30", "-q")
    assert code == 0, err
    ck = checkpoint.load(out)
    assert ck.meta["step"] == 30 and ck.config.hidden == 16 and ck.meta["train"]["seed"] == 1


def test_preset_sets_what_is_not_given(corpus, tmp_path):
    from charrnn.train import PRESETS
    out = tmp_path / "p.npz"
    # the preset's architecture and schedule, but a tiny net and few steps given as flags
    code, _, err = charrnn("train", corpus, "-o", out, "--preset", "large", "--hidden", "8",
                           "--batch-size", "4", "--max-steps", "3", "--seed", "1", "-q")
    assert code == 0, err
    ck = checkpoint.load(out)
    large = PRESETS["large"]
    assert ck.config.hidden == 8 and ck.meta["step"] == 3 and ck.meta["train"]["batch_size"] == 4
    assert (ck.config.embed, ck.config.dropout, ck.config.layers) == (
        large["embed"], large["dropout"], large["layers"])
    for k in ("seq_length", "lr", "schedule", "min_lr", "warmup", "epochs", "eval_every",
              "weight_drop", "time_limit", "patience"):
        assert ck.meta["train"][k] == large[k], k


def test_presets_offered_are_the_presets_defined():
    from charrnn.train import PRESETS
    opt = next(o for o in cli.commands["train"].params if o.name == "preset")
    assert list(opt.type.choices) == list(PRESETS)
    flags = {o.name for o in cli.commands["train"].params}
    assert all(set(p) <= flags for p in PRESETS.values())


# -- errors ---------------------------------------------------------------------------

def test_output_folder_missing_is_reported_before_training(corpus, tmp_path):
    # no -q: anything training prints would show up on stderr
    code, out, err = charrnn("train", corpus, "-o", tmp_path / "no" / "m.npz", *TINY)
    assert_one_line_error(code, out, err, status=(1,), contains="does not exist")
    # before the text is even read
    code, out, err = charrnn("train", tmp_path / "missing.txt", "-o", tmp_path / "no" / "m.npz")
    assert_one_line_error(code, out, err, status=(1,), contains="cannot write the checkpoint")


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bad.txt").write_bytes(b"ok\xfe\xffno")
    (tmp_path / "notck.npz").write_text("I am not a checkpoint\n")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    (tmp_path / "dir").mkdir()
    (tmp_path / "one.txt").write_text("aaaaaaaaaaaa")
    (tmp_path / "unseen.txt").write_text("a ZQ€ a", encoding="utf-8")
    (tmp_path / "binary.bin").write_bytes(b"text at first\n" + bytes(range(256)) * 4)
    (tmp_path / "nul.txt").write_bytes(b"ab\x00cd" * 100)
    return tmp_path


TRAIN_ERRORS = [
    (["missing.txt"], 1, "cannot read"),
    (["dir"], 1, "is a directory"),
    (["empty.txt"], 1, "empty"),
    (["bad.txt"], 1, "at byte 2"),
    (["one.txt"], 1, "fewer than 2 distinct"),
    (["binary.bin"], 1, "binary"),
    (["{corpus}", "--log", "nodir/log.jsonl"], 1, "cannot write the log"),
    (["nul.txt"], 1, "NUL byte at offset 2"),
    (["unseen.txt", "--resume", "{ckpt}"], 1, "not in the model's vocabulary"),
    (["{corpus}", "--hidden", "0"], 2, "--hidden"),
    (["{corpus}", "--layers", "0"], 2, "--layers"),
    (["{corpus}", "--lr", "0"], 2, "--lr"),
    (["{corpus}", "--weight-drop", "1"], 2, "--weight-drop"),
    (["{corpus}", "--batch-size", "1000"], 1, "too short"),
    (["{corpus}", "--model", "transformer"], 2, "--model"),
    (["{corpus}", "--encoding", "klingon"], 1, "unknown encoding"),
    (["{corpus}", "--resume", "{ckpt}", "--hidden", "32"], 1, "--hidden 32 contradicts"),
    (["{corpus}", "--resume", "{ckpt}", "--model", "lstm"], 1, "--model lstm contradicts"),
    (["{corpus}", "--resume", "notck.npz"], 1, "checkpoint"),
    (["{corpus}", "-o", "dir"], 1, "is a directory"),
    (["{corpus}", "--resume", "{ckpt}", "--preset", "small"], 1, "drop --preset"),
    (["{corpus}", "--preset", "huge"], 2, "--preset"),
    (["{corpus}", "--seed", "-1"], 2, "'--seed': -1 is not in the range x>=0"),
    (["{corpus}", "--lr", "nan"], 2, "'--lr': 'nan' is not a finite number"),
    (["{corpus}", "--dropout", "nan"], 2, "--dropout"),
    (["{corpus}", "--epochs", "inf"], 2, "--epochs"),
    (["{corpus}", "--time-limit", "nan"], 2, "--time-limit"),
    (["/dev/zero"], 1, "/dev/zero looks binary (NUL byte at offset 0)"),
] + [(["{corpus}", "--encoding", enc], 1, f"--encoding {enc} is not an encoding of text files")
     for enc in ("hex", "base64", "rot13", "zlib", "unicode_escape", "bz2")]


@pytest.mark.parametrize("args,status,contains", TRAIN_ERRORS)
def test_train_errors(args, status, contains, bad_files, corpus, ckpt, monkeypatch):
    monkeypatch.chdir(bad_files)
    args = [a.format(corpus=corpus, ckpt=ckpt) for a in args]
    if "-o" not in args:
        args += ["-o", "out.npz"]
    code, out, err = charrnn("train", "--max-steps", "2", "--batch-size", "4", *args)
    assert_one_line_error(code, out, err, status=(status,), contains=contains)
    assert not (bad_files / "out.npz").exists()


SAMPLE_ERRORS = [
    (["sample", "{ckpt}", "--temperature", "0"], 2, "--temperature"),
    (["sample", "{ckpt}", "--length", "-1"], 2, "--length"),
    (["sample", "{ckpt}", "--top-k", "-1"], 2, "--top-k"),
    (["sample", "{ckpt}", "--num-samples", "0"], 2, "--num-samples"),
    (["sample", "{ckpt}", "--top-p", "0"], 2, "--top-p"),
    (["sample", "{ckpt}", "--top-p", "1.5"], 2, "--top-p"),
    (["sample", "{ckpt}", "--beam", "-1"], 2, "--beam"),
    (["sample", "{ckpt}", "--beam", "3", "--num-samples", "2"], 2, "drop --num-samples"),
    (["sample", "{ckpt}", "--beam", "3", "--top-k", "5"], 2, "drop --top-k"),
    (["sample", "{ckpt}", "--beam", "3", "--top-p", "0.9"], 2, "drop --top-p"),
    (["sample", "{ckpt}", "--beam", "3", "--argmax"], 2, "drop --argmax"),
    (["sample", "{ckpt}", "--beam", "3", "--temperature", "0.5"], 2, "drop --temperature"),
    (["sample", "{ckpt}", "--stop-at", ""], 2, "--stop-at"),
    (["sample", "{ckpt}", "--stop-at", "X€"], 1, "--stop-at has 2 character(s) not in the model"),
    (["sample", "{ckpt}", "--prime", "XYZ€"], 1, "'X' 'Y' 'Z' '€'"),
    (["sample", "{ckpt}", "--prime", "a", "--prime-file", "one.txt"], 2, "not both"),
    (["sample", "{ckpt}", "--prime-file", "missing.txt"], 1, "cannot read"),
    (["sample", "missing.npz"], 1, "does not exist"),
    (["sample", "dir"], 1, "is a directory"),
    (["sample", "notck.npz"], 1, "charrnn checkpoint"),
    (["sample", "other.npz"], 1, "charrnn"),
    (["sample", "bad.txt"], 1, "checkpoint"),
    (["eval", "notck.npz", "one.txt"], 1, "checkpoint"),
    (["eval", "{ckpt}", "empty.txt"], 1, "at least 2 characters"),
    (["eval", "{ckpt}", "missing.txt"], 1, "cannot read"),
    (["eval", "{ckpt}", "bad.txt"], 1, "not valid utf-8"),
    (["eval", "{ckpt}", "unseen.txt"], 1, "3 character(s) not in the model's vocabulary"),
    (["info", "notck.npz"], 1, "checkpoint"),
    (["info", "empty.txt"], 1, "checkpoint"),
    (["sample", "{ckpt}", "--temperature", "nan"], 2, "'nan' is not a finite number"),
    (["sample", "{ckpt}", "--temperature", "inf"], 2, "'inf' is not a finite number"),
    (["sample", "{ckpt}", "--top-p", "nan"], 2, "--top-p"),
    (["sample", "{ckpt}", "--seed", "-1"], 2, "'--seed': -1 is not in the range x>=0"),
    (["sample", "{ckpt}", "--num-samples", "1000000"], 2, "1000000 is not in the range 1<=x<=10000"),
    (["sample", "{ckpt}", "--num-samples", "10000", "--length", "100000"], 1,
     "the limit is 50,000,000"),
    (["sample", "{ckpt}", "--beam", "1000000"], 2, "1000000 is not in the range 0<=x<=10000"),
    (["sample", "{ckpt}", "--beam", "10000", "--length", "1000000"], 1,
     "--beam 10000 over --length 1,000,000 needs 149.0 GiB; the limit is 1 GiB"),
    (["sample", "{ckpt}", "--prime-file", "one.txt", "--encoding", "hex"], 1,
     "--encoding hex is not an encoding of text files"),
    (["sample", "{ckpt}", "--prime-file", "nul.txt"], 1, "NUL byte at offset 2"),
    (["eval", "{ckpt}", "one.txt", "--encoding", "rot13"], 1, "not an encoding of text files"),
    (["eval", "{ckpt}", "/dev/urandom"], 1, "/dev/urandom looks binary"),
    (["inspect-cells", "{ckpt}", "one.txt", "--shifts", "1000000000"], 2,
     "1000000000 is not in the range 0<=x<=10000"),
    (["inspect-cells", "{ckpt}", "one.txt", "--seed", "-1"], 2, "--seed"),
    (["inspect-cells", "{ckpt}", "/dev/zero"], 1, "/dev/zero looks binary"),
    (["inspect-cells", "{ckpt}", "one.txt", "--encoding", "zlib"], 1, "not an encoding of text"),
]


@pytest.mark.parametrize("args,status,contains", SAMPLE_ERRORS)
def test_sample_eval_info_errors(args, status, contains, bad_files, ckpt, monkeypatch):
    monkeypatch.chdir(bad_files)
    code, out, err = charrnn(*[a.format(ckpt=ckpt) for a in args])
    assert_one_line_error(code, out, err, status=(status,), contains=contains)


def test_errors_from_the_installed_command(tmp_path):
    """The same one-line error through a real process (no CliRunner in between)."""
    p = run("train", tmp_path / "missing.txt", "-o", tmp_path / "m.npz", text=True)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.startswith("charrnn: error: cannot read") and p.stderr.count("\n") == 1
    p = run("sample", tmp_path, "--temperature", "0", text=True,
            env=dict(os.environ, NO_COLOR="1"))
    assert p.returncode == 2 and p.stderr.startswith("charrnn: error: ")
    assert "Traceback" not in p.stderr and p.stderr.count("\n") == 1


def test_a_short_text_shrinks_the_default_batch_with_a_warning(tmp_path):
    """With the default batch (50 x 50) a 1,000-character text does not fit: the batch
    shrinks to fit, with a warning; an explicit --batch-size is respected (an error)."""
    text = tmp_path / "short.txt"
    text.write_text(synth.generate(1000, seed=2))
    code, _, err = charrnn("train", text, "-o", tmp_path / "m.npz", "--max-steps", "2",
                           "--hidden", "8")
    assert code == 0, err
    assert "warning: the training text (900 characters) is too short for 50 streams of 50: " \
           "using --batch-size 17 --seq-length 50" in err
    assert checkpoint.load(tmp_path / "m.npz").meta["train"]["batch_size"] == 17
    code, _, err = charrnn("train", text, "-o", tmp_path / "m2.npz", "--batch-size", "50")
    assert code == 1 and "too short" in err


# -- what the user means: resume limits, unseen characters, info ---------------------

def trained_copy(corpus, tmp_path, name="r.npz"):
    out = tmp_path / name
    code, _, err = charrnn("train", corpus, "-o", out, *TINY, "--seed", "1", "-q")
    assert code == 0, err
    return out


def test_a_limit_given_on_resume_is_honoured(corpus, tmp_path):
    """The run stopped at --max-steps 20; --epochs 1 (70 steps of this text) given on
    resume must not be vetoed by the stored --max-steps, which was not repeated."""
    out = trained_copy(corpus, tmp_path)
    code, _, err = charrnn("train", corpus, "--resume", out, "--epochs", "1", "-q")
    assert code == 0, err
    meta = checkpoint.load(out).meta
    assert meta["step"] == meta["steps_per_epoch"] > 20


def test_a_resume_with_nothing_to_train_says_so_and_writes_nothing(corpus, tmp_path):
    out = trained_copy(corpus, tmp_path)
    before = out.read_bytes()
    code, o, err = charrnn("train", corpus, "--resume", out)
    assert_one_line_error(code, o, err, (1,), "already at step 20, its limit (--max-steps 20)")
    short = tmp_path / "short.txt"
    short.write_text(TEXT[:2000], encoding="utf-8")
    code, o, err = charrnn("train", short, "--resume", out, "--max-steps", "15")
    assert_one_line_error(code, o, err, (1,), "nothing to train")
    assert out.read_bytes() == before  # not even the recorded text size


def test_resume_shows_the_runs_own_seed(corpus, tmp_path):
    out = trained_copy(corpus, tmp_path)
    code, _, err = charrnn("train", corpus, "--resume", out, "--max-steps", "21", "--seed", "3")
    assert code == 0, err
    assert "--seed is ignored" in err and "; seed 1; resuming at step 20" in err
    assert "seed 3;" not in err


def test_eval_unknown_characters_error_or_skip(ckpt, tmp_path):
    odd, plain = tmp_path / "odd.txt", tmp_path / "plain.txt"
    odd.write_text(TEXT[:2000] + "中" + TEXT[2000:4000], encoding="utf-8")
    plain.write_text(TEXT[:4000], encoding="utf-8")
    code, out, err = charrnn("eval", ckpt, odd)
    assert_one_line_error(code, out, err, (1,), "pass --unknown skip to leave them out")
    code, out, err = charrnn("eval", ckpt, odd, "--unknown", "skip", "--json")
    assert code == 0 and "skipped 1 character not in the model's vocabulary" in err
    got, want = json.loads(out), json.loads(charrnn("eval", ckpt, plain, "--json")[1])
    assert got["skipped"] == 1 and want["skipped"] == 0
    assert got["loss_nats"] == want["loss_nats"] and got["chars"] == want["chars"]


def test_inspect_cells_unknown_characters_error_or_skip(ckpt, tmp_path):
    odd = tmp_path / "odd.txt"
    odd.write_text(TEXT[:1500] + "中" + TEXT[1500:3000], encoding="utf-8")
    fast = ["--shifts", "0", "--no-untrained", "--only", "column", "--format", "json", "-q"]
    code, out, err = charrnn("inspect-cells", ckpt, odd, *fast)
    assert_one_line_error(code, out, err, (1,), "pass --unknown skip")
    code, out, err = charrnn("inspect-cells", ckpt, odd, *fast, "--unknown", "skip")
    assert code == 0, err
    assert json.loads(out)["chars"] == 3000
    spans = tmp_path / "spans.txt"
    spans.write_text("0 10\n")
    code, out, err = charrnn("inspect-cells", ckpt, odd, *fast, "--unknown", "skip", "--spans", spans)
    assert_one_line_error(code, out, err, (1,), "would shift the offsets")


def test_info_names_the_whole_vocabulary(tmp_path):
    from charrnn import train as tr
    from charrnn.model import ModelConfig
    out = tmp_path / "cjk.npz"
    chars = [chr(0x4E00 + i) for i in range(300)]
    tr.Run("".join(chars) * 5, str(out), ModelConfig(hidden=4, layers=1),
           tr.TrainConfig(batch_size=2, seq_length=8)).save(str(out))
    code, out_, _ = charrnn("info", out)
    line = next(x for x in out_.splitlines() if x.startswith("vocabulary"))
    assert code == 0 and "300 characters: '一" in line
    shown = len(line.split("'")[1])
    assert f"... and {300 - shown} more (all in 'info --json')" in line
    assert "lstm, 1 layer x 4 hidden" in out_
    assert json.loads(charrnn("info", out, "--json")[1])["vocab"] == chars


def test_extend_vocab_adds_new_characters_and_trains_on(corpus, tmp_path):
    out = trained_copy(corpus, tmp_path)
    new = tmp_path / "new.txt"
    new.write_text(TEXT.replace("dog", "dжg"), encoding="utf-8")
    before = out.read_bytes()
    code, o, err = charrnn("train", new, "--resume", out, "--max-steps", "30")
    assert_one_line_error(code, o, err, (1,), "pass --extend-vocab to add them")
    assert out.read_bytes() == before
    code, _, err = charrnn("train", new, "--resume", out, "--extend-vocab", "--max-steps", "30")
    assert code == 0, err
    assert "adding 1 character to the vocabulary: 'ж'" in err
    ck = checkpoint.load(out)
    assert ck.meta["step"] == 30 and ck.vocab == sorted(set(TEXT) | {"ж"})
    assert ck.config.vocab_size == len(ck.vocab)
    code, o, err = charrnn("train", new, "--extend-vocab", "-o", tmp_path / "x.npz")
    assert_one_line_error(code, o, err, (2,), "give --resume")


def test_make_help_lists_every_target():
    import re
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "Makefile")) as f:
        targets = re.findall(r"^([a-z][a-z-]*):.*## ", f.read(), re.M)
    p = subprocess.run(["make", "-s", "-C", root, "help"], capture_output=True, text=True)
    assert p.returncode == 0
    listed = re.findall(r"make (\S+)", p.stdout)
    assert listed == targets and "test-slow" in listed


def test_the_compile_notice_means_numba_compiled(capsys):
    """Said when numba compiles in the block, once however many kernels; not for a
    kernel already compiled, however slow the block (a busy machine loading a cache)."""
    import time

    import numba
    from charrnn.cli import compile_notice

    @numba.njit
    def one(x):
        return x + 1

    @numba.njit
    def two(x):
        return one(x) * 2

    with compile_notice():
        assert two(1) == 4
    assert capsys.readouterr().err == COMPILE_NOTICE + "\n"
    with compile_notice():
        time.sleep(1.2)
        assert two(2) == 6
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("args", [["sample", "{ckpt}", "-n", "20"], ["info", "{ckpt}"],
                                  ["eval", "{ckpt}", "{corpus}"],
                                  ["inspect-cells", "{ckpt}", "{corpus}", "-q", "--shifts", "2"]],
                         ids=lambda a: a[0])
@pytest.mark.parametrize("stdout", ["/dev/full", "closed"])
def test_stdout_full_or_closed_is_one_line(ckpt, corpus, args, stdout):
    """A product with nowhere to go is an error, in one line, exit 1 (| head, where the
    reader leaves, stays quiet: test_sample_into_head_is_quiet)."""
    args = [a.format(ckpt=ckpt, corpus=corpus) for a in args]
    kw = {"preexec_fn": lambda: os.close(1)} if stdout == "closed" else \
        {"stdout": open(stdout, "w")}
    p = subprocess.run([sys.executable, "-m", "charrnn", *args], stderr=subprocess.PIPE,
                       text=True, **kw)
    err = p.stderr.replace(COMPILE_NOTICE + "\n", "")
    assert p.returncode == 1 and err.count("\n") == 1, err
    assert err.startswith("charrnn: error: standard output is closed" if stdout == "closed" else
                          "charrnn: error: cannot write to standard output: No space left"), err


def test_a_diverging_run_stops_with_one_line_and_no_warnings(corpus, tmp_path):
    """Huge steps overflow the weights: numpy's RuntimeWarnings (from the preview's
    products) used to come before the one error line."""
    p = run("train", corpus, "-o", tmp_path / "m.npz", "--hidden", "16", "--layers", "1",
            "--batch-size", "4", "--seq-length", "16", "--max-steps", "20", "--embed", "8",
            "--optimizer", "sgd", "--lr", "1e30", "--grad-clip", "0", "--eval-every", "1",
            "--seed", "1", text=True)
    assert p.returncode == 1, p.stderr
    assert "Warning" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.splitlines()[-1].startswith("charrnn: error: the loss became")


BAD_TRAIN = [("batch_size", 0), ("seq_length", -5), ("optimizer", "adamw"), ("lr", -1.0),
             ("lr", "0.1"), ("seed", -1)]


@pytest.mark.parametrize("field,value", BAD_TRAIN)
def test_resume_from_damaged_train_settings_is_one_line(ckpt, corpus, tmp_path, field, value):
    with np.load(ckpt) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["__meta__"].tobytes())
    meta["train"][field] = value
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    before = bad.read_bytes()
    code, out, err = charrnn("train", corpus, "--resume", bad, "--max-steps", "30")
    assert_one_line_error(code, out, err, status=(1,), contains=f"train.{field} = {value!r}")
    assert bad.read_bytes() == before


def test_reading_a_closed_stdin_is_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "charrnn", "train", "-", "-o", tmp_path / "m.npz"],
                       preexec_fn=lambda: os.close(0), capture_output=False,
                       stderr=subprocess.PIPE, text=True)
    assert p.returncode == 1 and p.stderr == "charrnn: error: standard input is closed: " \
                                             "nothing to read from '-'\n", p.stderr
