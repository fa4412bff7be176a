"""Upper bounds on what one command may be asked to hold in memory. Each is named
in the message that refuses more; the CLI's option ranges use them, so they stay
cheap to import (no numba)."""
from charrnn import CharrnnError

MAX_BEAM = 10_000          # beams of sample --beam
MAX_NUM_SAMPLES = 10_000   # samples of one sample --num-samples batch
MAX_SHIFTS = 10_000        # circular shifts of inspect-cells' null (p values down to 1e-4)
HELD_CHARS = 50_000_000    # characters of samples 2..N held until sample 1 is done
BEAM_BYTES = 1 << 30       # back-pointers, states and candidates of one beam search
NULL_BYTES = 1 << 30       # inspect-cells' sums of every unit against every shifted feature


def check_sample(cfg, length, num_samples, beam):
    """Refuses a sample request whose memory would exceed the bounds above."""
    from charrnn.model import STATES
    held = (num_samples - 1) * length
    if held > HELD_CHARS:
        raise CharrnnError(f"--num-samples {num_samples} x --length {length:,} would hold "
                           f"{held:,} characters until the first sample ends (the others "
                           f"follow it); the limit is {HELD_CHARS:,}: lower either")
    # (T, W) parents and characters in int64, two (L, S, W, H) float32 states, and
    # the (W, V) logits (float32) and candidates (float64)
    need = beam * (16 * length + 8 * cfg.layers * STATES[cfg.kind] * cfg.hidden +
                   12 * cfg.vocab_size)
    if need > BEAM_BYTES:
        raise CharrnnError(f"--beam {beam} over --length {length:,} needs {need / 2**30:,.1f} GiB; "
                           f"the limit is {BEAM_BYTES / 2**30:g} GiB: lower --beam or --length")


def check_shifts(cells, hypotheses, shifts):
    """Refuses an inspect-cells null whose running sums (float64, every recorded cell
    against every hypothesis at every shift) would exceed NULL_BYTES."""
    need = 8 * cells * hypotheses * (shifts + 1)
    if need > NULL_BYTES:
        raise CharrnnError(f"--shifts {shifts} over {cells:,} cells and {hypotheses} hypotheses "
                           f"needs {need / 2**30:,.1f} GiB of sums; the limit is "
                           f"{NULL_BYTES / 2**30:g} GiB: lower --shifts or pass --only")
