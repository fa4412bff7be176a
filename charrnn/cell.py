"""The one table entry each cell module fills in (rnn.RNN, lstm.LSTM, gru.GRU, esn.ESN).

model.CELLS collects them by kind; the model and the sampler look a cell up there
rather than branching on its kind. A layer's forward saves what its backward needs
in a dict under the names `saves`, so nothing reads it by position.

    forward(xw, Wh, state, extra) -> h (T, N, H), saved {name: array}, state after (S, N, H)
    backward(saved, dh, Wh, state) -> da, dah, dstate, {bias name: gradient (.,)}

xw (T, N, G): the layer's input projections x Wx + b; state (S, N, H): what it
carried in, in the order `states`; extra: the layer's parameter named `extra`
(or None). backward returns da, the gradient of x Wx + b (T, N, G), dah, that of
h_prev Wh (the same array unless the cell tells them apart), and the gradient of
the state carried in.
"""
from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class Cell:
    kind: str                    # ModelConfig.kind
    gates: tuple                 # the activated gates it saves, in packing order (named_states)
    blocks: int                  # G = blocks * H columns of Wx, Wh and b
    states: tuple                # what a layer carries from chunk to chunk: ("h",) or ("h", "c")
    saves: tuple                 # the names forward saves for backward
    forward: Callable
    backward: Optional[Callable]  # None: trained without backpropagation through time
    step: int                    # its one-step cell in sample.cell_step, picked by number there
    extra: str = ""              # a per-unit parameter besides Wx, Wh, b ("bhn", "leak")
