// WASM SIMD twins of the row loops of the unblocked bidiagonalisation (rowsAxpy, rowsRank1, rowsDotRank1 in
// columnKernels.ts), which finishes the last ≤ 48 columns of the blocked one. Each lane does what the JS loop does
// for its column (w[j] + v·a, a − f·w; the dot in dotFrom's four partial sums, lanes (s0, s1) and (s2, s3), and its
// remainder into s0), rows in the same order with the same zero skips, so the results are bit-identical. Pointers
// are byte offsets into the arena, lda8 in bytes.

import { code, op, type Code, type WasmFunction } from '../util/wasm';
import { c32, whileDo, bump, zero128, ld, ldf } from './wasmAsm';

const { get, set } = op;

// Locals shared by the three functions, numbered from the first index after the parameters (np of them): the row i,
// &a[i, j], &w[j], the end of the f64x2 pairs (or quads) for &a, &a[i, c1], the row's factor and its splat, the dot
// lanes (s0, s1) and (s2, s3), and s0 finished in scalar.
const LOCALS: WasmFunction['locals'] = ['i32', 'i32', 'i32', 'i32', 'i32', 'f64', 'v128', 'v128', 'v128', 'f64'];

function rowKernels(np: number) {
  const [I, AP, WP, PE, RE, F, SPL, S01, S23, S0] = Array.from({ length: 10 }, (_, i) => np + i);
  /** AP, WP, RE for row I (params 0 a, 1 lda8, 4 c0, 5 c1; `w` the w param), PE = AP + 8·2^shift·⌊len/2^shift⌋. */
  const rowStart = (w: number, shift: number): Code => code(
    get(0), get(I), get(1), op.i32Mul, op.i32Add, get(4), c32(3), op.i32Shl, op.i32Add, set(AP),
    get(w), get(4), c32(3), op.i32Shl, op.i32Add, set(WP),
    get(AP), get(5), get(4), op.i32Sub, c32(3), op.i32Shl, op.i32Add, set(RE),
    get(AP), get(5), get(4), op.i32Sub, c32(shift), op.i32ShrU, c32(shift + 3), op.i32Shl, op.i32Add, set(PE),
  );
  /** Rows [r0, r1) (params 2, 3). */
  const eachRow = (body: Code): Code => code(get(2), set(I), whileDo(code(get(I), get(3), op.i32LtS), code(body, bump(I, 1))));
  /** One pass over the row: pairs, then a last single (`pair` and `single` update the values at AP and WP). */
  const pass = (pair: Code, single: Code): Code => code(
    whileDo(code(get(AP), get(PE), op.i32LtU), code(pair, bump(AP, 16), bump(WP, 16))),
    get(AP), get(RE), op.i32LtU, op.if(), single, op.end,
  );
  /** a[i, j] −= F·w[j] over the row (after rowStart with shift 1). */
  const update = pass(
    code(get(AP), ld(AP), get(SPL), ld(WP), op.f64x2Mul, op.f64x2Sub, op.v128Store(0, 3)),
    code(get(AP), ldf(AP), get(F), ldf(WP), op.f64Mul, op.f64Sub, op.f64Store(0, 3)),
  );
  const factorNonZero = (body: Code): Code => code(get(F), op.f64Const(0), op.f64Ne, op.if(), get(F), op.f64x2Splat, set(SPL), body, op.end);
  return { I, AP, WP, PE, RE, F, SPL, S01, S23, S0, rowStart, eachRow, pass, update, factorNonZero };
}

/** rowsAxpy(a, lda8, r0, r1, c0, c1, v, w): w[j] += v[i]·a[i, j], rows in order, v[i] = 0 skipped. */
export function rowsAxpyFn(): WasmFunction {
  const { I, AP, WP, F, SPL, rowStart, eachRow, pass, factorNonZero } = rowKernels(8);
  const body = eachRow(code(
    get(6), get(I), c32(3), op.i32Shl, op.i32Add, op.f64Load(0, 3), set(F),
    factorNonZero(code(
      rowStart(7, 1),
      pass(
        code(get(WP), ld(WP), get(SPL), ld(AP), op.f64x2Mul, op.f64x2Add, op.v128Store(0, 3)),
        code(get(WP), ldf(WP), get(F), ldf(AP), op.f64Mul, op.f64Add, op.f64Store(0, 3)),
      ),
    )),
  ));
  return { name: 'rowsAxpy', params: Array(8).fill('i32'), results: [], locals: LOCALS, body };
}

/** rowsRank1(a, lda8, r0, r1, c0, c1, beta, v, w): a[i, j] −= (β·v[i])·w[j], zero factors skipped. */
export function rowsRank1Fn(): WasmFunction {
  const { I, F, rowStart, eachRow, update, factorNonZero } = rowKernels(9);
  const body = eachRow(code(
    get(6), get(7), get(I), c32(3), op.i32Shl, op.i32Add, op.f64Load(0, 3), op.f64Mul, set(F),
    factorNonZero(code(rowStart(8, 1), update)),
  ));
  return { name: 'rowsRank1', params: ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f64', 'i32', 'i32'], results: [], locals: LOCALS, body };
}

/** rowsDotRank1(a, lda8, r0, r1, c0, c1, beta, w): a[i, j] −= (β·dotFrom(row i, w))·w[j], zero factors skipped. */
export function rowsDotRank1Fn(): WasmFunction {
  const { AP, WP, PE, RE, F, S01, S23, S0, rowStart, eachRow, update, factorNonZero } = rowKernels(8);
  const body = eachRow(code(
    rowStart(7, 2),
    zero128, set(S01), zero128, set(S23),
    whileDo(code(get(AP), get(PE), op.i32LtU), code(
      get(S01), ld(AP), ld(WP), op.f64x2Mul, op.f64x2Add, set(S01),
      get(S23), ld(AP, 16), ld(WP, 16), op.f64x2Mul, op.f64x2Add, set(S23),
      bump(AP, 32), bump(WP, 32),
    )),
    get(S01), op.f64x2ExtractLane(0), set(S0),
    whileDo(code(get(AP), get(RE), op.i32LtU), code(
      get(S0), ldf(AP), ldf(WP), op.f64Mul, op.f64Add, set(S0),
      bump(AP, 8), bump(WP, 8),
    )),
    get(6),
    get(S0), get(S01), op.f64x2ExtractLane(1), op.f64Add,
    get(S23), op.f64x2ExtractLane(0), get(S23), op.f64x2ExtractLane(1), op.f64Add, op.f64Add,
    op.f64Mul, set(F),
    factorNonZero(code(rowStart(7, 1), update)),
  ));
  return { name: 'rowsDotRank1', params: ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f64', 'i32'], results: [], locals: LOCALS, body };
}
