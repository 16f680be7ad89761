// WASM SIMD twin of gemmStridedSubtract (gemmKernel.ts): the packed 4×4 rank-k update with Ā read in place through
// strides. Lane by lane it performs the JS twin's operations in the same order (accumulators from zero, acc += a·b
// per p as a multiply then an add, then C −= acc), so the results are bit-identical. Assembled into the dense kernel
// module (wasmKernels.ts); pointers are byte offsets into the arena, strides in bytes. With `fma` the multiply–adds
// are relaxed_madd (wasmAsm.ts madd): fused rounding, no longer bit-identical to the twin.

import { code, op, type Code, type WasmFunction } from '../util/wasm';
import { c32, whileDo, bump, zero128, madd } from './wasmAsm';

const { get, set } = op;

/**
 * gemmStrided(c, ldc8, nrb, ncb, k, a, ablk8, ars8, acs8, pb): C −= Ā·B̄ on nrb full row blocks × ncb column blocks,
 * Ā(4·rb + ii, p) at a + rb·ablk8 + ii·ars8 + p·acs8, B̄ᵀ packed as for gemm. Locals: 10 rb, 11 cb, 12..15 row
 * pointers of Ā, 16 b pointer, 17 b end, 18 C pointer, 19 bytes per packed B̄ block, 20..27 accumulators, 28 b01,
 * 29 b23, 30 splat.
 */
export function gemmStridedFn(fma: boolean): WasmFunction {
  const acc = (i: number) => 20 + i;
  const step: Code[] = [];
  for (let ii = 0; ii < 4; ii++) {
    step.push(code(get(12 + ii), op.v128Load64Splat(0, 3), set(30)));
    step.push(code(madd(fma, get(acc(2 * ii)), get(30), get(28)), set(acc(2 * ii))));
    step.push(code(madd(fma, get(acc(2 * ii + 1)), get(30), get(29)), set(acc(2 * ii + 1))));
  }
  const store: Code[] = [];
  for (let ii = 0; ii < 4; ii++) {
    store.push(code(get(18), get(18), op.v128Load(0, 3), get(acc(2 * ii)), op.f64x2Sub, op.v128Store(0, 3)));
    store.push(code(get(18), get(18), op.v128Load(16, 3), get(acc(2 * ii + 1)), op.f64x2Sub, op.v128Store(16, 3)));
    store.push(bump(18, get(1)));
  }
  const body = code(
    get(4), c32(32), op.i32Mul, set(19),
    c32(0), set(10),
    whileDo(code(get(10), get(2), op.i32LtS), code(
      c32(0), set(11),
      whileDo(code(get(11), get(3), op.i32LtS), code(
        ...Array.from({ length: 8 }, (_, i) => code(zero128, set(acc(i)))),
        // Row pointers of this block: a + rb·ablk8 + ii·ars8.
        get(5), get(10), get(6), op.i32Mul, op.i32Add, set(12),
        get(12), get(7), op.i32Add, set(13),
        get(13), get(7), op.i32Add, set(14),
        get(14), get(7), op.i32Add, set(15),
        get(9), get(11), get(19), op.i32Mul, op.i32Add, set(16),
        get(16), get(19), op.i32Add, set(17),
        whileDo(code(get(16), get(17), op.i32LtU), code(
          get(16), op.v128Load(0, 3), set(28), get(16), op.v128Load(16, 3), set(29),
          ...step,
          bump(12, get(8)), bump(13, get(8)), bump(14, get(8)), bump(15, get(8)),
          bump(16, 32),
        )),
        // o = c + 4·rb·ldc8 + 32·cb
        get(0), get(10), c32(2), op.i32Shl, get(1), op.i32Mul, op.i32Add, get(11), c32(5), op.i32Shl, op.i32Add, set(18),
        ...store,
        bump(11, 1),
      )),
      bump(10, 1),
    )),
  );
  return { name: 'gemmStrided', params: Array(10).fill('i32'), results: [], locals: [...Array(10).fill('i32'), ...Array(11).fill('v128')], body };
}
