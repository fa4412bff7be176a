"""The command line: parses options and hands over to the package. Kept thin and
fast to import: numba-using modules are imported inside the commands."""
import contextlib
import json
import math
import os
import sys
import warnings

import click

from charrnn import CharrnnError, __version__, limits, setup
from charrnn.session import ARCH, COMPILE_NOTICE  # noqa: F401 (re-exported)

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}


NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


def _help_command(e):
    """'charrnn --help' or 'charrnn train --help', whatever name the program was run under."""
    names, ctx = [], getattr(e, "ctx", None)
    while ctx is not None and ctx.parent is not None:
        names.insert(0, ctx.info_name)
        ctx = ctx.parent
    return " ".join(["charrnn", *names, "--help"])


class PipeClosed(Exception):
    """stdout's reader went away (| head); raised instead of BrokenPipeError, which
    click's main turns into exit status 1 even with standalone_mode=False."""


class Finite(click.FloatRange):
    """A FloatRange that refuses nan (which passes every comparison) and inf (which
    means nothing for any option here)."""

    def convert(self, value, param, ctx):
        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return v


SEED = click.IntRange(0)  # numpy's generators take seeds >= 0


def need_stdout():
    """stdout closed (>&-) is refused before any work: the product would be lost."""
    if sys.stdout is None:
        raise CharrnnError("standard output is closed: nowhere to write the result; "
                           "redirect it to a file (> out.txt) or a pipe")


@contextlib.contextmanager
def writing_stdout():
    """A write error on stdout (/dev/full, a disk full) is one line; a closed pipe
    (| head) stays the quiet exit of Group.main."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        raise CharrnnError(f"cannot write to standard output: {e.strerror or e}")


def _std_fds():
    """Descriptors 0-2 closed at start get /dev/null, so that no file this process opens
    takes their number and receives what is meant for them (sys.stdout stays None)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def _drop_stdout():
    """After an error, what stdout still buffers is flushed, or, if stdout cannot take
    it, dropped: Python's own flush at exit would print a traceback and exit 120."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class Group(click.Group):
    """Every error is one line on stderr: usage errors exit 2, runtime errors 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise PipeClosed() from None
        except KeyboardInterrupt:  # before click's handler, which adds an empty line
            raise click.Abort() from None

    def main(self, *args, **kwargs):
        setup.configure()  # before any command imports numpy or numba
        _std_fds()
        # numpy's overflow warnings (a diverging run, its preview) are not the user's
        # business: non-finite values are refused in one line where they matter
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except NO_ARGS_IS_HELP as e:
            click.echo(e.format_message(), err=True)  # bare 'charrnn': the help, not an error
            sys.exit(e.exit_code)
        except click.ClickException as e:
            from charrnn.distributed import fail  # under mpirun: said once, or by its rank
            fail(f"{e.format_message()} (see '{_help_command(e)}')", e.exit_code, usage=True)
        except click.Abort:
            click.echo("charrnn: interrupted (Ctrl-C)", err=True)
            sys.exit(130)
        except CharrnnError as e:
            from charrnn.distributed import fail  # under mpirun: said once, or by its rank
            _drop_stdout()
            fail(str(e), 1)
        except (BrokenPipeError, PipeClosed):
            # the reader went away (| head): stop quietly; the dup2 keeps Python's
            # final flush of stdout from raising again at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)


@click.group(cls=Group, context_settings=CONTEXT, epilog="""\b
Examples:
  charrnn train corpora/shakespeare.txt -o shakespeare.npz
  charrnn sample shakespeare.npz --temperature 0.8 --length 1000 | less
  charrnn eval shakespeare.npz held_out.txt""")
@click.version_option(__version__, "-V", "--version", prog_name="charrnn")
def cli():
    """Character-level RNN, LSTM and GRU language models, trained on the CPU.

    Train on any text, sample from the model (text on stdout, everything else on
    stderr), measure it, and look inside. 'charrnn COMMAND --help' for details."""


def say(msg):
    click.echo(msg, err=True)


def compile_notice():
    """Says on stderr that kernels are being compiled (session.compile_notice)."""
    from charrnn import session
    return session.compile_notice(say)


@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  charrnn train corpora/shakespeare.txt                 # 2x256 GRU, 10 epochs -> model.npz
  charrnn train tinyshakespeare.txt --preset large --seed 1 -o large.npz   # an hour
  charrnn train input.txt --preset min-char-rnn --log gist.jsonl   # the gist, exactly
  charrnn train input.txt --preset char-rnn -o char-rnn.npz         # char-rnn's defaults
  charrnn train a.txt b.txt --model gru --hidden 256 --time-limit 600 -o gru.npz
  charrnn train input.txt --model esn --hidden 2000 --readout ridge -o esn.npz
  cat *.md | charrnn train - --max-steps 2000 --seed 1 --log train.jsonl
  charrnn train corpora/shakespeare.txt --resume model.npz --max-steps 8000
  mpirun -n 4 charrnn train big.ids -o big.npz          # 4 ranks (README: More than one machine)""")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, allow_dash=True))
@click.option("-o", "--output", default=None, help="Checkpoint to write (the best by validation "
              "loss goes to NAME.best.EXT: m.npz -> m.best.npz, m -> m.best).  "
              "[default: model.npz, or the --resume checkpoint]")
@click.option("--preset", type=click.Choice(["small", "large", "min-char-rnn", "char-rnn"]),
              default=None,
              help="A recipe; flags given beside it override its values. small: a 2x384 GRU "
              "for --time-limit 180; large: a 2x384 LSTM with dropout for "
              "--time-limit 3600: tested here (see the README). "
              "min-char-rnn: Karpathy's min-char-rnn.py gist (2015), its math exactly: "
              "100-unit tanh RNN, one stream of 25, Adagrad 0.1, element clipping at 5, "
              "summed loss, N(0, 0.01^2) weights. char-rnn: the defaults of karpathy/char-rnn's "
              "train.lua (2015): 2x128 LSTM, RMSProp 2e-3 (decay 0.95), x0.97 per epoch after "
              "10, element clipping at 5, U(-0.08, 0.08) weights, 50 epochs, 5% validation.")
@click.option("--model", "model", type=click.Choice(["rnn", "lstm", "gru", "esn"]), default="gru",
              help="Cell type. esn: an echo state network, a fixed random reservoir of "
              "--hidden units (one layer) of which only the readout (and --embed's "
              "embedding) is trained, with no backpropagation through time.")
@click.option("--hidden", type=click.IntRange(1), default=256, help="Hidden units per layer.")
@click.option("--layers", type=click.IntRange(1), default=2,
              help="Stacked layers.  [default: 2; 1 for esn]")
@click.option("--embed", type=click.IntRange(0), default=64,
              help="Size of a learned input embedding; 0 feeds characters one-hot.")
@click.option("--dropout", type=Finite(0, 1, max_open=True), default=0.0,
              help="Dropout rate on each layer's output.")
@click.option("--weight-drop", type=Finite(0, 1, max_open=True), default=0.0,
              help="While training, drop this fraction of the recurrent weights (DropConnect, "
                   "one mask per step, shared by its characters).")
@click.option("--init", type=click.Choice(["orthogonal", "uniform", "normal"]), default="orthogonal",
              help="Initialisation: orthogonal recurrent weights, the others uniform; uniform: "
              "all weights U(-s, s); normal: all weights N(0, s^2). Biases start at 0 (an "
              "LSTM's forget gate at 1).")
@click.option("--init-scale", type=Finite(0), default=0.0,
              help="s of --init: the uniform bound or the normal standard deviation; "
              "0: 1/sqrt(hidden) for uniform, 0.01 for normal.")
@click.option("--spectral-radius", type=click.FloatRange(0, min_open=True), default=0.95,
              help="esn: the largest |eigenvalue| of the reservoir's sparse recurrent matrix.")
@click.option("--leak", type=click.FloatRange(0, 1, min_open=True), default=0.5,
              help="esn: leak rate a of h = (1 - a) h_prev + a tanh(x Wx + h_prev Wh + b).")
@click.option("--input-scale", type=click.FloatRange(0, min_open=True), default=1.0,
              help="esn: the reservoir's input weights and biases are U(-s, s).")
@click.option("--readout", type=click.Choice(["optimizer", "ridge"]), default="optimizer",
              help="esn: train the readout with --optimizer, or fit it in closed form by "
              "ridge regression on the reservoir's states, reading the training text once.")
@click.option("--ridge", type=click.FloatRange(0), default=1e-4,
              help="esn, --readout ridge: the L2 penalty on the readout, per character.")
@click.option("--seq-length", type=click.IntRange(1), default=50,
              help="Characters per step of truncated backpropagation through time.")
@click.option("--batch-size", type=click.IntRange(1), default=50, help="Parallel streams per step.")
@click.option("--optimizer", type=click.Choice(["adam", "rmsprop", "adagrad", "sgd"]), default="adam",
              help="Update rule (a resumed run keeps its own).")
@click.option("--lr", type=Finite(0, min_open=True), default=3e-3, help="Learning rate.")
@click.option("--lr-decay", type=Finite(0, 1, min_open=True), default=None,
              show_default="auto",
              help="Factor applied to the learning rate per epoch (smoothly). By default "
              "0.95, or where a small text gets more than 10 epochs by default, the decay "
              "of 10 epochs of 0.95 spread over them.")
@click.option("--lr-decay-after", type=Finite(0), default=0.0,
              help="Epochs at the full learning rate before --lr-decay starts.")
@click.option("--warmup", type=click.IntRange(0), default=None, show_default="auto",
              help="Steps of learning-rate warm-up. By default 100 under --time-limit, else 0.")
@click.option("--schedule", type=click.Choice(["auto", "exp", "cosine"]), default="auto",
              help="exp: --lr-decay per epoch; cosine: from --lr to --min-lr at the step limit; "
              "auto: cosine under --time-limit, to the step count the time allows (measured "
              "in the warm-up, then fixed and saved), else exp.")
@click.option("--min-lr", type=Finite(0), default=0.0, help="Where the cosine schedule ends.")
@click.option("--patience", type=click.IntRange(0), default=0,
              help="Stop after this many validations without a new best; 0: never.")
@click.option("--grad-clip", type=Finite(0), default=5.0,
              help="Clip the gradient to this (see --clip-mode); 0 disables.")
@click.option("--clip-mode", type=click.Choice(["norm", "value"]), default="norm",
              help="norm: scale the whole gradient down to a global L2 norm of --grad-clip; "
              "value: clamp each element to [-grad-clip, grad-clip] (min-char-rnn, char-rnn).")
@click.option("--loss", type=click.Choice(["mean", "sum"]), default="mean",
              help="What the gradient is of: the mean cross-entropy per character, or its "
              "sum over each stream's --seq-length characters (min-char-rnn, char-rnn).")
@click.option("--max-steps", type=click.IntRange(0), default=0,
              help="Stop at this total step count (resumed steps count); 0: no limit.")
@click.option("--epochs", type=Finite(0), default=None, show_default="auto",
              help="Stop after this many epochs; 0: no limit. By default 10, or on a small "
              "text enough epochs for 1,000 steps (at most 100); none under --time-limit.")
@click.option("--time-limit", type=Finite(0), default=0.0,
              help="Train for this many seconds (this invocation's, counted after the "
              "kernels compile); 0: no limit. A budget: by default the learning rate anneals "
              "over it (--schedule auto) and no epoch limit applies.")
@click.option("--val-frac", type=Finite(0, 1, max_open=True), default=0.1,
              help="Fraction at the end of the text held out for validation.")
@click.option("--val-chars", type=click.IntRange(0), default=200_000,
              help="Validate on the first this many held-out characters; 0: all.")
@click.option("--eval-every", type=click.IntRange(1), default=None, show_default="auto",
              help="Steps between validations. By default every 200 steps, or less often "
              "where validation would take over a tenth of the work (small batches).")
@click.option("--checkpoint-every", type=click.IntRange(1), default=1000, help="Steps between checkpoints.")
@click.option("--sample-every", type=click.IntRange(0), default=0,
              help="Steps between sample previews on stderr; 0: at each validation.")
@click.option("--seed", type=SEED, default=None, help="Random seed; a run is repeatable with the same one. "
              "[default: random, printed]")
@click.option("--encoding", default="utf-8", help="Encoding of the input files.")
@click.option("--resume", type=click.Path(), default=None, help="Continue the run saved in this checkpoint.")
@click.option("--extend-vocab", is_flag=True, help="With --resume: add the characters of FILES "
              "the model has not seen to its vocabulary (new, untrained rows), e.g. to fine-tune "
              "it on another text.")
@click.option("--log", "log_file", type=click.Path(), default=None, help="Append JSON Lines progress here.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, previews or summary.")
@click.option("--no-lock", is_flag=True, help="Let another run write the same files at once.")
@click.option("--force", is_flag=True, help="Replace what -o and its best file hold: start over, "
              "or resume into an existing -o.")
@click.pass_context
def train(ctx, files, output, log_file, quiet, resume, encoding, no_lock, force, preset,
          extend_vocab, **opts):
    """Train a model on FILES (text; '-' reads standard input; or one corpus made by
    'charrnn prepare'). Under mpirun, each rank trains a block of the streams
    (README: "More than one machine")."""
    from charrnn import session
    if extend_vocab and not resume:
        raise click.UsageError("--extend-vocab adds characters to a trained model: give --resume")
    given = {k for k in opts if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
    code = session.train(files, opts, given, say, output=output, log_file=log_file, quiet=quiet,
                         resume=resume, encoding=encoding, no_lock=no_lock, force=force,
                         preset=preset, extend_vocab=extend_vocab)
    if code:
        sys.exit(code)


@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  charrnn prepare corpora/shakespeare.txt -o shakespeare.ids
  charrnn prepare books/*.txt --encoding latin-1 -o books.ids
  charrnn train books.ids --hidden 512 -o books.npz""")
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("-o", "--output", required=True, type=click.Path(),
              help="The prepared corpus to write (read back memory-mapped by 'charrnn train').")
@click.option("--encoding", default="utf-8", help="Encoding of FILES.")
def prepare(files, output, encoding):
    """Encode FILES once into one id file with its vocabulary, which 'charrnn train'
    maps from disk: no decoding at each start or on each rank, and corpora larger
    than memory train. Format: docs/prepared.md."""
    from charrnn.prepared import prepare as write
    chars, V = write(files, output, encoding)
    say(f"charrnn: {chars:,} characters, vocabulary {V}; wrote {output}")


@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  charrnn sample model.npz                              # 500 characters, temperature 1
  charrnn sample model.npz --temperature 0.7 --prime "ROMEO:" --length 2000 > play.txt
  charrnn sample model.npz --argmax --length 200 --seed 3
  charrnn sample model.npz --num-samples 5 --length 300 --top-k 10 --top-p 0.9
  charrnn sample model.npz --prime "ROMEO:" --beam 8 --length 100
  charrnn sample model.npz --length 5000 --stop-at $'\\n\\n'      # one paragraph""")
@click.argument("checkpoint_path", metavar="CKPT", type=click.Path())
@click.option("-n", "--length", type=click.IntRange(0), default=500,
              help="Characters to generate per sample (at most, with --stop-at).")
@click.option("-t", "--temperature", type=Finite(0, min_open=True), default=1.0,
              help="Below 1: safer, more repetitive; above 1: more surprising.")
@click.option("--argmax", is_flag=True, help="Always take the most likely character (deterministic).")
@click.option("--top-k", type=click.IntRange(0), default=0, help="Sample only from the K most likely; 0: all.")
@click.option("--top-p", type=Finite(0, 1, min_open=True), default=1.0,
              help="Nucleus sampling: only from the fewest most likely characters whose "
              "probability adds up to P (after --top-k); 1: all.")
@click.option("--beam", type=click.IntRange(0, limits.MAX_BEAM), default=0, metavar="WIDTH",
              help="Beam search: print the most likely continuation a beam of WIDTH finds, "
              "scored with the model's own probabilities. Printed when done (it cannot "
              "stream); deterministic; not with --num-samples, --top-k, --top-p, --argmax "
              "or --temperature. 0: sample instead.")
@click.option("--stop-at", default=None, metavar="STRING",
              help="End each sample right after the first STRING it generates "
              "(the prime is not searched), e.g. $'\\n\\n' for a paragraph.")
@click.option("--prime", default=None, help="Text to condition on; echoed before the continuation.")
@click.option("--prime-file", type=click.Path(), default=None, help="Read the prime from this file.")
@click.option("--seed", type=SEED, default=None, help="Same seed, same text. [default: random]")
@click.option("--num-samples", type=click.IntRange(1, limits.MAX_NUM_SAMPLES), default=1,
              help="Independent samples, made as one batch.")
@click.option("--separator", default="\n\n", help="Printed between samples.")
@click.option("--encoding", default="utf-8", help="Encoding of --prime-file.")
def sample(checkpoint_path, length, temperature, argmax, top_k, top_p, beam, stop_at, prime,
           prime_file, seed, num_samples, separator, encoding):
    """Generate text from the model in CKPT, streamed to stdout as it is made
    (with --beam, printed when done)."""
    from charrnn import checkpoint, generate
    if prime is not None and prime_file is not None:
        raise click.UsageError("give --prime or --prime-file, not both")
    if beam:
        clash = [flag for flag, on in (("--num-samples", num_samples > 1), ("--top-k", top_k),
                                       ("--top-p", top_p < 1), ("--argmax", argmax),
                                       ("--temperature", temperature != 1)) if on]
        if clash:
            raise click.UsageError(f"--beam finds the single most likely continuation; "
                                   f"drop {', '.join(clash)}")
    if stop_at == "":
        raise click.UsageError("--stop-at needs at least one character")
    need_stdout()
    ck = checkpoint.load(checkpoint_path)
    chunks, echoed, stop = generate.start(
        ck, say, length=length, temperature=temperature, argmax=argmax, top_k=top_k, top_p=top_p,
        beam=beam, stop_at=stop_at, prime=prime, prime_file=prime_file, seed=seed,
        num_samples=num_samples, encoding=encoding)
    with writing_stdout():
        generate.write(sys.stdout.buffer, chunks, ck.vocab, num_samples, echoed, stop, separator)


@cli.command("eval", context_settings=CONTEXT, epilog="""\b
Examples:
  charrnn eval model.npz held_out.txt
  charrnn eval model.npz chapter*.txt --json | jq .bits_per_char
  charrnn eval model.npz held_out.ids                   # made by 'charrnn prepare'""")
@click.argument("checkpoint_path", metavar="CKPT", type=click.Path())
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--encoding", default="utf-8", help="Encoding of FILES.")
@click.option("--unknown", type=click.Choice(["error", "skip"]), default="error",
              help="A character the model has never seen: an error, or skip it (the count "
              "is printed on stderr).")
def eval_(checkpoint_path, files, as_json, encoding, unknown):
    """Loss of the model in CKPT on FILES (text, or one corpus made by 'charrnn
    prepare'), in nats and bits per character."""
    from charrnn import checkpoint, reports
    need_stdout()
    res = reports.measure(checkpoint.load(checkpoint_path), files, encoding, unknown, say)
    with writing_stdout():
        click.echo(json.dumps(res) if as_json else reports.eval_line(res))


@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  charrnn info model.npz
  charrnn info model.npz --json""")
@click.argument("checkpoint_path", metavar="CKPT", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(checkpoint_path, as_json):
    """Configuration, size, progress and losses of the model in CKPT."""
    from charrnn import checkpoint, reports
    need_stdout()
    ck = checkpoint.load(checkpoint_path)
    res = reports.describe(ck)
    with writing_stdout():
        for line in [json.dumps(res)] if as_json else reports.info_lines(res, ck):
            click.echo(line)


@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  charrnn train text.txt --log run.jsonl -o run.npz && charrnn plot run.jsonl
  charrnn plot lstm.jsonl gru.jsonl --x time -o compare.svg
  charrnn plot run.jsonl --units bits --log-scale --ref 1.47 "nanoGPT A100" -o run.html""")
@click.argument("logs", metavar="LOG...", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", default="curves.png",
              help="The figure: .png, .svg or .html (one self-contained page).")
@click.option("--x", "x", type=click.Choice(["step", "chars", "time"]), default="step",
              help="Horizontal axis: optimizer steps, characters seen, or wall time.")
@click.option("--units", type=click.Choice(["nats", "bits"]), default="nats",
              help="Loss per character in nats or bits.")
@click.option("--log-scale", is_flag=True, help="A logarithmic loss axis.")
@click.option("--ref", multiple=True, type=(float, str), metavar="LOSS LABEL",
              help="A horizontal line at LOSS (in --units) labelled LABEL. Repeatable.")
def plot(logs, output, x, units, log_scale, ref):
    """Training (smoothed) and validation loss curves of the 'charrnn train --log'
    files LOG..., overlaid, with a legend from their file names. Needs matplotlib
    (pip install 'charrnn[plot]')."""
    from charrnn import plot as pl
    if pl.format_of(output) is None:
        raise click.BadParameter(f"{output!r} ends in none of .png, .svg, .html",
                                 param_hint="'-o' / '--output'")
    pl.plot_logs(logs, output, x, units, log_scale, ref)
    say(f"charrnn: wrote {output}")


@cli.command("inspect-cells", context_settings=CONTEXT, epilog="""\b
Examples:
  charrnn inspect-cells model.npz corpora/synthetic.txt --max-chars 50000
  charrnn inspect-cells model.npz code.py --regex '\\bdef\\b.*' --only in_string,in_comment
  charrnn inspect-cells model.npz notes.txt --lang prose
  charrnn inspect-cells model.npz text.txt --show L1:37,L2:c:5
  charrnn inspect-cells model.npz text.txt --format html --out cells.html --saturation
  charrnn inspect-cells model.npz text.txt --format json | jq '.hypotheses[].verdict'""")
@click.argument("checkpoint_path", metavar="CKPT", type=click.Path())
@click.argument("text_file", metavar="TEXT", type=click.Path(allow_dash=True))
@click.option("--regex", multiple=True, help="A hypothesis: inside each match of this "
              "regular expression (Python re, multiline). Repeatable.")
@click.option("--spans", multiple=True, type=click.Path(),
              help="A hypothesis from a file of 'start end' character offsets per line. Repeatable.")
@click.option("--feature", multiple=True, type=click.Path(),
              help="A hypothesis from a file of one number per character. Repeatable.")
@click.option("--lang", type=click.Choice(["auto", "c", "python", "shell", "prose", "generic"]),
              default="auto", show_default=True, help="Language of TEXT, which decides the "
              "built-in features and how strings and comments are read; auto: from the file "
              "name, else the text.")
@click.option("--only", default=None, help="Comma-separated built-in hypotheses to test "
              "(default: all that apply; 'none' for only yours).")
@click.option("--show", default=None, help="Render these cells without ranking, "
              "e.g. L1:37,L2:c:5 (layers from 1; state default tanh_c or h).")
@click.option("--format", "fmt", type=click.Choice(["terminal", "json", "csv", "html"]),
              default="terminal", help="Output format.")
@click.option("--out", type=click.Path(), default=None, help="Write the output here, not stdout.")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto",
              help="Colour the terminal heat maps; auto: on a terminal without NO_COLOR.")
@click.option("--chars", type=click.IntRange(20), default=320, help="Characters per heat map.")
@click.option("--maps", type=click.IntRange(0), default=1, help="Heat maps per hypothesis.")
@click.option("--top", type=click.IntRange(1), default=3, help="Cells listed per hypothesis.")
@click.option("--max-chars", type=click.IntRange(0), default=0,
              help="Use only the first N characters of TEXT; 0: all.")
@click.option("--shifts", type=click.IntRange(0, limits.MAX_SHIFTS), default=100,
              help="Random circular shifts for the null; 0 turns the null off.")
@click.option("--untrained/--no-untrained", default=True,
              help="Compare with the same architecture untrained.")
@click.option("--saturation", is_flag=True, help="Add the gate-saturation analysis.")
@click.option("--discover", is_flag=True, help="Add cells ranked by persistence and "
              "bimodality, without a hypothesis.")
@click.option("--seed", type=SEED, default=0, help="Seed of the null's shifts and the untrained model.")
@click.option("--encoding", default="utf-8", help="Encoding of TEXT and the hypothesis files.")
@click.option("--unknown", type=click.Choice(["error", "skip"]), default="error",
              help="A character the model has never seen: an error, or leave it out of TEXT "
              "(not with --spans or --feature, whose offsets would shift).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def inspect_cells(checkpoint_path, text_file, regex, spans, feature, lang, only, show, fmt, out,
                  color, chars, maps, top, max_chars, shifts, untrained, saturation, discover, seed,
                  encoding, unknown, quiet):
    """Which cells of the model in CKPT track which feature of TEXT ('-': stdin).

    Runs the model over TEXT in one stream, records every layer's states and
    gates, and tests each hypothesis (built-in features of the text, and yours):
    the best cell is chosen on the first half of the text and measured on the
    second, against a circular-shift null, the untrained model and what the last
    8 characters alone predict. Verdicts: TRACKED, DISTRIBUTED, LOCAL, NOT FOUND.
    See docs/inspect.md."""
    from charrnn import checkpoint
    from charrnn.data import read_text
    from charrnn.inspect import Options, cli_main
    if out is None:
        need_stdout()
    ck = checkpoint.load(checkpoint_path)
    text = read_text([text_file], encoding)
    cli_main(ck, text, Options(regex=regex, spans=spans, feature=feature, only=only, show=show,
                               lang=lang, filename=None if text_file == "-" else text_file,
                               fmt=fmt, out=out, color=color, chars=chars, maps=maps, top=top,
                               max_chars=max_chars, shifts=shifts, untrained=untrained,
                               saturation=saturation, discover=discover, seed=seed,
                               encoding=encoding, unknown=unknown, quiet=quiet), log=say)


@cli.command("inspect-embedding", context_settings=CONTEXT, epilog="""\b
Examples:
  charrnn inspect-embedding model.npz                   # neighbours, groups, a text map
  charrnn inspect-embedding model.npz --format html --out embedding.html
  charrnn inspect-embedding model.npz --format json | jq '.groups[] | [.name, .z, .p]'""")
@click.argument("checkpoint_path", metavar="CKPT", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["terminal", "json", "html"]),
              default="terminal", help="Output format.")
@click.option("--out", type=click.Path(), default=None, help="Write the output here, not stdout.")
@click.option("--neighbours", type=click.IntRange(1), default=5,
              help="Nearest characters listed for each.")
@click.option("--shuffles", type=click.IntRange(0), default=1000,
              help="Random draws of the control (as many characters as a group has); 0: none.")
@click.option("--seed", type=int, default=0, help="Seed of the control's draws.")
def inspect_embedding(checkpoint_path, fmt, out, neighbours, shuffles, seed):
    """Where the model in CKPT (trained with --embed) puts each character.

    Lists each character's nearest neighbours by cosine similarity, draws the
    embedding on its first two principal axes (PCA), and measures how tightly
    known groups sit together (vowels, consonants, digits, punctuation, each
    letter with its capital) against as many characters drawn at random. See
    docs/inspect.md."""
    from charrnn import checkpoint
    from charrnn.inspect.embedding_render import main
    main(checkpoint.load(checkpoint_path), fmt, out, neighbours, shuffles, seed, log=say)
