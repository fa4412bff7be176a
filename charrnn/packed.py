"""The per-step recurrent products (h_prev Wh forward, da Wh^T backward) as a GEMM
against weights packed once per chunk.

Dimensions: M rows (a part's streams), K inner, N columns (a part's gate columns),
NR = 32 columns to a panel, MR rows to a register tile.

These products are small (25 or 50 rows) and there are T of them per layer and
chunk against the same weights. OpenBLAS repacks the weights on every call and
reached 80-135 GFLOP/s a core on them; this kernel packs them once per chunk into
panels, Bp (ceil(N/NR), K, NR), so that row k of a panel is one contiguous
128-byte line, and runs a register tile of up to MR rows x NR columns over all of
K: per k, one broadcast of each row's a[k], two loads of the panel's line, 2*MR
fused multiply-adds into accumulators that never leave the registers (about 190
GFLOP/s a core with AVX-512; benchmarks/RESULTS.md). LLVM is handed the tile as
vector IR (_tile): from plain loops it kept the accumulators in memory (5-30
GFLOP/s). The same code serves float64 (the gradient checks), in twice the registers.

    Bp = pack(gate_columns(Wh, H, u0, u1))   once per chunk: the part's columns of Wh
    mul(h_prev, Bp, a)                       every step: a = h_prev Wh[:, those columns]
"""
import numpy as np
from llvmlite import binding, ir
from numba import njit, types
from numba.core import cgutils, config
from numba.extending import intrinsic

NR = 32
# Rows of a tile: 2 * MR accumulators of 16 floats, two lines of the panel and one
# broadcast in AVX-512's 32 registers (9: 21 of them; more rows than 9 ran slower on
# 50-row products). With AVX2's 16 registers, a row takes 4 of them.
# numba compiles for NUMBA_CPU_FEATURES where set, else for this machine.
MR = 9 if "+avx512f" in (config.CPU_FEATURES or binding.get_host_cpu_features().flatten()) else 3
KC = 256  # a panel's slice of KC x NR floats, 32 KB, stays in L1


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


@intrinsic
def _tile(typingctx, m, a, ia, lda, b, ib, c, ic, ldc, K, add):
    """c[ic + r*ldc + j] (+)= sum over k < K of a[ia + r*lda + k] * b[ib + k*NR + j]
    for r < m and j < NR, on the flat data of arrays a, b, c; add: whether to add
    to c rather than overwrite it. 1 <= m <= MR: each m is its own code (a switch),
    with m accumulators of NR lanes."""
    sig = types.void(m, a, ia, lda, b, ib, c, ic, ldc, K, add)

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
