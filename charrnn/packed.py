"""The per-step recurrent products (h_prev Wh forward, da Wh^T backward) as a GEMM
against weights packed once per chunk.

Dimensions: M rows (a part's streams), K inner, N columns (a part's gate columns),
NR = 32 columns to a panel, MR rows to a register tile.

These products are small (25 or 50 rows) and there are T of them per layer and
chunk against the same weights. OpenBLAS repacks the weights on every call; this
kernel packs them once per chunk into
panels, Bp (ceil(N/NR), K, NR), so that row k of a panel is one contiguous
128-byte line, and runs a register tile of up to MR rows x NR columns over all of
K: per k, one broadcast of each row's a[k], two loads of the panel's line, 2*MR
fused multiply-adds into accumulators that never leave the registers (its speed:
benchmarks/RESULTS.md). LLVM is handed the tile as
vector IR (_tile_ir): from plain loops it kept the accumulators in memory, several
times slower. The same code serves float64 (the gradient checks), in twice the
registers. _tile, the plain-numpy meaning of that IR, runs in its place with
NUMBA_DISABLE_JIT=1.

    Bp = pack(gate_columns(Wh, H, u0, u1))   once per chunk: the part's columns of Wh
    mul(h_prev, Bp, a)                       every step: a = h_prev Wh[:, those columns]
"""
import functools

import numpy as np
from llvmlite import binding, ir
from numba import njit, types
from numba.core import cgutils, config
from numba.extending import intrinsic, overload

NR = 32
KC = 256  # a panel's slice of KC x NR floats, 32 KB, stays in L1


@functools.cache
def tile_rows():
    """MR, the rows of a tile, for the CPU numba compiles for (NUMBA_CPU_FEATURES where
    set, else this machine's), asked when a kernel is compiled, not at import: 2 * MR
    accumulators of 16 floats, two lines of the panel and one broadcast fit AVX-512's
    32 registers at 9 (more rows ran slower on 50-row products); with AVX2's 16
    registers a row takes 4 of them."""
    return 9 if "+avx512f" in (config.CPU_FEATURES or binding.get_host_cpu_features().flatten()) else 3


@overload(tile_rows)
def _tile_rows_typed():
    rows = tile_rows()  # a constant of the compiled code (cached kernels are keyed to the CPU)
    return lambda: rows


@njit(cache=True, nogil=True, error_model="numpy")
def pack(W):
    """W (K, N) as panels (ceil(N/NR), K, NR), zero beyond its last column."""
    K, N = W.shape
    Bp = np.zeros((-(-N // NR), K, NR), dtype=W.dtype)
    if W.strides[1] <= W.strides[0]:  # along W's rows, as they lie in memory
        for k in range(K):
            for p in range(Bp.shape[0]):
                row = W[k, p * NR:(p + 1) * NR]
                Bp[p, k, :row.shape[0]] = row
    else:  # a transposed view: down its columns
        for j in range(N):
            Bp[j // NR, :, j % NR] = W[:, j]
    return Bp


@njit(cache=True, nogil=True, error_model="numpy")
def mul(a, Bp, out, accumulate=False):
    """out = a @ B, or out += a @ B; a (M, K) and out (M, N) with unit inner stride
    (rows of any stride); Bp = pack(B) for B (K, N). Blocks of K of KC (a panel's
    slice then stays in L1), of M of up to MR rows, split evenly."""
    M, K = a.shape
    N = out.shape[1]
    s = a.itemsize
    lda, ldc = a.strides[0] // s, out.strides[0] // s
    if a.strides[1] != s or out.strides[1] != s:
        raise ValueError("mul: a and out need rows of adjacent elements")
    MR = tile_rows()
    blocks = -(-M // MR)
    edge = np.empty((MR if N % NR else 0, NR), dtype=out.dtype)  # a last panel's partial tile
    for k0 in range(0, K, KC):
        kc = min(KC, K - k0)
        add = accumulate or k0 > 0
        for p in range(Bp.shape[0]):
            cols = min(NR, N - p * NR)
            for q in range(blocks):
                lo, hi = q * M // blocks, (q + 1) * M // blocks
                ia, ib = lo * lda + k0, (p * K + k0) * NR
                if cols == NR:
                    _tile(hi - lo, a, ia, lda, Bp, ib, out, lo * ldc + p * NR, ldc, kc, add)
                else:
                    if add:
                        edge[:hi - lo, :cols] = out[lo:hi, p * NR:]
                    _tile(hi - lo, a, ia, lda, Bp, ib, edge, 0, NR, kc, add)
                    out[lo:hi, p * NR:] = edge[:hi - lo, :cols]


def _tile(m, a, ia, lda, b, ib, c, ic, ldc, K, add):
    """c[ic + r*ldc + j] (+)= sum over k < K of a[ia + r*lda + k] * b[ib + k*NR + j]
    for r < m and j < NR, on the flat data of arrays a, b, c (offsets from each
    array's first element); add: whether to add to c rather than overwrite it."""
    A, B, C = _window(a, ia, m, K, lda), _window(b, ib, K, NR, NR), _window(c, ic, m, NR, ldc)
    product = A @ B
    if add:
        C += product
    else:
        C[...] = product


def _window(x, offset, rows, cols, ld):
    """The (rows, cols) matrix at element offset of x's data, rows ld elements apart."""
    s = x.itemsize
    flat = np.lib.stride_tricks.as_strided(x, (offset + (rows - 1) * ld + cols,), (s,))
    return np.lib.stride_tricks.as_strided(flat[offset:], (rows, cols), (ld * s, s))


@overload(_tile, inline="always")
def _tile_typed(m, a, ia, lda, b, ib, c, ic, ldc, K, add):
    return lambda m, a, ia, lda, b, ib, c, ic, ldc, K, add: _tile_ir(m, a, ia, lda, b, ib, c,
                                                                      ic, ldc, K, add)


@intrinsic
def _tile_ir(typingctx, m, a, ia, lda, b, ib, c, ic, ldc, K, add):
    """_tile for 1 <= m <= MR: each m is its own code (a switch), with m accumulators
    of NR lanes."""
    sig = types.void(m, a, ia, lda, b, ib, c, ic, ldc, K, add)
    MR = tile_rows()

    def codegen(context, builder, signature, args):
        m, a, ia, lda, b, ib, c, ic, ldc, K, add = args
        aty, bty, cty = signature.args[1], signature.args[4], signature.args[6]
        i32, i64 = ir.IntType(32), ir.IntType(64)
        vec = ir.VectorType(context.get_value_type(aty.dtype), NR)
        vptr, align = vec.as_pointer(), aty.dtype.bitwidth // 8
        suffix = "f32" if aty.dtype == types.float32 else "f64"
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3),
                                             f"llvm.fma.v{NR}{suffix}")

        def data(ty, ary, offset):
            return builder.gep(context.make_array(ty)(context, builder, ary).data, [offset])
        A, B, C = data(aty, a, ia), data(bty, b, ib), data(cty, c, ic)
        add = builder.icmp_unsigned("!=", add, ir.Constant(add.type, 0))
        undef, splat = ir.Constant(vec, ir.Undefined), ir.Constant(ir.VectorType(i32, NR), [0] * NR)
        acc = [cgutils.alloca_once(builder, vec) for _ in range(MR)]

        def tile(rows):
            row_c = [builder.bitcast(builder.gep(C, [builder.mul(ir.Constant(i64, r), ldc)]), vptr)
                     for r in range(rows)]
            for r in range(rows):
                builder.store(ir.Constant(vec, [0.0] * NR), acc[r])
            with builder.if_then(add):
                for r in range(rows):
                    builder.store(builder.load(row_c[r], align=align), acc[r])

            # each row of a from its own base, one add away (from r*lda + k in one
            # expression, LLVM made a chain of adds, one row after another)
            row_a = [builder.gep(A, [builder.mul(ir.Constant(i64, r), lda)]) for r in range(rows)]
            with cgutils.for_range(builder, K) as loop:
                k = loop.index
                line = builder.load(builder.bitcast(
                    builder.gep(B, [builder.mul(k, ir.Constant(i64, NR))]), vptr), align=align)
                for r in range(rows):  # a[r, k], broadcast to all NR lanes
                    x = builder.load(builder.gep(row_a[r], [k]))
                    x = builder.insert_element(undef, x, ir.Constant(i32, 0))
                    x = builder.shuffle_vector(x, undef, splat)
                    builder.store(builder.call(fma, [x, line, builder.load(acc[r])]), acc[r])
            for r in range(rows):
                builder.store(builder.load(acc[r]), row_c[r], align=align)

        end = builder.append_basic_block("tile.end")
        switch = builder.switch(m, end)
        for rows in range(1, MR + 1):
            block = builder.append_basic_block(f"tile.{rows}")
            switch.add_case(ir.Constant(m.type, rows), block)
            builder.position_at_end(block)
            tile(rows)
            builder.branch(end)
        builder.position_at_end(end)
        return context.get_dummy_value()
    return sig, codegen
