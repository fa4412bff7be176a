"""The validation history in a checkpoint: thinning, its sketch, its validation on
load, and where it is shown (the end of `train` on a terminal, `info`)."""
import json
import os
import pty
import select
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import CharrnnError, checkpoint, history, synth
from charrnn.cli import cli


def test_append_thins_past_the_cap_and_keeps_the_best():
    h = []
    losses = {s: 3 - s / 1000 for s in range(10, 1001, 10)}
    losses[370] = 0.5  # the best, early
    for s, v in losses.items():
        h = history.append(h, s, v)
        assert len(h) <= history.CAP and history.damaged(h) is None
    assert h[-1] == [1000, losses[1000]] and [370, 0.5] in h
    assert len(h) > history.CAP // 2


def test_append_thins_every_second_pair_from_the_newest():
    h = [[s, 100.0 - s] for s in range(history.CAP)]
    h = history.append(h, history.CAP, 0.0)  # the 65th: the 64 pairs before it halve
    assert [s for s, _ in h] == list(range(0, history.CAP + 1, 2))


def test_append_replaces_what_a_resumed_run_redid():
    assert history.append([[10, 3.0], [20, 2.0]], 20, 1.9) == [[10, 3.0], [20, 1.9]]


@pytest.mark.parametrize("h, line", [
    ([[200, 3.0], [400, 2.0], [600, 1.5], [800, 1.4]], "█▄▁▁"),
    ([[1, 2.0], [2, 2.0]], "▄▄"),
    ([[5, 1.0]], "▄"),
    ([], ""),
    ([[10, 1.0], [90, 2.0], [100, 1.0]], "▁█▁"),
])
def test_sparkline_known_answers(h, line):
    assert history.sparkline(h) == line


def test_a_long_sparkline_is_forty_columns_evenly_in_steps():
    h = [[s, float(s)] for s in range(0, 64)]
    line = history.sparkline(h)
    assert len(line) == 40 and line[0] == "▁" and line[-1] == "█"
    assert list(line) == sorted(line)
    # thinned: the old half every 4 steps, the new every 2; a jump in the loss at step
    # 100 of 0..160 lands in column 25 of 40, however dense the pairs around it
    h = [[s, 1.0 if s < 100 else 2.0] for s in list(range(0, 80, 4)) + list(range(80, 161, 2))]
    assert history.sparkline(h) == "▁" * 25 + "█" * 15


def test_summary():
    h = [[200, 3.0], [400, 2.0], [600, 1.5], [800, 1.6]]
    assert history.summary(h, 1.5) == "█▃▁▁ 3.000 → 1.600, best 1.5000 at step 600"
    assert history.summary(h, 1.2) == "█▃▁▁ 3.000 → 1.600, best 1.2000"  # best thinned away
    assert history.summary([]) == ""


@pytest.mark.parametrize("bad", [
    {"a": 1}, [[1, 2.0]] * 2, [[10, 2.0], [5, 1.0]], [[1.5, 2.0]], [[-1, 2.0]], [[1, "2"]],
    [[1, 2.0, 3]], [[1, float("nan")]], [[True, 2.0]], [[s, 1.0] for s in range(history.CAP + 1)],
])
def test_damaged_histories_are_named(bad):
    assert history.damaged(json.loads(json.dumps(bad))) is not None


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("h")
    (d / "t.txt").write_text(synth.generate(4000, seed=1))
    res = CliRunner().invoke(cli, ["train", str(d / "t.txt"), "-o", str(d / "m.npz"), "-q",
                                   "--hidden", "8", "--layers", "1", "--batch-size", "4",
                                   "--seq-length", "16", "--max-steps", "35",
                                   "--eval-every", "10", "--seed", "1"])
    assert res.exit_code == 0, res.stderr
    return d


def test_a_damaged_history_is_refused_on_load(trained, tmp_path):
    with np.load(trained / "m.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["__meta__"].tobytes())
    meta["val_history"] = [[10, 2.0], [10, 1.0]]
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with open(tmp_path / "bad.npz", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(CharrnnError, match="val_history is damaged: its steps are not increasing"):
        checkpoint.load(tmp_path / "bad.npz")


def test_info_shows_the_sketch(trained):
    res = CliRunner().invoke(cli, ["info", str(trained / "m.npz")])
    meta = checkpoint.load(trained / "m.npz").meta
    assert [s for s, _ in meta["val_history"]] == [10, 20, 30]  # 35, the stop, is not scheduled
    line = f"validation  {history.summary(meta['val_history'], meta['best_val_loss'])}"
    assert res.exit_code == 0 and line in res.stdout.splitlines()
    res = CliRunner().invoke(cli, ["info", str(trained / "m.npz"), "--json"])
    assert json.loads(res.stdout)["val_history"] == meta["val_history"]


def run_on_a_terminal(args, cwd):
    """Runs charrnn with stderr on a pseudo-terminal; returns what it wrote there."""
    main, side = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "charrnn", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=side, env=dict(os.environ, COLUMNS="100"))
    os.close(side)
    out = b""
    while True:  # read as it comes, so the child never blocks on a full terminal
        if select.select([main], [], [], 600)[0]:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(main)
    assert p.wait() == 0, out.decode("utf-8", "replace")
    return out.decode("utf-8", "replace")


def test_train_sketches_the_curve_on_a_terminal_only(trained):
    args = ["train", "t.txt", "--hidden", "8", "--layers", "1", "--batch-size", "4",
            "--seq-length", "16", "--max-steps", "25", "--eval-every", "10", "--seed", "1"]
    err = run_on_a_terminal([*args, "-o", "tty.npz"], trained)
    meta = checkpoint.load(trained / "tty.npz").meta
    line = f"charrnn: validation {history.summary(meta['val_history'], meta['best_val_loss'])}"
    assert line in err.replace("\r", "").splitlines(), err[-2000:]
    piped = subprocess.run([sys.executable, "-m", "charrnn", *args, "-o", "pipe.npz"], cwd=trained,
                           capture_output=True, text=True)
    assert piped.returncode == 0 and "charrnn: validation" not in piped.stderr, piped.stderr
