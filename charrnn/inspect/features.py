"""The hypotheses: features of the raw text, one number per character.

Every feature is the state AFTER reading text[i] (what a recurrent state at step
i has seen), as in charrnn.synth.features. Which features a text has, and how its
strings and comments are lexed, depend on its language (charrnn/inspect/lang.py:
c, python, shell, prose, generic); the rules below are generic's:

  in_dquote     a '"' toggles: True from an opening quote (inclusive) to the
                closing one (exclusive). Prose rule: no escapes, no comments.
  in_squote     prose single quotes: a "'" after a non-word character (or at the
                start) opens when a closer follows on the same line; the closer is
                a "'" after a non-space and before a non-word character. So the
                apostrophes of "don't", "dogs'" and "'tis" are not quotes.
  in_string     a code string literal: ' " ''' or \"\"\" outside comments, with
                backslash escapes. A "'" string ends at a newline (so the apostrophes
                of prose do not open long strings); a '"' one may span lines, as in
                the synthetic corpus.
  in_comment    '#' or '//' to the end of the line, '/* */'; outside strings.
                (python: '#' only; c: '//' and '/* */'; shell: '#' starting a word.)
  in_preproc    c only: a preprocessor line, from a '#' first on the line to a
                newline without a backslash before it.
  in_paren, in_bracket, in_brace   ( [ { opened and not yet closed, counted
                outside strings and comments; a stray closer is ignored.
  bracket_depth the three kinds together.
  in_if         from an 'if'/'elif' keyword (a whole word, code context) to the ':',
                '{', ';' or newline at its bracket depth, or a closer below it.
  column        characters since the last newline; 0 at a newline.
  word_pos      1, 2, ... through a word (letters, digits, _, and an apostrophe
                between letters); 0 elsewhere.
  line_start    at a newline and through the leading blanks of the next line.
  indent        leading blanks read so far on the line (a tab counts 1).
  after_sentence  from a '.', '!' or '?' followed by a blank, a closer or the end,
                through the blanks and closers after it.
  is_upper, is_digit, is_space, is_punct   the character itself: local controls.

    >>> f = builtin('a "b" (c)\\n  d')
    >>> f["in_dquote"].values.astype(int).tolist()
    [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    >>> f["bracket_depth"].values.astype(int).tolist()
    [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
"""
import re
from dataclasses import dataclass

import numpy as np

from charrnn.inspect.lang import FEATURES, LEXERS

MIN_EVENTS = 5   # a binary feature applies when each half has this many of each value
CLOSERS = ")]}>\"'"


@dataclass
class Hypothesis:
    name: str
    values: np.ndarray      # (T,) float32 (built in, regex, spans: exact) or float64 (--feature)
    binary: bool
    source: str = "builtin"  # builtin | regex | spans | feature


def _word(ch):
    return ch.isalnum() or ch == "_"


def _quotes(text, out):
    """in_dquote and in_squote (prose rules)."""
    n = len(text)
    dq = sq = False
    closer_at = -1
    for i, ch in enumerate(text):
        if ch == '"':
            dq = not dq
        elif ch == "\n":
            sq = False
        elif ch == "'":
            prev = text[i - 1] if i else " "
            if sq and i == closer_at:
                sq = False
            elif not sq and not _word(prev):
                j = _squote_closer(text, i + 1, n)
                if j > 0 and i + 1 < n and not text[i + 1].isspace():
                    sq, closer_at = True, j
        out["in_dquote"][i], out["in_squote"][i] = dq, sq


def _squote_closer(text, start, n):
    """Index of the first closing "'" on the line from start, or -1."""
    for j in range(start, n):
        ch = text[j]
        if ch == "\n":
            return -1
        if ch == "'" and j > start and not text[j - 1].isspace() \
                and (j + 1 == n or not _word(text[j + 1])):
            return j
    return -1


def _open(text, i, lx):
    """What opens at text[i] in code: (string delimiter or None, comment closer or None,
    characters it covers); a line comment's closer is the newline."""
    for d in lx.strings:
        if text.startswith(d, i):
            return d, None, len(d)
    for c in lx.line_comments:
        if text.startswith(c, i) and not (c == "#" and lx.word_hash and i
                                          and text[i - 1] not in " \t\n;&|()"):
            return None, "\n", 1
    if lx.block_comment and text.startswith(lx.block_comment[0], i):
        return None, lx.block_comment[1], len(lx.block_comment[0])
    return None, None, 1


def _code(text, out, lx):
    """in_string, in_comment, in_preproc, brackets, in_if: one lexer over the text,
    by the rules of lx (a lang.Lexer)."""
    n = len(text)
    depth = {"(": 0, "[": 0, "{": 0}
    close = {")": "(", "]": "[", "}": "{"}
    string = comment = None          # the open string delimiter; the open comment's closer
    if_depth = -1                    # bracket depth of an open if-condition, or -1
    preproc, blank_line = False, True
    starts = {m.start() for m in re.finditer(lx.keywords, text)} if lx.keywords else set()
    i = 0
    while i < n:
        ch, run = text[i], 1         # run: characters this step covers
        total = sum(depth.values())
        if ch == "\n" and preproc and text[i - 1] != "\\":
            preproc = False                  # a backslash before the newline continues it
        if comment:
            if comment == "\n" and ch == "\n" or comment == "end":
                comment = None               # the newline, or the '/' of '*/', is outside
            elif comment != "\n" and text.startswith(comment, i):
                comment = "end"
        elif string:
            if ch == "\\" and string not in lx.raw:
                run = 2
            elif text.startswith(string, i):
                string, run = None, len(string)
            elif ch == "\n" and string not in lx.multiline:
                string = None
        else:
            if if_depth >= 0 and total == if_depth and ch in lx.if_ends:
                if_depth = -1                # the condition ends before its terminator
            string, comment, run = _open(text, i, lx)
            if string or comment:
                ch = ""                      # it is neither a bracket nor a keyword
            if lx.preproc and ch == "#" and blank_line:
                preproc = True
            elif ch in depth:
                depth[ch] += 1
            elif ch in close and depth[close[ch]] > 0:
                depth[close[ch]] -= 1
                if sum(depth.values()) < if_depth:
                    if_depth = -1
            elif i in starts and if_depth < 0 and not preproc and ch:
                if_depth = total
        if ch == "\n" and if_depth >= 0 and total <= if_depth:
            if_depth = -1
        blank_line = text[i] == "\n" or (blank_line and text[i] in " \t")
        sl = slice(i, i + run)
        out["in_string"][sl] = string is not None
        out["in_comment"][sl] = comment is not None
        out["in_preproc"][sl] = preproc
        for k, name in (("(", "in_paren"), ("[", "in_bracket"), ("{", "in_brace")):
            out[name][sl] = depth[k] > 0
        out["bracket_depth"][sl] = sum(depth.values())
        out["in_if"][sl] = if_depth >= 0
        i += run


def _lines(text, out):
    """column, word_pos, line_start, indent, after_sentence."""
    n = len(text)
    column = word = indent = 0
    at_start, after = True, False
    for i, ch in enumerate(text):
        if ch == "\n":
            column, word, indent, at_start, after = 0, 0, 0, True, after
        else:
            column += 1
            if at_start and ch in " \t":
                indent += 1
            else:
                at_start = False
            apostrophe = ch == "'" and word and i + 1 < n and text[i + 1].isalpha()
            word = word + 1 if _word(ch) or apostrophe else 0
        if ch in ".!?" and (i + 1 == n or text[i + 1].isspace() or text[i + 1] in CLOSERS):
            after = True
        elif not (ch.isspace() or ch in CLOSERS):
            after = False
        out["column"][i], out["word_pos"][i], out["indent"][i] = column, word, indent
        out["line_start"][i], out["after_sentence"][i] = at_start, after


BINARY = ("in_dquote", "in_squote", "in_string", "in_comment", "in_preproc", "in_paren",
          "in_bracket", "in_brace", "in_if", "line_start", "after_sentence",
          "is_upper", "is_digit", "is_space", "is_punct")
COUNTS = ("bracket_depth", "column", "word_pos", "indent")
NAMES = BINARY[:9] + ("bracket_depth",) + BINARY[9:11] + COUNTS[1:] + BINARY[11:]


def builtin(text, lang="generic"):
    """{name: Hypothesis} of the built-in features of a language (lang.LANGS), in
    NAMES order; the others do not belong to it and are left out."""
    n = len(text)
    out = {k: np.zeros(n, bool) for k in BINARY}
    out.update({k: np.zeros(n, np.int32) for k in COUNTS})
    _quotes(text, out)
    _code(text, out, LEXERS[lang])
    _lines(text, out)
    out["is_upper"][:] = [ch.isupper() for ch in text]
    out["is_digit"][:] = [ch.isdigit() for ch in text]
    out["is_space"][:] = [ch.isspace() for ch in text]
    out["is_punct"][:] = [not (ch.isalnum() or ch.isspace()) for ch in text]
    # float32 holds 0/1 and counts below 2**24 exactly, in half the memory of float64
    return {k: Hypothesis(k, out[k].astype(np.float32), k in BINARY) for k in NAMES
            if k in FEATURES[lang]}


def applies(h, halves):
    """Whether a hypothesis can be measured: it varies in both halves, and a binary
    one has MIN_EVENTS of each value in each."""
    for sl in halves:
        v = h.values[sl]
        if v.size < 2 * MIN_EVENTS or v.min() == v.max():
            return False
        if h.binary and min(v.sum(), v.size - v.sum()) < MIN_EVENTS:
            return False
    return True


# -- the user's hypotheses: no code of theirs is ever evaluated -------------------

def from_regex(text, pattern):
    """Inside each match of the regular expression (re syntax, MULTILINE)."""
    v = np.zeros(len(text), np.float32)
    for m in re.finditer(pattern, text, re.MULTILINE):
        v[m.start():m.end()] = 1.0
    return Hypothesis(f"regex:{pattern}", v, True, "regex")


def from_spans(text, lines, name="spans"):
    """lines: 'start end' pairs of character offsets, end exclusive; # comments."""
    v = np.zeros(len(text), np.float32)
    for k, line in enumerate(lines, 1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        parts = line.replace(",", " ").split()
        try:
            a, b = int(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            raise ValueError(f"line {k}: expected two integers 'start end', got {line!r}")
        if len(parts) != 2 or not 0 <= a <= b <= len(text):
            raise ValueError(f"line {k}: span {line!r} is not 'start end' with "
                             f"0 <= start <= end <= {len(text)}")
        v[a:b] = 1.0
    return Hypothesis(name, v, True, "spans")


def from_numbers(text, lines, name="feature"):
    """lines: one number per character of the text (blank lines are skipped)."""
    vals = [s.strip() for s in lines if s.strip()]
    if len(vals) != len(text):
        raise ValueError(f"has {len(vals)} numbers for a text of {len(text)} characters; "
                         f"it needs one per character")
    try:
        v = np.array([float(s) for s in vals])
    except ValueError as e:
        raise ValueError(f"holds something that is not a number ({e})")
    if not np.all(np.isfinite(v)):
        raise ValueError("holds a NaN or infinite value")
    binary = bool(np.all((v == 0) | (v == 1)))
    return Hypothesis(name, v, binary, "feature")
