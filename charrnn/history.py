"""The validation history a checkpoint keeps (meta "val_history", docs/checkpoint.md):
[step, validation loss] pairs in step order, at most CAP of them, and its sketch in
one line of text, which `train` prints at the end and `info` shows.

    >>> sparkline([[200, 3.0], [400, 2.0], [600, 1.5], [800, 1.4]])
    '█▄▁▁'
"""
import math

CAP = 64  # pairs kept; a longer run keeps every second one, so the file stays small
BARS = "▁▂▃▄▅▆▇█"


def append(history, step, loss):
    """history with [step, loss] added; past CAP pairs, every second one is dropped,
    counting back from the newest, but never the lowest loss."""
    h = [p for p in history if p[0] < step] + [[int(step), float(loss)]]
    if len(h) > CAP:
        best = min(range(len(h)), key=lambda i: h[i][1])
        h = [p for i, p in enumerate(h) if (len(h) - 1 - i) % 2 == 0 or i == best]
    return h


def damaged(history):
    """Why a loaded val_history is not a valid one, or None."""
    if not isinstance(history, list) or len(history) > CAP:
        return f"it is not a list of at most {CAP} pairs"
    for p in history:
        if not (isinstance(p, list) and len(p) == 2 and type(p[0]) is int and p[0] >= 0 and
                type(p[1]) in (int, float) and math.isfinite(p[1])):
            return f"{p!r} is not a [step, loss] pair"
    steps = [p[0] for p in history]
    if steps != sorted(set(steps)):
        return "its steps are not increasing"
    return None


def sparkline(history, width=40):
    """The losses as one bar each, the lowest the shortest; a history longer than width
    is spread evenly over the steps, each column the mean of the losses in its span."""
    if not history:
        return ""
    values = [v for _, v in history]
    if len(history) > width:
        first, span = history[0][0], history[-1][0] - history[0][0]
        cols = [[] for _ in range(width)]
        for s, v in history:
            cols[min(width - 1, (s - first) * width // span)].append(v)
        values = []
        for c in cols:  # an empty column continues the one before (the first never is)
            values.append(sum(c) / len(c) if c else values[-1])
    lo, hi = min(values), max(values)
    top = len(BARS) - 1
    return "".join(BARS[round((v - lo) / (hi - lo) * top) if hi > lo else top // 2] for v in values)


def summary(history, best=None):
    """'▇▄▂▁ 3.261 → 2.047, best 2.0470 at step 900', or '' without a history."""
    if not history:
        return ""
    low = min(history, key=lambda p: p[1])
    best = low[1] if best is None else best
    at = f" at step {low[0]:,}" if low[1] <= best else ""
    return (f"{sparkline(history)} {history[0][1]:.3f} → {history[-1][1]:.3f}, "
            f"best {best:.4f}{at}")
