"""What a checkpoint may hold: every metadata field with its type, range and default,
and every array member with its shape, checked once, at load (checkpoint.load).

A field is one row of a table. Adding one is adding a row (and a line to
docs/checkpoint.md); an optional field with a default is one line:

    Field("history", list, default=[]),     # filled in where a file lacks it

kinds: int (not bool), float (int or float, finite), str, bool, list, dict, or a
table (a list of Fields) for a nested object. lo/hi bound numbers (closed unless
lo_open/hi_open), choices bound strings, check(value) raises ValueError for
anything else. default: REQUIRED (a file without it is refused), ABSENT (it may
be missing and stays missing), or a value filled in.
"""
import math
from dataclasses import dataclass

import numpy as np

REQUIRED, ABSENT = "required", "absent"
BIG = (1 << 63) - 1  # counts a numpy int64 holds


@dataclass(frozen=True)
class Field:
    name: str
    kind: object
    lo: float = None
    hi: float = None
    default: object = ABSENT
    choices: tuple = None
    nullable: bool = False
    lo_open: bool = False
    hi_open: bool = False
    check: object = None


def _history(h):
    from charrnn.history import damaged
    why = damaged(h)
    if why:
        raise ValueError(f"is damaged: {why}")


def _context(text):
    if len(text) > 10_000:
        raise ValueError("is longer than 10,000 characters")


def _rng(state):
    """A NumPy PCG64 bit-generator state, as train.Run restores it."""
    try:
        np.random.PCG64().state = state
    except (TypeError, ValueError, KeyError, OverflowError):
        raise ValueError("is not a PCG64 generator state")


# the model (model.ModelConfig); sizes bounded so that no shape computed from a
# damaged file makes the loader allocate or loop without bound
CONFIG = [
    Field("kind", str, choices=("rnn", "lstm", "gru", "esn"), default=REQUIRED),
    Field("vocab_size", int, 2, 0x110000, default=REQUIRED),
    Field("hidden", int, 1, 1 << 16, default=REQUIRED),
    Field("layers", int, 1, 64, default=REQUIRED),
    Field("embed", int, 0, 1 << 16, default=REQUIRED),
    Field("dropout", float, 0, 1, hi_open=True, default=REQUIRED),
]

# the run's settings (train.TrainConfig, which fills in what is missing); what
# --resume continues with, so each is refused where the CLI would refuse it
TRAIN = [
    Field("seq_length", int, 1, 1 << 24),
    Field("batch_size", int, 1, 1 << 20),
    Field("optimizer", str, choices=("adam", "rmsprop", "adagrad", "sgd")),
    Field("lr", float, 0),  # 0 (refused by the CLI) is a frozen run: harmless to resume
    Field("lr_decay", float, 0, 1, lo_open=True, nullable=True),  # None: chosen by the run
    Field("lr_decay_after", float, 0),
    Field("warmup", int, 0, BIG),
    Field("schedule", str, choices=("exp", "cosine")),
    Field("min_lr", float, 0),
    Field("patience", int, 0, BIG),
    Field("grad_clip", float, 0),
    Field("clip_mode", str, choices=("norm", "value")),
    Field("loss", str, choices=("mean", "sum")),
    Field("weight_drop", float, 0, 1, hi_open=True),
    Field("max_steps", int, 0, BIG),
    Field("epochs", float, 0, nullable=True),  # None: chosen by the run
    Field("time_limit", float, 0),
    Field("plan_steps", int, 0, BIG),  # 0: no time budget's plan
    Field("val_frac", float, 0, 1, hi_open=True),
    Field("val_chars", int, 0, BIG),
    Field("eval_every", int, 0, BIG),  # 0: chosen by the run
    Field("checkpoint_every", int, 1, BIG),
    Field("sample_every", int, 0, BIG),
    Field("log_every", int, 1, BIG),
    Field("init", str, choices=("orthogonal", "uniform", "normal")),
    Field("init_scale", float, 0),
    Field("spectral_radius", float, 0, lo_open=True),  # the esn's reservoir (esn.Reservoir)
    Field("leak", float, 0, 1, lo_open=True),
    Field("input_scale", float, 0, lo_open=True),
    Field("readout", str, choices=("optimizer", "ridge")),
    Field("ridge", float, 0),
    Field("seed", int, 0, None),
]

# __meta__ itself ("format" and "version" are checked before, with their own hints)
META = [
    Field("config", CONFIG, default=REQUIRED),
    Field("vocab", list, default=REQUIRED),  # checked against config by vocab() below
    Field("train", TRAIN, default={}),
    Field("step", int, 0, BIG, default=0),
    Field("epoch", float, 0),
    Field("steps_per_epoch", int, 1, BIG),
    Field("train_chars", int, 0, BIG),
    Field("val_chars", int, 0, BIG),
    Field("train_loss", float, 0),
    Field("smooth_seq_loss", float, 0),
    Field("val_loss", float, 0, nullable=True),
    Field("best_val_loss", float, 0, nullable=True),
    Field("elapsed_s", float, 0),
    Field("validations_since_best", int, 0, BIG),
    Field("val_history", list, check=_history),
    Field("start_context", str, check=_context),  # checked against the vocabulary in meta()
    Field("rng", dict, check=_rng),
    Field("saved_at", str),
    Field("charrnn", str),
]


def _kind_ok(kind, v):
    if kind is int:
        return type(v) is int
    if kind is float:
        return type(v) in (int, float) and math.isfinite(v)
    return isinstance(v, kind) and not (kind is not bool and isinstance(v, bool))


KIND_NAMES = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false",
              list: "a list", dict: "an object"}


def _field(f, v, where):
    """Raises ValueError naming where.f.name if v does not fit the row f."""
    name = f"{where}{f.name}"
    if v is None and f.nullable:
        return v
    if isinstance(f.kind, list):
        if not isinstance(v, dict):
            raise ValueError(f"its metadata field {name} is not an object")
        return table(f.kind, v, name + ".")
    shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."
    if not _kind_ok(f.kind, v):
        raise ValueError(f"its metadata field {name} = {shown} is not {KIND_NAMES[f.kind]}")
    if f.choices is not None and v not in f.choices:
        raise ValueError(f"its metadata field {name} = {shown} is not one of {', '.join(f.choices)}")
    below = f.lo is not None and (v <= f.lo if f.lo_open else v < f.lo)
    above = f.hi is not None and (v >= f.hi if f.hi_open else v > f.hi)
    if below or above:
        if f.hi is None or f.hi == BIG:
            bound = f"above {f.lo}" if f.lo_open else f"at least {f.lo}"
        else:
            bound = f"{'(' if f.lo_open else '['}{f.lo}, {f.hi}{')' if f.hi_open else ']'}"
        raise ValueError(f"its metadata field {name} = {shown} is out of range ({bound})")
    if f.check is not None:
        try:
            f.check(v)
        except ValueError as e:
            raise ValueError(f"its metadata field {name} {e}")
    return v


def table(rows, obj, where=""):
    """obj checked against rows; returns a copy with the defaults filled in. Keys
    that no row names are kept unchecked (readers ignore keys they do not know)."""
    out = dict(obj)
    for f in rows:
        if f.name in obj:
            out[f.name] = _field(f, obj[f.name], where)
        elif f.default is REQUIRED:
            raise ValueError(f"its metadata lacks the field {where}{f.name}")
        elif f.default is not ABSENT:
            out[f.name] = _field(f, f.default, where)
    return out


def vocab(v, V):
    """The vocabulary: V distinct single code points, sorted, none of them a surrogate
    (which no text can hold, and which cannot be printed)."""
    if len(v) != V or not all(isinstance(ch, str) and len(ch) == 1 for ch in v) or \
            v != sorted(set(v)):
        raise ValueError("its vocabulary is not a sorted list of distinct characters of the "
                         "model's size")
    bad = [ch for ch in v if 0xD800 <= ord(ch) <= 0xDFFF]
    if bad:
        raise ValueError(f"its vocabulary holds surrogate code points ({ascii(bad[0])}), "
                         f"which are not characters")
    return v


def meta(m):
    """The whole of __meta__ checked; returns it with defaults filled in."""
    m = table(META, m)
    extra = set(m["config"]) - {f.name for f in CONFIG}
    if extra:  # a field this charrnn does not know would change what the model computes
        raise ValueError(f"its model configuration has unknown fields: {', '.join(sorted(extra))}")
    if m["config"]["kind"] == "esn" and m["config"]["layers"] != 1:
        raise ValueError(f"an esn has one reservoir layer, not {m['config']['layers']}")
    vocab(m["vocab"], m["config"]["vocab_size"])
    if "start_context" in m and not set(m["start_context"]) <= set(m["vocab"]):
        raise ValueError("its metadata field start_context is not a text in its vocabulary")
    return m


def arrays(cfg, m):
    """{member name: (shape, dtypes)}: every array the format defines for the model cfg
    and the checked metadata m. The loader reads no other member."""
    from charrnn.model import STATES, frozen, num_params, param_shapes
    from charrnn.optim import BUFFERS
    from charrnn.train import TrainConfig
    floats = (np.dtype(np.float32), np.dtype(np.float64))
    out = {f"param/{name}": (tuple(shape), floats) for name, shape in param_shapes(cfg)}
    P = num_params(cfg) - frozen(cfg)  # the optimizer steps the trained tail only (an esn's)
    for b in sorted({b for bs in BUFFERS.values() for b in bs}):
        out[f"opt/{b}"] = ((P,), floats)
    N = m["train"].get("batch_size", TrainConfig.batch_size)
    out["state/train"] = ((cfg.layers, STATES[cfg.kind], N, cfg.hidden), floats)
    if m["train"].get("readout") == "ridge":  # the esn's sums of states, float64 (esn.Ridge)
        out["ridge/A"] = ((cfg.hidden + 1, cfg.hidden + 1), floats)
        out["ridge/BT"] = ((cfg.vocab_size, cfg.hidden + 1), floats)
    return out
