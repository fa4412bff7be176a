"""charrnn against PyTorch's own cells, with the weights copied as docs/checkpoint.md
says (its to_torch and torch_forward are run from the document itself): logits, final
state and the gradient of the mean cross-entropy for every parameter, in float64.
Optional: skipped where torch is not installed (it is never a dependency of charrnn)."""
import itertools
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from charrnn import model  # noqa: E402
from charrnn.model import ModelConfig  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "checkpoint.md"
CASES = list(itertools.product(["rnn", "lstm", "gru"], [0, 4]))
TOL = dict(rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def doc():
    """The namespace of the PyTorch code block of docs/checkpoint.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("\n## Loading into PyTorch"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    ns = {"__name__": "doc_torch"}
    exec(compile(code, str(DOC), "exec"), ns)
    return ns


def make(kind, embed, V=7, H=5, L=2, T=6, N=3, seed=0):
    cfg = ModelConfig(kind=kind, vocab_size=V, hidden=H, layers=L, embed=embed)
    rng = np.random.default_rng(seed)
    flat = model.init_params(cfg, rng, dtype=np.float64)
    flat += rng.normal(0, 0.4, flat.shape)  # every bias nonzero, every gate block distinct
    ids = rng.integers(0, V, (T, N))
    targets = rng.integers(0, V, (T, N))
    state = rng.normal(0, 0.5, (L, model.STATES[kind], N, H))
    return cfg, flat, ids, targets, state


def grads_in_charrnn_layout(cfg, emb, rnn, out):
    """torch's .grad of every module parameter, rearranged to charrnn's names and shapes."""
    H = cfg.hidden
    blocks = {"rnn": [0], "lstm": [0, 1, 3, 2], "gru": [0, 1, 2]}[cfg.kind]
    cols = np.concatenate([np.arange(k * H, (k + 1) * H) for k in blocks])
    inv = np.argsort(cols)  # torch row r holds charrnn column cols[r]
    g = {}
    if cfg.embed:
        g["embed.W"] = emb.weight.grad.numpy()
    for l in range(cfg.layers):
        w_ih = getattr(rnn, f"weight_ih_l{l}").grad.numpy()
        w_hh = getattr(rnn, f"weight_hh_l{l}").grad.numpy()
        b_ih = getattr(rnn, f"bias_ih_l{l}").grad.numpy()
        b_hh = getattr(rnn, f"bias_hh_l{l}").grad.numpy()
        g[f"L{l}.Wx"] = w_ih.T[:, inv]
        g[f"L{l}.Wh"] = w_hh.T[:, inv]
        g[f"L{l}.b"] = b_ih[inv]
        if cfg.kind == "gru":
            g[f"L{l}.bhn"] = b_hh[2 * H:]
            # b_hr, b_hz are added to b_ir, b_iz, so their gradients are equal
            np.testing.assert_allclose(b_hh[:2 * H], b_ih[:2 * H], **TOL)
        else:
            np.testing.assert_allclose(b_hh, b_ih, **TOL)  # bias_hh is added to bias_ih
    g["out.W"] = out.weight.grad.numpy().T
    g["out.b"] = out.bias.grad.numpy()
    return g


@pytest.mark.parametrize("kind,embed", CASES)
def test_to_torch_copies_every_parameter(doc, kind, embed):
    """Every charrnn number lands somewhere in torch, and torch has no other nonzero one."""
    cfg, flat, *_ = make(kind, embed)
    p = model.carve(flat, cfg)
    emb, rnn, out = doc["to_torch"](p, cfg.to_dict())
    tensors = list(rnn.parameters()) + list(out.parameters()) + (list(emb.parameters()) if emb else [])
    assert all(t.dtype == torch.float64 for t in tensors)
    theirs = np.sort(np.concatenate([t.detach().numpy().ravel() for t in tensors]))
    ours = np.sort(flat)
    extra = len(theirs) - len(ours)  # torch's zero biases: the unused bias_hh entries
    H, G = cfg.hidden, model.GATES[kind] * cfg.hidden
    assert extra == cfg.layers * (G - (H if kind == "gru" else 0))
    nonzero = theirs[theirs != 0]
    np.testing.assert_array_equal(nonzero, ours[ours != 0])


@pytest.mark.parametrize("kind,embed", CASES)
def test_forward_matches_torch(doc, kind, embed):
    cfg, flat, ids, targets, state = make(kind, embed)
    p = model.carve(flat, cfg)
    logits, _, final = model.forward(cfg, p, ids, state)
    emb, rnn, out = doc["to_torch"](p, cfg.to_dict())
    with torch.no_grad():
        t_logits, t_final = doc["torch_forward"](cfg.to_dict(), emb, rnn, out,
                                                 torch.from_numpy(ids), torch.from_numpy(state))
    T, N = ids.shape
    np.testing.assert_allclose(logits.reshape(T, N, -1), t_logits.numpy(), **TOL)
    np.testing.assert_allclose(final, t_final.numpy(), **TOL)
    # a second chunk from the carried state: the state layout round-trips too
    logits2, _, final2 = model.forward(cfg, p, targets, final)
    with torch.no_grad():
        t_logits2, t_final2 = doc["torch_forward"](cfg.to_dict(), emb, rnn, out,
                                                   torch.from_numpy(targets), t_final)
    np.testing.assert_allclose(logits2.reshape(T, N, -1), t_logits2.numpy(), **TOL)
    np.testing.assert_allclose(final2, t_final2.numpy(), **TOL)


@pytest.mark.parametrize("kind,embed", CASES)
def test_gradients_match_torch_autograd(doc, kind, embed):
    cfg, flat, ids, targets, state = make(kind, embed)
    p = model.carve(flat, cfg)
    grad = np.zeros_like(flat)
    g = model.carve(grad, cfg)
    loss, final = model.loss_and_grad(cfg, p, g, ids, targets, state)

    emb, rnn, out = doc["to_torch"](p, cfg.to_dict())
    t_logits, t_final = doc["torch_forward"](cfg.to_dict(), emb, rnn, out,
                                             torch.from_numpy(ids), torch.from_numpy(state))
    V = cfg.vocab_size
    t_loss = torch.nn.functional.cross_entropy(t_logits.reshape(-1, V),
                                               torch.from_numpy(targets).reshape(-1))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(final, t_final.detach().numpy(), **TOL)

    theirs = grads_in_charrnn_layout(cfg, emb, rnn, out)
    assert set(theirs) == set(g)
    for name, ours in g.items():
        assert np.abs(ours).max() > 0, f"{name}: zero gradient proves nothing"
        np.testing.assert_allclose(ours, theirs[name], err_msg=name, **TOL)
