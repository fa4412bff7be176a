"""inspect-cells: find, prove and show what each cell of a trained model has learned.

    record.py    run the model over the text (one stream, state carried) and keep
                 every layer's states and gates
    features.py  the hypotheses: built-in features of the raw text, and the user's
    stats.py     r as one matrix product, AUC, the shift null, probe, locality
    analyze.py   choosing cells on one half, the controls, the verdicts
    extras.py    gate saturation and hypothesis-free discovery
    render.py    terminal (ANSI or glyphs), HTML, JSON and CSV

This module ties them together; the CLI's inspect-cells command calls inspect().
"""
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from charrnn import CharrnnError
from charrnn.inspect import analyze as an
from charrnn.inspect import features as ft
from charrnn.esn import Reservoir
from charrnn.inspect.record import DEFAULT_STATE, STATES, record, untrained_params

FORMAT = "charrnn-inspect"
VERSION = 1


class Inspection:
    """The outcome of one run: the text, the recording, and per hypothesis a result
    dict (see docs/inspect.md for the fields); JSON-able through to_dict()."""

    def __init__(self, cfg, vocab, text, ids, rec, hyps, results, R, settings):
        self.cfg, self.vocab, self.text, self.ids, self.rec = cfg, vocab, text, ids, rec
        self.hyps, self.results, self.R, self.settings = hyps, results, R, settings
        self.skipped = []          # names of hypotheses that do not apply to the text
        self.shown = []            # cells asked for with --show: [(layer, state, unit)]
        self.saturation = None
        self.discovered = None

    def series(self, layer, state, unit):
        return self.rec[(layer, state)][:, unit]

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


def hypotheses(text, builtin=True, regex=(), spans=(), features=(), only=None):
    """The hypotheses to test, built in first, then the user's. regex: patterns;
    spans and features: (name, lines). only: built-in names to keep, or None."""
    hyps = []
    if builtin:
        hyps += [h for n, h in ft.builtin(text).items() if only is None or n in only]
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


def memory_groups(rec):
    """Blocks the probe reads per layer: the layer's memory (c and h, or h)."""
    keep = ("c", "h") if rec.kind == "lstm" else ("h",)
    return [[b for b, (l, s) in enumerate(rec.blocks) if l == layer and s in keep]
            for layer in range(rec.layers)]


def inspect(cfg, params, vocab, text, hyps, untrained=True, seed=0, shifts=an.SHIFTS, top=3,
            progress=False, log=None, reservoir=Reservoir()):
    """Records the model over text and tests every hypothesis that applies.
    log(msg) receives progress notes (stderr in the CLI). reservoir: how an ESN's
    untrained baseline is drawn (esn.Reservoir)."""
    from charrnn.data import encode
    say = log or (lambda msg: None)
    ids = encode(text, vocab, "the text")
    if len(ids) < 4 * ft.MIN_EVENTS:
        raise CharrnnError(f"the text has {len(ids)} characters; inspect-cells needs at least "
                           f"{4 * ft.MIN_EVENTS}, and a few thousand to find anything")
    parts = an.halves(len(ids))
    usable = [h for h in hyps if ft.applies(h, parts)]
    # the untrained baseline is recorded in a second thread while the model is (the
    # kernels release the GIL): at batch 1 each recording is bound by reading weights
    pool = ThreadPoolExecutor(1) if usable and untrained else None
    if pool:
        ufuture = pool.submit(_record, cfg, untrained_params(cfg, seed, reservoir), ids, False, "")
    rec = _record(cfg, params, ids, progress, "recording")
    blocks = [rec[b] for b in rec.blocks]
    results, R = [], None
    if usable:
        base = None
        if pool:
            urec = ufuture.result()
            pool.shutdown()
            base = [urec[b] for b in urec.blocks]
        results, R = an.analyze(blocks, rec.blocks, memory_groups(rec), ids, usable, base,
                                seed=seed, n_shifts=shifts, top=top, progress=say)
    settings = {"seed": seed, "shifts": shifts, "untrained": untrained, "top": top}
    ins = Inspection(cfg, vocab, text, ids, rec, usable, results, R, settings)
    ins.skipped = [h.name for h in hyps if h not in usable]
    return ins


def _record(cfg, params, ids, progress, what):
    if not progress:
        return record(cfg, params, ids)
    from tqdm import tqdm
    with tqdm(total=len(ids), desc=what, unit="char", unit_scale=True, file=sys.stderr,
              leave=False) as bar:
        return record(cfg, params, ids, progress=bar.update)


def window(values, start, stop, width, text):
    """[a, b) of at most width characters within [start, stop) where the feature
    varies most, beginning at a line start when one is near; for rendering."""
    n = stop - start
    if n <= width:
        return start, stop
    v = np.asarray(values[start:stop], np.float64)
    c1 = np.concatenate([[0.0], np.cumsum(v)])
    c2 = np.concatenate([[0.0], np.cumsum(v * v)])
    s1, s2 = c1[width:] - c1[:-width], c2[width:] - c2[:-width]
    var = s2 / width - (s1 / width) ** 2
    a = start + int(np.argmax(var > var.max() - 1e-9))
    nl = text.rfind("\n", max(start, a - width // 4), a)
    a = nl + 1 if nl >= 0 else a
    return a, min(stop, a + width)


def _read_lines(path, encoding):
    from charrnn.data import read_text
    return read_text([path], encoding).splitlines()


def check_out(path):
    """Fails now, not after minutes of analysis, if --out cannot be written."""
    import os
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise CharrnnError(f"cannot write --out {path}: give a file in an existing, "
                           f"writable folder")


def cli_main(ck, text, o, log):
    """The inspect-cells command after parsing: o holds the options by name."""
    import os
    import shutil
    from charrnn.inspect import extras, render
    cfg = ck.config
    if o["out"]:
        check_out(o["out"])
    if o["max_chars"]:
        text = text[:o["max_chars"]]
    only = None
    if o["only"]:
        only = {s.strip() for s in o["only"].split(",") if s.strip()} - {"none"}
        unknown = sorted(only - set(ft.NAMES))
        if unknown:
            raise CharrnnError(f"--only: no built-in hypothesis {', '.join(unknown)}; "
                               f"they are {', '.join(ft.NAMES)}")
    show = parse_cells(o["show"], cfg) if o["show"] else []
    # --show alone renders cells without ranking; --only none keeps only the user's
    builtin = not (show and o["only"] is None) and only != set()
    hyps = hypotheses(text, builtin=builtin,
                      regex=o["regex"],
                      spans=[(p, _read_lines(p, o["encoding"])) for p in o["spans"]],
                      features=[(p, _read_lines(p, o["encoding"])) for p in o["feature"]],
                      only=only)
    quiet = o["quiet"]
    if not quiet:
        log(f"charrnn: {cfg.kind} {cfg.layers}x{cfg.hidden}, {len(text):,} characters, "
            f"{len(hyps)} hypotheses")
    ins = inspect(cfg, ck.params, ck.vocab, text, hyps, untrained=o["untrained"], seed=o["seed"],
                  shifts=o["shifts"], top=o["top"], progress=not quiet,
                  log=None if quiet else (lambda m: log(f"charrnn: {m}")),
                  reservoir=Reservoir.of_run(ck.meta.get("train") or {}))
    ins.shown = show
    if o["saturation"]:
        ins.saturation = extras.saturation(ins.rec)
    if o["discover"]:
        ins.discovered = extras.discover(ins)
    out = open(o["out"], "w", encoding="utf-8", newline="") if o["out"] else sys.stdout
    try:
        if o["fmt"] == "json":
            out.write(render.to_json(ins))
        elif o["fmt"] == "csv":
            render.to_csv(ins, out)
        elif o["fmt"] == "html":
            out.write(render.to_html(ins, chars=max(o["chars"], 600), maps=max(o["maps"], 1)))
        else:
            color = render.use_color(o["color"], out)
            truecolor = os.environ.get("COLORTERM", "") in ("truecolor", "24bit")
            width = shutil.get_terminal_size((100, 24)).columns if out is sys.stdout else 100
            out.write(render.terminal(ins, color, truecolor, o["chars"], o["maps"], width))
            if ins.saturation is not None:
                out.write("\n" + extras.saturation_text(ins.saturation))
            if ins.discovered is not None:
                out.write("\n" + extras.discover_text(ins.discovered))
        out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    if o["out"] and not quiet:
        log(f"charrnn: wrote {o['out']}")
