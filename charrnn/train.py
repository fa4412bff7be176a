"""The training loop: truncated BPTT over the stream layout of data.Batches,
global-norm clipping, an optimizer over the flat buffer, periodic validation,
checkpoints (latest and best), a progress bar and a JSON Lines log.

Everything a run needs to continue bit for bit is in its checkpoint: parameters,
optimizer buffers, carried hidden state, step (which fixes the epoch, the data
position and the learning rate) and the random generator's state.
"""
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

from charrnn import CharrnnError, __version__, checkpoint
from charrnn.data import Batches, build_vocab, encode, split
from charrnn.esn import Reservoir, Ridge, ridge_step
from charrnn.evaluate import evaluate
from charrnn.model import (ModelConfig, carve, dropout_masks, frozen, init_params, loss_and_grad,
                           weight_masks, zero_state)
from charrnn.optim import BUFFERS, CLIPS, Optimizer


@dataclass
class TrainConfig:
    seq_length: int = 50        # T, characters per chunk of truncated BPTT
    batch_size: int = 50        # N, parallel contiguous streams
    optimizer: str = "adam"     # adam | rmsprop | adagrad | sgd
    lr: float = 2e-3            # peak learning rate
    lr_decay: float = 0.95      # multiplied into the learning rate once per epoch (smoothly)
    lr_decay_after: float = 0   # epochs at the full rate before lr_decay starts (char-rnn: 10)
    warmup: int = 0             # steps of linear learning-rate warm-up
    schedule: str = "exp"       # exp: lr * lr_decay**epoch; cosine: to min_lr at the step limit
    min_lr: float = 0.0         # where cosine ends
    patience: int = 0           # stop after this many validations without a new best; 0: never
    grad_clip: float = 5.0      # max global L2 norm of the gradient (or element); 0 disables
    clip_mode: str = "norm"     # norm: scale the whole gradient; value: clamp each element
    loss: str = "mean"          # the gradient's: mean per character, or sum over each stream's T
    weight_drop: float = 0.0    # DropConnect rate on the recurrent weights Wh, per chunk
    max_steps: int = 0          # total steps of the run (counting resumed ones); 0: no limit
    epochs: float = 10          # total epochs; 0: no limit
    time_limit: float = 0       # seconds of this invocation; 0: no limit
    val_frac: float = 0.1       # last fraction of the text held out for validation
    val_chars: int = 200_000    # validate on the first this many held-out characters; 0: all
    eval_every: int = 200       # steps between validation runs
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
        names = {f.name for f in fields(cls)}
        tc = cls(**{k: v for k, v in d.items() if k in names})
        for name, allowed in CHOICES.items():
            if getattr(tc, name) not in allowed:  # a damaged or newer checkpoint's settings
                raise CharrnnError(f"the run's setting {name}={getattr(tc, name)!r} is not one "
                                   f"of {', '.join(allowed)}; is the checkpoint from a newer charrnn?")
        return tc


CHOICES = {"clip_mode": tuple(CLIPS), "loss": ("mean", "sum"),
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
# 2-core machine; both stop at a step count, not a time, so --seed repeats them exactly.
PRESETS = {
    # the defaults for 5,000 steps, about 3 minutes (annealing to zero over so few steps,
    # --schedule cosine, did worse: 1.894 after 3,000 steps, against 1.80 for these)
    "small": dict(model="lstm", hidden=128, layers=2, embed=0, dropout=0.0, seq_length=50,
                  batch_size=50, lr=2e-3, schedule="exp", lr_decay=0.95, warmup=0,
                  max_steps=5000, epochs=0.0),
    # 2x384 with dropout and weight drop: 1.4315 at step 7,500 (44 minutes; 50 in all).
    # Without weight drop it overfits after step 5,000 (1.4545, 36 minutes); more dropout
    # (0.4: 1.462) or a wider net (2x512 with 0.5: 1.456 in 59 minutes) did no better
    "large": dict(model="lstm", hidden=384, layers=2, embed=64, dropout=0.25, weight_drop=0.25,
                  seq_length=100, batch_size=32, lr=2e-3, schedule="cosine", min_lr=1e-4,
                  warmup=100, max_steps=8500, epochs=0.0, eval_every=250, patience=8),
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


def warm_up(cfg, optimizer, clip_mode="norm"):
    """Runs every kernel a run of this configuration uses once, on a model of the
    same kind but tiny sizes, so numba compiles them (or loads them from its cache)
    now, not in the middle of the first step. Kernel types do not depend on sizes."""
    tiny = ModelConfig(kind=cfg.kind, vocab_size=3, hidden=2, layers=min(cfg.layers, 2),
                       embed=2 if cfg.embed else 0)
    flat = init_params(tiny, np.random.default_rng(0))
    grad = np.zeros_like(flat)
    ids = np.zeros((2, 1), dtype=np.int64)
    loss_and_grad(tiny, carve(flat, tiny), carve(grad, tiny), ids, ids, zero_state(tiny, 1))
    CLIPS[clip_mode](grad, 1.0)
    Optimizer(optimizer, flat.size).step(flat, grad, 1e-3, 1)
    evaluate(tiny, carve(flat, tiny), np.zeros(4, dtype=np.uint8))


def lr_at(tc, step, steps_per_epoch, total_steps=None):
    """Learning rate of step (0-based): linear warm-up, then either lr * lr_decay**epoch
    or a cosine from lr down to min_lr at total_steps (nanoGPT's schedule)."""
    warm = min(1.0, (step + 1) / tc.warmup) if tc.warmup else 1.0
    if tc.schedule == "cosine" and total_steps:
        progress = min(1.0, max(0, step - tc.warmup) / max(1, total_steps - tc.warmup))
        return warm * (tc.min_lr + 0.5 * (tc.lr - tc.min_lr) * (1 + math.cos(math.pi * progress)))
    return tc.lr * warm * tc.lr_decay ** max(0.0, step / steps_per_epoch - tc.lr_decay_after)


def best_path(path):
    root, ext = os.path.splitext(path)
    return f"{root}.best{ext or '.npz'}"


def check_writable(path):
    """Fail before training, not after an hour, if the checkpoint cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CharrnnError(f"output {path} is a directory; give a file name such as {path}/model.npz")
    if not os.path.isdir(folder):
        raise CharrnnError(f"output folder {folder} does not exist; create it or choose another -o")
    if not os.access(folder, os.W_OK):
        raise CharrnnError(f"output folder {folder} is not writable; choose another -o")


class Run:
    """One training run: its data, model, optimizer and progress."""

    def __init__(self, corpus, out, cfg, tc, resume=None, fit_batches=False):
        """corpus: a str, or (ids, vocab) from data.read_corpus (which, on resume, must
        have been read with the checkpoint's vocabulary). fit_batches: shrink the batch
        (then the sequence) to fit a short text, with a warning, instead of an error."""
        self.out, self.tc = out, tc
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
        self.batches = Batches(self.train_ids, tc.batch_size, tc.seq_length)
        self.rng = np.random.default_rng(tc.seed)
        self.flat = init_params(cfg, self.rng, init=tc.init, scale=tc.init_scale,
                                reservoir=Reservoir(tc.spectral_radius, tc.leak, tc.input_scale))
        self.grad = np.zeros_like(self.flat)
        self.p, self.g = carve(self.flat, cfg), carve(self.grad, cfg)
        self.fixed = frozen(cfg)  # the optimizer steps flat[fixed:] only
        self.opt = Optimizer(tc.optimizer, self.flat.size - self.fixed)
        self.ridge = Ridge(cfg.hidden, len(vocab), tc.ridge) if tc.readout == "ridge" else None
        self.state = zero_state(cfg, tc.batch_size)
        self.step, self.best_val, self.val_loss, self.smooth = 0, math.inf, None, math.log(len(vocab))
        self.smooth_seq = tc.seq_length * math.log(len(vocab))  # min-char-rnn's smooth_loss
        self.stale = 0
        self.elapsed = 0.0
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
            "rng": self.rng.bit_generator.state,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def save(self, path):
        if self.ridge is not None:
            self.ridge.solve_into(self.p)
        if not np.isfinite(self.flat).all():  # never write what cannot be resumed from
            raise CharrnnError(f"the weights hold NaN or infinite values at step {self.step}; "
                               f"nothing was saved: lower --lr and resume from {self.out}")
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
        x, y = bt.batch(k)
        if self.ridge is not None:
            loss, self.state = ridge_step(self.cfg, self.p, self.ridge, x, y, self.state)
            self.step += 1
            return loss
        masks = dropout_masks(self.cfg, self.rng, tc.seq_length, tc.batch_size)
        wmasks = weight_masks(self.cfg, self.rng, tc.weight_drop)
        self.grad[:] = 0
        loss, new_state = loss_and_grad(self.cfg, self.p, self.g, x, y, self.state, masks, wmasks,
                                        per=tc.batch_size if tc.loss == "sum" else None)
        norm = CLIPS[tc.clip_mode](self.grad[self.fixed:], tc.grad_clip)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise CharrnnError(f"the loss became {loss} at step {self.step + 1} (gradient norm "
                               f"{norm}); nothing was saved from this step: lower --lr or "
                               f"--grad-clip and resume from {self.out}")
        self.opt.step(self.flat[self.fixed:], self.grad[self.fixed:], self.lr(self.step),
                      self.step + 1)
        self.state = new_state
        self.step += 1
        return loss

    def lr(self, step):
        return lr_at(self.tc, step, self.batches.steps_per_epoch, self.stop_step())

    def stop_step(self):
        tc, spe = self.tc, self.batches.steps_per_epoch
        limits = [s for s in (tc.max_steps, math.ceil(tc.epochs * spe) if tc.epochs else 0) if s]
        if self.ridge is not None:  # a second epoch adds the same states again: the same fit
            limits.append(spe)
        return min(limits) if limits else None

    def validate(self, scheduled=True):
        """The validation loss; a new best is saved. Only scheduled validations (every
        eval_every steps) count towards --patience, so where a run stops and resumes
        does not change when it stops early."""
        if len(self.val_ids) < 2:
            return None
        ids = self.val_ids[:self.tc.val_chars] if self.tc.val_chars else self.val_ids
        if self.ridge is not None:
            self.ridge.solve_into(self.p)
        loss, _ = evaluate(self.cfg, self.p, ids)
        self.val_loss = loss
        if loss < self.best_val:
            self.best_val, self.stale = loss, 0
            self.save(best_path(self.out))
        elif scheduled:
            self.stale += 1  # validations since the best: early stopping counts these
        return loss

    def plateaued(self):
        return self.tc.patience and self.stale >= self.tc.patience


class Interrupted(Exception):
    """Training stopped on SIGINT or SIGTERM after saving its checkpoint."""

    def __init__(self, signum, step):
        super().__init__(signal.Signals(signum).name, step)
        self.signum, self.step = signum, step


def _catch_signals(flag):
    """On SIGINT/SIGTERM, note it and let the current step finish, so the checkpoint
    written next is exactly the state after a whole step. Returns a restorer."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, lambda signum, frame: flag.append(signum))
    return lambda: [signal.signal(s, h) for s, h in old.items()]


def run(run, progress=True, log_file=None, preview=None):
    """Trains until a limit; checkpoints at the end, and on Ctrl-C or SIGTERM (then
    raises Interrupted). preview(run, bar) may write a sample to stderr. Returns the run."""
    from tqdm import tqdm
    tc = run.tc
    signals = []
    restore = _catch_signals(signals)
    stop = run.stop_step()
    start_time, start_step = time.time(), run.step
    logf = open(log_file, "a", encoding="utf-8") if log_file else None
    bar = tqdm(total=stop, initial=run.step, file=sys.stderr, disable=not progress,
               unit="step", dynamic_ncols=True, smoothing=0.1,
               mininterval=0.1 if sys.stderr.isatty() else 15)  # a log file gets a line now and then
    chars_per_step = tc.seq_length * tc.batch_size
    busy, busy_steps, rate = 0.0, 0, 0.0  # chars/s counts training steps only, not validation
    try:
        while stop is None or run.step < stop:
            if signals:
                break
            if tc.time_limit and time.time() - start_time >= tc.time_limit:
                break
            t0 = time.perf_counter()
            loss = run.train_step()
            if run.step > start_step + 1:  # the first step compiles or loads kernels
                busy, busy_steps = busy + time.perf_counter() - t0, busy_steps + 1
                rate = busy_steps * chars_per_step / busy
                if busy > 2.0:  # a fresh window now and then, so the rate follows changes
                    busy, busy_steps = 0.0, 0
            run.smooth = 0.99 * run.smooth + 0.01 * loss if run.step > 1 else loss
            run.smooth_seq = 0.999 * run.smooth_seq + 0.001 * loss * tc.seq_length
            evaluated = run.step % tc.eval_every == 0
            if evaluated:
                run.validate()
                if run.plateaued():
                    bar.write(f"charrnn: no better validation loss in {tc.patience} validations: "
                              f"stopping early (--patience)", file=sys.stderr)
                    break
            if (tc.sample_every and run.step % tc.sample_every == 0) or \
                    (not tc.sample_every and evaluated):
                if preview:
                    preview(run, bar)
            if run.step % tc.checkpoint_every == 0:
                run.save(run.out)
            bar.update(1)
            post = f"loss {run.smooth:.3f}"
            if run.val_loss is not None:
                post += f" val {run.val_loss:.3f}"
            bar.set_postfix_str(post + f" {rate:,.0f} chars/s", refresh=False)
            if logf and (run.step % tc.log_every == 0 or evaluated):
                logf.write(json.dumps({
                    "step": run.step, "epoch": run.step / run.batches.steps_per_epoch,
                    "train_loss": loss, "smooth_loss": run.smooth,
                    # min-char-rnn's convention, to set beside its printout: summed over
                    # the seq_length characters of a stream, smoothed 0.999 from T ln V
                    "seq_loss": loss * tc.seq_length, "smooth_seq_loss": run.smooth_seq,
                    "val_loss": run.val_loss if evaluated else None,
                    "lr": run.lr(run.step - 1),
                    "chars_per_sec": rate,
                    "elapsed_s": run.elapsed + time.time() - start_time}) + "\n")
                logf.flush()
        if run.step % tc.eval_every and run.step > start_step and not signals:
            run.validate(scheduled=False)
        run.elapsed += time.time() - start_time
        run.save(run.out)
    finally:
        restore()
        bar.close()
        if logf:
            logf.close()
    if signals:
        raise Interrupted(signals[0], run.step)
    return run
