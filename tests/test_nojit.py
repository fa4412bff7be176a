"""With NUMBA_DISABLE_JIT=1 every kernel runs as plain Python (the IR of packed.py
and native.py through their numpy fallbacks), for a debugger: a tiny model of each
kind trains, evaluates and samples that way, split across two threads by units (so
the barrier's fallback runs too), and lands close to the compiled result."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = """if True:
    import json
    from charrnn import setup
    setup.configure()
    from charrnn import synth
    from charrnn.evaluate import evaluate
    from charrnn.model import ModelConfig
    from charrnn.sample import Sampler
    from charrnn.train import Run, TrainConfig
    seen = {}
    for kind in ("rnn", "lstm", "gru"):
        cfg = ModelConfig(kind=kind, hidden=8, layers=2, embed=4, dropout=0.1)
        run = Run(synth.generate(3_000, seed=2), "unused.npz", cfg,
                  TrainConfig(batch_size=4, seq_length=12, seed=0))
        losses = [float(run.train_step()) for _ in range(3)]
        val, _ = evaluate(run.cfg, run.p, run.val_ids)
        sampler = Sampler(run.cfg, run.p, run.vocab)
        out = next(sampler.generate([0, 1], 40, num_samples=2, seed=5, top_k=6))
        beam, logp = sampler.beam([0, 1], 6, 3)
        seen[kind] = {"losses": losses, "val": float(val), "flat": run.flat.tolist(),
                      "sample": out.T.tolist(), "beam": beam.tolist(), "logp": logp}
    print(json.dumps(seen))
"""


def run_models(jit):
    env = {**os.environ, "CHARRNN_THREADS": "2", "CHARRNN_SPLIT": "units"}
    env.pop("NUMBA_DISABLE_JIT", None)
    if not jit:
        env["NUMBA_DISABLE_JIT"] = "1"
    p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                       timeout=900)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def both():
    return run_models(jit=False), run_models(jit=True)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_plain_python_matches_the_compiled_kernels(both, kind):
    python, compiled = both[0][kind], both[1][kind]
    np.testing.assert_allclose(python["losses"], compiled["losses"], rtol=1e-5)
    assert python["val"] == pytest.approx(compiled["val"], rel=1e-5)
    np.testing.assert_allclose(python["flat"], compiled["flat"], rtol=1e-4, atol=1e-6)
    # the same coins drawn against probabilities within float32 rounding: the same text
    assert python["sample"] == compiled["sample"]
    assert python["beam"] == compiled["beam"]
    assert python["logp"] == pytest.approx(compiled["logp"], rel=1e-5)
