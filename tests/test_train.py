"""train.py: the loop learns, the schedule, checkpoints, exact resume, NaN stop, the log."""
import json
import math
import re

import numpy as np
import pytest

from charrnn import CharrnnError, checkpoint, synth
from charrnn import train as tr
from charrnn.evaluate import evaluate
from charrnn.model import ModelConfig

TEXT = synth.generate(5000, seed=3)
TINY = dict(seq_length=16, batch_size=4, lr=1e-2, eval_every=10, checkpoint_every=1000, seed=1)


def make_run(path, resume=None, text=TEXT, kind="lstm", dropout=0.0, **train):
    tc = tr.TrainConfig(**dict(TINY, **train))
    if resume is not None:
        ck = checkpoint.load(resume)
        tc = tr.TrainConfig.from_dict(dict(ck.meta["train"], **train))
        return tr.Run(text, str(path), ck.config, tc, resume=ck)
    cfg = ModelConfig(kind=kind, hidden=16, layers=1, dropout=dropout)
    return tr.Run(text, str(path), cfg, tc)


def test_loss_goes_down(tmp_path):
    run = make_run(tmp_path / "m.npz", max_steps=150)
    before, _ = evaluate(run.cfg, run.p, run.val_ids)
    assert before == pytest.approx(math.log(run.cfg.vocab_size), abs=0.1)  # ~ uniform at init
    losses = [run.train_step() for _ in range(150)]
    after, _ = evaluate(run.cfg, run.p, run.val_ids)
    assert np.mean(losses[-20:]) < losses[0] - 0.5
    assert after < before - 0.5


def test_lr_schedule_values():
    tc = tr.TrainConfig(lr=0.01, warmup=4, lr_decay=0.5)
    spe = 10
    assert tr.lr_at(tc, 0, spe) == pytest.approx(0.01 * 0.25)
    assert tr.lr_at(tc, 1, spe) == pytest.approx(0.01 * 0.5 * 0.5 ** 0.1)
    assert tr.lr_at(tc, 3, spe) == pytest.approx(0.01 * 0.5 ** 0.3)
    assert tr.lr_at(tc, 10, spe) == pytest.approx(0.005)
    assert tr.lr_at(tc, 20, spe) == pytest.approx(0.0025)
    flat = tr.TrainConfig(lr=0.02, lr_decay=1.0)
    assert {tr.lr_at(flat, s, 7) for s in range(30)} == {0.02}


def final_params(path):
    ck = checkpoint.load(path)
    return ck, {k: v for k, v in ck.params.items()}


@pytest.mark.parametrize("kind,dropout,weight_drop,optimizer", [
    ("lstm", 0.0, 0.0, "adam"), ("gru", 0.3, 0.3, "rmsprop"), ("rnn", 0.2, 0.0, "adagrad"),
    ("lstm", 0.2, 0.25, "adam")])
def test_resume_is_bitwise_identical(tmp_path, kind, dropout, weight_drop, optimizer):
    """N steps straight == N/2, save, load, resume, N/2 more: same weights, bit for bit.
    N crosses an epoch boundary (the state reset) and validations happen on the way."""
    text = TEXT[:1200]  # 1080 training chars: 16 steps of 4x16 per epoch
    kw = dict(text=text, kind=kind, dropout=dropout, optimizer=optimizer, warmup=5,
              weight_drop=weight_drop)
    straight = make_run(tmp_path / "a.npz", max_steps=40, **kw)
    assert straight.batches.steps_per_epoch < 40
    tr.run(straight, progress=False)
    half = make_run(tmp_path / "b.npz", max_steps=20, **kw)
    tr.run(half, progress=False)
    resumed = make_run(tmp_path / "b.npz", resume=tmp_path / "b.npz", text=text, max_steps=40)
    assert resumed.step == 20
    tr.run(resumed, progress=False)
    a, pa = final_params(tmp_path / "a.npz")
    b, pb = final_params(tmp_path / "b.npz")
    assert a.meta["step"] == b.meta["step"] == 40
    for name in pa:
        assert np.array_equal(pa[name], pb[name]), name
    for key in a.arrays:
        if key.startswith(("opt/", "state/")):
            assert np.array_equal(a.arrays[key], b.arrays[key]), key
    assert a.meta["rng"] == b.meta["rng"]
    assert a.meta["val_loss"] == b.meta["val_loss"]


def test_weight_drop_is_used_in_training_only(tmp_path):
    """Weight drop changes the training steps (masks drawn from the run's generator), not
    the initial weights, and its rate is saved with the run's settings."""
    plain = make_run(tmp_path / "a.npz", max_steps=5)
    dropped = make_run(tmp_path / "b.npz", max_steps=5, weight_drop=0.5)
    assert plain.validate() == dropped.validate()  # same initial weights
    for r in (plain, dropped):
        tr.run(r, progress=False)
    assert not np.array_equal(plain.p["L0.Wh"], dropped.p["L0.Wh"])
    assert plain.p["L0.Wh"].shape == dropped.p["L0.Wh"].shape
    assert checkpoint.load(tmp_path / "b.npz").meta["train"]["weight_drop"] == 0.5


def test_checkpoint_every_writes(tmp_path, monkeypatch):
    saved = []
    real = checkpoint.save

    def spy(path, params, meta, extra=None):
        saved.append((path, meta["step"]))
        real(path, params, meta, extra)

    monkeypatch.setattr(checkpoint, "save", spy)
    out = str(tmp_path / "m.npz")
    run = make_run(out, max_steps=12, checkpoint_every=5, eval_every=100)
    tr.run(run, progress=False)
    best = tr.best_path(out)
    assert [s for p, s in saved if p == out] == [5, 10, 12]
    assert [s for p, s in saved if p == best] == []  # no scheduled validation: no best
    ck = checkpoint.load(out)
    assert ck.meta["step"] == 12 and ck.meta["train"]["checkpoint_every"] == 5


def test_best_checkpoint_holds_the_lowest_validation_loss(tmp_path):
    out = str(tmp_path / "m.npz")
    run = make_run(out, max_steps=60, eval_every=10)
    vals = []
    real = run.validate
    run.validate = lambda: vals.append(real()) or vals[-1]
    tr.run(run, progress=False)
    assert len(vals) == 6
    assert tr.best_path(out) == str(tmp_path / "m.best.npz")
    best = checkpoint.load(tr.best_path(out))
    assert best.meta["val_loss"] == min(vals) == run.best_val
    assert best.meta["step"] == 10 * (1 + vals.index(min(vals)))
    loss, _ = evaluate(best.config, best.params, run.val_ids)
    assert loss == pytest.approx(min(vals), rel=1e-6)
    assert checkpoint.load(out).meta["best_val_loss"] == min(vals)


def test_nan_loss_stops_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "m.npz"
    tr.run(make_run(out, max_steps=6), progress=False)
    before = out.read_bytes()
    real = tr.loss_and_grad
    calls = []

    def poisoned(*args, **kw):
        loss, new_state = real(*args, **kw)
        calls.append(1)
        return (float("nan") if len(calls) == 3 else loss), new_state

    monkeypatch.setattr(tr, "loss_and_grad", poisoned)
    run = make_run(out, resume=out, max_steps=20, checkpoint_every=100)
    flat_before = run.flat.copy()
    with pytest.raises(CharrnnError, match=r"the loss became nan at step 9 .*resume from"):
        tr.run(run, progress=False)
    assert out.read_bytes() == before
    assert run.step == 8
    assert np.all(np.isfinite(run.flat)) and not np.array_equal(run.flat, flat_before)


def test_nan_gradient_stops_too(tmp_path, monkeypatch):
    out = tmp_path / "m.npz"
    real = tr.loss_and_grad

    def poisoned(cfg, p, g, *args, **kw):
        loss, new_state = real(cfg, p, g, *args, **kw)
        g["out.b"][0] = np.inf
        return loss, new_state

    monkeypatch.setattr(tr, "loss_and_grad", poisoned)
    run = make_run(out, max_steps=5)
    flat = run.flat.copy()
    with pytest.raises(CharrnnError, match="at step 1 "):
        tr.run(run, progress=False)
    assert np.array_equal(run.flat, flat)  # the bad step was not applied
    assert not out.exists()


def test_jsonl_log(tmp_path):
    log = tmp_path / "log.jsonl"
    run = make_run(tmp_path / "m.npz", max_steps=25, eval_every=10, warmup=3)
    tr.run(run, progress=False, log_file=str(log))
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in recs] == [10, 20, 25]  # 25: the final validation, unscheduled
    assert recs[-1]["val_loss"] == run.val_loss
    keys = {"step", "epoch", "chars", "train_loss", "val_loss", "lr", "chars_per_sec", "elapsed_s"}
    spe = run.batches.steps_per_epoch
    for r in recs:
        assert keys <= set(r)
        assert r["epoch"] == pytest.approx(r["step"] / spe)
        assert r["chars"] == r["step"] * run.tc.batch_size * run.tc.seq_length
        assert r["lr"] == pytest.approx(tr.lr_at(run.tc, r["step"] - 1, spe))
        assert math.isfinite(r["train_loss"]) and r["val_loss"] is not None
        assert r["chars_per_sec"] >= 0 and r["elapsed_s"] > 0
    # appended, not overwritten
    run2 = make_run(tmp_path / "m.npz", resume=tmp_path / "m.npz", max_steps=30)
    tr.run(run2, progress=False, log_file=str(log))
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [10, 20, 25, 30]


def test_seed_fixes_the_run(tmp_path):
    a = make_run(tmp_path / "a.npz", max_steps=8, dropout=0.2)
    b = make_run(tmp_path / "b.npz", max_steps=8, dropout=0.2)
    c = make_run(tmp_path / "c.npz", max_steps=8, dropout=0.2, seed=2)
    for r in (a, b, c):
        tr.run(r, progress=False)
    assert np.array_equal(a.flat, b.flat)
    assert not np.array_equal(a.flat, c.flat)


def test_cosine_schedule_values():
    """Warm-up 10 steps, then half a cosine from 0.01 to 0.001 over the remaining 90."""
    tc = tr.TrainConfig(lr=0.01, min_lr=0.001, warmup=10, schedule="cosine")
    assert tr.lr_at(tc, 4, 7, 100) == pytest.approx(0.01 * 0.5)
    assert tr.lr_at(tc, 9, 7, 100) == pytest.approx(0.01)
    assert tr.lr_at(tc, 55, 7, 100) == pytest.approx(0.001 + 0.009 * 0.5)  # halfway
    assert tr.lr_at(tc, 100, 7, 100) == pytest.approx(0.001)
    assert tr.lr_at(tc, 500, 7, 100) == pytest.approx(0.001)  # stays at the floor
    values = [tr.lr_at(tc, s, 7, 100) for s in range(10, 101)]
    assert values == sorted(values, reverse=True)


def test_patience_stops_a_run_that_no_longer_improves(tmp_path):
    """With lr 0 the weights never change: the validation loss cannot improve, so with
    patience 3 the run stops 3 validations after its best, and says so in the meta."""
    run = make_run(tmp_path / "m.npz", max_steps=1000, eval_every=5, patience=3, lr=0.0)
    tr.run(run, progress=False)
    assert run.step == 20  # best at the first validation (step 5), then 3 without a better one
    assert checkpoint.load(tmp_path / "m.npz").meta["validations_since_best"] == 3


def stop_and_resume(path, stop, **train):
    """A run stopped at step stop (between validations) and resumed to its end."""
    first = make_run(path, **dict(train, max_steps=stop))
    tr.run(first, progress=False)
    hit = first.val_loss < first.best_val  # the last, unscheduled, validation beat the best
    resumed = make_run(path, resume=path, max_steps=train["max_steps"])
    tr.run(resumed, progress=False)
    return resumed, hit


def test_a_stop_between_validations_changes_neither_the_best_file_nor_patience(tmp_path):
    """On a noisy validation curve (a high learning rate, 100 validation characters,
    one every 4 steps), runs stopped between validations after the last best and resumed
    end with the same weights and best file and early-stop at the same step as the run
    straight through, though the validation at some of those stops beat the best so far."""
    train = dict(max_steps=400, eval_every=4, patience=3, lr=0.05, val_chars=100)
    straight = make_run(tmp_path / "a.npz", **train)
    tr.run(straight, progress=False)
    assert straight.step < 400  # patience stopped it
    a = checkpoint.load(tmp_path / "a.best.npz")
    hits = 0
    # stops after the last best: a best found there would be the last, and reset patience
    for stop in [s for s in range(a.meta["step"] + 1, straight.step) if s % 4]:
        path = tmp_path / f"b{stop}.npz"
        resumed, hit = stop_and_resume(path, stop, **train)
        hits += hit
        assert resumed.step == straight.step, stop
        assert np.array_equal(resumed.flat, straight.flat), stop
        assert resumed.stale == straight.stale and resumed.best_val == straight.best_val, stop
        b = checkpoint.load(tr.best_path(str(path)))
        assert a.arrays.keys() == b.arrays.keys()
        for key in a.arrays:
            assert np.array_equal(a.arrays[key], b.arrays[key]), (stop, key)
        for key in ("step", "val_loss", "best_val_loss", "validations_since_best", "rng"):
            assert a.meta[key] == b.meta[key], (stop, key)
    assert hits >= 2, "no stop fell where an unscheduled validation beat the best"


def test_validation_history_is_kept_across_a_resume(tmp_path):
    run = make_run(tmp_path / "m.npz", max_steps=25, eval_every=10)
    tr.run(run, progress=False)
    ck = checkpoint.load(tmp_path / "m.npz")
    # the validation at the stop (step 25) is reported, not kept: it is not scheduled
    assert [s for s, _ in ck.meta["val_history"]] == [10, 20]
    assert min(v for _, v in ck.meta["val_history"]) == ck.meta["best_val_loss"]
    run2 = make_run(tmp_path / "m.npz", resume=tmp_path / "m.npz", max_steps=40)
    tr.run(run2, progress=False)
    h = checkpoint.load(tmp_path / "m.npz").meta["val_history"]
    assert h[:2] == ck.meta["val_history"] and [s for s, _ in h[2:]] == [30, 40]


# -- what the user means: limits, cadence, the bar ---------------------------------

def test_a_limit_given_on_resume_replaces_the_stored_ones():
    saved = asdict_train(max_steps=20, epochs=1.0, time_limit=90.0, seed=4)
    tc = tr.resume_settings(saved, {"epochs": 3.0, "seed": 9, "lr": 0.5})
    assert (tc.max_steps, tc.epochs, tc.time_limit) == (0, 3.0, 0.0)
    assert tc.seed == 4 and tc.lr == 0.5  # the run's own seed; other flags apply
    kept = tr.resume_settings(saved, {"lr": 0.5})  # no limit given: the stored ones stay
    assert (kept.max_steps, kept.epochs, kept.time_limit) == (20, 1.0, 90.0)
    timed = tr.resume_settings(saved, {"time_limit": 60.0})  # this invocation's time only
    assert (timed.max_steps, timed.epochs, timed.time_limit) == (20, 1.0, 60.0)


def asdict_train(**kw):
    import dataclasses
    return dataclasses.asdict(tr.TrainConfig(**kw))


def test_a_run_at_its_limit_refuses_to_train(tmp_path):
    out = tmp_path / "m.npz"
    tr.run(make_run(out, max_steps=12), progress=False)
    resumed = make_run(out, resume=out)
    with pytest.raises(CharrnnError, match=r"already at step 12, its limit \(--max-steps 12\)"):
        resumed.check_work()
    epochs = make_run(out, resume=out, max_steps=0, epochs=0.1)  # 0.1 epoch: under 12 steps
    with pytest.raises(CharrnnError, match=r"--epochs 0.1, \d+ steps of \d+ per epoch"):
        epochs.check_work()
    make_run(out, resume=out, max_steps=13).check_work()


def test_small_texts_train_at_least_min_steps_by_default(tmp_path):
    run = make_run(tmp_path / "m.npz", epochs=None, lr_decay=None)
    spe = run.batches.steps_per_epoch
    assert spe * 10 < tr.MIN_STEPS  # a small text: 10 epochs would be too few steps
    assert run.stop_step() >= tr.MIN_STEPS and run.tc.epochs == math.ceil(tr.MIN_STEPS / spe)
    # the learning rate decays over the run as over 10 epochs of 0.95
    assert run.lr(run.stop_step()) == pytest.approx(run.tc.lr * 0.95 ** 10, rel=0.01)
    assert tr.auto_epochs(5000) == 10 and tr.auto_epochs(1) == tr.MAX_EPOCHS
    tr.run(make_run(tmp_path / "s.npz", epochs=None, max_steps=3), progress=False)
    saved = checkpoint.load(tmp_path / "s.npz").meta["train"]  # resolved, so resume repeats them
    assert (saved["epochs"], saved["lr_decay"]) == (run.tc.epochs, run.tc.lr_decay)


@pytest.mark.parametrize("N,T", [(1, 25), (50, 50), (8, 16)])
def test_validation_takes_at_most_a_tenth_of_the_work_by_default(N, T):
    """A validated character costs about VAL_COST of a trained one: between two
    validations, training must do at least 9 times the validation's work."""
    for val_chars in (3_000, 111_539, 200_000):
        every = tr.auto_eval_every(val_chars, N * T)
        val_work = val_chars * tr.VAL_COST
        assert val_work <= 0.1 * (val_work + every * N * T) + 1e-9
        assert every >= 200


def test_auto_validation_cadence_is_fixed_at_the_start_and_resumed(tmp_path):
    out = tmp_path / "m.npz"
    text = synth.generate(40_000, seed=3)
    run = make_run(out, text=text, eval_every=0, batch_size=1, seq_length=25, max_steps=3)
    n_val = min(run.tc.val_chars, len(run.val_ids))
    assert run.tc.eval_every == tr.auto_eval_every(n_val, 25) > 200  # before: 200 at any batch
    tr.run(run, progress=False)
    assert checkpoint.load(out).meta["train"]["eval_every"] == run.tc.eval_every
    assert make_run(out, resume=out, text=text, max_steps=4).tc.eval_every == run.tc.eval_every


def test_the_bar_total_follows_the_limit_that_ends_the_run():
    assert tr.bar_total(1000, 10, 5.0, 4.0) == 30       # the time limit ends it first
    assert tr.bar_total(20, 10, 5.0, 4.0) == 20         # the step limit does
    assert tr.bar_total(None, 10, 5.0, 4.0) == 30       # no step limit
    assert tr.bar_total(None, 10, 5.0, -1.0) == 10      # time is up


def test_a_time_limited_run_shows_its_real_total(tmp_path, capsys):
    run = make_run(tmp_path / "m.npz", max_steps=10 ** 6, time_limit=2.0, eval_every=10 ** 6)
    tr.run(run, progress=True)
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    done, total = map(int, re.search(r"(\d+)/(\d+) \[", last).groups())
    assert done == run.step and total <= 2 * run.step  # not 1,000,000


def test_still_improving(tmp_path):
    run = make_run(tmp_path / "m.npz", eval_every=10)
    run.history = [(10, 2.0), (20, 1.9)]
    assert run.still_improving()
    run.history = [(10, 2.0), (20, 1.995)]  # 0.25% in 10 steps
    assert not run.still_improving()
    run.history = [(10, 2.0), (20, 2.1)]
    assert not run.still_improving()
    run.history = [(20, 1.9)]
    assert not run.still_improving()


def test_start_context_ends_a_line_of_the_training_text(tmp_path):
    run = make_run(tmp_path / "m.npz")
    ctx = run.start_context()
    text = TEXT[:len(run.train_ids)]
    assert ctx.endswith("\n") and 0 < len(ctx) <= tr.CONTEXT and ctx in text
    assert text.rindex(ctx) + len(ctx) > len(text) - 2 * tr.CONTEXT
    flat = TEXT.replace("\n", " ")
    n = len(run.train_ids)
    assert make_run(tmp_path / "n.npz", text=flat).start_context() == flat[n - tr.CONTEXT:n]
