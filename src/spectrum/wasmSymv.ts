// WASM SIMD twin of symvLower (symvKernel.ts), the fused lower-triangle symmetric product of the blocked
// tridiagonalisation. Lane by lane it performs the JS twin's operations in the same order, so the results are
// bit-identical: lane 0 of a row's f64x2 sum is the JS chain s_i0 (columns c0, c0 + 2, …), lane 1 is s_i1. Assembled
// into the dense kernel module (wasmKernels.ts); pointers are byte offsets into the arena, lda8 in bytes.
// With `fma` (the relaxed_madd build) the pair loop's multiply–adds are fused (wasmAsm.ts madd) and the column
// update becomes acc[j..j+2) + A[r, ·]·v[r] + A[r+1, ·]·v[r+1] + … in fused steps, saving the separate add; the
// scalar diagonal block is unchanged. Not bit-identical to the twin then (tested within a bound).

import { code, op, type Code, type WasmFunction } from '../util/wasm';
import { c32, whileDo, bump, zero128, ld, ldf, madd } from './wasmAsm';

const { get, set } = op;
const times8 = (l: number): Code => code(get(l), c32(3), op.i32Shl);

// Locals after the params (0 a, 1 lda8, 2 c0, 3 n, 4 v, 5 acc), the same for every row group of g ≤ 4 rows.
const R = 6; // r, the group's first row
const P = 7; // 7..10: &A[r + i, j]
const VP = 11; // &v[j]
const AP = 12; // &acc[j]
const END = 13; // &A[r, 2·pairs of trips] (loop end of the row-0 pointer)
const TMP = 14; // &A[r + i, r]
const S = 15; // 15..18: row sums (lane 0 = chain s_i0, lane 1 = s_i1)
const SPL = 19; // 19..22: splats of v[r + i]
const X = 23; // a pair A[r + i, j..j+2)
const ACC = 24; // the pair's acc increment
const W = 25; // the pair v[j..j+2)
const VR = 26; // 26..29: v[r + i]
const T = 30; // 30..33: lane 0 of the sums, finished in scalar
const Y = 34; // 34..39: y10, y20, y21, y30, y31, y32

/**
 * Rows r..r+g−1 (g = 4, 2 or 1): sums start at (A[r+i, r+i]·v[r+i], 0) and take A[r+i, j..j+2)·v[j..j+2) over the
 * column pairs j in [c0, r), while acc[j..j+2) += ((A[r, ·]·v[r] + A[r+1, ·]·v[r+1]) + …) left to right. Then the
 * strictly lower g×g diagonal block y_ik = A[r+i, r+k] (k < i) joins lane 0 of row i in k order, and for each k:
 * acc[r+k] += lane 0 + lane 1 of row k, then acc[r+k] += Σ_{i>k} y_ik·v[r+i] left to right.
 */
function rowGroup(g: number, fma: boolean): Code {
  const rows = Array.from({ length: g }, (_, i) => i);
  const y = (i: number, k: number): number => Y + (i * (i - 1)) / 2 + k;
  const sum = (terms: Code[]): Code => terms.reduce((s, t) => code(s, t, op.f64Add));
  const accAdd = (k: number, val: Code): Code => code(get(AP), ldf(AP, 8 * k), val, op.f64Add, op.f64Store(8 * k, 3));
  // Columns j, j+1 at byte offset `off` from the current pointers.
  const pair = (off: number): Code => code(
    ld(VP, off), set(W),
    ...rows.map((i) => code(
      ld(P + i, off), set(X),
      madd(fma, get(S + i), get(X), get(W)), set(S + i),
      fma ? madd(true, i === 0 ? ld(AP, off) : get(ACC), get(X), get(SPL + i))
        : i === 0 ? code(get(X), get(SPL), op.f64x2Mul) : madd(false, get(ACC), get(X), get(SPL + i)),
      set(ACC),
    )),
    get(AP), fma ? get(ACC) : code(ld(AP, off), get(ACC), op.f64x2Add), op.v128Store(off, 3),
  );
  const advance = (bytes: number): Code => code(...rows.map((i) => bump(P + i, bytes)), bump(VP, bytes), bump(AP, bytes));
  return code(
    ...rows.map((i) => code(get(4), times8(R), op.i32Add, op.f64Load(8 * i, 3), set(VR + i), get(VR + i), op.f64x2Splat, set(SPL + i))),
    get(0), get(R), get(1), op.i32Mul, op.i32Add, set(P),
    ...rows.slice(1).map((i) => code(get(P + i - 1), get(1), op.i32Add, set(P + i))),
    ...rows.map((i) => code(
      get(P + i), times8(R), op.i32Add, set(TMP),
      zero128, ldf(TMP, 8 * i), get(VR + i), op.f64Mul, op.f64x2ReplaceLane(0), set(S + i),
      ...rows.slice(0, i).map((k) => code(ldf(TMP, 8 * k), set(y(i, k)))),
      bump(P + i, times8(2)),
    )),
    get(4), times8(2), op.i32Add, set(VP),
    get(5), times8(2), op.i32Add, set(AP),
    // r − c0 is even (a multiple of 4 but for the last single row): whole pairs, two per trip, then an odd one.
    get(P), get(R), get(2), op.i32Sub, c32(2), op.i32ShrU, c32(5), op.i32Shl, op.i32Add, set(END),
    whileDo(code(get(P), get(END), op.i32LtU), code(pair(0), pair(16), advance(32))),
    get(R), get(2), op.i32Sub, c32(2), op.i32And, op.if(), pair(0), op.end,
    ...rows.map((i) => code(get(S + i), op.f64x2ExtractLane(0), set(T + i))),
    ...rows.map((i) => code(...rows.slice(0, i).map((k) => code(get(T + i), get(y(i, k)), get(VR + k), op.f64Mul, op.f64Add, set(T + i))))),
    get(5), times8(R), op.i32Add, set(AP),
    ...rows.map((k) => code(
      accAdd(k, code(get(T + k), get(S + k), op.f64x2ExtractLane(1), op.f64Add)),
      k < g - 1 ? accAdd(k, sum(rows.slice(k + 1).map((i) => code(get(y(i, k)), get(VR + i), op.f64Mul)))) : code(),
    )),
    bump(R, g),
  );
}

/**
 * symv(a, lda8, c0, n, v, acc): acc[c0..n) += A₂₂·v from the lower triangle, rows four at a time from c0, then at
 * most one pair and one single row (the row groups of symvLower).
 */
export function symvFn(fma: boolean): WasmFunction {
  const body = code(
    get(2), set(R),
    whileDo(code(get(R), c32(3), op.i32Add, get(3), op.i32LtS), rowGroup(4, fma)),
    get(R), c32(1), op.i32Add, get(3), op.i32LtS, op.if(), rowGroup(2, fma), op.end,
    get(R), get(3), op.i32LtS, op.if(), rowGroup(1, fma), op.end,
  );
  return {
    name: 'symv',
    params: Array(6).fill('i32'),
    results: [],
    locals: [...Array(9).fill('i32'), ...Array(11).fill('v128'), ...Array(14).fill('f64')],
    body,
  };
}
