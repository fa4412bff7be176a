"""The checkpoint format: round trips, the worked example of docs/checkpoint.md,
damaged files (each one CharrnnError, nothing unpickled) and atomic writes."""
import dataclasses
import io
import json
import math
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from charrnn import CharrnnError, checkpoint, synth, train
from charrnn.model import (GATES, STATES, ModelConfig, carve, forward, frozen, init_params,
                           param_shapes, zero_state)

DOC = Path(__file__).resolve().parent.parent / "docs" / "checkpoint.md"
KINDS = [("rnn", 0), ("lstm", 0), ("gru", 0), ("lstm", 5), ("gru", 5), ("esn", 0), ("esn", 5)]
META_KEYS = {"format", "version", "config", "train", "vocab", "step", "epoch", "steps_per_epoch",
             "train_chars", "val_chars", "train_loss", "val_loss", "best_val_loss", "elapsed_s",
             "validations_since_best", "smooth_seq_loss", "val_history",
             "rng", "saved_at", "charrnn", "start_context"}


def make_run(folder, kind="lstm", embed=0, layers=2, hidden=8, seed=0):
    cfg = ModelConfig(kind=kind, hidden=hidden, layers=1 if kind == "esn" else layers, embed=embed)
    tc = train.TrainConfig(batch_size=4, seq_length=8, max_steps=3, eval_every=2, seed=seed)
    run = train.Run(synth.generate(3000), str(Path(folder) / "model.npz"), cfg, tc)
    return train.run(run, progress=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{(kind, embed): path of a checkpoint written by a 3-step training run}."""
    out = {}
    for kind, embed in KINDS:
        folder = tmp_path_factory.mktemp(f"{kind}{embed}")
        make_run(folder, kind, embed)
        out[kind, embed] = folder / "model.npz"
    return out


@pytest.fixture
def ckpt(trained, tmp_path):
    """A private copy of the LSTM checkpoint, free to damage."""
    path = tmp_path / "model.npz"
    path.write_bytes(trained["lstm", 0].read_bytes())
    return path


def members(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write_npz(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def with_meta(arrays, meta):
    return dict(arrays, __meta__=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8))


def meta_of(arrays):
    return json.loads(arrays["__meta__"].tobytes().decode("utf-8"))


# -- what a training run writes --------------------------------------------------

@pytest.mark.parametrize("kind,embed", KINDS)
def test_trained_checkpoint_has_the_documented_layout(trained, kind, embed):
    arrays = members(trained[kind, embed])
    meta = meta_of(arrays)
    assert set(meta) == META_KEYS
    assert meta["format"] == "charrnn-checkpoint" and meta["version"] == checkpoint.VERSION == 1
    cfg = ModelConfig(**meta["config"])
    L = 1 if kind == "esn" else 2
    assert (cfg.kind, cfg.embed, cfg.layers, cfg.hidden) == (kind, embed, L, 8)
    assert cfg.vocab_size == len(meta["vocab"]) and meta["vocab"] == sorted(set(synth.generate(3000)))
    assert meta["step"] == 3 and meta["epoch"] == pytest.approx(3 / meta["steps_per_epoch"])
    assert meta["train_chars"] + meta["val_chars"] == 3000
    assert math.isfinite(meta["train_loss"]) and math.isfinite(meta["val_loss"])
    # the best is step 2's, the one scheduled validation (every 2 steps); step 3's only reports
    best = checkpoint.load(trained[kind, embed].parent / "model.best.npz").meta
    assert best["step"] == 2 and meta["best_val_loss"] == best["val_loss"] != meta["val_loss"]
    V, E, H = cfg.vocab_size, embed, 8
    G = GATES[kind] * H
    expected = {"param/out.W": (H, V), "param/out.b": (V,), "state/train": (L, STATES[kind], 4, H)}
    if E:
        expected["param/embed.W"] = (V, E)
    for l in range(L):
        expected.update({f"param/L{l}.Wx": ((E or V) if l == 0 else H, G),
                         f"param/L{l}.Wh": (H, G), f"param/L{l}.b": (G,)})
        if kind in ("gru", "esn"):
            expected[f"param/L{l}.{'bhn' if kind == 'gru' else 'leak'}"] = (H,)
    P = sum(int(np.prod(s)) for k, s in expected.items()
            if k.startswith("param/") and not (kind == "esn" and k.startswith("param/L0.")))
    expected.update({"opt/m": (P,), "opt/v": (P,)})  # adam
    assert {k: a.shape for k, a in arrays.items() if k != "__meta__"} == expected
    assert all(a.dtype == np.float32 for k, a in arrays.items() if k != "__meta__")
    assert arrays["__meta__"].dtype == np.uint8


def test_trained_checkpoint_loads_and_resumes_bit_for_bit(trained, tmp_path):
    """The saved run continued for 3 more steps equals an uninterrupted 6-step run."""
    ck = checkpoint.load(trained["gru", 5])
    cfg = ck.config
    tc = train.TrainConfig.from_dict(dict(ck.meta["train"], max_steps=6))
    text = synth.generate(3000)
    resumed = train.run(train.Run(text, str(tmp_path / "r.npz"), cfg, tc, resume=ck), progress=False)
    whole = train.run(train.Run(text, str(tmp_path / "w.npz"), ModelConfig(kind="gru", hidden=8,
                                layers=2, embed=5), tc), progress=False)
    np.testing.assert_array_equal(resumed.flat, whole.flat)
    np.testing.assert_array_equal(resumed.state, whole.state)


# -- round trip ------------------------------------------------------------------

@pytest.mark.parametrize("kind,embed", KINDS)
def test_save_load_round_trip(tmp_path, kind, embed):
    L = 1 if kind == "esn" else 2
    cfg = ModelConfig(kind=kind, vocab_size=6, hidden=3, layers=L, embed=embed)
    rng = np.random.default_rng(1)
    flat = init_params(cfg, rng)
    flat += rng.normal(0, 0.5, flat.shape).astype(np.float32)
    params = carve(flat, cfg)
    trained = flat.size - frozen(cfg)  # the optimizer's buffers cover what it trains
    extra = {"opt/m": rng.normal(size=trained).astype(np.float32),
             "state/train": rng.normal(size=(L, STATES[kind], 4, 3)).astype(np.float32)}
    meta = {"config": cfg.to_dict(), "vocab": list("\n az\xe9\u2603"), "step": 7, "val_loss": None,
            "train": {"lr": 0.002, "batch_size": 4}, "nested": {"x": [1, 2.5, "ü"]}}
    path = tmp_path / "rt.npz"
    checkpoint.save(str(path), params, meta, extra)
    ck = checkpoint.load(str(path))
    assert ck.meta == dict(meta, format="charrnn-checkpoint", version=1)
    assert ck.config == cfg and ck.vocab == list("\n az\xe9\u2603")
    assert list(ck.params) == [n for n, _ in param_shapes(cfg)]
    for name, a in params.items():
        assert ck.params[name].dtype == a.dtype
        np.testing.assert_array_equal(ck.params[name], a)
        np.testing.assert_array_equal(ck.arrays[f"param/{name}"], a)
    for name, a in extra.items():
        np.testing.assert_array_equal(ck.arrays[name], a)
    assert "__meta__" not in ck.arrays
    assert sorted(os.listdir(tmp_path)) == ["rt.npz"]


def test_save_overwrites_and_meta_format_cannot_be_overridden(ckpt):
    ck = checkpoint.load(str(ckpt))
    checkpoint.save(str(ckpt), ck.params, dict(ck.meta, format="other", version=99, step=42))
    again = checkpoint.load(str(ckpt))
    assert (again.meta["format"], again.meta["version"], again.meta["step"]) == \
        ("charrnn-checkpoint", 1, 42)
    assert "opt/m" not in again.arrays


# -- the documented worked example -------------------------------------------------

def doc_block(heading):
    """The first ```python block after the line '## heading' of docs/checkpoint.md."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}")
    m = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert m, f"no python block under {heading}"
    return m.group(1)


@pytest.mark.parametrize("kind,embed", KINDS)
def test_doc_worked_example_runs_and_agrees_with_charrnn(trained, tmp_path, monkeypatch, capsys,
                                                         kind, embed):
    code = doc_block("Worked example")
    assert "allow_pickle=False" in code and 'path, prime = "model.npz", "the "' in code
    (tmp_path / "model.npz").write_bytes(trained[kind, embed].read_bytes())
    monkeypatch.chdir(tmp_path)
    ns = {"__name__": "doc_example"}
    exec(compile(code, str(DOC), "exec"), ns)
    lines = capsys.readouterr().out.splitlines()

    ck = checkpoint.load(str(tmp_path / "model.npz"))
    p = {k: v.astype(np.float64) for k, v in ck.params.items()}
    ids = np.array([[ck.vocab.index(ch)] for ch in "the "])  # (T, 1)
    logits, _, state = forward(ck.config, p, ids, zero_state(ck.config, 1, np.float64))
    expected = np.exp(logits[-1] - logits[-1].max())
    expected /= expected.sum()
    np.testing.assert_allclose(ns["probs"], expected, rtol=1e-10, atol=1e-13)
    for l in range(ck.config.layers):
        for s, v in enumerate(ns["state"][l]):
            np.testing.assert_allclose(v, state[l, s, 0], rtol=1e-10, atol=1e-13)
    top = np.argsort(-expected)[:5]
    assert len(lines) == 5
    shown = [line.rsplit(maxsplit=1) for line in lines]
    assert [ch.strip() for ch, _ in shown] == [repr(ck.vocab[k]) for k in top]
    assert [float(pr) for _, pr in shown] == pytest.approx(expected[top], abs=1e-4)


def test_doc_names_every_meta_key_and_array(trained):
    text = DOC.read_text(encoding="utf-8")
    for key in META_KEYS:
        assert f"`{key}`" in text, key
    for key in members(trained["gru", 5]):
        name = re.sub(r"L\d+\.", "L{l}.", key)
        assert f"`{name}`" in text, key
    assert "i, f, o, g" in text and "r, z, n" in text


def test_doc_lists_every_training_setting():
    text = DOC.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `train` |"))
    listed = set(re.findall(r"`(\w+)`", row.split("TrainConfig", 1)[1]))
    assert listed == {f.name for f in dataclasses.fields(train.TrainConfig)}


# -- damaged files -------------------------------------------------------------------

def assert_refused(path, match=None):
    with pytest.raises(CharrnnError, match=match) as e:
        checkpoint.load(str(path))
    assert "\n" not in str(e.value)


def test_missing_file_and_directory(tmp_path):
    assert_refused(tmp_path / "nope.npz", "does not exist")
    assert_refused(tmp_path, "directory")


def test_not_an_npz(tmp_path):
    for name, data in [("empty.npz", b""), ("text.npz", b"hello, world\n" * 50),
                       ("zeros.npz", bytes(1000)), ("magic.npz", b"PK\x03\x04" + bytes(60))]:
        (tmp_path / name).write_bytes(data)
        assert_refused(tmp_path / name)


def test_a_plain_npy_file_is_refused(tmp_path):
    path = tmp_path / "a.npz"
    np.save(open(path, "wb"), np.arange(5.0))
    assert_refused(path)


def test_truncated_at_many_offsets(ckpt, tmp_path):
    data = ckpt.read_bytes()
    offsets = sorted(set(range(0, len(data), max(1, len(data) // 97))) |
                     {1, 2, 3, 4, 30, 64, 100, 128, len(data) - 1, len(data) - 22, len(data) - 23})
    bad = tmp_path / "cut.npz"
    for n in offsets:
        bad.write_bytes(data[:n])
        with pytest.raises(CharrnnError):
            checkpoint.load(str(bad))


def test_corrupted_bytes_in_an_array(ckpt, tmp_path):
    """A flipped byte inside a stored member fails the zip's CRC check."""
    data = bytearray(ckpt.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("param/out.W.npy")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.file_size - 5] ^= 0xFF
    bad = tmp_path / "flip.npz"
    bad.write_bytes(bytes(data))
    assert_refused(bad)


def test_missing_meta(ckpt, tmp_path):
    arrays = members(ckpt)
    del arrays["__meta__"]
    write_npz(tmp_path / "b.npz", arrays)
    assert_refused(tmp_path / "b.npz", "no charrnn metadata")


def test_meta_of_the_wrong_dtype(ckpt, tmp_path):
    arrays = members(ckpt)
    arrays["__meta__"] = arrays["__meta__"].astype(np.int64)
    write_npz(tmp_path / "b.npz", arrays)
    assert_refused(tmp_path / "b.npz")


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe\x00garbage", b'{"format": "charrnn-'])
def test_meta_not_json(ckpt, tmp_path, raw):
    arrays = dict(members(ckpt), __meta__=np.frombuffer(raw, dtype=np.uint8))
    write_npz(tmp_path / "b.npz", arrays)
    assert_refused(tmp_path / "b.npz", "metadata")


@pytest.mark.parametrize("change", [
    {"format": "something-else"}, {"format": None}, {"version": "1"}, {"version": None},
], ids=["format", "format-null", "version-str", "version-null"])
def test_meta_with_wrong_format_or_version(ckpt, tmp_path, change):
    arrays = members(ckpt)
    write_npz(tmp_path / "b.npz", with_meta(arrays, dict(meta_of(arrays), **change)))
    assert_refused(tmp_path / "b.npz")


def test_meta_that_is_not_an_object(ckpt, tmp_path):
    arrays = members(ckpt)
    for meta in ([1, 2], "charrnn-checkpoint", 3, None):
        write_npz(tmp_path / "b.npz", with_meta(arrays, meta))
        assert_refused(tmp_path / "b.npz")


def test_newer_version_is_refused_with_a_hint(ckpt, tmp_path):
    arrays = members(ckpt)
    write_npz(tmp_path / "b.npz", with_meta(arrays, dict(meta_of(arrays), version=2)))
    assert_refused(tmp_path / "b.npz", "version 2.*upgrade")


def test_meta_with_an_unknown_kind(ckpt, tmp_path):
    arrays = members(ckpt)
    meta = meta_of(arrays)
    meta["config"]["kind"] = "transformer"
    write_npz(tmp_path / "b.npz", with_meta(arrays, meta))
    assert_refused(tmp_path / "b.npz")


def test_vocab_that_disagrees_with_the_config(ckpt, tmp_path):
    arrays = members(ckpt)
    meta = meta_of(arrays)
    meta["vocab"] = meta["vocab"][:-1]
    write_npz(tmp_path / "b.npz", with_meta(arrays, meta))
    assert_refused(tmp_path / "b.npz")


@pytest.mark.parametrize("vocab", [lambda v: v[::-1], lambda v: [v[0]] + v[:-1], lambda v: v[:-1] + ["ab"],
                                   lambda v: v[:-1] + [7], lambda v: "".join(v)],
                         ids=["unsorted", "duplicate", "two-chars", "not-a-string", "a-string"])
def test_meta_with_a_damaged_vocab(ckpt, tmp_path, vocab):
    arrays = members(ckpt)
    meta = meta_of(arrays)
    write_npz(tmp_path / "b.npz", with_meta(arrays, dict(meta, vocab=vocab(meta["vocab"]))))
    assert_refused(tmp_path / "b.npz", "vocab")


@pytest.mark.parametrize("change", [{"hidden": 0}, {"hidden": "8"}, {"layers": -1}, {"layers": 10 ** 9},
                                    {"embed": 2.5}, {"vocab_size": 10 ** 12}, {"dropout": 1.5}])
def test_meta_with_config_values_out_of_range(ckpt, tmp_path, change):
    arrays = members(ckpt)
    meta = meta_of(arrays)
    meta["config"].update(change)
    write_npz(tmp_path / "b.npz", with_meta(arrays, meta))
    assert_refused(tmp_path / "b.npz", "config")


@pytest.mark.parametrize("drop", ["config", "vocab"])
def test_meta_missing_config_or_vocab(ckpt, tmp_path, drop):
    arrays = members(ckpt)
    meta = meta_of(arrays)
    del meta[drop]
    write_npz(tmp_path / "b.npz", with_meta(arrays, meta))
    assert_refused(tmp_path / "b.npz", drop)


@pytest.mark.parametrize("value", ["57.2", None, [1.0]])
def test_meta_with_a_damaged_smooth_seq_loss(ckpt, tmp_path, value):
    arrays = members(ckpt)
    write_npz(tmp_path / "b.npz", with_meta(arrays, dict(meta_of(arrays), smooth_seq_loss=value)))
    assert_refused(tmp_path / "b.npz", "smooth_seq_loss")


@pytest.mark.parametrize("config", [None, 5, {"kind": "lstm", "nonsense": 1}])
def test_meta_with_a_damaged_config(ckpt, tmp_path, config):
    arrays = members(ckpt)
    write_npz(tmp_path / "b.npz", with_meta(arrays, dict(meta_of(arrays), config=config)))
    assert_refused(tmp_path / "b.npz")


@pytest.mark.parametrize("context", [5, ["a"], "\u4e2d", "a" * 10_001])
def test_meta_with_a_damaged_start_context(ckpt, tmp_path, context):
    arrays = members(ckpt)
    write_npz(tmp_path / "b.npz", with_meta(arrays, dict(meta_of(arrays), start_context=context)))
    assert_refused(tmp_path / "b.npz", "start_context")


@pytest.mark.parametrize("name", ["param/L0.Wx", "param/L1.b", "param/out.W", "param/out.b"])
def test_missing_param_array(ckpt, tmp_path, name):
    arrays = members(ckpt)
    del arrays[name]
    write_npz(tmp_path / "b.npz", arrays)
    assert_refused(tmp_path / "b.npz", f"lacks the array {re.escape(name)}")


@pytest.mark.parametrize("name,shape", [("param/L0.Wx", lambda s: (s[0], s[1] + 1)),
                                        ("param/L0.Wh", lambda s: s[::-1] if s[0] != s[1] else (1, 1)),
                                        ("param/out.b", lambda s: (s[0] - 1,)),
                                        ("param/L1.b", lambda s: (1, s[0])),
                                        ("param/out.W", lambda s: ())])
def test_param_of_the_wrong_shape(ckpt, tmp_path, name, shape):
    arrays = members(ckpt)
    arrays[name] = np.zeros(shape(arrays[name].shape), dtype=np.float32)
    write_npz(tmp_path / "b.npz", arrays)
    assert_refused(tmp_path / "b.npz", re.escape(name))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.complex64, np.float16])
def test_param_of_a_non_float_dtype(ckpt, tmp_path, dtype):
    arrays = members(ckpt)
    arrays["param/L0.Wh"] = arrays["param/L0.Wh"].astype(dtype)
    write_npz(tmp_path / "b.npz", arrays)
    assert_refused(tmp_path / "b.npz", "param/L0.Wh")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_param_with_non_finite_values(ckpt, tmp_path, bad):
    arrays = members(ckpt)
    arrays["param/L1.Wx"][2, 3] = bad
    write_npz(tmp_path / "b.npz", arrays)
    assert_refused(tmp_path / "b.npz", "param/L1.Wx")


@pytest.mark.parametrize("which", ["all", "one"])
def test_float64_params_are_accepted_as_float32(ckpt, tmp_path, which):
    """float64 parameters (all, or one among float32 ones) load, as float32: the
    kernels need one dtype, and a mix would fail in the forward pass."""
    arrays = {k: (a.astype(np.float64) if k.startswith("param/") and
                  (which == "all" or k == "param/out.W") else a)
              for k, a in members(ckpt).items()}
    write_npz(tmp_path / "b.npz", arrays)
    ck = checkpoint.load(str(tmp_path / "b.npz"))
    assert {a.dtype for a in ck.params.values()} == {np.dtype(np.float32)}
    np.testing.assert_allclose(ck.params["out.W"], arrays["param/out.W"], rtol=1e-6)


UNPICKLED = []


def _record_unpickling(what):
    UNPICKLED.append(what)


class Bomb:
    """Unpickling this records that it happened: the loader must never do it."""

    def __reduce__(self):
        return (_record_unpickling, ("unpickled",))


@pytest.mark.parametrize("name", ["param/out.b", "opt/m", "something/else"])
def test_object_arrays_are_never_unpickled(ckpt, tmp_path, name):
    arrays = members(ckpt)
    obj = np.empty(3, dtype=object)
    obj[:] = [Bomb(), Bomb(), 1.5]
    arrays[name] = obj
    path = tmp_path / "evil.npz"
    np.savez(path, **arrays)  # np.savez pickles object arrays
    with np.load(path, allow_pickle=True) as z:  # prove the file really holds a live pickle
        assert z[name].dtype == object
    assert UNPICKLED == ["unpickled", "unpickled"]
    UNPICKLED.clear()
    assert_refused(path)
    assert UNPICKLED == []


def test_object_array_meta_is_refused(ckpt, tmp_path):
    arrays = members(ckpt)
    meta = np.empty(1, dtype=object)
    meta[0] = meta_of(arrays)
    np.savez(tmp_path / "evil.npz", **dict(arrays, __meta__=meta))
    assert_refused(tmp_path / "evil.npz")


BAD_META = [  # (field, value, what the one line says)
    ("epoch", "3", "epoch = '3' is not a finite number"),
    ("train_loss", [1.5], "train_loss"),
    ("train_loss", float("nan"), "train_loss = nan is not a finite number"),
    ("val_loss", "x", "val_loss"),
    ("best_val_loss", {}, "best_val_loss"),
    ("step", -1, "step = -1 is out of range"),
    ("step", 2.5, "step = 2.5 is not an integer"),
    ("step", True, "step = True is not an integer"),
    ("rng", 5, "rng = 5 is not an object"),
    ("rng", {"bit_generator": "PCG64"}, "rng is not a PCG64 generator state"),
    ("rng", {"bit_generator": "PCG64", "state": {"state": -1, "inc": 1},
             "has_uint32": 0, "uinteger": 0}, "rng is not a PCG64"),
    ("train", [], "train is not an object"),
    ("train.batch_size", 0, "train.batch_size = 0 is out of range"),
    ("train.seq_length", -5, "train.seq_length = -5 is out of range"),
    ("train.optimizer", "adamw", "train.optimizer = 'adamw' is not one of adam"),
    ("train.lr", -0.5, "train.lr = -0.5 is out of range (at least 0)"),
    ("train.lr", float("inf"), "train.lr = inf is not a finite number"),
    ("train.lr", "0.1", "train.lr"),
    ("train.seed", -1, "train.seed = -1"),
    ("elapsed_s", -3.0, "elapsed_s = -3.0 is out of range"),
    ("validations_since_best", "2", "validations_since_best"),
    ("train_chars", 1.5, "train_chars"),
    ("config.dropout", float("nan"), "config.dropout"),
    ("config.hidden", True, "config.hidden"),
    ("vocab", "surrogates", "surrogate code points"),
]


@pytest.mark.parametrize("field,value,says", BAD_META, ids=[f"{f}={v!r}"[:40] for f, v, _ in BAD_META])
def test_every_metadata_field_is_checked_at_load(ckpt, tmp_path, field, value, says):
    arrays = members(ckpt)
    meta = meta_of(arrays)
    if value == "surrogates":  # as many lone surrogates as the model has characters
        value = [chr(0xD800 + i) for i in range(len(meta["vocab"]))]
    *outer, key = field.split(".")
    (meta[outer[0]] if outer else meta)[key] = value
    write_npz(tmp_path / "b.npz", with_meta(arrays, meta))
    assert_refused(tmp_path / "b.npz", re.escape(says))


def test_metadata_nested_past_the_parser_is_one_line(ckpt, tmp_path):
    arrays = members(ckpt)
    text = json.dumps(meta_of(arrays))[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    arrays["__meta__"] = np.frombuffer(text.encode(), np.uint8)
    write_npz(tmp_path / "b.npz", arrays)
    assert_refused(tmp_path / "b.npz", "nested too deeply")


def test_missing_optional_fields_get_their_defaults(ckpt, tmp_path):
    arrays = members(ckpt)
    meta = {k: v for k, v in meta_of(arrays).items() if k in ("format", "version", "config", "vocab")}
    del arrays["state/train"]  # its batch size is the default's no more
    write_npz(tmp_path / "b.npz", with_meta(arrays, meta))
    ck = checkpoint.load(str(tmp_path / "b.npz"))
    assert ck.meta["step"] == 0 and ck.meta["train"] == {} and "rng" not in ck.meta


def test_float64_weights_beyond_float32_are_refused(ckpt, tmp_path):
    arrays = members(ckpt)
    arrays["param/out.W"] = arrays["param/out.W"].astype(np.float64)
    arrays["param/out.W"][0, 0] = 1e300  # finite in float64, inf in float32
    write_npz(tmp_path / "b.npz", arrays)
    assert_refused(tmp_path / "b.npz", "param/out.W holds NaN or infinite values "
                                       r"\(or values too large for float32\)")


@pytest.mark.parametrize("name", ["opt/m", "state/train"])
def test_optimizer_and_state_arrays_must_have_their_shapes(ckpt, tmp_path, name):
    arrays = members(ckpt)
    arrays[name] = arrays[name].reshape(-1)[:-1]
    write_npz(tmp_path / "b.npz", arrays)
    assert_refused(tmp_path / "b.npz", f"its array {name} is float32")


def test_a_member_the_format_does_not_define_is_refused_unread(ckpt, tmp_path):
    arrays = dict(members(ckpt), extra=np.zeros(3, np.float32))
    write_npz(tmp_path / "b.npz", arrays)
    assert_refused(tmp_path / "b.npz", "its member extra is not part of the charrnn-checkpoint")


def test_a_member_longer_than_its_header_is_refused(ckpt, tmp_path):
    """The .npy header of out.b says V floats; the member holds more bytes after them."""
    with zipfile.ZipFile(ckpt) as zin, zipfile.ZipFile(tmp_path / "b.npz", "w") as zout:
        for info in zin.infolist():
            extra = bytes(64) if info.filename == "param/out.b.npy" else b""
            zout.writestr(info.filename, zin.read(info) + extra)
    assert_refused(tmp_path / "b.npz", "param/out.b is longer than its header says")


def test_a_zip_directory_of_countless_members_is_refused_before_it_is_read(tmp_path):
    """100,000 empty members: zipfile made an object for each (tens of MB) before any check."""
    import tracemalloc
    with zipfile.ZipFile(tmp_path / "many.npz", "w") as zf:
        for i in range(100_000):
            zf.writestr(f"{i}.npy", b"")
    tracemalloc.start()
    try:
        assert_refused(tmp_path / "many.npz", "its zip directory claims")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


def test_a_device_as_checkpoint_is_refused(tmp_path):
    assert_refused("/dev/zero", "not a regular file")


def test_fortran_ordered_and_compressed_members_load(ckpt, tmp_path):
    """Any writer's valid .npz loads: deflated members (np.savez_compressed), and
    column-major arrays, read back with the same values."""
    arrays = members(ckpt)
    arrays["param/L0.Wh"] = np.asfortranarray(arrays["param/L0.Wh"])
    np.savez_compressed(tmp_path / "b.npz", **arrays)
    ck = checkpoint.load(str(tmp_path / "b.npz"))
    np.testing.assert_array_equal(ck.params["L0.Wh"], arrays["param/L0.Wh"])


# -- atomic writes ---------------------------------------------------------------------

def test_failed_save_leaves_the_old_file_and_no_temporary(ckpt, monkeypatch):
    before = ckpt.read_bytes()
    ck = checkpoint.load(str(ckpt))
    real_savez = np.savez

    def savez_then_fail(f, **arrays):
        real_savez(f, **arrays)  # the whole new file is written to the temporary...
        f.write(b"torn")
        raise OSError(28, "No space left on device")  # ...and then the disk fills

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(OSError, match="No space"):
        checkpoint.save(str(ckpt), ck.params, dict(ck.meta, step=99))
    assert ckpt.read_bytes() == before
    assert sorted(os.listdir(ckpt.parent)) == ["model.npz"]
    assert checkpoint.load(str(ckpt)).meta["step"] == 3


def test_interrupted_save_leaves_the_old_file_and_no_temporary(ckpt, monkeypatch):
    """Ctrl-C in the middle of writing (a BaseException, not an Exception)."""
    before = ckpt.read_bytes()
    ck = checkpoint.load(str(ckpt))

    def savez_interrupted(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez_interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(str(ckpt), ck.params, ck.meta)
    assert ckpt.read_bytes() == before
    assert sorted(os.listdir(ckpt.parent)) == ["model.npz"]


def test_failed_first_save_creates_nothing(tmp_path, monkeypatch):
    cfg = ModelConfig(kind="rnn", vocab_size=3, hidden=2, layers=1)
    params = carve(init_params(cfg, np.random.default_rng(0)), cfg)

    def fail(f, **arrays):
        raise ValueError("boom")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(ValueError):
        checkpoint.save(str(tmp_path / "new.npz"), params, {"config": cfg.to_dict()})
    assert os.listdir(tmp_path) == []


def test_failed_rename_leaves_the_old_file_and_no_temporary(ckpt, monkeypatch):
    before = ckpt.read_bytes()
    ck = checkpoint.load(str(ckpt))

    def replace_fails(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", replace_fails)
    with pytest.raises(PermissionError):
        checkpoint.save(str(ckpt), ck.params, ck.meta)
    assert ckpt.read_bytes() == before
    assert sorted(os.listdir(ckpt.parent)) == ["model.npz"]


def test_save_writes_through_a_temporary_in_the_same_folder(ckpt, monkeypatch):
    """The new file appears only by os.replace from the same folder (same filesystem)."""
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((os.path.dirname(os.path.abspath(src)), os.path.abspath(dst)))
        assert checkpoint.load(src).meta["step"] == 5  # complete before it is renamed
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    ck = checkpoint.load(str(ckpt))
    checkpoint.save(str(ckpt), ck.params, dict(ck.meta, step=5))
    assert seen == [(str(ckpt.parent), str(ckpt))]
    assert checkpoint.load(str(ckpt)).meta["step"] == 5
