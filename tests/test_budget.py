"""A time limit is a budget: the cosine schedule spans the steps it allows, planned
once within the warm-up from the measured speed, stored, and repeatable exactly."""
import math

import numpy as np
import pytest

from charrnn import checkpoint, synth
from charrnn import train as tr
from charrnn.model import ModelConfig

TEXT = synth.generate(5000, seed=3)


def make_run(path, text=TEXT, **train):
    tc = tr.TrainConfig(**dict(dict(seq_length=16, batch_size=4, lr=1e-2, eval_every=10,
                                    checkpoint_every=1000, seed=1), **train))
    return tr.Run(text, str(path), ModelConfig(kind="lstm", hidden=16, layers=1), tc)

STEP_S, LEFT = 0.01, 0.3  # the speed and time a patched plan sees: a known answer


@pytest.fixture
def fixed_clock(monkeypatch):
    """plan() measures a speed; here it always sees STEP_S seconds a step and LEFT left."""
    plan = tr.Run.plan
    monkeypatch.setattr(tr.Run, "plan", lambda self, step_s, left: plan(self, STEP_S, LEFT, VAL_S))


VAL_S = 0.02


def expected_plan(run, at_step):
    every = run.tc.eval_every  # given in these runs
    return at_step + int(tr.PLAN_MARGIN * LEFT / (STEP_S + VAL_S / every))


def test_a_time_limit_resolves_to_a_budget(tmp_path):
    budget = make_run(tmp_path / "a.npz", time_limit=60)
    assert (budget.tc.schedule, budget.tc.warmup, budget.tc.epochs) == ("cosine", tr.BUDGET_WARMUP, 0)
    assert budget.needs_plan() and budget.stop_step() is None
    assert budget.lr(10) == pytest.approx(budget.tc.lr * 11 / tr.BUDGET_WARMUP)  # warm-up only
    assert budget.lr(400) == budget.tc.lr  # no cosine before the plan
    plain = make_run(tmp_path / "b.npz")
    assert (plain.tc.schedule, plain.tc.warmup) == ("exp", 0) and plain.tc.epochs > 0
    assert not plain.needs_plan()
    given = make_run(tmp_path / "c.npz", time_limit=60, schedule="exp", warmup=3, epochs=2.0)
    assert (given.tc.schedule, given.tc.warmup, given.tc.epochs) == ("exp", 3, 2.0)
    assert not given.needs_plan()


def test_plan_counts_the_time_left_and_spaces_validation(tmp_path):
    run = make_run(tmp_path / "a.npz", time_limit=60, eval_every=0)  # 0: chosen by the run
    run.step = 7
    planned = run.plan(0.02, 10.0, val_s=1.0)
    every = math.ceil(1.0 * (1 / tr.BUDGET_VAL_SHARE - 1) / 0.02)  # validation: 5% of the time
    assert run.tc.eval_every == every
    assert planned == 7 + int(tr.PLAN_MARGIN * 10.0 / (0.02 + 1.0 / every))
    assert run.tc.plan_steps == run.stop_step() == planned and not run.needs_plan()
    given = make_run(tmp_path / "b.npz", time_limit=60, eval_every=10)
    given.plan(0.02, 10.0, val_s=1.0)
    assert given.tc.eval_every == 10 and given.tc.plan_steps == int(tr.PLAN_MARGIN * 10.0 / 0.12)
    capped = make_run(tmp_path / "c.npz", time_limit=60, max_steps=20)
    assert capped.plan(1e-6, 10.0, val_s=0.0) == 20  # a step limit beside the budget holds
    capped._time_validation()  # compiles
    assert 0 < capped._time_validation() < 10  # one validation, timed


def test_budgeted_run_is_repeated_exactly_by_its_step_count(tmp_path, fixed_clock):
    """The budget's run, and the same seed run to its stored plan with --max-steps
    (the hint it prints), give the same weights bit for bit: the learning rate of
    every step depends on the plan alone, not on when it was made."""
    text = TEXT[:1200]
    a = make_run(tmp_path / "a.npz", text=text, time_limit=600, warmup=8, eval_every=5)
    tr.run(a, progress=False)
    ck = checkpoint.load(tmp_path / "a.npz")
    plan = ck.meta["train"]["plan_steps"]
    assert plan == expected_plan(a, at_step=8)  # fixed at the warm-up's end
    assert ck.meta["step"] == plan > a.batches.steps_per_epoch  # no epoch limit under a budget
    assert ck.meta["val_history"][-1][0] == plan  # the end validates as scheduled: a best file
    assert tr.lr_at(a.tc, plan, 1, a.stop_step()) == pytest.approx(a.tc.min_lr)  # annealed
    b = make_run(tmp_path / "b.npz", text=text, max_steps=plan, epochs=0.0, schedule="cosine",
                 warmup=8, eval_every=5)
    tr.run(b, progress=False)
    assert np.array_equal(a.flat, b.flat)
    c = make_run(tmp_path / "c.npz", text=text, max_steps=plan, epochs=0.0, warmup=8, eval_every=5)
    tr.run(c, progress=False)  # the exp schedule: a different run
    assert not np.array_equal(a.flat, c.flat)


def test_resume_keeps_the_plan_and_a_new_limit_replaces_it(tmp_path, fixed_clock):
    text = TEXT[:1200]
    straight = make_run(tmp_path / "a.npz", text=text, time_limit=600, warmup=8)
    tr.run(straight, progress=False)
    plan = straight.tc.plan_steps
    half = make_run(tmp_path / "b.npz", text=text, time_limit=600, warmup=8)
    stop_at = plan // 2
    # the first half stops as a signal would stop it, after the plan, before the end
    half.tc = tr.dataclasses.replace(half.tc, max_steps=stop_at)
    tr.run(half, progress=False)
    assert half.tc.plan_steps == stop_at  # capped by the max_steps the first half had
    saved = checkpoint.load(tmp_path / "b.npz").meta["train"]
    saved.update(max_steps=0, plan_steps=plan)  # as the budget alone would have stored it
    resumed = tr.resume_settings(saved, {})
    assert (resumed.plan_steps, resumed.schedule, resumed.time_limit) == (plan, "cosine", 600)
    replaced = tr.resume_settings(saved, {"max_steps": 5000})
    assert (replaced.plan_steps, replaced.max_steps, replaced.time_limit) == (0, 5000, 0)
    again = tr.resume_settings(saved, {"time_limit": 30.0})  # this invocation's: the plan stays
    assert (again.plan_steps, again.time_limit) == (plan, 30.0)
    assert math.isfinite(straight.val_loss)
