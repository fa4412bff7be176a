"""inspect/features.py: every built-in feature on hand-written strings, the user's
hypotheses, and agreement with charrnn.synth's ground truth."""
import numpy as np
import pytest

from charrnn import synth
from charrnn.inspect import features as ft


def bits(name, text):
    """The feature as a string of digits, one per character, for readable asserts."""
    return "".join(str(int(v))[-1] for v in ft.builtin(text)[name].values)


@pytest.mark.parametrize("name,text,want", [
    # the state after reading each character: an opener is inside, a closer outside
    ("in_dquote", 'a "b c" d', "001111000"),
    ("in_dquote", '"x\ny" "', "1111001"),                      # spans lines; unclosed
    ("in_squote", "say 'hi' now", "000011100000"),
    ("in_squote", "don't 'x", "00000000"),                       # apostrophe; no closer
    ("in_squote", "dogs' 'tis me", "0000000000000"),             # possessive, elision
    ("in_squote", "'a b'\n'c", "11110000"),                      # a newline ends it
    ("in_string", 'x = "a#b" # c', "0000111100000"),             # '#' inside is no comment
    ("in_string", r'"a\"b" c', "11111000"),                      # an escaped quote
    ("in_string", "'''a\nb''' c", "11111100000"),
    ("in_string", "'ab\nc", "11100"),                            # a "'" string ends at \n
    ("in_string", '"ab\nc"d', "1111100"),                       # a '"' string does not
    ("in_comment", "a # b\nc", "0011100"),
    ("in_comment", "a // b\nd", "00111100"),
    ("in_comment", "a /* b\n */ c", "001111111000"),
    ("in_comment", 'x "# no" y', "0000000000"),
    ("in_paren", "f(a (b)) c", "0111111000"),
    ("in_bracket", "[a] ']' x", "110000000"),                    # a ']' in a string counts not
    ("in_brace", "{a # }\n}", "11111110"),                       # nor in a comment
    ("in_paren", "a) (b", "00011"),                              # a stray closer is ignored
    ("in_if", "if a > b:\n  c", "1111111100000"),
    ("in_if", "elif (x): y", "11111111000"),
    ("in_if", "if (a) { b; }", "1111111000000"),
    ("in_if", "x = [i for i in y if i]", "00000000000000000011110"),
    ("in_if", "gift if", "0000011"),                             # a whole word only
    ("line_start", "ab\n  c\nd", "00111010"),
    ("after_sentence", "Hi. Yes! a.b end.) x", "00110001100000001110"),
    ("is_upper", "aB1 .", "01000"),
    ("is_digit", "aB1 .", "00100"),
    ("is_space", "a b\tc\n", "010101"),
    ("is_punct", "a, b_!", "010011"),
])
def test_binary_features(name, text, want):
    assert bits(name, text) == want


@pytest.mark.parametrize("name,text,want", [
    ("bracket_depth", "f([a]{b})", [0, 1, 2, 2, 1, 2, 2, 1, 0]),
    ("bracket_depth", '("(")', [1, 1, 1, 1, 0]),
    ("column", "ab\ncde\n", [1, 2, 0, 1, 2, 3, 0]),
    ("word_pos", "don't go_2 x", [1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 0, 1]),
    ("word_pos", "dogs' x", [1, 2, 3, 4, 0, 0, 1]),
    ("indent", "a\n  b c\n\tx", [0, 0, 1, 2, 2, 2, 2, 0, 1, 1]),
])
def test_count_features(name, text, want):
    assert ft.builtin(text)[name].values.tolist() == want


@pytest.mark.parametrize("text", ["", "x", "\n", "é\"ü\"", "😀 (ok)"])
def test_edge_cases_have_one_value_per_character(text):
    for h in ft.builtin(text).values():
        assert h.values.shape == (len(text),)
        assert h.values.dtype == np.float32


def test_every_feature_is_named_once_and_binary_ones_are_0_or_1():
    fs = ft.builtin(synth.generate(3000, seed=1))
    assert list(fs) == [n for n in ft.NAMES if n != "in_preproc"]      # the generic rules
    assert len(set(ft.NAMES)) == len(ft.NAMES)
    for h in fs.values():
        assert h.binary == (h.name in ft.BINARY)
        if h.binary:
            assert set(np.unique(h.values)) <= {0.0, 1.0}


def test_agrees_with_the_synthetic_ground_truth():
    """synth.features lexes its own language; ours must agree where the rules meet."""
    text = synth.generate(20_000, seed=2)
    want, got = synth.features(text), ft.builtin(text)
    np.testing.assert_array_equal(got["in_dquote"].values, want["in_dquote"])
    np.testing.assert_array_equal(got["column"].values, want["column"])
    np.testing.assert_array_equal(got["bracket_depth"].values, want["bracket_depth"])
    np.testing.assert_array_equal(got["in_comment"].values, want["in_comment"])


def test_applies_needs_variation_and_events_in_both_halves():
    halves = (slice(0, 50), slice(50, 100))
    v = np.zeros(100)
    assert not ft.applies(ft.Hypothesis("x", v, True), halves)
    v[10:20] = 1
    assert not ft.applies(ft.Hypothesis("x", v, True), halves)     # none in the second half
    v[60:64] = 1
    assert not ft.applies(ft.Hypothesis("x", v, True), halves)     # only 4 there
    v[64] = 1
    assert ft.applies(ft.Hypothesis("x", v, True), halves)


def test_regex_marks_inside_each_match():
    h = ft.from_regex("ab(cd)e(f)", r"\([^)]*\)")
    assert h.values.astype(int).tolist() == [0, 0, 1, 1, 1, 1, 0, 1, 1, 1]
    assert h.binary and h.source == "regex"


def test_spans_file():
    h = ft.from_spans("abcdefgh", ["# start end", "1 3", "", "5,6  # one char"], "s")
    assert h.values.astype(int).tolist() == [0, 1, 1, 0, 0, 1, 0, 0]
    for bad in (["1"], ["a b"], ["3 2"], ["0 99"], ["1 2 3"]):
        with pytest.raises(ValueError, match="line 1"):
            ft.from_spans("abcdefgh", bad)


def test_feature_file():
    h = ft.from_numbers("abc", ["0.5", "", "1", "-2e1"])
    assert h.values.tolist() == [0.5, 1.0, -20.0] and not h.binary
    assert ft.from_numbers("ab", ["0", "1"]).binary
    with pytest.raises(ValueError, match="3 characters"):
        ft.from_numbers("abc", ["1", "2"])
    with pytest.raises(ValueError, match="not a number"):
        ft.from_numbers("ab", ["1", "x"])
    with pytest.raises(ValueError, match="NaN"):
        ft.from_numbers("ab", ["1", "nan"])
