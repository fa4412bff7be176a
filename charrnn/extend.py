"""New characters for a trained model (`charrnn train --resume M --extend-vocab`).

The vocabulary stays sorted, so the old characters' ids move to make room. A new
character gets a zero input row (embed.W, or L0.Wx with one-hot input) and a zero
output column of out.W, with the output bias of the rarest old character: the
old characters' logits are exactly what they were, and the new ones start as
unlikely as the rarest. Their optimizer moments start at zero.
"""
import numpy as np

from charrnn.checkpoint import Checkpoint
from charrnn.model import ModelConfig, carve, param_shapes


def _axes(cfg):
    """{parameter name: its axis indexed by character id}."""
    return {"embed.W" if cfg.embed else "L0.Wx": 0, "out.W": 1, "out.b": 0}


def _widen(a, axis, where, V, fill=0.0):
    """a with its `axis` grown to V, the old slices at positions `where`, the new ones fill."""
    shape = list(a.shape)
    shape[axis] = V
    out = np.full(shape, fill, dtype=a.dtype)
    index = [slice(None)] * a.ndim
    index[axis] = where
    out[tuple(index)] = a
    return out


def extend_vocab(ck, vocab):
    """The checkpoint ck with its vocabulary grown to vocab (a sorted superset):
    parameters, optimizer buffers and metadata. Returns ck itself when nothing is new."""
    if vocab == ck.vocab:
        return ck
    old, cfg = ck.config, ModelConfig(**dict(ck.config.to_dict(), vocab_size=len(vocab)))
    where = np.searchsorted([ord(ch) for ch in vocab], [ord(ch) for ch in ck.vocab])
    axes = _axes(old)

    def widen(params, bias):
        return {name: _widen(a, axes[name], where, len(vocab),
                             bias if name == "out.b" else 0.0) if name in axes else a
                for name, a in params.items()}

    arrays = {f"param/{k}": v for k, v in widen(ck.params, float(ck.params["out.b"].min())).items()}
    for key, a in ck.arrays.items():
        if key.startswith("opt/") and a.shape == (sum(v.size for v in ck.params.values()),):
            grown = widen(carve(a, old), 0.0)
            arrays[key] = np.concatenate([grown[name].ravel() for name, _ in param_shapes(cfg)])
        elif not key.startswith(("param/", "opt/")):
            arrays[key] = a
    return Checkpoint(dict(ck.meta, config=cfg.to_dict(), vocab=vocab), arrays)
