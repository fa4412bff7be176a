"""Kernels shared by all cells: the nonlinearities (tanh, sigmoid, exp), the fused
softmax/cross-entropy, and the scatter-add that is the backward of a row gather
(embedding or one-hot).

Dimensions: M = T*N rows (every character of a chunk), V vocabulary size.

Constants are float32 (ONE, HALF): in a float32 kernel a Python literal would
promote every expression to float64; in a float64 kernel they are exact.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

ONE = np.float32(1.0)
HALF = np.float32(0.5)
# fast-math without nnan/ninf, so a NaN still propagates to the loss check. Kernels
# also take error_model="numpy": Python's model checks every division for zero,
# and that branch alone keeps LLVM from vectorizing a loop.
FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}

# tanh(x) ~ x P(x^2) / Q(x^2) on [-7.9, 7.9], saturated outside: the rational
# approximation used by Eigen and XLA for float32, max abs error 4e-7 (a few ulp).
# Being plain arithmetic it vectorizes, where a call to tanhf does not.
_TANH_CLAMP = np.float32(7.90531110763549805)
_A = [np.float32(c) for c in (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                              5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
                              -2.76076847742355e-16)]
_B = [np.float32(c) for c in (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                              1.19825839466702e-06)]
A1, A3, A5, A7, A9, A11, A13 = _A
B0, B2, B4, B6 = _B


def tanh(x):
    """tanh: the rational approximation for float32, np.tanh for float64 (gradient checks)."""
    return np.tanh(x)


@overload(tanh, inline="always", jit_options={"fastmath": FAST, "error_model": "numpy"})
def _tanh(x):
    if x == types.float32:
        def tanh_f32(x):
            x = min(max(x, -_TANH_CLAMP), _TANH_CLAMP)
            x2 = x * x
            p = x * (A1 + x2 * (A3 + x2 * (A5 + x2 * (A7 + x2 * (A9 + x2 * (A11 + x2 * A13))))))
            q = B0 + x2 * (B2 + x2 * (B4 + x2 * B6))
            return p / q
        return tanh_f32
    return lambda x: np.tanh(x)


# exp(x) = 2^n e^r, n = round(x / ln 2), |r| <= ln 2 / 2, e^r by Cephes' expf
# polynomial (under 3 ulp in all); 2^n made by placing n + 127 in a float32's exponent
# bits. Clamped to [-87, 88], where 2^n stays a normal float: softmax takes it at
# x - max <= 0, where e^-87 (1.6e-38) against a sum of at least 1 is zero.
EXP_LO, EXP_HI = np.float32(-87.0), np.float32(88.0)
_LOG2E = np.float32(1.44269504088896341)
_LN2_HI, _LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)  # ln 2, in two parts
_P = [np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                              1.6666665459e-1, 5.0000001201e-1)]
P0, P1, P2, P3, P4, P5 = _P


@intrinsic
def _float32_from_bits(typingctx, bits):
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return sig, codegen


def exp(x):
    """exp: Cephes' expf made of arithmetic for float32, np.exp for float64."""
    return np.exp(x)


@overload(exp, inline="always", jit_options={"fastmath": FAST, "error_model": "numpy"})
def _exp(x):
    if x == types.float32:
        def exp_f32(x):
            x = min(max(x, EXP_LO), EXP_HI)
            n = np.floor(x * _LOG2E + HALF)
            r = x - n * _LN2_HI - n * _LN2_LO
            p = ((((P0 * r + P1) * r + P2) * r + P3) * r + P4) * r + P5
            p = p * r * r + r + ONE
            return p * _float32_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))
        return exp_f32
    return lambda x: np.exp(x)


@njit(cache=True, inline="always", error_model="numpy")
def sigmoid(x):
    # the identity sigmoid(x) = (1 + tanh(x/2)) / 2 reuses the vectorizable tanh
    return HALF + HALF * tanh(HALF * x)


@njit(cache=True, inline="always", error_model="numpy")
def row_max(row):
    """The largest element, in four running maxima: one chain of compares waits on
    each before (LLVM does not reorder them without fast-math's no-NaNs, which the
    loss check needs)."""
    V = row.shape[0]
    m0 = m1 = m2 = m3 = row[0]
    v = 0
    while v + 4 <= V:
        m0, m1 = max(m0, row[v]), max(m1, row[v + 1])
        m2, m3 = max(m2, row[v + 2]), max(m3, row[v + 3])
        v += 4
    while v < V:
        m0 = max(m0, row[v])
        v += 1
    return max(max(m0, m1), max(m2, m3))


@njit(cache=True, inline="always", fastmath=FAST, error_model="numpy")
def max_and_sum_exp(row):
    """(max, sum of exp(row - max)): the stable pieces of log-sum-exp. The max is
    subtracted before exp, so no logit is large enough to overflow."""
    mx = row_max(row)
    s = 0.0
    for v in range(row.shape[0]):
        s += exp(row[v] - mx)
    return mx, s


@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
def softmax_xent(logits, targets, scale, lo, hi):
    """Cross-entropy of the softmax of each row of logits against targets, fused,
    in place: logits (M, V) becomes scale * d(loss)/d(logits), which is
    scale * (p - onehot); targets: (M,) ids. Rows lo..hi only (threads.run splits
    them). Returns their summed loss in nats (float64). In place, each loop reads
    and writes one array, so LLVM vectorizes it (two arrays that may be one kept
    it to one element at a time)."""
    V = logits.shape[1]
    total = np.float64(0.0)  # float64 without the compiler too (NumPy keeps float32 sums float32)
    for m in range(lo, hi):
        row = logits[m]
        mx = row_max(row)  # subtracted before exp, so nothing overflows
        y = targets[m]
        total -= row[y] - mx  # read before the row is overwritten
        s = 0.0
        for v in range(V):
            e = exp(row[v] - mx)
            row[v] = e
            s += e
        total += np.log(s)
        f = scale / s
        for v in range(V):
            row[v] *= f
        row[y] -= scale
    return total


@njit(cache=True, fastmath=FAST, error_model="numpy")
def xent(logits, targets):
    """The summed cross-entropy alone, for evaluation: no gradient is written."""
    total = np.float64(0.0)  # as in softmax_xent
    for m in range(logits.shape[0]):
        mx, s = max_and_sum_exp(logits[m])
        total += np.log(s) - (logits[m, targets[m]] - mx)
    return total


@njit(cache=True, error_model="numpy")
def scatter_add_rows(dW, ids, drows):
    """dW[ids[m]] += drows[m] for every m: the gradient of the gather W[ids].
    dW: (V, K); ids: (M,); drows: (M, K). Sequential, so repeated ids add up."""
    M, K = drows.shape
    for m in range(M):
        r = ids[m]
        for k in range(K):
            dW[r, k] += drows[m, k]
