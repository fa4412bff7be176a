"""inspect/lang.py and the language-dependent features: hand-written snippets of
each language with answers worked out by hand, and detection."""
import pytest

from charrnn import synth
from charrnn.inspect import features as ft
from charrnn.inspect import lang as lg


def bits(lang, name, text):
    return "".join(str(int(v)) for v in ft.builtin(text, lang)[name].values)


@pytest.mark.parametrize("lang,name,text,want", [
    # C: '#' starts a preprocessor line, not a comment; strings on it are strings
    ("c", "in_preproc", "#if A\nx", "1111100"),
    ("c", "in_preproc", "  #define A \\\n  1\nx", "00" + "1" * 15 + "00"),    # continued
    ("c", "in_string", '#include "a.h"\n', "0" * 9 + "1111" + "00"),
    ("c", "in_comment", "a // b\nc # d", "001111000000"),
    ("c", "in_comment", "/* a\n*/ b", "111111000"),            # the "/" of "*/" is out
    ("c", "in_brace", "c = '{'; {x}", "000000000110"),                 # a char literal
    ("c", "in_string", "'\"' \"a\"", "1100110"),                       # '"' opens nothing
    ("c", "in_if", "if (a) b;\n", "1111111100"),
    # Python: '#' comments only, so '//' is floor division; " ends at a newline
    ("python", "in_comment", "a // b # c\n", "00000001110"),
    ("python", "in_string", "'a\\'b' \"\"\"x\ny\"\"\"", "111110" + "0" + "111111" + "000"),
    ("python", "in_string", 'x = "a\nb"', "000011001"),
    ("python", "in_if", "if a:\n    b", "1111" + "0" * 7),
    # shell: '#' comments only at the start of a word; '...' knows no escapes
    ("shell", "in_comment", "echo $# a#b # c\n", "0" * 12 + "1110"),
    ("shell", "in_string", "echo 'a\\' \"b\\\"c\"", "00000" + "1110" + "0" + "111110"),
    ("shell", "in_if", "if [ -f x ]; then y; fi", "1" * 11 + "0" * 12),
    # prose: no strings or comments, so an apostrophe or a '#' hides no bracket
    ("prose", "in_paren", "don't (go)", "0000001110"),
    ("prose", "in_paren", "# 1 (a)", "0000110"),
    ("prose", "in_squote", "don't 'go'", "0000001110"),
])
def test_features_by_language(lang, name, text, want):
    assert len(want) == len(text)
    assert bits(lang, name, text) == want


def test_the_generic_rules_read_the_same_snippets_differently():
    """Why the language matters: the mixed rules take C's '#' for a comment and
    prose's apostrophe for a string."""
    assert bits("generic", "in_comment", "#if A\nx") == "1111100"
    assert bits("generic", "in_paren", "don't (go)") == "0000000000"


@pytest.mark.parametrize("lang", lg.LANGS)
def test_each_language_has_its_features_and_no_others(lang):
    got = ft.builtin("int x; # a 'b' \"c\" (d) if e:\n", lang)
    assert list(got) == [n for n in ft.NAMES if n in lg.FEATURES[lang]]
    code = {"in_string", "in_comment", "in_if"}
    assert code <= set(got) if lang != "prose" else not code & set(got)
    assert ("in_preproc" in got) == (lang == "c")
    assert ("in_squote" in got) == (lang in ("prose", "generic"))


C = """#include <stdio.h>
/* a comment */
static int f(int x) {
    return x + 1;   // one more
}
"""
PY = '''import os


def f(x):
    """Doc."""
    if x:
        return self.y
    else:
        return 1
'''
SH = """#!/bin/sh
for f in *.txt; do
    echo "$f"
done
"""
PROSE = """It was the best of times, it was the worst of times; it was the age of
wisdom, it was the age of foolishness. "Quite so," said he, and didn't.
"""


@pytest.mark.parametrize("text,name,want", [
    (C, None, "c"), (PY, None, "python"), (SH, None, "shell"), (PROSE, None, "prose"),
    (synth.generate(3000, seed=1), None, "generic"),
    (PROSE, "notes/x.h", "c"), (PROSE, "run.sh", "shell"), (C, "a.PY", "python"),
    (C, "notes.txt", "c"), (PROSE, "-", "prose"),
])
def test_detect(text, name, want):
    got, why = lg.detect(text, name)
    assert got == want, why
    assert why


def test_resolve():
    assert lg.resolve("prose", C) == ("prose", "given")
    assert lg.resolve("auto", C, "x.c")[0] == "c"
    with pytest.raises(ValueError, match="no language"):
        lg.resolve("cobol", C)
