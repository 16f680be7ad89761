// WASM SIMD kernels of the merge's dtype changes (`mora merge --dtype f16|bf16|f32`): base values of one float dtype
// decoded to float32, optionally a float32 ΔW row added, rounded once to another float dtype and checked, 8 values
// per step. One kernel per (from, to, with ΔW) among BF16, F16 and F32, generated from one template:
//   decode  BF16: bits << 16;  F16: |h| << 13 as f32 times 2^112 (exact for normals and subnormals), sign or-ed back;
//           F32: the bits as they are
//   add     f32x4.add (one IEEE rounding, as RowCodec's `acc[i] + base` in float64 rounded to float32)
//   encode  BF16: (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;  F32: the bits;  F16: normals by integer rounding as
//           f16BitsFromF32Bits, subnormals by |x| + 0.5 in f32 (the FPU's round to nearest even) minus 0.5's bits
// A group of 8 holding a value that is NaN/Inf or rounds to Inf (or an F16 Inf/NaN input) stops the kernel before
// anything of it is stored; RowCodec's JS loop then does the rest of the row and names the element, so errors and
// bytes are those of the JS path (test/unit/mergeConvert.test.ts compares both bit for bit).
import { dtypeSize } from '../safetensors';
import { code, op, type Code, type WasmFunction } from '../util/wasm';
import type { MergeWasm } from './mergeWasm';

export type ConvDtype = 'BF16' | 'F16' | 'F32';
const convDtypes: ConvDtype[] = ['BF16', 'F16', 'F32'];
const isConv = (d: string): d is ConvDtype => d === 'BF16' || d === 'F16' || d === 'F32';

/** kernel(acc, inp, out, n8) -> -1, or the index of the first group of 8 that needs the JS loop; n8 a multiple of 8. */
type ConvKernel = (acc: number, inp: number, out: number, n8: number) => number;

const splat32 = (v: number): Code => code(op.i32Const(v), op.i32x4Splat);

// Magnitude bits above which a float32 value is refused for the output dtype: NaN/Inf, or it rounds to Inf.
const limitOf: Record<ConvDtype, number> = { BF16: 0x7f7f7fff, F16: 0x477fefff, F32: 0x7f7fffff };

// Parameters acc 0, inp 1, out 2, n8 3; locals i 4 (i32), lo 5, hi 6, bad 7, x 8, a 9 (v128), then one v128 local per
// splatted constant, set once before the loop (a splat inside the loop is re-materialised every step).
function convKernel(from: ConvDtype, to: ConvDtype, withAcc: boolean): { body: Code; constants: number } {
  const [acc, inp, out, n8, i, lo, hi, bad, x, a] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const consts = new Map<number, number>();
  const k = (v: number): Code => {
    if (!consts.has(v)) consts.set(v, 10 + consts.size);
    return op.get(consts.get(v)!);
  };
  const inSize = dtypeSize(from);
  const outSize = dtypeSize(to);
  // F16 bits (u32 lanes in x) -> float32 bits; Inf/NaN inputs are flagged in `bad` instead (the output refuses them).
  const halfToF32 = (dst: number) => code(
    op.get(x), k(0x7fff), op.v128And, op.i32Const(13), op.i32x4Shl, k(0x77800000), op.f32x4Mul,
    op.get(x), k(0x8000), op.v128And, op.i32Const(16), op.i32x4Shl, op.v128Or, op.set(dst),
    op.get(bad), op.get(x), k(0x7c00), op.v128And, k(0x7c00), op.i32x4Eq, op.v128Or, op.set(bad),
  );
  let decode: Code;
  if (from === 'F32') decode = code(op.get(inp), op.v128Load(0, 4), op.set(lo), op.get(inp), op.v128Load(16, 4), op.set(hi));
  else if (from === 'BF16') {
    decode = code(
      op.get(inp), op.v128Load(0, 4), op.set(x),
      op.get(x), op.i32x4ExtendLowI16x8U, op.i32Const(16), op.i32x4Shl, op.set(lo),
      op.get(x), op.i32x4ExtendHighI16x8U, op.i32Const(16), op.i32x4Shl, op.set(hi),
    );
  } else {
    decode = code(
      op.i32x4Const(0, 0, 0, 0), op.set(bad),
      op.get(inp), op.v128Load(0, 4), op.set(a),
      op.get(a), op.i32x4ExtendLowI16x8U, op.set(x), halfToF32(lo),
      op.get(a), op.i32x4ExtendHighI16x8U, op.set(x), halfToF32(hi),
    );
  }
  const add = withAcc
    ? code(op.get(acc), op.v128Load(0, 4), op.get(lo), op.f32x4Add, op.set(lo), op.get(acc), op.v128Load(16, 4), op.get(hi), op.f32x4Add, op.set(hi))
    : code();
  // |lo| and |hi| go to absLo / absHi, which the F16 encode reuses.
  const [absLo, absHi] = [x, a];
  const over = (v: number, abs: number) => code(op.get(v), k(0x7fffffff), op.v128And, op.tee(abs), k(limitOf[to]), op.i32x4GtS);
  const check = code(over(lo, absLo), over(hi, absHi), op.v128Or, ...(from === 'F16' ? [op.get(bad), op.v128Or] : []), op.v128AnyTrue);
  // Round to nearest even of the upper 16 bits, as RowCodec's BF16 encode.
  const bf16 = (v: number) => code(op.get(v), k(0x7fff), op.i32x4Add, op.get(v), op.i32Const(16), op.i32x4ShrU, k(1), op.v128And, op.i32x4Add, op.i32Const(16), op.i32x4ShrU);
  // f16BitsFromF32Bits for |v| < 65520: normal halves (a ≥ 0x38800000) by rebias + integer rounding, the rest by the
  // f32 addition a + 0.5, whose rounding to a multiple of 2^-24 is the half subnormal's (ties to even, 2^-25 -> 0).
  const f16 = (v: number, a: number) => code(
    op.get(a), k(0x3f000000), op.f32x4Add, k(0x3f000000), op.i32x4Sub,
    op.get(a), k(0xfff - 0x38000000), op.i32x4Add, op.get(a), op.i32Const(13), op.i32x4ShrU, k(1), op.v128And, op.i32x4Add,
    op.i32Const(13), op.i32x4ShrU,
    k(0x38800000), op.get(a), op.i32x4GtS, op.v128Bitselect,
    op.get(v), op.i32Const(16), op.i32x4ShrU, k(0x8000), op.v128And, op.v128Or,
  );
  // Both halves are ≤ 0xffff, so the saturating narrow is exact.
  const store = to === 'F32'
    ? code(op.get(out), op.get(lo), op.v128Store(0, 4), op.get(out), op.get(hi), op.v128Store(16, 4))
    : code(op.get(out), ...(to === 'BF16' ? [bf16(lo), bf16(hi)] : [f16(lo, absLo), f16(hi, absHi)]), op.i16x8NarrowI32x4U, op.v128Store(0, 4));
  const step = (p: number, by: number) => code(op.get(p), op.i32Const(by), op.i32Add, op.set(p));
  const loop = code(
    op.i32Const(0), op.set(i),
    op.block(), op.loop(),
    op.get(i), op.get(n8), op.i32GeU, op.brIf(1),
    decode, add,
    check, op.if(), op.get(i), op.return, op.end,
    store,
    step(acc, 32), step(inp, 8 * inSize), step(out, 8 * outSize), step(i, 8),
    op.br(0), op.end, op.end,
    op.i32Const(-1),
  );
  const init = [...consts].map(([v, local]) => code(splat32(v), op.set(local)));
  return { body: code(...init, loop), constants: consts.size };
}

const kernelName = (from: ConvDtype, to: ConvDtype, withAcc: boolean) => `${from}_${to}${withAcc ? '_acc' : ''}`;

// One module per MergeWasm, sharing its arena's memory (the kernels read and write arena regions only).
function kernels(w: MergeWasm): Record<string, ConvKernel> {
  return w.module<Record<string, ConvKernel>>('convert', () =>
    convDtypes.flatMap((from) => convDtypes.filter((to) => to !== from).flatMap((to) => [false, true].map((withAcc) => {
      const { body, constants } = convKernel(from, to, withAcc);
      return {
        name: kernelName(from, to, withAcc),
        params: ['i32', 'i32', 'i32', 'i32'],
        results: ['i32'],
        locals: ['i32', ...Array<'v128'>(5 + constants).fill('v128')],
        body,
      } satisfies WasmFunction;
    }))));
}

/**
 * Arena scratch for the dtype change of rows of up to `width` values: the base bytes and ΔW are copied in, the
 * kernel runs, the converted bytes are copied out (a ΔW row formed in the arena already is read in place).
 */
export class WasmConvRows {
  private readonly inSize: number;
  private readonly outSize: number;
  private readonly pIn: number;
  private readonly pOut: number;
  private readonly pAcc: number;
  private bytes = new Uint8Array(0); // view of the whole arena, re-made when the memory has grown
  private readonly plain: ConvKernel;
  private readonly withAcc: ConvKernel;

  /** Undefined unless both dtypes are BF16, F16 or F32 and differ (F64 and kept dtypes take other paths). */
  static create(w: MergeWasm, from: string, to: string, width: number): WasmConvRows | undefined {
    return isConv(from) && isConv(to) && from !== to ? new WasmConvRows(w, from, to, width) : undefined;
  }

  private constructor(private readonly w: MergeWasm, from: ConvDtype, to: ConvDtype, width: number) {
    const w8 = Math.ceil(width / 8) * 8;
    this.inSize = dtypeSize(from);
    this.outSize = dtypeSize(to);
    this.pIn = w.arena.alloc(w8 * this.inSize);
    this.pOut = w.arena.alloc(w8 * this.outSize);
    this.pAcc = w.arena.alloc(w8 * 4);
    const k = kernels(w);
    this.plain = k[kernelName(from, to, false)];
    this.withAcc = k[kernelName(from, to, true)];
  }

  /**
   * Output elements [start, start + done) = round(acc[accOff..] + base) (or round(base) without acc) for the leading
   * whole groups of 8 of the n requested, stopping before a group the JS loop must look at; returns done. `raw` and
   * `out` are the whole input and output tensors' bytes (they may be the same bytes when the sizes match).
   */
  run(raw: Uint8Array, out: Uint8Array, acc: Float32Array | undefined, accOff: number, start: number, n: number): number {
    const { w, inSize, outSize } = this;
    const n8 = n & ~7;
    const buf = w.buffer;
    if (this.bytes.buffer !== buf) this.bytes = new Uint8Array(buf);
    const arena = this.bytes;
    arena.set(raw.subarray(start * inSize, (start + n8) * inSize), this.pIn);
    let pAcc = this.pAcc;
    if (acc) {
      // A view left detached by a later alloc would read as empty: a programming error, not bad input.
      if (acc.length < accOff + n8) throw new RangeError(`WasmConvRows: acc holds ${acc.length} values, needs ${accOff + n8}`);
      if (acc.buffer === buf) pAcc = acc.byteOffset + 4 * accOff;
      else new Float32Array(buf, pAcc, n8).set(acc.subarray(accOff, accOff + n8));
    }
    const bad = (acc ? this.withAcc : this.plain)(pAcc, this.pIn, this.pOut, n8);
    const done = bad < 0 ? n8 : bad;
    out.set(arena.subarray(this.pOut, this.pOut + done * outSize), start * outSize);
    return done;
  }
}
