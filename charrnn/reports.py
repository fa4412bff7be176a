"""The reports of 'charrnn eval' and 'charrnn info': a dict (printed as one JSON
object with --json) and its lines for a person."""
import math

from charrnn import CharrnnError
from charrnn.session import plural

UNKNOWN_HINT = "pass --unknown skip to leave them out"


def measure(ck, files, encoding, unknown, log):
    """The loss of the checkpoint ck on files: loss_nats, bits_per_char, chars, perplexity
    and skipped (characters not in its vocabulary, with unknown="skip")."""
    from charrnn import prepared
    from charrnn.evaluate import evaluate
    from charrnn.session import compile_notice
    ids, _, skipped = prepared.read_known(files, encoding, ck.vocab, "the text", unknown,
                                          UNKNOWN_HINT)
    if skipped:
        log(f"charrnn: skipped {plural(skipped, 'character')} not in the model's vocabulary")
    if len(ids) < 2:
        raise CharrnnError("the text needs at least 2 characters to measure a loss")
    with compile_notice(log):
        # compiles or loads the kernels: long enough to be read in parts, as the whole text is
        evaluate(ck.config, ck.params, ids[:1000])
    loss, n = evaluate(ck.config, ck.params, ids)
    return {"loss_nats": loss, "bits_per_char": loss / math.log(2), "chars": n,
            "perplexity": math.exp(loss), "skipped": skipped}


def eval_line(res):
    """'1.2345 nats/char  1.7810 bits/char  perplexity 3.44  over 1,000 characters'."""
    return (f"{res['loss_nats']:.4f} nats/char  {res['bits_per_char']:.4f} bits/char  "
            f"perplexity {res['perplexity']:.2f}  over {res['chars']:,} characters")


def describe(ck):
    """The checkpoint ck's configuration, size, progress and losses, as one dict."""
    from charrnn.model import frozen, num_params
    m, c = ck.meta, ck.config
    return {"config": c.to_dict(), "vocab_size": len(ck.vocab), "params": num_params(c),
            "trained_params": num_params(c) - frozen(c),
            "step": m.get("step"), "epoch": m.get("epoch"), "train_loss": m.get("train_loss"),
            "val_loss": m.get("val_loss"), "best_val_loss": m.get("best_val_loss"),
            "train": m.get("train"), "format_version": m.get("version"),
            "val_history": m.get("val_history", []), "vocab": ck.vocab}


def info_lines(res, ck):
    """describe(ck)'s report for a person, one aligned line per topic."""
    from charrnn import history
    from charrnn.model import describe_params
    c = ck.config
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [f"model       {c.kind}, {plural(c.layers, 'layer')} x {c.hidden} hidden, "
             f"{'embedding ' + str(c.embed) if c.embed else 'one-hot input'}, dropout {c.dropout}",
             f"parameters  {describe_params(c).replace(' parameters', '', 1)}",
             f"vocabulary  {plural(len(ck.vocab), 'character')}: {shown(ck.vocab)}",
             f"progress    step {res['step'] or 0:,}, epoch {res['epoch'] or 0:.2f}",
             f"losses      train {fmt(res['train_loss'])}, val {fmt(res['val_loss'])}, "
             f"best val {fmt(res['best_val_loss'])} (nats/char)"]
    if res["val_history"]:
        lines.append(f"validation  {history.summary(res['val_history'], res['best_val_loss'])}")
    return lines


def shown(vocab, width=150):
    """The vocabulary as a repr of at most about width characters, and what is left out."""
    k = len(vocab)
    while len(repr("".join(vocab[:k]))) > width:
        k = k * 3 // 4
    rest = f" ... and {len(vocab) - k:,} more (all in 'info --json')" if k < len(vocab) else ""
    return repr("".join(vocab[:k])) + rest
