// Code-building shorthands shared by the spectrum's WASM SIMD kernels (wasmKernels.ts, wasmSymv.ts,
// wasmGemmStrided.ts): constants, a while loop, pointer bumps and loads, over src/util/wasm.ts's instruction helpers.

import { code, op, type Code } from '../util/wasm';

const { get, set } = op;

export const c32 = (v: number): Code => op.i32Const(v);
/** `while (cond) body` (cond leaves an i32 on the stack). */
export const whileDo = (cond: Code, body: Code): Code => code(op.block(), op.loop(), cond, op.i32Eqz, op.brIf(1), body, op.br(0), op.end, op.end);
/** local += delta (i32). */
export const bump = (l: number, delta: Code | number): Code => code(get(l), typeof delta === 'number' ? c32(delta) : delta, op.i32Add, set(l));
export const zero128: Code = op.v128Const(new Uint8Array(16));
/** v128 / f64 load from the byte pointer in local `ptr` (+ off), 8-byte aligned. */
export const ld = (ptr: number, off = 0): Code => code(get(ptr), op.v128Load(off, 3));
export const ldf = (ptr: number, off = 0): Code => code(get(ptr), op.f64Load(off, 3));

/**
 * acc + x·y on f64x2 (each argument code leaving one v128). Without `fma`: a multiply then an add, two roundings, the
 * JS twins' arithmetic (bit-identical). With `fma`: relaxed_madd, one instruction instead of two, since the kernels
 * are bound by instruction issue; fused where the hardware has FMA (one rounding), so results differ from the twins
 * in the last bits, within the usual dot-product error bound (tested).
 */
export const madd = (fma: boolean, acc: Code, x: Code, y: Code): Code =>
  fma ? code(x, y, acc, op.f64x2RelaxedMadd) : code(acc, x, y, op.f64x2Mul, op.f64x2Add);
