"""inspect-cells: find, prove and show what each cell of a trained model has learned.

    record.py    run the model over the text (one stream, state carried), chunk by
                 chunk, every layer's states and gates by name
    lang.py      the text's language: how code is lexed, which features apply
    features.py  the hypotheses: built-in features of the raw text, and the user's
    stream.py    the statistics as sums over the chunks: r, the shift null, the probe
    stats.py     AUC, the shifts, locality
    analyze.py   choosing cells on one half, the controls, the verdicts
    extras.py    gate saturation and hypothesis-free discovery
    render.py    terminal (ANSI or glyphs), HTML, JSON and CSV, extras included

This module ties them together; the CLI's inspect-cells command calls inspect().
"""
import sys
from dataclasses import dataclass

import numpy as np

from charrnn import CharrnnError, limits
from charrnn.inspect import analyze as an
from charrnn.inspect import extras
from charrnn.inspect import features as ft
from charrnn.inspect import lang as lg
from charrnn.inspect import record as rc
from charrnn.inspect.record import DEFAULT_STATE, STATES
from charrnn.paths import check_writable
from charrnn.esn import Reservoir

FORMAT = "charrnn-inspect"
VERSION = 2          # 2: lang, probe_null99 and why; DISTRIBUTED needs the probe null


class Trace:
    """A cell's values over text[start:start + len(values)], indexed by text position."""

    def __init__(self, start, values):
        self.start, self.values = start, values

    def __getitem__(self, t):
        return self.values[t - self.start]

    def map(self, fn):
        return Trace(self.start, fn(self.values))


class Inspection:
    """The outcome of one run: the text, and per hypothesis a result dict (see
    docs/inspect.md for the fields); JSON-able through to_dict(). States are not
    kept: traces holds the second half of the cells chosen or shown, by
    (layer, state, unit)."""

    def __init__(self, cfg, vocab, text, ids, names, hyps, results, R, traces, settings):
        self.cfg, self.vocab, self.text, self.ids, self.names = cfg, vocab, text, ids, names
        self.hyps, self.results, self.R, self.settings = hyps, results, R, settings
        self.traces = traces
        self.skipped = []          # names of hypotheses that do not apply to the text
        self.lang = ("generic", "given")   # the text's language and why
        self.left_out = []         # built-in features that do not belong to the language
        self.shown = []            # cells asked for with --show: [(layer, state, unit)]
        self.saturation = None
        self.discovered = None

    def series(self, layer, state, unit):
        """The Trace of a chosen or shown cell over the second half."""
        return self.traces[(layer, state, unit)]

    def to_dict(self):
        c = self.cfg
        return {"format": FORMAT, "version": VERSION,
                "model": c.to_dict(), "chars": len(self.text),
                "halves": [[0, len(self.text) // 2], [len(self.text) // 2, len(self.text)]],
                "settings": self.settings,
                "thresholds": {"r_min": an.R_MIN, "margin": an.MARGIN, "local_min": an.LOCAL_MIN,
                               "p_max": an.P_MAX, "lags": list(an.LAGS),
                               "local_width": an.LOCAL_WIDTH},
                "hypotheses": [dict(r, cell=_layer1(r["cell"]), top=[_layer1(t) for t in r["top"]])
                               for r in self.results],
                "lang": {"name": self.lang[0], "why": self.lang[1], "left_out": self.left_out},
                "skipped": self.skipped,
                "shown": [{"layer": l + 1, "state": s, "unit": u} for l, s, u in self.shown],
                "saturation": self.saturation,
                "discover": self.discovered}


def _layer1(cell):
    """Layers are 1-based outside the package, as on the screen (L1 = params L0.*)."""
    return dict(cell, layer=cell["layer"] + 1)


def parse_cells(spec, cfg):
    """'L1:37,L2:c:5' -> [(0, 'tanh_c', 37), (1, 'c', 5)]; the state defaults to
    tanh_c for an LSTM and h otherwise."""
    cells = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        parts = item.split(":")
        try:
            if len(parts) not in (2, 3) or parts[0][:1] not in "Ll":
                raise ValueError
            layer, unit = int(parts[0][1:]) - 1, int(parts[-1])
        except ValueError:
            raise CharrnnError(f"--show {item!r}: expected LAYER:UNIT or LAYER:STATE:UNIT, "
                               f"e.g. L1:37 or L2:c:5")
        state = parts[1] if len(parts) == 3 else DEFAULT_STATE[cfg.kind]
        if not 0 <= layer < cfg.layers:
            raise CharrnnError(f"--show {item!r}: the model has layers L1..L{cfg.layers}")
        if state not in STATES[cfg.kind]:
            raise CharrnnError(f"--show {item!r}: a {cfg.kind} records "
                               f"{', '.join(STATES[cfg.kind])}, not {state!r}")
        if not 0 <= unit < cfg.hidden:
            raise CharrnnError(f"--show {item!r}: units are 0..{cfg.hidden - 1}")
        cells.append((layer, state, unit))
    return cells


def hypotheses(text, builtin=True, regex=(), spans=(), features=(), only=None, lang="generic"):
    """The hypotheses to test, built in first (those of the language), then the
    user's. regex: patterns; spans and features: (name, lines). only: built-in
    names to keep, or None."""
    hyps = []
    if builtin:
        hyps += [h for n, h in ft.builtin(text, lang).items() if only is None or n in only]
    for pat in regex:
        try:
            hyps.append(ft.from_regex(text, pat))
        except Exception as e:    # re.error
            raise CharrnnError(f"--regex {pat!r} is not a regular expression: {e}")
    for name, lines in spans:
        try:
            hyps.append(ft.from_spans(text, lines, f"spans:{name}"))
        except ValueError as e:
            raise CharrnnError(f"--spans {name}: {e}")
    for name, lines in features:
        try:
            hyps.append(ft.from_numbers(text, lines, f"feature:{name}"))
        except ValueError as e:
            raise CharrnnError(f"--feature {name} {e}")
    return hyps


def inspect(cfg, params, vocab, text, hyps, untrained=True, seed=0, shifts=an.SHIFTS, top=3,
            progress=False, log=None, show=(), saturation=False, discover=False,
            reservoir=Reservoir()):
    """Streams the model over text and tests every hypothesis that applies; show:
    more cells [(layer, state, unit)] to keep for rendering; saturation, discover:
    the extras. log(msg) receives progress notes (stderr in the CLI). reservoir: how
    an ESN's untrained baseline is drawn (esn.Reservoir)."""
    from charrnn.data import encode
    say = log or (lambda msg: None)
    ids = encode(text, vocab, "the text")
    if len(ids) < 4 * ft.MIN_EVENTS:
        raise CharrnnError(f"the text has {len(ids)} characters; inspect-cells needs at least "
                           f"{4 * ft.MIN_EVENTS}, and a few thousand to find anything")
    parts = an.halves(len(ids))
    usable = [h for h in hyps if ft.applies(h, parts)]
    names = rc.blocks(cfg)
    keep = [(names.index((l, s)), u) for l, s, u in show]
    sat = extras.Saturation(names, cfg.kind) if saturation else None
    mom = extras.Moments(names) if discover else None
    bar = _bar(len(ids), progress)
    source = lambda bounds: _counted(rc.chunks(cfg, params, ids, bounds), bar)  # noqa: E731
    base = None
    if untrained:
        up = rc.untrained_params(cfg, seed, reservoir)
        base = lambda bounds: rc.chunks(cfg, up, ids, bounds)  # noqa: E731
    say("recording and correlating")
    try:
        results, R, kept = an.analyze(source, names, rc.memory_groups(cfg), ids, usable, base,
                                      seed=seed, n_shifts=shifts, top=top, keep=keep,
                                      observers=[o for o in (sat, mom) if o], progress=say)
    finally:
        if bar:
            bar.close()
    half = parts[1].start
    traces = {names[b] + (u,): Trace(half, v) for (b, u), v in kept.items()}
    settings = {"seed": seed, "shifts": shifts, "untrained": untrained, "top": top}
    ins = Inspection(cfg, vocab, text, ids, names, usable, results, R, traces, settings)
    ins.skipped = [h.name for h in hyps if h not in usable]
    ins.shown = list(show)
    if sat:
        ins.saturation = sat.result()
    if mom:
        say("the contexts of the discovered cells")
        ins.discovered = extras.discover(mom, names, results, R, text,
                                         lambda cells: _whole(cfg, params, ids, cells))
    return ins


def _whole(cfg, params, ids, cells):
    """{(block, unit): (T,)} the whole series of a few cells, from a second pass."""
    out = {c: np.empty(len(ids), np.float32) for c in cells}
    for t0, states in rc.chunks(cfg, params, ids):
        for (b, u), v in out.items():
            v[t0:t0 + len(states[b])] = states[b][:, u]
    return out


def _bar(total, progress):
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc="recording", unit="char", unit_scale=True, file=sys.stderr,
                leave=False)


def _counted(chunks, bar):
    for t0, states in chunks:
        yield t0, states
        if bar:
            bar.update(len(states[0]))


def _read_lines(path, encoding):
    from charrnn.data import read_text
    return read_text([path], encoding).splitlines()


def _only(spec, lang):
    """--only a,b as a set of built-in names of the language, or None for all."""
    if not spec:
        return None
    only = {s.strip() for s in spec.split(",") if s.strip()} - {"none"}
    unknown = sorted(only - set(ft.NAMES))
    if unknown:
        raise CharrnnError(f"--only: no built-in hypothesis {', '.join(unknown)}; "
                           f"they are {', '.join(ft.NAMES)}")
    foreign = sorted(only - set(lg.FEATURES[lang]))
    if foreign:
        raise CharrnnError(f"--only: {', '.join(foreign)} not a feature of {lang} text; "
                           f"give --lang with a language that has it (generic has all but "
                           f"in_preproc)")
    return only


@dataclass(frozen=True)
class Options:
    """inspect-cells' options, already checked by the CLI (ranges, choices); the
    meaning of each is in `charrnn inspect-cells --help`."""
    regex: tuple = ()            # patterns, one hypothesis each
    spans: tuple = ()            # files of 'start end' offsets
    feature: tuple = ()          # files of one number per character
    only: str | None = None      # 'a,b' built-in names, 'none', or None for all
    show: str | None = None      # 'L1:37,L2:c:5'
    lang: str = "auto"
    filename: str | None = None  # TEXT's name, for --lang auto; None for stdin
    fmt: str = "terminal"        # terminal, json, csv or html
    out: str | None = None       # None: stdout
    color: str = "auto"
    chars: int = 320
    maps: int = 1
    top: int = 3
    max_chars: int = 0           # 0: all of the text
    shifts: int = an.SHIFTS
    untrained: bool = True
    saturation: bool = False
    discover: bool = False
    seed: int = 0
    encoding: str = "utf-8"
    unknown: str = "error"       # a character the model never saw: error, or skip it
    quiet: bool = False


def cli_main(ck, text, o, log):
    """The inspect-cells command after parsing: ck a loaded checkpoint, text the
    text, o the Options, log(msg) for notes on stderr."""
    cfg = ck.config
    _give_back_freed_memory()
    if o.out:  # found unwritable now, not after minutes of analysis
        check_writable(o.out, "--out", "--out", "cells.html")
    text = _known(text, ck.vocab, o, log)
    if o.max_chars:
        text = text[:o.max_chars]
    lang, why = lg.resolve(o.lang, text, o.filename)
    only = _only(o.only, lang)
    show = parse_cells(o.show, cfg) if o.show else []
    # --show alone renders cells without ranking; --only none keeps only the user's
    builtin = not (show and o.only is None) and only != set()
    hyps = hypotheses(text, builtin=builtin, regex=o.regex,
                      spans=[(p, _read_lines(p, o.encoding)) for p in o.spans],
                      features=[(p, _read_lines(p, o.encoding)) for p in o.feature],
                      only=only, lang=lang)
    limits.check_shifts(len(rc.blocks(cfg)) * cfg.hidden, len(hyps), o.shifts)
    if not o.quiet:
        log(f"charrnn: {cfg.kind} {cfg.layers}x{cfg.hidden}, {len(text):,} characters, "
            f"{len(hyps)} hypotheses, language {lang} ({why})")
    ins = inspect(cfg, ck.params, ck.vocab, text, hyps, untrained=o.untrained, seed=o.seed,
                  shifts=o.shifts, top=o.top, progress=not o.quiet,
                  log=None if o.quiet else (lambda m: log(f"charrnn: {m}")), show=show,
                  saturation=o.saturation, discover=o.discover,
                  reservoir=Reservoir.of_run(ck.meta.get("train") or {}))
    ins.lang = (lang, why)
    ins.left_out = [n for n in ft.NAMES if n not in lg.FEATURES[lang]
                    and (only is None or n in only) and builtin]
    try:
        _write(ins, o)
    except BrokenPipeError:
        raise  # the reader of stdout went away (| head): the CLI's quiet exit
    except OSError as e:  # a full disk, /dev/full
        raise CharrnnError(f"cannot write {o.out or 'to standard output'}: {e.strerror or e}")
    if o.out and not o.quiet:
        log(f"charrnn: wrote {o.out}")


def _known(text, vocab, o, log):
    """TEXT without the characters the model never saw (--unknown skip), or an error
    naming them."""
    from charrnn.data import known_text
    from charrnn.reports import UNKNOWN_HINT
    from charrnn.session import plural
    text, skipped = known_text(text, vocab, o.unknown, "the text", UNKNOWN_HINT)
    if skipped and (o.spans or o.feature):
        raise CharrnnError(f"TEXT has {plural(skipped, 'character')} the model has never seen: "
                           f"--unknown skip would shift the offsets of --spans and --feature; "
                           f"remove them from TEXT and the offsets")
    if skipped and not o.quiet:
        log(f"charrnn: skipped {plural(skipped, 'character')} not in the model's vocabulary")
    return text


def _give_back_freed_memory():
    """Undoes setup.keep_freed_memory for this command: it streams chunks of many sizes
    through two threads, so a heap that never shrinks holds far more than is live."""
    import ctypes
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc
        return
    M_TRIM_THRESHOLD, M_TOP_PAD = -1, -2
    mallopt(M_TRIM_THRESHOLD, 128 << 10)  # glibc's defaults; chunks stay off mmap,
    mallopt(M_TOP_PAD, 0)                 # whose zero-filled pages cost more than the trim


def _write(ins, o):
    """The report in the format asked for, to --out or stdout."""
    import os
    import shutil
    from charrnn.inspect import render
    out = open(o.out, "w", encoding="utf-8", newline="") if o.out else sys.stdout
    try:
        if o.fmt == "json":
            out.write(render.to_json(ins))
        elif o.fmt == "csv":
            render.to_csv(ins, out)
        elif o.fmt == "html":
            out.write(render.to_html(ins, chars=max(o.chars, 600), maps=max(o.maps, 1)))
        else:
            color = render.use_color(o.color, out)
            truecolor = os.environ.get("COLORTERM", "") in ("truecolor", "24bit")
            width = shutil.get_terminal_size((100, 24)).columns if out is sys.stdout else 100
            out.write(render.terminal(ins, color, truecolor, o.chars, o.maps, width))
        out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
