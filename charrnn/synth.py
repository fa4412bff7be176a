"""Synthetic text with known structure, for tests and for `inspect-cells`.

The text reads like a tiny made-up programming language: statements of
lowercase words, brackets ( ) [ ] { } nested up to depth 4, double-quoted
strings (three in four close on their line; 1 in 1000 wraps over 5 to 10),
`# comments` and blocks indented by 4 or 8 spaces under a header line ending
in ':'. It is built so that the state worth tracking is NOT visible locally:

* inside and outside a quote the same words, brackets and punctuation occur,
  drawn from the same distribution, so only remembering the opening quote
  tells a model where it is; a '#' inside a quote is not a comment;
* the contents of a bracket are drawn exactly like the outside.

`features` gives the ground truth per character, to correlate with a cell.
The vocabulary is small (35 characters), so a tiny LSTM learns it fast.

    >>> text = generate(40, seed=1)
    >>> len(text), text == generate(40, seed=1), text == generate(80, seed=1)[:40]
    (40, True, True)
    >>> features('f("a") # b')["in_dquote"].astype(int).tolist()
    [0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
"""
import argparse
import random
import sys

import numpy as np

WORDS = ("a", "an", "the", "cat", "dog", "sun", "sky", "red", "big", "old",
         "ran", "sat", "saw", "top", "end", "map", "key", "box", "run", "set")
BRACKETS = ("()", "[]", "{}")
OPENERS, CLOSERS = "([{", ")]}"
MAX_DEPTH = 4     # deepest bracket nesting, counted inside quotes too
MAX_INDENT = 8    # blocks nest twice: lines start with 0, 4 or 8 spaces
MAX_WIDTH = 80    # no line is longer; each statement wraps at 10..80

# token kinds, which decide spacing: no space after an opener (bracket or
# opening quote), none before a closer or before , . :
WORD, OPEN, CLOSE, PUNCT = range(4)


# Only Random.random() is used: Python guarantees its sequence for a seed
# across versions, unlike randint/choice and numpy's Generator streams.
def _int(rng, lo, hi):
    """Uniform integer in [lo, hi], both inclusive."""
    return lo + int(rng.random() * (hi - lo + 1))


def _pick(rng, seq):
    return seq[int(rng.random() * len(seq))]


def _expr(rng, out, depth, quoted):
    """Append 1 to 4 items to `out`: 20% bracket groups, 10% quotes, 6%
    punctuation, the rest words. Inside a quote the law is the same, except
    that the quote slot holds a word or, rarely, a '#' (which is not a comment
    there, so '#' does not give the quote state away either)."""
    for _ in range(_int(rng, 1, 4)):
        r = rng.random()
        if r < 0.2 and depth < MAX_DEPTH:
            pair = _pick(rng, BRACKETS)
            out.append((pair[0], OPEN))
            _expr(rng, out, depth + 1, quoted)
            out.append((pair[1], CLOSE))
        elif 0.2 <= r < 0.3 and not quoted:
            out.append(('"', OPEN))
            _expr(rng, out, depth, True)
            out.append(('"', CLOSE))
        elif 0.2 <= r < 0.3 and rng.random() < 0.1:
            out.append(("#", WORD))
        elif 0.3 <= r < 0.36:
            p = _pick(rng, ",.:=")
            out.append((p, WORD if p == "=" else PUNCT))
        else:  # also the bracket slot at MAX_DEPTH
            out.append((_pick(rng, WORDS), WORD))


def _layout(tokens, indent, width):
    """Lay tokens out in lines of at most `width` characters."""
    lines, line, prev = [], " " * indent, None
    for text, kind in tokens:
        sep = "" if prev is None or prev == OPEN or kind in (CLOSE, PUNCT) else " "
        if len(line) + len(sep) + len(text) > width and prev is not None:
            lines.append(line)
            line, sep = " " * indent, ""
        line += sep + text
        prev = kind
    return lines + [line]


def _comment(rng, n_words):
    return "# " + " ".join(_pick(rng, WORDS) for _ in range(n_words))


def _statement(rng, indent):
    """Lines of one statement; quotes and brackets all close within it."""
    width = _int(rng, indent + 10, MAX_WIDTH)
    tokens = [(_pick(rng, WORDS), WORD), ("=", WORD)] if rng.random() < 0.3 else []
    goal = width * _int(rng, 1, 3) * 0.6  # rough length, so line lengths vary
    while sum(len(t) + 1 for t, _ in tokens) < goal:
        _expr(rng, tokens, 0, False)
    lines = _layout(tokens, indent, width)
    comment = "  " + _comment(rng, _int(rng, 1, 5))
    if rng.random() < 0.25 and len(lines[-1]) + len(comment) <= MAX_WIDTH:
        lines[-1] += comment
    return lines


def _lines(rng, indent):
    """One top-level chunk: a blank line, a comment, a statement, or a header
    line and its block of 1 to 4 chunks indented 4 more spaces."""
    r = rng.random()
    if r < 0.05:
        return [""]
    if r < 0.2:
        return [" " * indent + _comment(rng, _int(rng, 1, 8))]
    if r < 0.35 and indent < MAX_INDENT:
        head = [(_pick(rng, WORDS), WORD)]
        _expr(rng, head, 0, False)
        lines = _layout(head + [(":", PUNCT)], indent, MAX_WIDTH)
        for _ in range(_int(rng, 1, 4)):
            lines += _lines(rng, indent + 4)
        return lines
    return _statement(rng, indent)


def generate(n_chars: int, seed: int = 0) -> str:
    """Exactly n_chars ASCII characters; a longer text from the same seed
    extends a shorter one, so a prefix is stable.

        >>> generate(0), len(generate(7, seed=3))
        ('', 7)
    """
    if n_chars < 0:
        raise ValueError(f"n_chars must be >= 0, got {n_chars}")
    rng = random.Random(seed)
    parts, size = [], 0
    while size < n_chars:
        for line in _lines(rng, 0):
            parts.append(line + "\n")
            size += len(line) + 1
    return "".join(parts)[:n_chars]


def features(text: str) -> dict[str, np.ndarray]:
    """Ground truth per character, each the state AFTER reading text[i]
    (what a recurrent state at step i has seen), by these lexing rules:

    in_dquote      a '"' outside a comment toggles; so True from the opening
                   quote (inclusive) to the closing quote (exclusive).
    in_comment     a '#' outside a quote opens, the newline closes: True from
                   the '#' (inclusive) to the newline (exclusive).
    bracket_depth  ( [ { add 1 and ) ] } take 1, only outside quotes and
                   comments; kinds are not matched, stray closers go negative.
    column         characters read since the last newline; 0 at a newline.

        >>> f = features('f(x) "#" # (\\n')
        >>> f["bracket_depth"].tolist()
        [0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        >>> f["in_comment"].astype(int).tolist()
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0]
    """
    n = len(text)
    out = {"in_dquote": np.zeros(n, bool), "in_comment": np.zeros(n, bool),
           "bracket_depth": np.zeros(n, np.int32), "column": np.zeros(n, np.int32)}
    quote = comment = False
    depth = column = 0
    for i, ch in enumerate(text):
        if ch == "\n":
            comment, column = False, 0
        else:
            column += 1
            if comment:
                pass
            elif ch == '"':
                quote = not quote
            elif quote:
                pass
            elif ch == "#":
                comment = True
            elif ch in OPENERS:
                depth += 1
            elif ch in CLOSERS:
                depth -= 1
        out["in_dquote"][i], out["in_comment"][i] = quote, comment
        out["bracket_depth"][i], out["column"][i] = depth, column
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m charrnn.synth",
        description="Write N characters of synthetic structured text to stdout.")
    parser.add_argument("n_chars", type=int, metavar="N", help="number of characters")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.n_chars < 0:
        parser.error("N must be >= 0")
    sys.stdout.write(generate(args.n_chars, args.seed))


if __name__ == "__main__":
    main()
