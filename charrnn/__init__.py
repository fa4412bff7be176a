"""charrnn: character-level RNN, LSTM and GRU language models on the CPU.

Layers of the package (see README "Code map"):
  kernels   rnn.py, lstm.py, gru.py, layers.py   numba, arrays in and out, no I/O
  model     model.py, optim.py, data.py, checkpoint.py
  loops     train.py, sample.py, evaluate.py
  CLI       cli.py (the only module that imports click)

Importing charrnn changes nothing in the process: setup.configure(), which the CLI
calls first, sets up BLAS threads, numba's kernel cache and the allocator.
"""

__version__ = "0.1.0"


class CharrnnError(Exception):
    """An error caused by the user's input: the CLI prints its message on one line and exits 1."""
