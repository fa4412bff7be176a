"""A training session as 'charrnn train' runs it: the settings of a new or a resumed
run (presets, the architecture a checkpoint fixes), the lock on its files, the header,
the run itself and its summary. Everything is said through log (one line on stderr);
nothing here parses options."""
import contextlib
import math
import os
import signal
import sys

from charrnn import CharrnnError
from charrnn.paths import check_writable

ARCH = ("model", "hidden", "layers", "embed", "dropout")  # the options a checkpoint fixes
COMPILE_NOTICE = "charrnn: compiling kernels, once (cached for later runs)"


def plural(n, word):
    """'1 step', '2 steps', '1,000 steps'."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


@contextlib.contextmanager
def compile_notice(log):
    """Says COMPILE_NOTICE through log when numba starts compiling a kernel in the block:
    a cache miss, so once per install (and source change); loading cached kernels,
    however slow on a busy machine, says nothing."""
    from numba.core import event

    class Notice(event.Listener):
        said = False

        def on_start(self, ev):
            if not self.said:
                self.said = True
                log(COMPILE_NOTICE)

        def on_end(self, ev):
            pass

    with event.install_listener("numba:compile", Notice()):
        yield


def train(files, opts, given, log, output=None, log_file=None, quiet=False, resume=None,
          encoding="utf-8", no_lock=False, force=False, preset=None, extend_vocab=False):
    """Trains on files as 'charrnn train' does and returns its exit status: 0, or
    128 + the signal that stopped it (the checkpoint saved).

    opts: the TrainConfig fields and ARCH options by name (model, hidden, ..., seed None
    for a random one); given: the names in opts the user set, which override a preset
    and must agree with a resumed checkpoint. Under mpirun only rank 0 writes or talks."""
    from charrnn import distributed, outputs, train as tr
    from charrnn.streams import guarded_stderr
    comm = distributed.communicator()  # under mpirun: this rank's
    quiet = quiet or not comm.is_root
    opts = dict(opts)
    if preset and resume:
        raise CharrnnError(f"--preset {preset} starts a new run; a resumed run keeps the "
                           f"settings saved in {resume}: drop --preset")
    if preset:
        opts.update({k: v for k, v in tr.PRESETS[preset].items() if k not in given})
    output = output or resume or "model.npz"
    targets = outputs.targets(output)
    with guarded_stderr():  # a lost stderr (closed pipe, full disk) must not end the run
        # taken before the corpus is read, so a second run on the same files is refused at once
        lock = None if no_lock or not comm.is_root else outputs.Lock(*targets)
        with lock or contextlib.nullcontext():
            with tr.stop_at_once(lock and lock.release):
                run = prepare(comm, files, output, log_file, quiet, resume, encoding, force,
                              extend_vocab, opts, given, log)
            try:
                tr.run(run, progress=not quiet, log_file=log_file,
                       preview=None if quiet else preview)
            except tr.Interrupted as e:
                if comm.is_root:
                    log(f"charrnn: interrupted by {e.args[0]} at step {e.step:,}; saved {output} "
                        f"(continue with --resume {output})")
                # SIGUSR1 is how mpirun passes a stop on (README): it ends as SIGTERM does
                return 128 + (signal.SIGTERM if e.signum == signal.SIGUSR1 else e.signum)
        if not quiet:
            summary(run, output, targets[1], log)
    return 0


def summary(run, output, best_path, log):
    """The closing lines of a finished run: its losses, where it was saved, and a hint
    when it was still improving."""
    from charrnn import history
    val = f"{run.val_loss:.4f}" if run.val_loss is not None else "n/a"
    log(f"charrnn: step {run.step:,}, train loss {run.smooth:.4f}, val loss {val}; saved {output}"
        + (f" (best {run.best_val:.4f} in {best_path})" if math.isfinite(run.best_val) else ""))
    if run.history and sys.stderr.isatty():  # a sketch for a person, not for a log file
        log(f"charrnn: validation {history.summary(run.history, run.best_val)}")
    if run.still_improving() and not run.plateaued():
        log(f"charrnn: still improving: continue with --resume {output} "
            f"--max-steps {2 * run.step}")


def prepare(comm, files, output, log_file, quiet, resume, encoding, force, extend_vocab, opts,
            given, log):
    """The Run, its kernels compiled; called holding the lock on the run's files."""
    from charrnn import outputs, prepared, train as tr
    if comm.is_root:
        outputs.claim(output, resume, force)  # under the lock: no other run creates them now
        if log_file:  # found unwritable now, not after the corpus is read
            check_writable(log_file, "the log", "--log", "log.jsonl")
    ck, cfg, tc = settings(comm, resume, opts, given, log)
    corpus = prepared.read(files, encoding, vocab=ck.vocab if ck else None,
                           unknown="extend" if extend_vocab else "error",
                           hint="pass --extend-vocab to add them to the model")
    if ck and corpus[1] != ck.vocab:
        ck = grow_vocab(ck, corpus[1], log)
        cfg = ck.config
    run = tr.Run(corpus, output, cfg, tc, resume=ck, comm=comm,
                 fit_batches=not ck and not {"batch_size", "seq_length"} & given)
    run.check_work()
    if not quiet:
        header(run, ck is not None, log)
    for w in run.warnings if comm.is_root else ():
        log(f"charrnn: warning: {w}")
    with compile_notice(log) if comm.is_root else contextlib.nullcontext():
        tr.warm_up(run.cfg, tc.optimizer, tc.clip_mode)
    return run


def grow_vocab(ck, vocab, log):
    """ck grown to vocab (--extend-vocab), saying which characters are new."""
    from charrnn.extend import extend_vocab
    new = sorted(set(vocab) - set(ck.vocab))
    log(f"charrnn: adding {plural(len(new), 'character')} to the vocabulary: "
        + " ".join(map(repr, new[:20])) + (" ..." if len(new) > 20 else ""))
    return extend_vocab(ck, vocab)


def settings(comm, resume, opts, given, log):
    """(checkpoint or None, ModelConfig, TrainConfig) of a new or a resumed run. A resumed
    run keeps its checkpoint's architecture (a given one that differs is an error) and
    its saved training settings, overridden by the given ones."""
    from charrnn import checkpoint, train as tr
    from charrnn.model import ModelConfig
    opts = dict(opts)
    arch = {"kind": opts.pop("model"), **{k: opts.pop(k) for k in ARCH[1:]}}
    if arch["kind"] == "esn" and "layers" not in given:
        arch["layers"] = 1  # one reservoir
    opts["eval_every"] = opts["eval_every"] or 0  # 0, like epochs None: chosen by the run
    if not resume:
        if opts["seed"] is None:  # the ranks' largest: one seed for all
            opts["seed"] = comm.agree(int.from_bytes(os.urandom(4), "little") >> 1)
        return None, ModelConfig(**arch), tr.TrainConfig.from_dict(opts)
    if "seed" in given and comm.is_root:
        log("charrnn: warning: --seed is ignored on --resume: the run continues its own "
            "random sequence")
    ck = checkpoint.load(resume)
    cfg = ck.config
    saved = {"kind": cfg.kind, **{k: getattr(cfg, k) for k in ARCH[1:]}}
    clash = [f"--{k} {arch[key]}" for k, key in zip(ARCH, saved)
             if k in given and arch[key] != saved[key]]
    if clash:
        raise CharrnnError(f"{', '.join(clash)} contradicts the checkpoint {resume} "
                           f"({cfg.kind} {cfg.layers}x{cfg.hidden}, embed {cfg.embed}, "
                           f"dropout {cfg.dropout}); drop the flag to resume")
    return ck, cfg, tr.resume_settings(ck.meta.get("train", {}),
                                       {k: v for k, v in opts.items() if k in given})


def header(run, resumed, log):
    """The run's sanity numbers: architecture, parameters, vocabulary against ln V,
    characters, steps per epoch, seed."""
    from charrnn.model import describe_params
    c, spe = run.cfg, run.batches.steps_per_epoch
    log(f"charrnn: {c.kind} {c.layers}x{c.hidden}"
        f"{f', embed {c.embed}' if c.embed else ', one-hot input'}, {describe_params(c)}, "
        f"vocabulary {c.vocab_size} (uniform loss ln V = {math.log(c.vocab_size):.3f})")
    log(f"charrnn: {len(run.train_ids):,} training and {len(run.val_ids):,} validation characters; "
        f"{plural(spe, 'step')} of {run.tc.batch_size}x{run.tc.seq_length} per epoch; seed {run.tc.seed}"
        + (f"; resuming at step {run.step:,}" if resumed else "")
        + (f"; {run.comm.size} ranks" if run.comm.size > 1 else ""))


def preview(run, bar):
    """A short sample on stderr, so a user can watch the model learn."""
    from charrnn.sample import Sampler, start_text
    s = Sampler(run.cfg, run.p, run.vocab)
    text = s.text(start_text(run.start_context(), run.vocab), 160, temperature=0.8, seed=run.step)
    bar.write(f"--- sample at step {run.step:,} ---\n{text}\n---", file=sys.stderr)
