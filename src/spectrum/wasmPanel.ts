// WASM SIMD twins of the panel corrections of the blocked reductions (corr and colsT in denseKernels.ts), one
// unrolled function per panel width. Without `fma` each lane performs the JS twin's operations in the same order
// (bit-identical); with `fma` the multiply–adds are relaxed_madd (wasmAsm.ts madd) and corr sums its A·t1 and X·t2
// terms in two chains joined at the end, which changes the last bits (tested against the twins within a bound).
// Assembled into the dense kernel module (wasmKernels.ts); pointers are byte offsets into the arena, strides in bytes.

import { code, op, type Code, type WasmFunction } from '../util/wasm';
import { c32, whileDo, bump, ldf, madd } from './wasmAsm';

const { get, set } = op;

/**
 * corr(a, lda8, x, ldx8, r0, r1, t1, t2, out, os8, scale), one per panel width w: for r in [r0, r1), with the w
 * values A[r, 0..w) (a points at the panel's first column) and X[r, 0..w): out[r] = (out[r] − (lane 0 + lane 1))·scale,
 * the lanes summing A[r, p]·t1[p] + X[r, p]·t2[p] in order over p = 0, 2, 4, … and 1, 3, 5, …. Locals: 11 r, 12 row
 * of a, 13 row of x, 14 out pointer, 15 sum, then the w/2 t1 pairs and the w/2 t2 pairs. With `fma` each lane is
 * (Σ_p A·t1, fused in p order) + (Σ_p X·t2, likewise): 2 multiplies, w − 2 fused steps and one add per row instead of
 * w multiplies and w − 1 adds.
 */
export function corrFn(w: number, fma: boolean): WasmFunction {
  const h = w / 2;
  const aq = (q: number): Code => code(get(12), op.v128Load(16 * q, 3));
  const xq = (q: number): Code => code(get(13), op.v128Load(16 * q, 3));
  let sum: Code;
  if (fma) {
    let sa = code(aq(0), get(16), op.f64x2Mul);
    let sx = code(xq(0), get(16 + h), op.f64x2Mul);
    for (let q = 1; q < h; q++) {
      sa = madd(true, sa, aq(q), get(16 + q));
      sx = madd(true, sx, xq(q), get(16 + h + q));
    }
    sum = code(sa, sx, op.f64x2Add);
  } else {
    const term = (q: number): Code => code(aq(q), get(16 + q), op.f64x2Mul, xq(q), get(16 + h + q), op.f64x2Mul, op.f64x2Add);
    sum = term(0);
    for (let q = 1; q < h; q++) sum = code(sum, term(q), op.f64x2Add);
  }
  const body = code(
    ...Array.from({ length: h }, (_, q) => code(get(6), op.v128Load(16 * q, 3), set(16 + q), get(7), op.v128Load(16 * q, 3), set(16 + h + q))),
    get(4), set(11),
    whileDo(code(get(11), get(5), op.i32LtS), code(
      get(0), get(11), get(1), op.i32Mul, op.i32Add, set(12),
      get(2), get(11), get(3), op.i32Mul, op.i32Add, set(13),
      get(8), get(11), get(9), op.i32Mul, op.i32Add, set(14),
      sum, set(15),
      get(14), ldf(14), get(15), op.f64x2ExtractLane(0), get(15), op.f64x2ExtractLane(1), op.f64Add, op.f64Sub, get(10), op.f64Mul, op.f64Store(0, 3),
      bump(11, 1),
    )),
  );
  return { name: `corr${w}`, params: [...Array(10).fill('i32'), 'f64'], results: [], locals: [...Array(4).fill('i32'), ...Array(1 + w).fill('v128')], body };
}

/**
 * colsT(a, lda8, x, ldx8, r0, r1, v, t1, t2), one per panel width w: t1[p] += Σ_r A[r, p]·v[r] and
 * t2[p] += Σ_r X[r, p]·v[r] for p < w, r in [r0, r1) in order. Locals: 9 r, 10 row of a, 11 row of x, 12 splat of
 * v[r], then the w/2 t1 pairs and the w/2 t2 pairs.
 */
export function colsTFn(w: number, fma: boolean): WasmFunction {
  const h = w / 2;
  const body = code(
    ...Array.from({ length: h }, (_, q) => code(get(7), op.v128Load(16 * q, 3), set(13 + q), get(8), op.v128Load(16 * q, 3), set(13 + h + q))),
    get(4), set(9),
    whileDo(code(get(9), get(5), op.i32LtS), code(
      get(0), get(9), get(1), op.i32Mul, op.i32Add, set(10),
      get(2), get(9), get(3), op.i32Mul, op.i32Add, set(11),
      get(6), get(9), c32(3), op.i32Shl, op.i32Add, op.v128Load64Splat(0, 3), set(12),
      ...Array.from({ length: h }, (_, q) => code(
        madd(fma, get(13 + q), code(get(10), op.v128Load(16 * q, 3)), get(12)), set(13 + q),
        madd(fma, get(13 + h + q), code(get(11), op.v128Load(16 * q, 3)), get(12)), set(13 + h + q),
      )),
      bump(9, 1),
    )),
    ...Array.from({ length: h }, (_, q) => code(get(7), get(13 + q), op.v128Store(16 * q, 3), get(8), get(13 + h + q), op.v128Store(16 * q, 3))),
  );
  return { name: `colsT${w}`, params: Array(9).fill('i32'), results: [], locals: [...Array(3).fill('i32'), ...Array(1 + w).fill('v128')], body };
}
