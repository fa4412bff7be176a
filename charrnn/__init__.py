"""charrnn: character-level RNN, LSTM and GRU language models on the CPU.

Layers of the package (see README "Code map"):
  kernels   rnn.py, lstm.py, gru.py, layers.py   numba, arrays in and out, no I/O
  model     model.py, optim.py, data.py, checkpoint.py
  loops     train.py, sample.py, evaluate.py
  CLI       cli.py (the only module that imports click)
"""

import os

__version__ = "0.1.0"

# One BLAS thread: the recurrence is a chain of small GEMMs, and OpenBLAS's own
# threads spin-wait between them; with another busy process on the machine that
# made a step 14x slower (40 steps of a 2x128 LSTM: 4.8 s with one BLAS thread,
# 67 s with two). charrnn uses the cores itself instead (threads.py:
# CHARRNN_THREADS). Set before numpy or scipy load their BLAS, which read it once.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


class CharrnnError(Exception):
    """An error caused by the user's input: the CLI prints its message on one line and exits 1."""
