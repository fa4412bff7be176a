"""inspect-embedding: neighbours, PCA and group strengths against slow references and
planted embeddings, the command's outputs, and its page in headless chromium."""
import json
import string

import numpy as np
import pytest

from charrnn import checkpoint
from charrnn.inspect import embedding as em
from charrnn.model import ModelConfig, carve, init_params
from tests.test_cli import assert_one_line_error, charrnn
from tests.test_inspect_browser import CHROMIUM, chromium, read_png

VOCAB = sorted(set(string.ascii_letters + string.digits + ",.;:!?' \n"))


def planted(seed=0, E=12):
    """An embedding where the vowels share a direction, the digits another, and every
    capital sits next to its small letter; the rest is random."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((len(VOCAB), E))
    for i, ch in enumerate(VOCAB):
        if ch in "aeiou":
            W[i] = 3 * np.eye(E)[0] + 0.5 * rng.standard_normal(E)
        elif ch.isdigit():
            W[i] = 3 * np.eye(E)[1] + 0.5 * rng.standard_normal(E)
    for i, ch in enumerate(VOCAB):
        if ch.isupper():
            W[i] = W[VOCAB.index(ch.lower())] + 0.1 * rng.standard_normal(E)
    return W


def save_model(path, W=None, embed=12):
    cfg = ModelConfig(kind="gru", vocab_size=len(VOCAB), hidden=8, layers=1, embed=embed)
    p = carve(init_params(cfg, np.random.default_rng(1)), cfg)
    if W is not None:
        p["embed.W"][:] = W
    checkpoint.save(str(path), p, {"config": cfg.to_dict(), "vocab": VOCAB})
    return path


def test_cosine_and_neighbours_against_loops():
    W = np.random.default_rng(2).standard_normal((9, 4))
    W[3] = 0  # a zero row is at cosine 0 from everything
    S = em.cosine_matrix(W)
    for i in range(9):
        for j in range(9):
            a, b = W[i], W[j]
            d = np.sqrt(a @ a) * np.sqrt(b @ b)
            assert S[i, j] == pytest.approx(a @ b / d if d else 0.0, abs=1e-12)
    near = em.neighbours(S, 3)
    for i in range(9):
        others = sorted((j for j in range(9) if j != i), key=lambda j: (-S[i, j], j))
        assert list(near[i]) == others[:3]


def test_pca_is_the_top_two_eigenvectors_of_the_covariance():
    W = np.random.default_rng(3).standard_normal((30, 6)) * [5, 3, 1, 1, 0.5, 0.1]
    coords, explained = em.pca2(W)
    X = W - W.mean(axis=0)
    vals, vecs = np.linalg.eigh(X.T @ X)
    order = np.argsort(vals)[::-1]
    np.testing.assert_allclose(explained, vals[order[:2]] / vals.sum(), rtol=1e-10)
    for a in range(2):
        ref = X @ vecs[:, order[a]]
        np.testing.assert_allclose(np.abs(coords[:, a]), np.abs(ref), atol=1e-10)
        assert coords[:, a].max() >= -coords[:, a].min()  # the sign convention


def test_strength_by_hand():
    S = np.array([[1, .8, .1, 0], [.8, 1, .3, .2], [.1, .3, 1, .5], [0, .2, .5, 1]])
    within, between = em.strength(S, [0, 1])
    assert within == pytest.approx(0.8) and between == pytest.approx((.1 + 0 + .3 + .2) / 4)


def test_planted_groups_stand_out_and_random_ones_do_not():
    cfg = ModelConfig(kind="gru", vocab_size=len(VOCAB), hidden=8, layers=1, embed=12)
    rep = em.analyse(cfg, {"embed.W": planted()}, VOCAB, shuffles=500, seed=1)
    g = {r["name"]: r for r in rep["groups"]}
    assert set(g) == {"vowels", "consonants", "digits", "punctuation", "case pairs"}
    assert g["case pairs"]["n"] == 26 and g["digits"]["members"] == string.digits
    for name in ("vowels", "digits", "case pairs"):
        assert g[name]["value"] > 0.3 and g[name]["p"] == pytest.approx(1 / 501) and \
            g[name]["z"] > 5, name
    assert g["punctuation"]["p"] > 0.01
    rnd = em.analyse(cfg, {"embed.W": np.random.default_rng(7).standard_normal((len(VOCAB), 12))},
                     VOCAB, shuffles=500, seed=1)
    assert all(r["p"] > 0.01 and abs(r["z"]) < 3 for r in rnd["groups"]), rnd["groups"]
    # the control's draws are as many characters (or pairs) as the group has
    assert abs(g["consonants"]["control_mean"]) < 0.05


def test_groups_missing_from_the_vocabulary_are_named():
    vocab = sorted("abcdeio .!3")
    assert [n for n, _ in em.groups_of(vocab)] == ["vowels", "consonants", "punctuation"]
    cfg = ModelConfig(kind="rnn", vocab_size=len(vocab), hidden=4, layers=1, embed=3)
    rep = em.analyse(cfg, {"embed.W": np.random.default_rng(0).standard_normal((len(vocab), 3))},
                     vocab, shuffles=10)
    assert rep["skipped"] == ["digits", "case pairs"]


def test_command_json_terminal_and_out(tmp_path):
    ck = save_model(tmp_path / "m.npz", planted())
    code, out, err = charrnn("inspect-embedding", ck, "--format", "json", "--shuffles", "200")
    assert code == 0 and err == "", err
    rep = json.loads(out)
    assert (rep["format"], rep["version"], rep["vocab"]) == ("charrnn-embedding", 1, VOCAB)
    assert len(rep["neighbours"]) == len(VOCAB) and all(len(n) == 5 for n in rep["neighbours"])
    assert rep["neighbours"][VOCAB.index("A")][0]["char"] == "a"  # planted beside it
    assert len(rep["pca"]["x"]) == len(VOCAB) and sum(rep["pca"]["explained"]) <= 1
    code, out, err = charrnn("inspect-embedding", ck, "--neighbours", "2")
    assert code == 0, err
    assert "vowels" in out and "nearest neighbours" in out and "map (" in out
    assert "\n    A   a +" in out  # its nearest neighbour, where it was planted
    code, out, err = charrnn("inspect-embedding", ck, "--format", "html", "--out", tmp_path / "e.html")
    assert code == 0 and out == "" and "wrote" in err
    assert (tmp_path / "e.html").read_text().count('class="pt"') == len(VOCAB)


def test_one_hot_model_says_why_there_is_no_map(tmp_path):
    ck = save_model(tmp_path / "onehot.npz", embed=0)
    assert_one_line_error(*charrnn("inspect-embedding", ck), status=(1,), contains="--embed")


def test_unwritable_out_is_one_line(tmp_path):
    ck = save_model(tmp_path / "m.npz")
    assert_one_line_error(*charrnn("inspect-embedding", ck, "--out", tmp_path / "no" / "e.html"),
                          status=(1,), contains="--out")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    d = tmp_path_factory.mktemp("embed_html")
    ck = save_model(d / "m.npz", planted())
    code, _, err = charrnn("inspect-embedding", ck, "--format", "html", "--out", d / "page.html")
    assert code == 0, err
    return d / "page.html"


def test_page_is_self_contained(page):
    import re
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<svg" in html and "<script" in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_page_renders_in_chromium(page, tmp_path):
    run = chromium("--dump-dom", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    assert f'data-points="{len(VOCAB)}"' in run.stdout and 'data-rendered="yes"' in run.stdout
    assert "CONSOLE" not in run.stderr, [l for l in run.stderr.splitlines() if "CONSOLE" in l]
    shot = tmp_path / "shot.png"
    run = chromium("--window-size=900,700", f"--screenshot={shot}", page.as_uri())
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    px = read_png(shot.read_bytes())[:, :, :3].astype(int)
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    red = (r - g > 80) & (r - b > 80)                    # the vowels
    blue = (b - r > 60) & (b - g > 20)                   # the consonants
    assert red.mean() > 0.0002 and blue.mean() > 0.0005
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 50
