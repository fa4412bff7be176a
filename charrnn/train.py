"""The training loop: truncated BPTT over the stream layout of data.Batches,
global-norm clipping, an optimizer over the flat buffer, periodic validation,
checkpoints (latest and best), a progress bar and a JSON Lines log.

Everything a run needs to continue bit for bit is in its checkpoint: parameters,
optimizer buffers, carried hidden state, step (which fixes the epoch, the data
position and the learning rate) and the random generator's state.
"""
import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields

import numpy as np

from charrnn import CharrnnError, __version__, checkpoint, distributed, history
from charrnn.data import Batches, build_vocab, decode, encode, split
from charrnn.esn import Reservoir, Ridge, ridge_step
from charrnn.evaluate import evaluate
from charrnn.model import (ModelConfig, carve, dropout_masks, frozen, init_params, loss_and_grad,
                           weight_masks, zero_state)
from charrnn.optim import BUFFERS, CLIPS, Optimizer
from charrnn.outputs import best_path
from charrnn.streams import open_log


@dataclass
class TrainConfig:
    seq_length: int = 50        # T, characters per chunk of truncated BPTT
    batch_size: int = 50        # N, parallel contiguous streams
    optimizer: str = "adam"     # adam | rmsprop | adagrad | sgd
    lr: float = 2e-3            # peak learning rate
    lr_decay: float = None      # multiplied into the learning rate once per epoch (smoothly);
    #                             None: LR_DECAY, spread over the run where auto_epochs adds epochs
    lr_decay_after: float = 0   # epochs at the full rate before lr_decay starts (char-rnn: 10)
    warmup: int = None          # steps of linear learning-rate warm-up; None: BUDGET_WARMUP
    #                             for a time-budgeted run, else 0
    schedule: str = "auto"      # exp: lr * lr_decay**epoch; cosine: to min_lr at the step limit;
    #                             auto: cosine over a --time-limit's planned steps, else exp
    min_lr: float = 0.0         # where cosine ends
    patience: int = 0           # stop after this many validations without a new best; 0: never
    grad_clip: float = 5.0      # max global L2 norm of the gradient (or element); 0 disables
    clip_mode: str = "norm"     # norm: scale the whole gradient; value: clamp each element
    loss: str = "mean"          # the gradient's: mean per character, or sum over each stream's T
    weight_drop: float = 0.0    # DropConnect rate on the recurrent weights Wh, one mask per step
    max_steps: int = 0          # total steps of the run (counting resumed ones); 0: no limit
    epochs: float = None        # total epochs; 0: no limit; None: auto_epochs, fixed at the start
    time_limit: float = 0       # seconds of this invocation; 0: no limit
    plan_steps: int = 0         # the steps a time budget allows, fixed once from the measured
    #                             speed within the warm-up, then kept (resume, --seed repeats)
    val_frac: float = 0.1       # last fraction of the text held out for validation
    val_chars: int = 200_000    # validate on the first this many held-out characters; 0: all
    eval_every: int = 0         # steps between validation runs; 0: auto_eval_every, fixed at the start
    checkpoint_every: int = 1000  # steps between checkpoint writes
    sample_every: int = 0       # steps between previews on stderr; 0: with every validation
    log_every: int = 10         # steps between JSON Lines records
    init: str = "orthogonal"    # recurrent weight init: orthogonal | uniform | normal (all weights)
    init_scale: float = 0.0     # uniform bound or normal std of the weights; 0: 1/sqrt(H) or 0.01
    seed: int = 0               # fixes initialisation, dropout and previews
    spectral_radius: float = 0.95  # esn: largest |eigenvalue| of the fixed recurrent matrix
    leak: float = 0.5           # esn: leak rate a, h = (1 - a) h_prev + a tanh(...)
    input_scale: float = 1.0    # esn: input weights and biases U(-s, s)
    readout: str = "optimizer"  # esn: optimizer (no BPTT) | ridge (closed form)
    ridge: float = 1e-4         # esn, readout ridge: the L2 penalty per character

    @classmethod
    def from_dict(cls, d):
        kinds = {f.name: f.type for f in fields(cls)}
        # a file may store 5 for 5.0; the kernels take floats, and numba refuses big ints
        tc = cls(**{k: float(v) if kinds[k] in (float, "float") and isinstance(v, int) else v
                    for k, v in d.items() if k in kinds})
        for name, allowed in CHOICES.items():
            if getattr(tc, name) not in allowed:  # a damaged or newer checkpoint's settings
                raise CharrnnError(f"the run's setting {name}={getattr(tc, name)!r} is not one "
                                   f"of {', '.join(allowed)}; is the checkpoint from a newer charrnn?")
        return tc


CHOICES = {"schedule": ("auto", "exp", "cosine"), "clip_mode": tuple(CLIPS), "loss": ("mean", "sum"),
           "init": ("orthogonal", "uniform", "normal"), "readout": ("optimizer", "ridge")}


def check_esn(cfg, tc):
    """What an echo state network cannot do, said before anything is built."""
    if cfg.kind != "esn":
        if tc.readout == "ridge":
            raise CharrnnError("--readout ridge fits an echo state network's readout: add --model esn")
        return
    if cfg.layers != 1:
        raise CharrnnError(f"an echo state network has one reservoir, not {cfg.layers} layers: "
                           f"pass --layers 1 (or leave --layers out)")
    if tc.weight_drop:
        raise CharrnnError("--weight-drop drops recurrent weights, which an echo state network "
                           "never trains: drop --weight-drop")
    if not (0 < tc.leak <= 1 and tc.spectral_radius > 0 and tc.input_scale > 0 and tc.ridge >= 0):
        raise CharrnnError("an echo state network needs 0 < --leak <= 1, --spectral-radius > 0, "
                           "--input-scale > 0 and --ridge >= 0")


# Named recipes for `charrnn train --preset NAME`: flag values (click's names), each
# overridable by giving the flag. Tuned on tiny Shakespeare (1.1 MB, V = 65) on a
# 2-core machine; a budget's plan (plan_steps, printed) or a step count repeats them exactly.
PRESETS = {
    # three minutes: a 2x384 GRU, the cosine over the time it is given (benchmarks/BUDGET.md)
    "small": dict(model="gru", hidden=384, layers=2, embed=64, dropout=0.0, weight_drop=0.0,
                  seq_length=50, batch_size=50, lr=3e-3, schedule="auto", time_limit=180.0,
                  max_steps=0),
    # an hour: a 2x384 LSTM with dropout and weight drop (without weight drop it overfits),
    # the cosine over the whole hour: a patience would stop it before the rate has annealed
    "large": dict(model="lstm", hidden=384, layers=2, embed=64, dropout=0.25, weight_drop=0.25,
                  seq_length=100, batch_size=32, lr=2e-3, schedule="cosine", min_lr=1e-4,
                  warmup=100, time_limit=3600.0, max_steps=0, epochs=0.0, eval_every=250,
                  patience=0),
    # Karpathy's min-char-rnn.py gist (2015), exactly: a 100-unit tanh RNN on
    # one-hot input, one stream of 25, Adagrad at 0.1 (eps inside the root), each gradient
    # element clamped to [-5, 5], the loss summed over the 25, weights N(0, 0.01^2), zero
    # biases (tests/test_classics.py checks it against the gist's equations)
    "min-char-rnn": dict(model="rnn", hidden=100, layers=1, embed=0, dropout=0.0,
                         weight_drop=0.0, init="normal", init_scale=0.01, seq_length=25,
                         batch_size=1, optimizer="adagrad", lr=0.1, lr_decay=1.0,
                         schedule="exp", warmup=0, clip_mode="value", grad_clip=5.0,
                         loss="sum", max_steps=100_000, epochs=0.0, eval_every=5000,
                         val_chars=50_000),
    # karpathy/char-rnn's train.lua defaults (2015): 2x128 LSTM on one-hot input, RMSProp
    # at 2e-3 with decay 0.95, x0.97 per epoch after epoch 10 (smoothly here, at each
    # epoch's end there), gradient elements clamped at 5, summed over the 50 steps (its
    # grad_params:div(seq_length) is commented out), every weight U(-0.08, 0.08) (there
    # the biases too; here 0, the forget gate's 1 as there), 50 epochs, 5% validation
    "char-rnn": dict(model="lstm", hidden=128, layers=2, embed=0, dropout=0.0, weight_drop=0.0,
                     init="uniform", init_scale=0.08, seq_length=50, batch_size=50,
                     optimizer="rmsprop", lr=2e-3, lr_decay=0.97, lr_decay_after=10.0,
                     schedule="exp", warmup=0, clip_mode="value", grad_clip=5.0, loss="sum",
                     max_steps=0, epochs=50.0, val_frac=0.05, eval_every=1000),
}


MIN_STEPS = 1000      # auto_epochs: a small text still gets this many steps (at most MAX_EPOCHS)
MAX_EPOCHS = 100
EPOCHS = 10           # auto_epochs on a text of MIN_STEPS steps an epoch or more
LR_DECAY = 0.95       # per epoch of EPOCHS; over the same total decay when there are more
VAL_COST = 1 / 3      # a validated character costs about this much of a trained one (forward only)
VAL_SHARE = 0.1       # auto_eval_every: validation takes at most this share of the work
MIN_EVAL_EVERY = 200
CONTEXT = 200         # characters of training text read before an unprimed sample
BUDGET_WARMUP = 100   # auto --warmup of a time-budgeted run; its speed is measured within it
PLAN_SECONDS = 10     # ...or over this long, where the warm-up is slower
PLAN_MARGIN = 0.97    # the plan's share of the time left: the cosine ends just before the limit
BUDGET_VAL_SHARE = 0.05  # a budget's validations take this share of it (auto --eval-every)


def _unplanned(tc):
    """A time-budgeted run (cosine under a time limit) whose step count is not fixed yet."""
    return bool(tc.schedule == "cosine" and tc.time_limit and not tc.plan_steps)


def auto_epochs(steps_per_epoch):
    """The default epoch limit: 10, or more on a small text, so that it trains long
    enough to write words (char-rnn's default is 50 epochs)."""
    return float(max(EPOCHS, min(MAX_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch))))


def auto_eval_every(val_chars, chars_per_step):
    """Steps between validations such that validating val_chars characters takes at
    most VAL_SHARE of the work at any batch size (and not more often than every
    MIN_EVAL_EVERY steps). Counted in training characters, not seconds, so that a
    resumed run validates at the same steps as one run straight through."""
    train_chars = val_chars * VAL_COST * (1 - VAL_SHARE) / VAL_SHARE
    return max(MIN_EVAL_EVERY, math.ceil(train_chars / chars_per_step))


def resume_settings(saved, given):
    """The settings of a resumed run: the checkpoint's, and over them the flags given
    now. A step or epoch limit given now replaces all stored limits (one the user did
    not repeat must not end the run before the one asked for); a time limit given
    alone is this invocation's and keeps the stored totals, which a cosine schedule
    counts to. The seed stays the run's."""
    settings = dict(saved)
    if {"max_steps", "epochs"} & set(given):
        settings.update(max_steps=0, epochs=0.0, time_limit=0.0, plan_steps=0)
    settings.update({k: v for k, v in given.items() if k != "seed"})
    return TrainConfig.from_dict(settings)


def warm_up(cfg, optimizer, clip_mode="norm"):
    """Runs every kernel a run of this configuration uses once (training, validation,
    the previews' sampling), on a model of the same kind but tiny sizes, so numba
    compiles them (or loads them from its cache) before the run and its clock start,
    all at once. Kernel types do not depend on sizes."""
    from charrnn.sample import Sampler
    tiny = ModelConfig(kind=cfg.kind, vocab_size=3, hidden=2, layers=min(cfg.layers, 2),
                       embed=2 if cfg.embed else 0)
    flat = init_params(tiny, np.random.default_rng(0))
    grad = np.zeros_like(flat)
    ids = np.zeros((2, 1), dtype=np.int64)
    loss_and_grad(tiny, carve(flat, tiny), carve(grad, tiny), ids, ids, zero_state(tiny, 1))
    CLIPS[clip_mode](grad, 1.0)
    Optimizer(optimizer, flat.size).step(flat, grad, 1e-3, 1)
    # long enough to be read as several parts after a burn-in, as a validation is
    evaluate(tiny, carve(flat, tiny), np.zeros(1000, dtype=np.uint8))
    Sampler(tiny, carve(flat, tiny), ["a", "b", "c"]).text("ab", 2)


def lr_at(tc, step, steps_per_epoch, total_steps=None):
    """Learning rate of step (0-based): linear warm-up, then either lr * lr_decay**epoch
    or a cosine from lr down to min_lr at total_steps (nanoGPT's schedule)."""
    warm = min(1.0, (step + 1) / tc.warmup) if tc.warmup else 1.0
    if tc.schedule == "cosine" and total_steps:
        progress = min(1.0, max(0, step - tc.warmup) / max(1, total_steps - tc.warmup))
        return warm * (tc.min_lr + 0.5 * (tc.lr - tc.min_lr) * (1 + math.cos(math.pi * progress)))
    return tc.lr * warm * tc.lr_decay ** max(0.0, step / steps_per_epoch - tc.lr_decay_after)


class Run:
    """One training run: its data, model, optimizer and progress."""

    def __init__(self, corpus, out, cfg, tc, resume=None, fit_batches=False, comm=None):
        """corpus: a str, or (ids, vocab) from data.read_corpus (which, on resume, must
        have been read with the checkpoint's vocabulary). fit_batches: shrink the batch
        (then the sequence) to fit a short text, with a warning, instead of an error.
        comm: distributed.communicator() when this process is one rank of several."""
        self.out, self.tc = out, tc
        self.comm = comm or distributed.Single()
        self.warnings = []  # for the user
        if isinstance(corpus, str):
            vocab = resume.vocab if resume is not None else build_vocab(corpus)
            ids = encode(corpus, vocab, "the training text")
        else:
            ids, vocab = corpus
        if len(ids) == 0:
            raise CharrnnError("the training text is empty")
        if resume is None:
            cfg = ModelConfig(**dict(cfg.to_dict(), vocab_size=len(vocab)))
        if len(vocab) < 2:
            raise CharrnnError("the text has fewer than 2 distinct characters: nothing to learn")
        check_esn(cfg, tc)
        self.cfg, self.vocab = cfg, vocab
        self.train_ids, self.val_ids = split(ids, tc.val_frac)
        if fit_batches:
            tc = self.tc = self._fit(tc)
        self.eval_given = bool(tc.eval_every)  # a budget's plan may space validation itself
        self.batches = Batches(self.train_ids, tc.batch_size, tc.seq_length)
        tc = self.tc = self._resolve(tc)
        if tc.batch_size < self.comm.size:
            raise CharrnnError(f"--batch-size {tc.batch_size} gives some of the {self.comm.size} "
                               f"ranks no stream: use at least {self.comm.size} or fewer ranks")
        self.streams = self.comm.block(tc.batch_size)  # this rank's s0..s1
        self.rng = np.random.default_rng(tc.seed)
        self.flat = init_params(cfg, self.rng, init=tc.init, scale=tc.init_scale,
                                reservoir=Reservoir(tc.spectral_radius, tc.leak, tc.input_scale))
        self.grad = np.zeros_like(self.flat)
        self.p, self.g = carve(self.flat, cfg), carve(self.grad, cfg)
        self.fixed = frozen(cfg)  # the optimizer steps flat[fixed:] only
        self.opt = Optimizer(tc.optimizer, self.flat.size - self.fixed)
        self.ridge = Ridge(cfg.hidden, len(vocab), tc.ridge) if tc.readout == "ridge" else None
        if self.ridge is not None and self.comm.size > 1:
            raise CharrnnError("--readout ridge fits on one process: run it without mpirun, "
                               "or use --readout optimizer")
        self.state = zero_state(cfg, tc.batch_size)
        self.step, self.best_val, self.val_loss, self.smooth = 0, math.inf, None, math.log(len(vocab))
        self.smooth_seq = tc.seq_length * math.log(len(vocab))  # min-char-rnn's smooth_loss
        self.stale = 0
        self.elapsed = 0.0
        self.history = []  # [step, validation loss], thinned (history.py)
        if resume is not None:
            self._restore(resume)

    def _fit(self, tc):
        """The largest batch of tc.seq_length-character chunks the training text fills
        (or one stream as long as the text allows)."""
        L, N, T = len(self.train_ids), tc.batch_size, tc.seq_length
        if L >= N * (T + 1) or L < 3:
            return tc  # it fits, or nothing fits: Batches says so
        N, T = (L // (T + 1), T) if L >= T + 1 else (1, L - 1)
        self.warnings.append(f"the training text ({L:,} characters) is too short for "
                             f"{tc.batch_size} streams of {tc.seq_length}: using --batch-size {N} "
                             f"--seq-length {T}")
        return dataclasses.replace(tc, batch_size=N, seq_length=T)

    def _resolve(self, tc):
        """The automatic settings (None, 0 or auto in tc), fixed now for the whole run.
        A time limit on a new run is a budget: the cosine schedule spans it (see plan)."""
        chars_per_step = tc.batch_size * tc.seq_length
        val = min(tc.val_chars or len(self.val_ids), len(self.val_ids))
        schedule = tc.schedule if tc.schedule != "auto" else "cosine" if tc.time_limit else "exp"
        budget = _unplanned(dataclasses.replace(tc, schedule=schedule))
        if tc.epochs is not None:
            epochs = tc.epochs
        else:  # a budget is the run's limit; the best checkpoint guards against overfitting
            epochs = 0.0 if budget else auto_epochs(self.batches.steps_per_epoch)
        # more epochs of a small text decay the learning rate as EPOCHS of a large one would
        decay = LR_DECAY ** (EPOCHS / epochs if tc.epochs is None and epochs else 1)
        warmup = tc.warmup if tc.warmup is not None else BUDGET_WARMUP if budget else 0
        return dataclasses.replace(
            tc, epochs=epochs, lr_decay=decay if tc.lr_decay is None else tc.lr_decay,
            eval_every=tc.eval_every or auto_eval_every(val, chars_per_step),
            schedule=schedule, warmup=warmup)

    def needs_plan(self):
        """True while a time-budgeted run has not yet fixed its step count."""
        return _unplanned(self.tc)

    def plan(self, step_s, seconds_left, val_s=None):
        """Fixes the run's length from its speed: step_s seconds a training step and
        val_s a validation (timed when None). Validation, unless its
        interval was given, is spaced to take BUDGET_VAL_SHARE of the time; the plan is
        the steps that fit in seconds_left with their validations, so the cosine ends
        where the time does. Fixed once, within the warm-up, and stored: the learning
        rate of every step then depends on the step count alone."""
        tc = self.tc
        if val_s is None:
            val_s = self._time_validation()
        eval_every = tc.eval_every
        if not self.eval_given:
            eval_every = max(MIN_EVAL_EVERY, math.ceil(val_s * (1 / BUDGET_VAL_SHARE - 1) / step_s))
            eval_every = self.comm.agree(eval_every)
        steps = self.step + max(1, int(PLAN_MARGIN * seconds_left / (step_s + val_s / eval_every)))
        stop = self.stop_step()  # a step or epoch limit given beside the budget still holds
        self.tc = dataclasses.replace(tc, plan_steps=self.comm.agree(min(steps, stop or steps)),
                                      eval_every=eval_every)
        return self.tc.plan_steps

    def plan_when_ready(self, measured, steps, seconds_left):
        """plan() once the warm-up ends or PLAN_SECONDS of steps are timed (measured
        seconds over steps); every rank at the same step, as plan() is collective."""
        if self.comm.agree(int(self.step >= self.tc.warmup or measured >= PLAN_SECONDS)):
            return self.plan(measured / steps, seconds_left)
        return None

    def _time_validation(self):
        """Seconds one validation takes: one, timed (it changes nothing)."""
        tc = self.tc
        ids = self.val_ids[:tc.val_chars] if tc.val_chars else self.val_ids
        if len(ids) < 2:
            return 0.0
        t0 = time.perf_counter()
        self.comm.evaluate(self.cfg, self.p, ids)
        return time.perf_counter() - t0

    def _restore(self, ck):
        for name, a in ck.params.items():
            self.p[name][:] = a
        for b in BUFFERS[self.tc.optimizer]:
            a = ck.arrays.get(f"opt/{b}")
            if a is None or a.shape != self.opt.buffers[b].shape:
                raise CharrnnError(f"the checkpoint has no {self.tc.optimizer} state opt/{b}; "
                                   f"resume with the optimizer it was trained with")
            self.opt.buffers[b][:] = a
        if self.ridge is not None:
            sums = ck.arrays.get("ridge/A"), ck.arrays.get("ridge/BT")
            if any(a is None or a.shape != b.shape for a, b in zip(sums, (self.ridge.A, self.ridge.BT))):
                raise CharrnnError("the checkpoint has no ridge sums of this size (ridge/A, "
                                   "ridge/BT); resume with the readout it was trained with")
            self.ridge = Ridge(self.cfg.hidden, len(self.vocab), self.tc.ridge, sums)
        st = ck.arrays.get("state/train")
        if st is not None and st.shape == self.state.shape:
            self.state[:] = st
        else:
            self.warnings.append("the batch size differs from the checkpoint's: the carried "
                                 "hidden state starts again from zero")
        m = ck.meta
        saved_T = m.get("train", {}).get("seq_length")
        if saved_T is not None and saved_T != self.tc.seq_length:
            self.warnings.append(f"--seq-length {self.tc.seq_length} differs from the checkpoint's "
                                 f"{saved_T}: the data position and the schedule jump")
        if m.get("train_chars") not in (None, len(self.train_ids)):
            self.warnings.append(f"the training text has {len(self.train_ids):,} characters, the "
                                 f"checkpoint's had {m['train_chars']:,}: not an exact resume")
        self.step = int(m.get("step", 0))
        self.best_val = m.get("best_val_loss") or math.inf
        self.val_loss = m.get("val_loss")
        self.smooth = m.get("train_loss") or self.smooth
        self.smooth_seq = m.get("smooth_seq_loss") or self.smooth_seq
        self.elapsed = float(m.get("elapsed_s", 0.0))
        self.stale = int(m.get("validations_since_best", 0))
        self.history = m.get("val_history", [])
        if "rng" in m:
            self.rng.bit_generator.state = m["rng"]

    # -- checkpoints ---------------------------------------------------------
    def meta(self):
        return {
            "charrnn": __version__, "config": self.cfg.to_dict(), "train": asdict(self.tc),
            "vocab": self.vocab, "step": self.step,
            "epoch": self.step / self.batches.steps_per_epoch,
            "steps_per_epoch": self.batches.steps_per_epoch,
            "train_chars": int(len(self.train_ids)), "val_chars": int(len(self.val_ids)),
            "train_loss": self.smooth, "smooth_seq_loss": self.smooth_seq,
            "val_loss": self.val_loss,
            "best_val_loss": None if math.isinf(self.best_val) else self.best_val,
            "elapsed_s": self.elapsed, "validations_since_best": self.stale,
            "val_history": self.history,
            "rng": self.rng.bit_generator.state, "start_context": self.start_context(),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def start_context(self):
        """Where unprimed samples start: up to CONTEXT characters of the training text
        that end a line, so a sample starts from a state training knows, not zeros."""
        ids, vocab = self.train_ids, self.vocab
        tail = ids[-2 * CONTEXT:]
        ends = np.flatnonzero(tail == vocab.index("\n")) if "\n" in vocab else []
        end = len(ids) - len(tail) + ends[-1] + 1 if len(ends) else len(ids)
        return decode(ids[max(0, end - CONTEXT):end], vocab)

    def save(self, path):
        if self.ridge is not None:
            self.ridge.solve_into(self.p)
        if not np.isfinite(self.flat).all():  # never write what cannot be resumed from
            raise CharrnnError(f"the weights hold NaN or infinite values at step {self.step}; "
                               f"nothing was saved: lower --lr and resume from {self.out}")
        self.comm.gather(self.state)  # every rank, then rank 0 alone writes
        if not self.comm.is_root:
            return
        extra = {f"opt/{b}": v for b, v in self.opt.buffers.items()}
        extra["state/train"] = self.state
        if self.ridge is not None:
            extra.update({"ridge/A": self.ridge.A, "ridge/BT": self.ridge.BT})
        try:
            checkpoint.save(path, self.p, self.meta(), extra)
        except OSError as e:
            raise CharrnnError(f"cannot write checkpoint {path}: {e.strerror or e}")

    # -- the loop ------------------------------------------------------------
    def train_step(self):
        """One optimizer step on the next chunk. Returns the chunk's loss."""
        bt, tc = self.batches, self.tc
        k = self.step % bt.steps_per_epoch
        if k == 0:
            self.state[:] = 0  # a new epoch: every stream starts again from its beginning
        s0, s1 = self.streams
        x, y = bt.batch(k, s0, s1)
        if self.ridge is not None:  # one rank only (Run refuses ridge under mpirun)
            loss, self.state = ridge_step(self.cfg, self.p, self.ridge, x, y, self.state)
            self.step += 1
            return loss
        masks = dropout_masks(self.cfg, self.rng, tc.seq_length, tc.batch_size)  # every rank all
        wmasks = weight_masks(self.cfg, self.rng, tc.weight_drop)
        self.grad[:] = 0
        ranks = {} if self.comm.size == 1 else dict(  # this rank's streams of the chunk
            chars=tc.seq_length * tc.batch_size,
            reduce=lambda total: self.comm.reduce(self.grad, total))
        loss, new_state = loss_and_grad(self.cfg, self.p, self.g, x, y, self.state[:, :, s0:s1],
                                        None if masks is None else masks[:, :, s0:s1], wmasks,
                                        per=tc.batch_size if tc.loss == "sum" else None, **ranks)
        norm = CLIPS[tc.clip_mode](self.grad[self.fixed:], tc.grad_clip)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise CharrnnError(f"the loss became {loss} at step {self.step + 1} (gradient norm "
                               f"{norm}); nothing was saved from this step: lower --lr or "
                               f"--grad-clip and resume from {self.out}")
        self.opt.step(self.flat[self.fixed:], self.grad[self.fixed:], self.lr(self.step),
                      self.step + 1)
        self.state[:, :, s0:s1] = new_state
        self.step += 1
        return loss

    def lr(self, step):
        # before its plan, a budgeted run is in its warm-up: the cosine has not begun
        total = math.inf if self.needs_plan() else self.stop_step()
        return lr_at(self.tc, step, self.batches.steps_per_epoch, total)

    def stop_step(self):
        tc, spe = self.tc, self.batches.steps_per_epoch
        limits = [s for s in (tc.max_steps, math.ceil(tc.epochs * spe) if tc.epochs else 0,
                              tc.plan_steps) if s]
        if self.ridge is not None:  # a second epoch adds the same states again: the same fit
            limits.append(spe)
        return min(limits) if limits else None

    def check_work(self):
        """Refuses a run that would train no step (a resumed run already at its limit)."""
        stop = self.stop_step()
        if stop is None or self.step < stop:
            return
        tc, spe = self.tc, self.batches.steps_per_epoch
        limit = (f"--max-steps {tc.max_steps:,}" if stop == tc.max_steps else
                 f"--epochs {tc.epochs:g}, {stop:,} steps of {spe:,} per epoch on this text")
        raise CharrnnError(f"the run is already at step {self.step:,}, its limit ({limit}): "
                           f"nothing to train; give a larger --max-steps or --epochs")

    def still_improving(self):
        """True when the last two scheduled validations (val_history) fell by more than 1%
        per eval_every steps: the run stopped with more to learn."""
        if len(self.history) < 2:
            return False
        (s0, v0), (s1, v1) = self.history[-2:]
        return v1 < v0 and (v0 - v1) / v0 * self.tc.eval_every / (s1 - s0) > 0.01

    def validate(self, scheduled=True):
        """The validation loss. A scheduled validation (every eval_every steps) also
        keeps a new best in NAME.best and counts towards --patience; an unscheduled one,
        where a run stops between them, only reports, so that where a run stops and
        resumes changes neither the best file nor when it stops early."""
        if len(self.val_ids) < 2:
            return None
        ids = self.val_ids[:self.tc.val_chars] if self.tc.val_chars else self.val_ids
        if self.ridge is not None:
            self.ridge.solve_into(self.p)
        loss = self.comm.evaluate(self.cfg, self.p, ids)
        self.val_loss = loss
        if not scheduled:
            return loss
        self.history = history.append(self.history, self.step, loss)
        if loss < self.best_val:
            self.best_val, self.stale = loss, 0
            self.save(best_path(self.out))
        else:
            self.stale += 1  # validations since the best: early stopping counts these
        return loss

    def plateaued(self):
        return self.tc.patience and self.stale >= self.tc.patience


class Interrupted(Exception):
    """Training stopped on SIGINT, SIGTERM or SIGHUP after saving its checkpoint."""

    def __init__(self, signum, step):
        super().__init__(signal.Signals(signum).name, step)
        self.signum, self.step = signum, step


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill, terminal closed


def _catch_signals(flag, more=()):
    """On a stop signal (and the signals in more), note it and let the current step
    finish, so the checkpoint written next is exactly the state after a whole step.
    Returns a restorer."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {s: signal.getsignal(s) for s in (*STOP_SIGNALS, *more)}
    for s in old:
        signal.signal(s, lambda signum, frame: flag.append(signum))
    return lambda: [signal.signal(s, h) for s, h in old.items()]


def _record(run, loss, evaluated, rate, start_time):
    """One JSON Lines record of the run's progress (README: `--log`)."""
    tc = run.tc
    return {
        "step": run.step, "epoch": run.step / run.batches.steps_per_epoch,
        "chars": run.step * tc.batch_size * tc.seq_length, "train_loss": loss,
        "smooth_loss": run.smooth,
        # min-char-rnn's convention, to set beside its printout: summed over
        # the seq_length characters of a stream, smoothed 0.999 from T ln V
        "seq_loss": loss * tc.seq_length, "smooth_seq_loss": run.smooth_seq,
        "val_loss": run.val_loss if evaluated else None,
        "lr": run.lr(run.step - 1), "chars_per_sec": rate,
        "elapsed_s": run.elapsed + time.time() - start_time}


def _log(logf, bar, record):
    """Appends a JSON Lines record. Returns the log, or None once it cannot be written
    (a full disk, a closed pipe), which is said once on stderr."""
    logf.write(json.dumps(record) + "\n")
    logf.flush()
    if not logf.failed:
        return logf
    bar.write(f"charrnn: warning: cannot write the log {logf.stream.name} "
              f"({logf.failed.strerror or logf.failed}); training goes on without it",
              file=sys.stderr)
    return None


@contextlib.contextmanager
def stop_at_once(cleanup=None):
    """Until training starts there is nothing to save, and numba's compiler cannot be
    stopped by an exception (one raised in its ctypes callbacks is swallowed and the
    compile goes on): within this, a stop signal ends the process at once with one
    line, after cleanup()."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        if cleanup:
            cleanup()
        sys.stderr.write(f"charrnn: interrupted by {signal.Signals(signum).name} before "
                         f"training began; nothing was written\n")
        sys.stderr.flush()
        os._exit(128 + signum)

    old = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in old:
        signal.signal(s, stop)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _plan_notice(tc):
    return (f"charrnn: the learning rate anneals to step {tc.plan_steps:,}, where --time-limit "
            f"{tc.time_limit:g} ends at this speed (to repeat the run exactly: --max-steps "
            f"{tc.plan_steps} --epochs 0 --schedule cosine --warmup {tc.warmup} --seed {tc.seed} "
            f"instead of --time-limit)")


def bar_total(stop, step, steps_per_s, seconds_left):
    """The step at which the run will end: its step limit, or where the time limit
    stops it at the speed so far, whichever comes first."""
    by_time = step + max(0, int(steps_per_s * seconds_left))
    return by_time if stop is None else min(stop, by_time)


def _stopping(run, signals, start_time):
    """Whether to stop before the next step, on a signal or the time limit. Every rank
    gets the same answer: a signal one rank caught becomes every rank's."""
    tc = run.tc
    time_up = tc.time_limit and time.time() - start_time >= tc.time_limit
    why = run.comm.agree(signals[0] if signals else 1 if time_up else 0)
    if why > 1 and not signals:
        signals.append(why)
    return why > 0


def run(run, progress=True, log_file=None, preview=None):
    """Trains until a limit; checkpoints at the end, and on a stop signal (then raises
    Interrupted). preview(run, bar) may write a sample to stderr. A log that cannot be
    written is given up with one warning; training goes on. Returns the run."""
    from tqdm import tqdm
    tc = run.tc
    signals, root = [], run.comm.is_root
    # Open MPI's mpirun follows a SIGTERM to the ranks with SIGKILL at once; SIGUSR1 it
    # passes on alone, so that a run can stop cleanly
    restore = _catch_signals(signals, (signal.SIGUSR1,) if run.comm.size > 1 else ())
    stop = run.stop_step()
    start_time, start_step = time.time(), run.step
    logf = open_log(log_file) if log_file and root else None
    bar = tqdm(total=stop, initial=run.step, file=sys.stderr, disable=not progress or not root,
               unit="step", dynamic_ncols=True, smoothing=0.1,
               mininterval=0.1 if sys.stderr.isatty() else 15)  # a log file gets a line now and then
    chars_per_step = tc.seq_length * tc.batch_size
    step_s, rate = 0.0, 0.0  # chars/s counts training steps only, not validation
    try:
        while stop is None or run.step < stop:
            if _stopping(run, signals, start_time):
                break
            t0 = time.perf_counter()
            loss = run.train_step()
            if run.step % distributed.CHECK_EVERY == 0:
                run.comm.check(run.flat, run.step)
            if run.step > start_step + 1:  # the first step may still load a kernel
                dt = time.perf_counter() - t0
                step_s = 0.95 * step_s + 0.05 * dt if step_s else dt  # smoothed
                rate = chars_per_step / step_s
            else:
                plan_t0 = time.perf_counter()
            if run.needs_plan() and run.step - start_step >= 3:
                planned = run.plan_when_ready(time.perf_counter() - plan_t0, run.step - start_step - 1,
                                              tc.time_limit - (time.time() - start_time))
                if planned:
                    tc, stop = run.tc, run.stop_step()
                    if root and progress:
                        bar.write(_plan_notice(tc), file=sys.stderr)
            if tc.time_limit:  # the bar's total, and so its ETA, follow the limit that ends the run
                done = run.step - start_step
                bar.total = bar_total(stop, run.step, done / max(time.time() - start_time, 1e-9),
                                      tc.time_limit - (time.time() - start_time))
            run.smooth = 0.99 * run.smooth + 0.01 * loss if run.step > 1 else loss
            run.smooth_seq = 0.999 * run.smooth_seq + 0.001 * loss * tc.seq_length
            # a budget's last step validates as scheduled: its best file holds the end
            evaluated = run.step % tc.eval_every == 0 or run.step == tc.plan_steps
            if evaluated:
                run.validate()
                if run.plateaued():
                    if root:
                        bar.write(f"charrnn: no better validation loss in {tc.patience} "
                                  f"validations: stopping early (--patience)", file=sys.stderr)
                    break
            if (tc.sample_every and run.step % tc.sample_every == 0) or \
                    (not tc.sample_every and evaluated):
                if preview and root:
                    preview(run, bar)
            if run.step % tc.checkpoint_every == 0:
                run.save(run.out)
            bar.update(1)
            post = f"loss {run.smooth:.3f}"
            if run.val_loss is not None:
                post += f" val {run.val_loss:.3f}"
            bar.set_postfix_str(post + f" {rate:,.0f} chars/s", refresh=False)
            if logf and (run.step % tc.log_every == 0 or evaluated):
                logf = _log(logf, bar, _record(run, loss, evaluated, rate, start_time))
        if run.step % tc.eval_every and run.step > start_step and not signals:
            if run.validate(scheduled=False) is not None and logf:  # the curve ends where the run does
                logf = _log(logf, bar, _record(run, loss, True, rate, start_time))
        run.elapsed += time.time() - start_time
        run.comm.check(run.flat, run.step)
        run.save(run.out)
    finally:
        restore()
        bar.close()
        if logf:
            logf.close()
    if signals:
        raise Interrupted(signals[0], run.step)
    return run
