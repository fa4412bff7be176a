"""charrnn: character-level RNN, LSTM and GRU language models on the CPU.

Layers of the package (see README "Code map"):
  kernels   rnn.py, lstm.py, gru.py, layers.py   numba, arrays in and out, no I/O
  model     model.py, optim.py, data.py, checkpoint.py
  loops     train.py, sample.py, evaluate.py
  CLI       cli.py (the only module that imports click)
"""

import os

__version__ = "0.1.0"

# One BLAS thread unless asked (CHARRNN_THREADS or OPENBLAS_NUM_THREADS): the
# recurrence is a chain of small GEMMs, and OpenBLAS's threads spin-wait between
# them; with another busy process on the machine that made a step 14x slower
# (measured: 40 steps of a 2x128 LSTM, 4.8 s with one thread, 67 s with two).
# Set before numpy or scipy load their BLAS, which read it once.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, os.environ.get("CHARRNN_THREADS", "1"))


class CharrnnError(Exception):
    """An error caused by the user's input: the CLI prints its message on one line and exits 1."""
