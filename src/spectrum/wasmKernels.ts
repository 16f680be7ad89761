// WASM SIMD (f64x2) versions of the hot loops of the blocked reductions: the packed rank-k update (GEMM micro-kernel)
// and the three matrix–vector shapes of the panel factorisations (Aᵀv accumulated by rows, A·u as row dots, and the
// fused lower-triangle symmetric product, assembled in wasmSymv.ts). Each kernel performs, lane by lane, exactly the
// floating-point operations of its JS twin in denseKernels.ts (symvKernel.ts for the symmetric product) in the same
// order, so the two paths give bit-identical results; the JS twins define the arithmetic. Pointers are byte offsets
// into the arena memory; row strides are in bytes.
// The module comes in two builds (denseKernelModule(fma)). With `fma` the multiply–adds of the hot kernels (gemm,
// gemmStrided, atv, av, symv, corr, colsT) become relaxed_madd (wasmAsm.ts madd): about one instruction in two fewer
// in loops that run at the issue limit, at the price of bit-identity with the JS twins (fused rounding, and atv, symv
// and corr sum in a slightly different order); the other kernels are the same in both builds.
// The module also takes the blocked reductions' per-column loops (wasmColumn.ts) and the row loops of the unblocked
// bidiagonalisation that finishes them (wasmRows.ts).

import { assembleModule, code, op, type Code, type WasmFunction } from '../util/wasm';
import { c32, whileDo, bump, zero128, ld, ldf, madd } from './wasmAsm';
import { packFn, reflectFn, scaleToFn, wcolFn } from './wasmColumn';
import { gemmStridedFn } from './wasmGemmStrided';
import { rowsAxpyFn, rowsDotRank1Fn, rowsRank1Fn } from './wasmRows';
import { colsTFn, corrFn } from './wasmPanel';
import { symvFn } from './wasmSymv';

const { get, set } = op;
// &A[r + i, c0] for the row kernels (params 0 a, 1 lda8, 4 c0; `r` is the row local): stored in local `dst`.
const rowPtr = (r: number, i: number, dst: number): Code =>
  code(get(0), get(r), c32(i), op.i32Add, get(1), op.i32Mul, op.i32Add, get(4), c32(3), op.i32Shl, op.i32Add, set(dst));
// Rows [r0, r1) (params 2 and 3) four at a time, then one at a time, with `r` as the row local.
const byFours = (r: number, rowGroup: (g: number) => Code): Code => code(
  get(2), set(r),
  whileDo(code(get(r), c32(3), op.i32Add, get(3), op.i32LtS), rowGroup(4)),
  whileDo(code(get(r), get(3), op.i32LtS), rowGroup(1)),
);

/**
 * gemm(c, ldc8, nrb, ncb, k, pa, pb, lower): C −= Ā·B̄ on full 4×4 blocks only (nrb row blocks, ncb column blocks;
 * with `lower`, column blocks ≤ the row block). Operands packed as packStrided does. Locals: 8 rb, 9 cb, 10 cEnd,
 * 11 ao, 12 bo, 13 aEnd, 14 o, 15 kb (bytes per packed block), 16..23 accumulators, 24 b01, 25 b23, 26 splat.
 */
function gemmFn(fma: boolean): WasmFunction {
  const acc = (i: number) => 16 + i;
  const step: Code[] = [];
  for (let ii = 0; ii < 4; ii++) {
    step.push(code(get(11), op.v128Load64Splat(8 * ii, 3), set(26)));
    step.push(code(madd(fma, get(acc(2 * ii)), get(26), get(24)), set(acc(2 * ii))));
    step.push(code(madd(fma, get(acc(2 * ii + 1)), get(26), get(25)), set(acc(2 * ii + 1))));
  }
  const store: Code[] = [];
  for (let ii = 0; ii < 4; ii++) {
    store.push(code(get(14), ld(14), get(acc(2 * ii)), op.f64x2Sub, op.v128Store(0, 3)));
    store.push(code(get(14), ld(14, 16), get(acc(2 * ii + 1)), op.f64x2Sub, op.v128Store(16, 3)));
    store.push(bump(14, get(1)));
  }
  const body = code(
    get(4), c32(32), op.i32Mul, set(15),
    c32(0), set(8),
    whileDo(code(get(8), get(2), op.i32LtS), code(
      // cEnd = lower ? min(ncb, rb + 1) : ncb
      get(8), c32(1), op.i32Add, get(3), get(8), c32(1), op.i32Add, get(3), op.i32LtS, op.select,
      get(3), get(7), op.select, set(10),
      c32(0), set(9),
      whileDo(code(get(9), get(10), op.i32LtS), code(
        ...Array.from({ length: 8 }, (_, i) => code(zero128, set(acc(i)))),
        get(5), get(8), get(15), op.i32Mul, op.i32Add, set(11),
        get(6), get(9), get(15), op.i32Mul, op.i32Add, set(12),
        get(11), get(15), op.i32Add, set(13),
        whileDo(code(get(11), get(13), op.i32LtU), code(
          ld(12), set(24), ld(12, 16), set(25),
          ...step,
          bump(11, 32), bump(12, 32),
        )),
        // o = c + 4·rb·ldc8 + 32·cb
        get(0), get(8), c32(2), op.i32Shl, get(1), op.i32Mul, op.i32Add, get(9), c32(5), op.i32Shl, op.i32Add, set(14),
        ...store,
        bump(9, 1),
      )),
      bump(8, 1),
    )),
  );
  return { name: 'gemm', params: Array(8).fill('i32'), results: [], locals: [...Array(8).fill('i32'), ...Array(11).fill('v128')], body };
}

/**
 * atv(a, lda8, r0, r1, c0, c1, v, acc): acc[c] += Σ_r v[r]·A[r, c] for r in [r0, r1), c in [c0, c1), rows taken
 * four at a time as acc[c] + (((v0·a0 + v1·a1) + v2·a2) + v3·a3), then one at a time. Locals: 8 r, 9..12 row
 * pointers, 13 acc pointer, 14 pair end, 15..18 splats of v, 19 sum, 20 odd flag. With `fma` the pairs take
 * ((((acc + v0·a0) + v1·a1) + v2·a2) + v3·a3) as fused steps (the odd column stays as in JS).
 */
function atvFn(fma: boolean): WasmFunction {
  const rowGroup = (g: number): Code => {
    const term = (i: number): Code => code(get(15 + i), ld(9 + i), op.f64x2Mul);
    const termS = (i: number): Code => code(get(15 + i), op.f64x2ExtractLane(0), ldf(9 + i), op.f64Mul);
    let vec = term(0);
    let sc = termS(0);
    for (let i = 1; i < g; i++) {
      vec = code(vec, term(i), op.f64x2Add);
      sc = code(sc, termS(i), op.f64Add);
    }
    let fused = ld(13);
    for (let i = 0; i < g; i++) fused = madd(true, fused, get(15 + i), ld(9 + i));
    return code(
      ...Array.from({ length: g }, (_, i) => code(
        get(6), get(8), c32(i), op.i32Add, c32(3), op.i32Shl, op.i32Add, op.v128Load64Splat(0, 3), set(15 + i),
        rowPtr(8, i, 9 + i),
      )),
      get(7), get(4), c32(3), op.i32Shl, op.i32Add, set(13),
      get(13), get(5), get(4), op.i32Sub, c32(1), op.i32ShrU, c32(4), op.i32Shl, op.i32Add, set(14),
      whileDo(code(get(13), get(14), op.i32LtU), code(
        get(13), fma ? fused : code(ld(13), vec, op.f64x2Add), op.v128Store(0, 3),
        bump(13, 16), ...Array.from({ length: g }, (_, i) => bump(9 + i, 16)),
      )),
      get(20), op.if(), get(13), ldf(13), sc, op.f64Add, op.f64Store(0, 3), op.end,
      bump(8, g),
    );
  };
  const body = code(
    get(5), get(4), op.i32Sub, c32(1), op.i32And, set(20),
    byFours(8, rowGroup),
  );
  return { name: 'atv', params: Array(8).fill('i32'), results: [], locals: [...Array(7).fill('i32'), ...Array(5).fill('v128'), 'i32'], body };
}

/**
 * av(a, lda8, r0, r1, c0, c1, u, x, xs8): x[r] = (Σ_even + tail) + Σ_odd of A[r, c]·u[c] over c in [c0, c1) (two
 * lanes: c0, c0+2, … and c0+1, c0+3, …; an odd last element joins the first lane), rows four at a time. Locals:
 * 9 r, 10..13 row pointers, 14 u pointer, 15 u pair end, 16..19 lane sums, 20 u pair, 21 odd flag, 22 scalar sum.
 */
function avFn(fma: boolean): WasmFunction {
  const rowGroup = (g: number): Code => {
    const fin: Code[] = [];
    for (let i = 0; i < g; i++) {
      fin.push(code(
        get(16 + i), op.f64x2ExtractLane(0), set(22),
        get(21), op.if(), get(22), ldf(10 + i), ldf(14), op.f64Mul, op.f64Add, set(22), op.end,
        get(7), get(9), c32(i), op.i32Add, get(8), op.i32Mul, op.i32Add,
        get(22), get(16 + i), op.f64x2ExtractLane(1), op.f64Add, op.f64Store(0, 3),
      ));
    }
    return code(
      ...Array.from({ length: g }, (_, i) => code(
        zero128, set(16 + i),
        rowPtr(9, i, 10 + i),
      )),
      get(6), get(4), c32(3), op.i32Shl, op.i32Add, set(14),
      get(14), get(5), get(4), op.i32Sub, c32(1), op.i32ShrU, c32(4), op.i32Shl, op.i32Add, set(15),
      whileDo(code(get(14), get(15), op.i32LtU), code(
        ld(14), set(20),
        ...Array.from({ length: g }, (_, i) => code(madd(fma, get(16 + i), ld(10 + i), get(20)), set(16 + i), bump(10 + i, 16))),
        bump(14, 16),
      )),
      ...fin,
      bump(9, g),
    );
  };
  const body = code(
    get(5), get(4), op.i32Sub, c32(1), op.i32And, set(21),
    byFours(9, rowGroup),
  );
  return { name: 'av', params: Array(9).fill('i32'), results: [], locals: [...Array(7).fill('i32'), ...Array(5).fill('v128'), 'i32', 'f64'], body };
}

/**
 * Panel widths (doubles per row) with a corr/colsT kernel: every even width up to the panel width 8, so the reductions
 * pass their active panel columns rounded up to even (a zero-weight column adds exact zeros) instead of the whole
 * panel. The generators take any even width; wider panels measured slower (tridiagKernel.ts), and each width costs
 * assembly time at every thread's start.
 */
export const PANEL_WIDTHS = [2, 4, 6, 8];

/** Exports of the assembled module; every pointer is a byte offset into the arena memory. */
export interface WasmDenseExports {
  gemm(c: number, ldc8: number, nrb: number, ncb: number, k: number, pa: number, pb: number, lower: number): void;
  atv(a: number, lda8: number, r0: number, r1: number, c0: number, c1: number, v: number, acc: number): void;
  av(a: number, lda8: number, r0: number, r1: number, c0: number, c1: number, u: number, x: number, xs8: number): void;
  symv(a: number, lda8: number, c0: number, n: number, v: number, acc: number): void;
  [corr: `corr${number}`]: (a: number, lda8: number, x: number, ldx8: number, r0: number, r1: number, t1: number, t2: number, out: number, os8: number, scale: number) => void;
  [colsT: `colsT${number}`]: (a: number, lda8: number, x: number, ldx8: number, r0: number, r1: number, v: number, t1: number, t2: number) => void;
  gemmStrided(c: number, ldc8: number, nrb: number, ncb: number, k: number, a: number, ablk8: number, ars8: number, acs8: number, pb: number): void;
  pack(dst: number, rows: number, k: number, p0: number, p1: number, src: number, rs8: number, ps8: number, wp: number, hasW: number): void;
  reflect(x: number, stride8: number, from: number, to: number, v: number, out: number): number;
  wcol(acc: number, v: number, c0: number, n: number, tau: number, w: number, ws8: number): void;
  scaleTo(src: number, c0: number, c1: number, f: number, dst: number, ds8: number): void;
  rowsAxpy(a: number, lda8: number, r0: number, r1: number, c0: number, c1: number, v: number, w: number): void;
  rowsRank1(a: number, lda8: number, r0: number, r1: number, c0: number, c1: number, beta: number, v: number, w: number): void;
  rowsDotRank1(a: number, lda8: number, r0: number, r1: number, c0: number, c1: number, beta: number, w: number): void;
}

/**
 * The module bytes (assembled once per thread by the caller): with `fma`, the relaxed_madd build, which only compiles
 * where wasmRelaxedSimdSupported() (src/util/wasmRelaxed.ts) said yes.
 */
export function denseKernelModule(fma = false): Uint8Array<ArrayBuffer> {
  return assembleModule([
    gemmFn(fma), atvFn(fma), avFn(fma), symvFn(fma),
    ...PANEL_WIDTHS.map((w) => corrFn(w, fma)), ...PANEL_WIDTHS.map((w) => colsTFn(w, fma)),
    gemmStridedFn(fma), packFn(), reflectFn(), wcolFn(), scaleToFn(), rowsAxpyFn(), rowsRank1Fn(), rowsDotRank1Fn(),
  ]);
}
