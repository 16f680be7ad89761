// WASM SIMD kernels of the merge's three hot loops, assembled once per process with src/util/wasm.ts:
//   - bf16AddRound: out = bf16_RNE(f32(acc + bf16 base)), 8 lanes at a time, stopping before the first group that
//     holds a NaN/Inf sum or one that rounds to Inf (the JS path then names the exact element and throws);
//   - scan16 / scan32: the first group of base values holding an Inf/NaN or a -0 (the values a pass-through of ΔW's
//     exact zeros has to look at);
//   - lora4: four rows of LoRA's scaling·B·A at once, f64x2 over columns;
//   - mora6Band: the r̂ non-zeros of one MoRA type-6 ΔW row, f64x2 over columns.
// Each lane does exactly the scalar JS arithmetic (IEEE add/mul round to nearest even, no FMA, no flush to zero), so
// results are bit-identical to mergeCodec.ts / mergeKernels.ts; test/unit/mergeWasm.test.ts checks that.
// Data must live in the arena's linear memory: callers copy rows in and out (memcpy is cheap next to the arithmetic).
import { assembleModule, code, instantiate, op, WasmArena, wasmSimdSupported, type Code, type WasmFunction } from '../util/wasm';

export interface MergeKernels {
  /** acc: f32 [n8], io: bf16 [n8] in, rounded bf16 out in place; n8 a multiple of 8. -1, or the first bad group's start. */
  bf16AddRound(acc: number, io: number, n8: number): number;
  /** u16 [n32], n32 a multiple of 32: start of the first 32-group with (h & exp) == exp or h == 0x8000, else n32. */
  scan16(p: number, n32: number, exp: number): number;
  /** u32 [n16], n16 a multiple of 16: start of the first 16-group with an Inf/NaN or -0 (0x80000000), else n16. */
  scan32(p: number, n16: number): number;
  /**
   * out f32 [4, inP] = rows of scaling·(Σ_k bq[k, j]·a[k, :]) for j < 4, summed in float64 in k order from +0.
   * a: f64 [r, inP], bq: f64 [r, 4] (B of the four rows, rank-major), inP a multiple of 4, r ≥ 1.
   */
  lora4(a: number, bq: number, r: number, inP: number, out: number, scaling: number): void;
  /** One MoRA-6 band of 4·pairs f32 values (two halves hb bytes apart) from f32 M, cos and sin rows; see below. */
  mora6Band(m: number, cs: number, sn: number, out: number, pairs: number, hb: number): void;
}

const splat32 = (v: number): Code => code(op.i32Const(v), op.i32x4Splat);

// bf16AddRound(acc 0, io 1, n8 2) -> i32. Locals: end 3, start 4 (i32); lo 5, hi 6, mask 7, lim 8, half 9, one 10.
export function bf16AddRound(): Code {
  const [acc, io, end, start, lo, hi, mask, lim, half, one] = [0, 1, 3, 4, 5, 6, 7, 8, 9, 10];
  // Round to nearest even of the upper 16 bits: (b + 0x7fff + ((b >>> 16) & 1)) >>> 16, as RowCodec does.
  const round = (x: number) => code(op.get(x), op.get(half), op.i32x4Add, op.get(x), op.i32Const(16), op.i32x4ShrU, op.get(one), op.v128And, op.i32x4Add, op.i32Const(16), op.i32x4ShrU);
  // |bits| > 0x7f7f7fff: NaN, ±Inf, or a finite sum that rounds up to Inf.
  const bad = (x: number) => code(op.get(x), op.get(mask), op.v128And, op.get(lim), op.i32x4GtS);
  return code(
    splat32(0x7fffffff), op.set(mask), splat32(0x7f7f7fff), op.set(lim), splat32(0x7fff), op.set(half), splat32(1), op.set(one),
    op.get(io), op.set(start), op.get(io), op.get(2), op.i32Const(1), op.i32Shl, op.i32Add, op.set(end),
    op.block(), op.loop(),
    op.get(io), op.get(end), op.i32GeU, op.brIf(1),
    // lo/hi = acc + (base << 16), in f32 (the JS path adds in f64 and rounds once; for two f32 operands that is the same).
    op.get(acc), op.v128Load(0, 4), op.get(io), op.v128Load(0, 4), op.i32x4ExtendLowI16x8U, op.i32Const(16), op.i32x4Shl, op.f32x4Add, op.set(lo),
    op.get(acc), op.v128Load(16, 4), op.get(io), op.v128Load(0, 4), op.i32x4ExtendHighI16x8U, op.i32Const(16), op.i32x4Shl, op.f32x4Add, op.set(hi),
    bad(lo), bad(hi), op.v128Or, op.v128AnyTrue,
    op.if(), op.get(io), op.get(start), op.i32Sub, op.i32Const(1), op.i32ShrU, op.return, op.end,
    // Both halves are ≤ 0xffff after the shift, so the unsigned saturating narrow is exact.
    op.get(io), round(lo), round(hi), op.i16x8NarrowI32x4U, op.v128Store(0, 4),
    op.get(acc), op.i32Const(32), op.i32Add, op.set(acc),
    op.get(io), op.i32Const(16), op.i32Add, op.set(io),
    op.br(0), op.end, op.end,
    op.i32Const(-1),
  );
}

// scanN(p 0, n 1, ...) -> i32 over 64-byte groups. Locals after the params: q, end, e, z (v128).
export function scan(width: 16 | 32): Code {
  const [p, n] = [0, 1];
  const [q, end, e, z] = width === 16 ? [3, 4, 5, 6] : [2, 3, 4, 5];
  const eq = width === 16 ? op.i16x8Eq : op.i32x4Eq;
  const shift = width === 16 ? 1 : 2;
  const vec = (off: number) => code(
    op.get(q), op.v128Load(off, 4), op.get(e), op.v128And, op.get(e), eq,
    op.get(q), op.v128Load(off, 4), op.get(z), eq, op.v128Or,
  );
  return code(
    width === 16 ? code(op.get(2), op.i32Const(0x10001), op.i32Mul, op.i32x4Splat) : splat32(0x7f800000), op.set(e),
    splat32(width === 16 ? 0x80008000 | 0 : 0x80000000 | 0), op.set(z),
    op.get(p), op.set(q),
    op.get(p), op.get(n), op.i32Const(shift), op.i32Shl, op.i32Add, op.set(end),
    op.block(), op.loop(),
    op.get(q), op.get(end), op.i32GeU, op.brIf(1),
    vec(0), vec(16), op.v128Or, vec(32), vec(48), op.v128Or, op.v128Or, op.v128AnyTrue,
    op.if(), op.get(q), op.get(p), op.i32Sub, op.i32Const(shift), op.i32ShrU, op.return, op.end,
    op.get(q), op.i32Const(64), op.i32Add, op.set(q),
    op.br(0), op.end, op.end,
    op.get(n),
  );
}

// lora4(a 0, bq 1, r 2, inP 3, out 4, scaling 5 f64). Locals: cb 6, k 7, pa 8, pb 9, po 10, rowA 11, rowO 12 (i32);
// acc 13..20, x0 21, x1 22, b 23, sc 24 (v128).
function lora4(): Code {
  const [a, bq, r, inP, out, scaling, cb, k, pa, pb, po, rowA, rowO] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const acc = (i: number) => 13 + i;
  const [x0, x1, b, sc] = [21, 22, 23, 24];
  // acc_j = acc_j + b·x (mul, then add: two roundings, as JS does).
  const madd = (j: number, x: number) => code(op.get(acc(j)), op.get(b), op.get(x), op.f64x2Mul, op.f64x2Add, op.set(acc(j)));
  const rank = code(
    op.get(pa), op.v128Load(0, 3), op.set(x0), op.get(pa), op.v128Load(16, 3), op.set(x1),
    ...[0, 1, 2, 3].map((j) => code(op.get(pb), op.v128Load64Splat(8 * j, 3), op.set(b), madd(2 * j, x0), madd(2 * j + 1, x1))),
  );
  // Row j's four columns: (acc·scaling) demoted to f32 (round to nearest even), two f32x2 halves joined.
  const lowHalves = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
  const demote = (i: number) => code(op.get(acc(i)), op.get(sc), op.f64x2Mul, op.f32x4DemoteF64x2Zero);
  const store = (j: number) => code(
    op.get(po), ...Array(j).fill(code(op.get(rowO), op.i32Add)),
    demote(2 * j), demote(2 * j + 1), op.i8x16Shuffle(lowHalves), op.v128Store(0, 2),
  );
  return code(
    op.get(scaling), op.f64x2Splat, op.set(sc),
    op.get(inP), op.i32Const(3), op.i32Shl, op.set(rowA),
    op.get(inP), op.i32Const(2), op.i32Shl, op.set(rowO),
    op.i32Const(0), op.set(cb),
    op.block(), op.loop(),
    op.get(cb), op.get(inP), op.i32GeU, op.brIf(1),
    ...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => code(op.i32x4Const(0, 0, 0, 0), op.set(acc(i)))),
    op.get(a), op.get(cb), op.i32Const(3), op.i32Shl, op.i32Add, op.set(pa),
    op.get(bq), op.set(pb),
    op.get(r), op.set(k),
    op.loop(),
    rank,
    op.get(pa), op.get(rowA), op.i32Add, op.set(pa),
    op.get(pb), op.i32Const(32), op.i32Add, op.set(pb),
    op.get(k), op.i32Const(1), op.i32Sub, op.tee(k), op.brIf(0),
    op.end,
    op.get(out), op.get(cb), op.i32Const(2), op.i32Shl, op.i32Add, op.set(po),
    store(0), store(1), store(2), store(3),
    op.get(cb), op.i32Const(4), op.i32Add, op.set(cb),
    op.br(0), op.end, op.end,
  );
}

// mora6Band(m 0, cs 1, sn 2, out 3, pairs 4, hb 5): for j < 2·pairs, with h = hb / 4 and f32 inputs widened to f64,
// out[j] = f32(0 + (m[j]·cs[j] + m[j+h]·sn[j])) and out[j+h] = f32(0 + (m[j+h]·cs[j] − m[j]·sn[j])), as Mora6Rows
// adds a row's band onto zeros. Locals: i 6, end 7, mh 8, oh 9 (i32); m1 10, m2 11, co 12, si 13 (v128).
export function mora6Band(): Code {
  const [m, cs, sn, out, pairs, hb, i, end, mh, oh, m1, m2, co, si] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
  const load = (base: number, to: number) => code(op.get(base), op.get(i), op.i32Add, op.v128Load64Zero(0, 2), op.f64x2PromoteLowF32x4, op.set(to));
  const store = (base: number, value: Code) => code(
    op.get(base), op.get(i), op.i32Add, op.i32x4Const(0, 0, 0, 0), value, op.f64x2Add, op.f32x4DemoteF64x2Zero, op.v128Store64Lane(0, 0, 2),
  );
  const prod = (x: number, y: number) => code(op.get(x), op.get(y), op.f64x2Mul);
  return code(
    op.get(m), op.get(hb), op.i32Add, op.set(mh),
    op.get(out), op.get(hb), op.i32Add, op.set(oh),
    op.get(pairs), op.i32Const(3), op.i32Shl, op.set(end),
    op.i32Const(0), op.set(i),
    op.block(), op.loop(),
    op.get(i), op.get(end), op.i32GeU, op.brIf(1),
    load(m, m1), load(mh, m2), load(cs, co), load(sn, si),
    store(out, code(prod(m1, co), prod(m2, si), op.f64x2Add)),
    store(oh, code(prod(m2, co), prod(m1, si), op.f64x2Sub)),
    op.get(i), op.i32Const(8), op.i32Add, op.set(i),
    op.br(0), op.end, op.end,
  );
}

/** The kernels, instantiated against one arena; views of its memory must be re-made after an alloc grows it. */
export class MergeWasm {
  readonly arena = new WasmArena();
  readonly k: MergeKernels;
  private readonly modules = new Map<string, unknown>(); // module(): further kernels on this arena, by name

  constructor() {
    const v = 'v128' as const;
    this.k = instantiate<MergeKernels>(
      assembleModule([
        { name: 'bf16AddRound', params: ['i32', 'i32', 'i32'], results: ['i32'], locals: ['i32', 'i32', v, v, v, v, v, v], body: bf16AddRound() },
        { name: 'scan16', params: ['i32', 'i32', 'i32'], results: ['i32'], locals: ['i32', 'i32', v, v], body: scan(16) },
        { name: 'scan32', params: ['i32', 'i32'], results: ['i32'], locals: ['i32', 'i32', v, v], body: scan(32) },
        {
          name: 'lora4', params: ['i32', 'i32', 'i32', 'i32', 'i32', 'f64'], results: [],
          locals: ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', ...Array<'v128'>(12).fill(v)], body: lora4(),
        },
        {
          name: 'mora6Band', params: ['i32', 'i32', 'i32', 'i32', 'i32', 'i32'], results: [],
          locals: ['i32', 'i32', 'i32', 'i32', v, v, v, v], body: mora6Band(),
        },
      ]),
      this.arena.memory,
    );
  }

  /**
   * The exports of another kernel module that works on this arena's memory (TIES, dtype conversion), assembled from
   * `fns()` and instantiated on first use, then kept for the life of this MergeWasm.
   */
  module<K>(name: string, fns: () => WasmFunction[]): K {
    let k = this.modules.get(name) as K | undefined;
    if (!k) {
      k = instantiate<K>(assembleModule(fns()), this.arena.memory);
      this.modules.set(name, k);
    }
    return k;
  }

  get buffer(): ArrayBuffer {
    return this.arena.memory.buffer;
  }

  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.arena.memory.buffer, ptr, n);
  }

  f64(ptr: number, n: number): Float64Array {
    return new Float64Array(this.arena.memory.buffer, ptr, n);
  }

  u16(ptr: number, n: number): Uint16Array {
    return new Uint16Array(this.arena.memory.buffer, ptr, n);
  }

  u32(ptr: number, n: number): Uint32Array {
    return new Uint32Array(this.arena.memory.buffer, ptr, n);
  }
}

// MORA_KERNELS=js selects the JS loops in the merge and the spectrum alike (benchmarks and bug reports compare both).
let enabled = process.env.MORA_KERNELS !== 'js';
let instance: MergeWasm | null | undefined;

/**
 * The merge's WASM kernels, or undefined where WebAssembly SIMD is missing or they are switched off (environment
 * MORA_KERNELS=js, or setMergeWasm(false)); callers then take the JS loops, which give the same bytes.
 */
export function mergeWasm(): MergeWasm | undefined {
  if (!enabled) return undefined;
  if (instance === undefined) instance = wasmSimdSupported() ? new MergeWasm() : null;
  return instance ?? undefined;
}

/** Switches the WASM kernels on or off for this process (tests compare both paths); returns the previous setting. */
export function setMergeWasm(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}
