// WASM twins of the O(n)-per-column loops of the blocked reductions (JS references in columnKernels.ts): packing the
// panel operands of the trailing update, the Householder reflector of a strided run, the tridiagonalisation's W
// column and the bidiagonalisation's Y column. In JS these loops cost about as much as the SIMD kernels they feed
// (bounds-checked strided loops, ≈ 3 ns per element). Each does the JS twin's floating-point operations in the same
// order (scalar f64, no fused multiply–add), so the results are bit-identical; only the max of the reflector's scale
// is reordered, and a max does not round. Pointers are byte offsets into the arena, strides in bytes.

import { code, op, type Code, type WasmFunction } from '../util/wasm';
import { c32, whileDo, bump } from './wasmAsm';

const { get, set } = op;
const f64c = (v: number): Code => op.f64Const(v);

/**
 * pack(dst, rows, k, p0, p1, src, rs8, ps8, wp, hasW): packStrided (gemmKernel.ts) with src pointing at element
 * (0, p0): dst[((rb·k + p)·4 + ii)] = src(4·rb + ii, p)·f_p, f_p = wp[p − p0] or 1, zero past `rows`. Locals:
 * 10 rb, 11 blocks, 12 out pointer, 13 source pointer of the block's column p, 14 weight pointer, 15 p, 16 rows
 * left in the block, 17 f.
 */
export function packFn(): WasmFunction {
  // Element ii of the current column: a full block loads it, a partial one only where the row exists.
  const elem = (ii: number, full: boolean): Code => {
    const load = code(get(13), c32(ii), get(6), op.i32Mul, op.i32Add, op.f64Load(0, 3), get(17), op.f64Mul);
    return full
      ? code(get(12), load, op.f64Store(ii * 8, 3))
      : code(get(12), get(16), c32(ii), op.i32GtS, op.if('f64'), load, op.else, f64c(0), op.end, op.f64Store(ii * 8, 3));
  };
  const column = (full: boolean): Code => code(
    get(14), op.f64Load(0, 3), f64c(1), get(9), op.select, set(17),
    ...Array.from({ length: 4 }, (_, ii) => elem(ii, full)),
    bump(12, 32), bump(13, get(7)), get(9), op.if(), bump(14, 8), op.end,
    bump(15, 1),
  );
  const body = code(
    get(1), c32(3), op.i32Add, c32(2), op.i32ShrU, set(11),
    c32(0), set(10),
    whileDo(code(get(10), get(11), op.i32LtS), code(
      // out = dst + (rb·k + p0)·32; column source = src + 4·rb·rs8
      get(0), get(10), get(2), op.i32Mul, get(3), op.i32Add, c32(5), op.i32Shl, op.i32Add, set(12),
      get(5), get(10), c32(2), op.i32Shl, get(6), op.i32Mul, op.i32Add, set(13),
      get(8), set(14),
      get(1), get(10), c32(2), op.i32Shl, op.i32Sub, set(16),
      get(3), set(15),
      get(16), c32(4), op.i32GeS,
      op.if(), whileDo(code(get(15), get(4), op.i32LtS), column(true)),
      op.else, whileDo(code(get(15), get(4), op.i32LtS), column(false)), op.end,
      bump(10, 1),
    )),
  );
  return { name: 'pack', params: Array(10).fill('i32'), results: [], locals: [...Array(7).fill('i32'), 'f64'], body };
}

/**
 * reflect(x, stride8, from, to, v, out) → τ: reflectRun (householder.ts) with `store`, x pointing at the run's
 * element 0 (from < to). Gathers the run into v[from, to) while taking the max of |v|, then ss += (v/scale)²
 * in order, s = ∓scale·√ss, and v[i] /= (x0 − s) written back into the run (head 1). out[0] = diag. The divisions
 * run in f64x2 pairs (each lane divides exactly as the scalar would; the sum of squares still adds lane 0, then
 * lane 1). Locals: 6 v pointer, 7 x pointer, 8 v end, 9 scale, 10 ss, 11 x0, 12 s, 13 denom, 14 τ, 15 t, 16 pair
 * end, 17 splat divisor, 18 pair.
 */
export function reflectFn(): WasmFunction {
  const vAt = (i: Code): Code => code(get(4), i, c32(3), op.i32Shl, op.i32Add);
  const xAt = (i: Code): Code => code(get(0), i, get(1), op.i32Mul, op.i32Add);
  // pair end = v pointer + 16·⌊(v end − v pointer)/16⌋
  const pairEnd = code(get(6), get(8), get(6), op.i32Sub, c32(4), op.i32ShrU, c32(4), op.i32Shl, op.i32Add, set(16));
  const body = code(
    vAt(get(3)), set(8),
    vAt(get(2)), set(6),
    xAt(get(2)), set(7),
    get(7), op.f64Load(0, 3), set(11),
    whileDo(code(get(6), get(8), op.i32LtU), code(
      get(7), op.f64Load(0, 3), set(15),
      get(6), get(15), op.f64Store(0, 3),
      get(9), get(15), op.f64Abs, op.f64Max, set(9),
      bump(6, 8), bump(7, get(1)),
    )),
    get(9), f64c(0), op.f64Eq,
    op.if(),
    // A zero run: τ = 0, diag = x0, and only the head becomes 1.
    xAt(get(2)), f64c(1), op.f64Store(0, 3),
    vAt(get(2)), f64c(1), op.f64Store(0, 3),
    get(5), get(11), op.f64Store(0, 3),
    f64c(0), op.return,
    op.end,
    // ss += t², t = v/scale, over pairs then a last single.
    vAt(get(2)), set(6),
    pairEnd,
    get(9), op.f64x2Splat, set(17),
    whileDo(code(get(6), get(16), op.i32LtU), code(
      get(6), op.v128Load(0, 3), get(17), op.f64x2Div, set(18),
      get(18), get(18), op.f64x2Mul, set(18),
      get(10), get(18), op.f64x2ExtractLane(0), op.f64Add, get(18), op.f64x2ExtractLane(1), op.f64Add, set(10),
      bump(6, 16),
    )),
    get(6), get(8), op.i32LtU, op.if(),
    get(6), op.f64Load(0, 3), get(9), op.f64Div, set(15),
    get(10), get(15), get(15), op.f64Mul, op.f64Add, set(10),
    op.end,
    get(9), get(10), op.f64Sqrt, op.f64Mul, set(12),
    get(12), op.f64Neg, get(12), get(11), f64c(0), op.f64Gt, op.select, set(12),
    get(11), get(12), op.f64Sub, set(13),
    // Head 1 in v and the run, then the scaled tail into both, pairs then a last single.
    vAt(get(2)), set(6),
    xAt(get(2)), set(7),
    get(6), f64c(1), op.f64Store(0, 3),
    get(7), f64c(1), op.f64Store(0, 3),
    bump(6, 8), bump(7, get(1)),
    pairEnd,
    get(13), op.f64x2Splat, set(17),
    whileDo(code(get(6), get(16), op.i32LtU), code(
      get(6), op.v128Load(0, 3), get(17), op.f64x2Div, set(18),
      get(6), get(18), op.v128Store(0, 3),
      get(7), get(18), op.v128Store64Lane(0, 0, 3),
      bump(7, get(1)),
      get(7), get(18), op.v128Store64Lane(1, 0, 3),
      bump(7, get(1)),
      bump(6, 16),
    )),
    get(6), get(8), op.i32LtU, op.if(),
    get(6), op.f64Load(0, 3), get(13), op.f64Div, set(15),
    get(6), get(15), op.f64Store(0, 3),
    get(7), get(15), op.f64Store(0, 3),
    op.end,
    get(12), get(11), op.f64Sub, get(12), op.f64Div, set(14),
    get(5), get(11), get(12), get(14), f64c(0), op.f64Eq, op.select, op.f64Store(0, 3),
    get(14),
  );
  const locals: WasmFunction['locals'] = ['i32', 'i32', 'i32', 'f64', 'f64', 'f64', 'f64', 'f64', 'f64', 'f64', 'i32', 'v128', 'v128'];
  return { name: 'reflect', params: Array(6).fill('i32'), results: ['f64'], locals, body };
}

/**
 * wcol(acc, v, c0, n, tau, w, ws8): acc[r] *= τ and dot += acc[r]·v[r] for r in [c0, n) in order, then
 * w[r·ws] = acc[r] + (−0.5·τ·dot)·v[r] (w pointing at the column's element 0). Locals: 7 acc pointer, 8 v pointer,
 * 9 end, 10 w pointer, 11 dot, 12 scaled acc, 13 alpha.
 */
export function wcolFn(): WasmFunction {
  const start = code(
    get(0), get(2), c32(3), op.i32Shl, op.i32Add, set(7),
    get(1), get(2), c32(3), op.i32Shl, op.i32Add, set(8),
  );
  const body = code(
    start,
    get(0), get(3), c32(3), op.i32Shl, op.i32Add, set(9),
    whileDo(code(get(7), get(9), op.i32LtU), code(
      get(7), op.f64Load(0, 3), get(4), op.f64Mul, set(12),
      get(7), get(12), op.f64Store(0, 3),
      get(11), get(12), get(8), op.f64Load(0, 3), op.f64Mul, op.f64Add, set(11),
      bump(7, 8), bump(8, 8),
    )),
    f64c(-0.5), get(4), op.f64Mul, get(11), op.f64Mul, set(13),
    start,
    get(5), get(2), get(6), op.i32Mul, op.i32Add, set(10),
    whileDo(code(get(7), get(9), op.i32LtU), code(
      get(10), get(7), op.f64Load(0, 3), get(13), get(8), op.f64Load(0, 3), op.f64Mul, op.f64Add, op.f64Store(0, 3),
      bump(7, 8), bump(8, 8), bump(10, get(6)),
    )),
  );
  return { name: 'wcol', params: ['i32', 'i32', 'i32', 'i32', 'f64', 'i32', 'i32'], results: [], locals: [...Array(4).fill('i32'), ...Array(3).fill('f64')], body };
}

/**
 * scaleTo(src, c0, c1, f, dst, ds8): dst[c·ds] = f·src[c] for c in [c0, c1) (dst pointing at element 0). Locals:
 * 6 src pointer, 7 end, 8 dst pointer.
 */
export function scaleToFn(): WasmFunction {
  const body = code(
    get(0), get(1), c32(3), op.i32Shl, op.i32Add, set(6),
    get(0), get(2), c32(3), op.i32Shl, op.i32Add, set(7),
    get(4), get(1), get(5), op.i32Mul, op.i32Add, set(8),
    whileDo(code(get(6), get(7), op.i32LtU), code(
      get(8), get(3), get(6), op.f64Load(0, 3), op.f64Mul, op.f64Store(0, 3),
      bump(6, 8), bump(8, get(5)),
    )),
  );
  return { name: 'scaleTo', params: ['i32', 'i32', 'i32', 'f64', 'i32', 'i32'], results: [], locals: Array(3).fill('i32'), body };
}
