"""The language of a text: how its code features are lexed, and which apply.

    c        C family: // and /* */ comments; "strings" and 'c' char literals with
             backslash escapes, ending at a newline; preprocessor lines (a '#' first
             on the line, continued by a backslash before the newline)
    python   # comments; ' " ''' \"\"\" strings with escapes; ' and " end at a newline
    shell    # comments at the start of a word ($# and x#y are not); '...' without
             escapes and "..." with them, both spanning lines
    prose    no code: quotes by prose rules, sentences, brackets
    generic  every feature by the mixed rules of corpora/synthetic.txt: # // /* */
             comments, ' strings end at a newline, " and triple-quoted ones do not

`detect` picks one from the file name, else from what the lines look like:

    >>> detect("#include <stdio.h>\\nint main(void) { return 0; }\\n")[0]
    'c'
    >>> detect("It was the best of times, it was the worst of times.\\n")[0]
    'prose'
"""
import os
import re
from dataclasses import dataclass

LANGS = ("c", "python", "shell", "prose", "generic")


@dataclass(frozen=True)
class Lexer:
    line_comments: tuple = ()    # openers of a comment that runs to the end of the line
    block_comment: tuple = ()    # (opener, closer), or () for none
    strings: tuple = ()          # string delimiters, longest first
    multiline: tuple = ()        # delimiters whose strings may span lines
    raw: tuple = ()              # delimiters inside which a backslash escapes nothing
    if_ends: str = ""            # what ends an if-condition at its bracket depth
    keywords: str = ""           # regular expression of the if keywords; "" for none
    word_hash: bool = False      # '#' opens a comment only at the start of a word
    preproc: bool = False        # C preprocessor lines


IF = r"\b(?:el)?if\b"
LEXERS = {
    "c": Lexer(("//",), ("/*", "*/"), ('"', "'"), if_ends="{;\n", keywords=r"\bif\b",
               preproc=True),
    "python": Lexer(("#",), (), ('"""', "'''", '"', "'"), ('"""', "'''"), if_ends=":\n",
                    keywords=IF),
    "shell": Lexer(("#",), (), ("'", '"'), ("'", '"'), ("'",), if_ends=";\n", keywords=IF,
                   word_hash=True),
    "prose": Lexer(),
    "generic": Lexer(("#", "//"), ("/*", "*/"), ('"""', "'''", '"', "'"), ('"""', "'''", '"'),
                     if_ends=":{;\n", keywords=IF),
}

COMMON = ("in_paren", "in_bracket", "in_brace", "bracket_depth", "line_start", "column",
          "word_pos", "indent", "is_upper", "is_digit", "is_space", "is_punct")
CODE = ("in_string", "in_comment", "in_if")
PROSE = ("in_dquote", "in_squote", "after_sentence")
FEATURES = {"c": COMMON + CODE + ("in_preproc",), "python": COMMON + CODE,
            "shell": COMMON + CODE, "prose": COMMON + PROSE, "generic": COMMON + CODE + PROSE}

EXTENSIONS = {"c": ".c .h .cc .cpp .cxx .hh .hpp .hxx .m .java .js .ts .cs .go .rs .swift",
              "python": ".py .pyi .pyw", "shell": ".sh .bash .zsh .ksh"}

# per language, lines that only it writes (a line counts once)
SIGNS = {
    "c": re.compile(r"^\s*#\s*(?:include|define|ifn?def|endif|undef|pragma)\b|/\*|\*/|"
                    r"^\s*//|;\s*(?://.*|/\*.*)?$|^\s*[{}]\s*$"),
    "python": re.compile(r"^\s*(?:def|class)\s+\w+.*:\s*(?:#.*)?$|^\s*import\s+\w|"
                         r"^\s*from\s+\S+\s+import\s|^\s*(?:elif|else|try|except|finally)\b.*:\s*$|"
                         r"\bself\.|^\s*(?:\"\"\"|''')"),
    "shell": re.compile(r"^#!.*\bsh\b|^#!.*/(?:ba|z|k|da)sh|^\s*(?:fi|done|esac|then|do)\s*$|"
                        r";\s*then\s*$|;\s*do\s*$|\$\{\w|\$\(|^\s*(?:echo|export|local)\s"),
}
MIN_SHARE = 0.05        # of non-blank lines with a language's signs decides it
PROSE_SHARE = 0.97      # of characters letters, digits, blanks and prose punctuation
PROSE_CHARS = set(" \t\n\r.,;:!?'\"-()\u2019\u2018\u201c\u201d\u2014\u2013\u2026"
                  "\u3002\uff0c\u3001\uff1a\uff1b\uff01\uff1f\u300c\u300d\u300a\u300b")
SAMPLE = 200_000        # characters read to decide


def detect(text, filename=None):
    """(language, why): from the file name's extension when it names one, else from
    the first SAMPLE characters. Never 'generic' from a file name."""
    ext = os.path.splitext(filename or "")[1].lower()
    for lang, exts in EXTENSIONS.items():
        if ext and ext in exts.split():
            return lang, f"file name {os.path.basename(filename)}"
    sample = text[:SAMPLE]
    lines = [s for s in sample.splitlines() if s.strip()]
    if lines:
        share = {lang: sum(1 for s in lines if rx.search(s)) / len(lines)
                 for lang, rx in SIGNS.items()}
        lang = max(share, key=share.get)
        if share[lang] >= MIN_SHARE:
            return lang, f"{share[lang]:.0%} of its lines look like {lang}"
    plain = sum(1 for ch in sample if ch.isalnum() or ch in PROSE_CHARS) / max(1, len(sample))
    if plain >= PROSE_SHARE:
        return "prose", f"{plain:.0%} of it letters, blanks and punctuation"
    return "generic", "no language recognised"


def resolve(lang, text, filename=None):
    """(language, why) for --lang: 'auto' detects, a name is taken as given."""
    if lang == "auto":
        return detect(text, filename)
    if lang not in LANGS:
        raise ValueError(f"no language {lang!r}; they are auto, {', '.join(LANGS)}")
    return lang, "given"
