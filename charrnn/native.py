"""What numba does not give the kernels by itself: numpy's own BLAS, and a barrier.

numba's np.dot calls the BLAS that SciPy bundles; numpy bundles a newer OpenBLAS
whose small GEMMs (a few rows against a few hundred columns) run faster on this
project's machines (benchmarks/RESULTS.md). The sampler's products go
through gemm() here; training's per-step products through packed.py, faster still.
Its cblas_sgemm and cblas_sgemv are found once per process, when the first ctx is
made (not at import), and their addresses are handed to the kernels as numbers in
their ctx array, so the compiled code holds no address and stays cacheable
(cache=True). Where numpy's BLAS cannot be found, the addresses are 0 and gemm()
falls back to np.dot; float64 (the gradient checks) always takes np.dot.

The atomics, the futex and the BLAS calls are LLVM IR (intrinsics), which only
compiled code can run; each is reached through a plain-Python function of the same
meaning that numba replaces by the intrinsic (an overload), so with
NUMBA_DISABLE_JIT=1 the kernels run as Python, slowly, for a debugger.

ctx, the int64 array every recurrence and sampling kernel receives in its share
(threads.Share):
    ctx[0], ctx[1]   the barrier: threads arrived, barriers completed
    ctx[2]           P, the threads that meet at the barrier (1: no barrier)
    ctx[3]           the address of numpy's cblas_sgemm, or 0
    ctx[4], ctx[5]   Linux's futex system call number (0: none), threads asleep in it
    ctx[6]           how long a thread spins at the barrier before it sleeps
    ctx[7]           the address of numpy's cblas_sgemv, or 0

The kernels that inline this file's functions are compiled afresh when it changes
(kernel_cache.py).
"""
import ctypes
import functools
import glob
import os
import platform
import sys
import threading
import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

ARRIVED, DONE, TEAM, SGEMM, FUTEX, ASLEEP, SPIN, SGEMV = range(8)


def _numpy_blas_addresses(*routines):
    """The addresses of the ILP64 cblas_<routine> in numpy's bundled OpenBLAS (0 for
    those not found), in one look through its libraries."""
    root = os.path.dirname(np.__file__)
    libs = glob.glob(os.path.join(root + ".libs", "*openblas*")) + \
        glob.glob(os.path.join(root, ".libs", "*openblas*"))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        found = []
        for r in routines:
            names = [n for n in (f"scipy_cblas_{r}64_", f"cblas_{r}64_") if hasattr(lib, n)]
            found.append(ctypes.cast(getattr(lib, names[0]), ctypes.c_void_p).value or 0
                         if names else 0)
        if any(found):
            return found
    return [0] * len(routines)


def _numba_without_scipy_linalg():
    """numba's first kernel call imports numba.np.arraymath, which imports scipy.linalg
    (a third of a warm `charrnn sample`) only to learn whether np.dot can
    work. The kernels call numpy's BLAS instead; np.dot, their fallback and the
    float64 path, still works: numba imports SciPy's BLAS when it compiles a call to
    it, and its C helper does when a cached one first runs. Importing arraymath
    here, with SciPy's BLAS module hidden, skips that check only (numba then falls
    back to a plain loop for np.convolve and np.correlate, which charrnn never uses)."""
    hidden = "scipy.linalg.cython_blas"
    if hidden in sys.modules:
        return
    sys.modules[hidden] = None  # an import of it raises ImportError, without importing scipy.linalg
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        del sys.modules[hidden]


@functools.cache
def blas_addresses():
    """(sgemm, sgemv): the addresses of numpy's routines, (0, 0) where not found or
    with CHARRNN_SCIPY_BLAS set; looked up when the first ctx is made, which comes
    before the first kernel call (and so before numba's check of SciPy's BLAS)."""
    _numba_without_scipy_linalg()
    if os.environ.get("CHARRNN_SCIPY_BLAS"):
        return 0, 0
    return tuple(_numpy_blas_addresses("sgemm", "sgemv"))


SYS_FUTEX = {"x86_64": 202, "aarch64": 98}.get(platform.machine(), 0) if sys.platform == "linux" else 0
FUTEX_WAIT, FUTEX_WAKE = 128, 129  # the _PRIVATE variants: one process
SPINS = 200_000  # atomic loads (about 0.1 ms) before a waiting thread sleeps


def new_ctx(P, numpy_blas=True):
    """numpy_blas=False: np.dot (SciPy's BLAS) throughout, for A/B measurements."""
    sgemm, sgemv = blas_addresses() if numpy_blas else (0, 0)
    return np.array([0, 0, P, sgemm, SYS_FUTEX, 0, SPINS, sgemv], dtype=np.int64)


def _data(context, builder, aryty, ary):
    return builder.bitcast(context.make_array(aryty)(context, builder, ary).data,
                           ir.IntType(8).as_pointer())


@intrinsic
def _cblas_sgemm(typingctx, address, M, N, K, a, lda, b, ldb, out, ldc):
    """cblas_sgemm(RowMajor, NoTrans, NoTrans, M, N, K, 1, a, lda, b, ldb, 0, out, ldc)
    through the function pointer address (64-bit integers: the ILP64 interface)."""
    sig = types.void(address, M, N, K, a, lda, b, ldb, out, ldc)

    def codegen(context, builder, signature, args):
        address, M, N, K, a, lda, b, ldb, out, ldc = args
        i32, i64, f32, ptr = ir.IntType(32), ir.IntType(64), ir.FloatType(), ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, f32, ptr, i64,
                                               ptr, i64, f32, ptr, i64])
        fn = builder.inttoptr(address, fnty.as_pointer())
        at, bt, ot = signature.args[4], signature.args[6], signature.args[8]
        row_major, no_trans = ir.Constant(i32, 101), ir.Constant(i32, 111)
        builder.call(fn, [row_major, no_trans, no_trans, M, N, K, ir.Constant(f32, 1.0),
                          _data(context, builder, at, a), lda, _data(context, builder, bt, b), ldb,
                          ir.Constant(f32, 0.0), _data(context, builder, ot, out), ldc])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _cblas_sgemv(typingctx, address, K, N, x, b, ldb, out):
    """out = x @ b for one row x (K,): cblas_sgemv(RowMajor, Trans, K, N, 1, b, ldb,
    x, 1, 0, out, 1) through the function pointer address (ILP64)."""
    sig = types.void(address, K, N, x, b, ldb, out)

    def codegen(context, builder, signature, args):
        address, K, N, x, b, ldb, out = args
        i32, i64, f32, ptr = ir.IntType(32), ir.IntType(64), ir.FloatType(), ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i64, i64, f32, ptr, i64, ptr, i64, f32,
                                               ptr, i64])
        fn = builder.inttoptr(address, fnty.as_pointer())
        xt, bt, ot = signature.args[3], signature.args[4], signature.args[6]
        one = ir.Constant(i64, 1)
        builder.call(fn, [ir.Constant(i32, 101), ir.Constant(i32, 112), K, N, ir.Constant(f32, 1.0),
                          _data(context, builder, bt, b), ldb, _data(context, builder, xt, x), one,
                          ir.Constant(f32, 0.0), _data(context, builder, ot, out), one])
        return context.get_dummy_value()
    return sig, codegen


# OpenBLAS multiplies small matrices (m * k * n up to about 12 x 128 x 512) on a
# path without packing; just above, its general path repacks the weights on every
# call, which can cost more than the arithmetic, so such products run as blocks of
# rows on the small path. Blocks of fewer rows than MIN_BLOCK, the share of larger
# weights, ran slower than one call (benchmarks/RESULTS.md).
SMALL_GEMM = 12 * 128 * 512
MIN_BLOCK = 8


@njit(cache=True, inline="always", error_model="numpy")
def gemm(ctx, a, b, out):
    """out = a @ b for a per-step product: a (M, K) and b (K, N) with unit inner
    stride, out C-contiguous; in row blocks that stay on BLAS's small-matrix path
    when the weights b are small enough for it."""
    M, K = a.shape
    block = SMALL_GEMM // (K * b.shape[1])
    if block >= M or block < MIN_BLOCK:
        _gemm(ctx, a, b, out)
        return
    parts = (M + block - 1) // block
    for p in range(parts):
        lo, hi = p * M // parts, (p + 1) * M // parts
        _gemm(ctx, a[lo:hi], b, out[lo:hi])


def _gemm(ctx, a, b, out):
    np.dot(a, b, out)


@overload(_gemm, inline="always")
def _gemm_typed(ctx, a, b, out):
    """numpy's sgemm for float32 when found; np.dot otherwise (and for float64)."""
    if a.dtype != types.float32:
        return lambda ctx, a, b, out: np.dot(a, b, out)

    def sgemm(ctx, a, b, out):
        if ctx[SGEMM] == 0:
            np.dot(a, b, out)
            return
        M, K = a.shape
        N = b.shape[1]
        s = a.itemsize
        if M == 1 and ctx[SGEMV] != 0 and a.strides[1] == s:  # sampling one text: sgemv
            # (sgemm repacks the weights even for one row)
            _cblas_sgemv(ctx[SGEMV], np.int64(K), np.int64(N), a[0], b, np.int64(b.strides[0] // s),
                         out[0])
            return
        _cblas_sgemm(ctx[SGEMM], np.int64(M), np.int64(N), np.int64(K), a,
                     np.int64(a.strides[0] // s), b, np.int64(b.strides[0] // s), out, np.int64(N))
    return sgemm


@njit(cache=True, inline="always", error_model="numpy")
def gate_columns(W, H, u0, u1):
    """The columns of units u0..u1 in each block of H columns of W (..., k*H), as one
    contiguous (..., k*U) array: a thread's share of Wh (k = gates), or in sampling
    of every layer's weights and biases. W itself when the share is everything."""
    if u1 - u0 == H:
        return W
    G = W.shape[-1]
    U = u1 - u0
    out = np.empty(W.shape[:-1] + (G // H * U,), dtype=W.dtype)
    for q in range(G // H):
        out[..., q * U:(q + 1) * U] = W[..., q * H + u0:q * H + u1]
    return out


@njit(cache=True, inline="always", error_model="numpy")
def add_gate_columns(acc, row, H, u0, u1):
    """acc += row on the columns of units u0..u1 in each block of H columns (k*H,):
    a thread's share of a bias gradient. Loops over slices from 0 (see lstm_cell)."""
    for q in range(row.shape[0] // H):
        a, r = acc[q * H + u0:q * H + u1], row[q * H + u0:q * H + u1]
        for u in range(u1 - u0):
            a[u] += r[u]


@intrinsic
def _atomic_add_ir(typingctx, arr, i, value):
    sig = types.int64(arr, i, value)

    def codegen(context, builder, signature, args):
        arr, i, value = args
        ary = context.make_array(signature.args[0])(context, builder, arr)
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [i])
        return builder.atomic_rmw("add", ptr, value, "seq_cst")
    return sig, codegen


@intrinsic
def _atomic_load_ir(typingctx, arr, i):
    sig = types.int64(arr, i)

    def codegen(context, builder, signature, args):
        arr, i = args
        ary = context.make_array(signature.args[0])(context, builder, arr)
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [i])
        return builder.load_atomic(ptr, "seq_cst", 8)
    return sig, codegen


@intrinsic
def _futex_ir(typingctx, ctx, op, value):
    """syscall(ctx[FUTEX], &ctx[DONE], op, value, NULL, NULL, 0) on the low 32 bits of
    ctx[DONE] (little-endian)."""
    sig = types.int64(ctx, op, value)

    def codegen(context, builder, signature, args):
        ctx, op, value = args
        i32, i64, ptr = ir.IntType(32), ir.IntType(64), ir.IntType(8).as_pointer()
        ary = context.make_array(signature.args[0])(context, builder, ctx)
        nr = builder.load(cgutils.get_item_pointer(context, builder, signature.args[0], ary,
                                                   [ir.Constant(i64, FUTEX)]))
        word = cgutils.get_item_pointer(context, builder, signature.args[0], ary,
                                        [ir.Constant(i64, DONE)])
        syscall = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i64, [i64], var_arg=True), "syscall")
        null = ir.Constant(ptr, None)
        return builder.call(syscall, [nr, builder.bitcast(word, i32.as_pointer()),
                                      builder.trunc(op, i32), builder.trunc(value, i32), null, null,
                                      ir.Constant(i32, 0)])
    return sig, codegen


_python_atomics = threading.Lock()  # the atomics without the compiler: one at a time


def atomic_add(arr, i, value):
    """arr[i] += value, atomically; returns the value before."""
    with _python_atomics:
        before = arr[i]
        arr[i] += value
    return before


def atomic_load(arr, i):
    """arr[i], read atomically."""
    return arr[i]


def futex(ctx, op, value):
    """FUTEX_WAIT sleeps while the low 32 bits of ctx[DONE] equal value, FUTEX_WAKE
    wakes up to value sleepers. Without the compiler a waiting thread only lets the
    others run, and spins on."""
    if op == FUTEX_WAIT:
        time.sleep(0)
    return 0


@overload(atomic_add, inline="always")
def _atomic_add_typed(arr, i, value):
    return lambda arr, i, value: _atomic_add_ir(arr, i, value)


@overload(atomic_load, inline="always")
def _atomic_load_typed(arr, i):
    return lambda arr, i: _atomic_load_ir(arr, i)


@overload(futex, inline="always")
def _futex_typed(ctx, op, value):
    return lambda ctx, op, value: _futex_ir(ctx, op, value)


@njit(cache=True, inline="always", error_model="numpy")
def barrier(ctx):
    """Waits until all ctx[TEAM] threads have called it (after each time step; in
    sampling, each layer). A waiting thread spins first, SPINS loads, about a step of
    a 2x256 LSTM: on an idle machine the others arrive within it, and the sampler,
    whose threads wait longer, slowed with less. Then it sleeps (a futex) until the
    last one in wakes it: when other processes want the cores, a thread that spun on
    would hold a core while the one it waits for sits off it (benchmarks/RESULTS.md)."""
    P = ctx[TEAM]
    if P <= 1:
        return
    done = atomic_load(ctx, DONE)
    if atomic_add(ctx, ARRIVED, np.int64(1)) == P - 1:  # the last one in lets all go
        atomic_add(ctx, ARRIVED, -P)
        atomic_add(ctx, DONE, np.int64(1))
        if atomic_load(ctx, ASLEEP) > 0:
            futex(ctx, np.int64(FUTEX_WAKE), np.int64(2 ** 31 - 1))
    else:
        spins = 0
        while atomic_load(ctx, DONE) == done:
            spins += 1
            if spins > ctx[SPIN] and ctx[FUTEX] != 0:
                atomic_add(ctx, ASLEEP, np.int64(1))  # counted before DONE is read again
                futex(ctx, np.int64(FUTEX_WAIT), done & 0xFFFFFFFF)  # at once if DONE moved
                atomic_add(ctx, ASLEEP, np.int64(-1))
