// Row codecs of the merge: base bytes of any float dtype in, float32 ΔW rows added, rounded once to the output dtype
// and checked, a row at a time through a small float32 scratch, without function calls per element.
import { dtypeSize, type Dtype } from '../safetensors';
import { f16BitsFromF32Bits, f16TableBits } from '../safetensors/convert';
import { MergeError } from './mergeError';
import type { MergeWasm } from './mergeWasm';
import { lowerBound, scanSpecials, WasmBf16Rows } from './mergeWasmRows';
import { WasmConvRows } from './mergeWasmConvert';

// Bound once: an imported binding can compile to a property getter per call (CommonJS interop), too slow per element.
const halfBits = f16BitsFromF32Bits;

export type FloatDtype = 'F64' | 'F32' | 'F16' | 'BF16';
export const floatDtype = (d: Dtype): d is FloatDtype => d === 'F64' || d === 'F32' || d === 'F16' || d === 'BF16';

/** The NonFiniteResult error encodeChecked raises for value `v` at flat index `i` (same wording per dtype). */
export function encodeError(v: number, dtype: Dtype, what: string, i: number): MergeError {
  const finite = v === v && Math.abs(v) !== Infinity;
  if (dtype === 'BF16') {
    const why = finite ? `value ${v} overflows BF16` : `non-finite value (${v})`;
    return new MergeError('NonFiniteResult', `${what} has a ${why} at flat index ${i}`);
  }
  if (!finite) return new MergeError('NonFiniteResult', `${what} has a non-finite value (${v}) at flat index ${i}`);
  return new MergeError('NonFiniteResult', `${what} value ${v} at flat index ${i} overflows ${dtype}`);
}

/**
 * Decodes base rows, adds a float32 ΔW row, rounds once to the output dtype and refuses non-finite or overflowing
 * values, a row (or part of one) at a time through a small float32 scratch. When input and output elements have the
 * same size the output overwrites the input bytes in place, so a merged tensor needs no second tensor-sized buffer.
 * Values are those of bytesToFloat32 + `acc[i] += w[i]` + encodeChecked, bit for bit.
 */
export class RowCodec {
  readonly out: Uint8Array;
  private readonly raw: Uint8Array;
  private readonly sU: Uint32Array;
  private readonly sF: Float32Array;
  private readonly in16: Uint16Array;
  private readonly in16pairs: Uint32Array; // in16 two at a time
  private readonly in32: Uint32Array;
  private readonly in64: Float64Array;
  private readonly out16: Uint16Array;
  private readonly out32: Uint32Array;
  private readonly out64: Float64Array;
  private readonly half = f16TableBits();
  private readonly bf16Rows?: WasmBf16Rows; // WASM kernel scratch for BF16 -> BF16 rows
  private readonly convRows?: WasmConvRows; // WASM kernel scratch for dtype changes among BF16, F16 and F32
  private specials?: Int32Array; // from scanSpecials(): the only base values pass() has to look at

  /** With `wasm`, its arena gets this codec's scratch now, so make the codec before handing out arena views. */
  constructor(
    raw: Uint8Array,
    private readonly from: FloatDtype,
    private readonly to: FloatDtype,
    width: number,
    private readonly what: string,
    private readonly wasm?: MergeWasm,
    private readonly first = 0, // flat index of raw's first value in its tensor, for error messages
    out?: Uint8Array, // where the output goes when the element size changes (exactly its bytes, 8-aligned); else fresh
  ) {
    // Typed views need aligned bytes; tensors read by SafetensorsFile always are, anything else is copied once.
    this.raw = raw.byteOffset % 8 === 0 ? raw : raw.slice();
    const n = this.raw.length / dtypeSize(from);
    // Rows are decoded into the scratch before any output is stored, so equal element sizes can share the bytes.
    this.out = dtypeSize(to) === dtypeSize(from) ? this.raw : out ?? new Uint8Array(n * dtypeSize(to));
    const view = <T>(make: new (b: ArrayBuffer, o: number, l: number) => T, bytes: Uint8Array, size: number) =>
      new make(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.length / size);
    const empty = new Uint8Array(0);
    const inB = this.raw;
    this.in16 = view(Uint16Array, from === 'F16' || from === 'BF16' ? inB : empty, 2);
    this.in16pairs = view(Uint32Array, from === 'F16' || from === 'BF16' ? inB.subarray(0, inB.length & ~3) : empty, 4);
    this.in32 = view(Uint32Array, from === 'F32' ? inB : empty, 4);
    this.in64 = view(Float64Array, from === 'F64' ? inB : empty, 8);
    this.out16 = view(Uint16Array, to === 'F16' || to === 'BF16' ? this.out : empty, 2);
    this.out32 = view(Uint32Array, to === 'F32' ? this.out : empty, 4);
    this.out64 = view(Float64Array, to === 'F64' ? this.out : empty, 8);
    this.sU = new Uint32Array(Math.max(1, width));
    this.sF = new Float32Array(this.sU.buffer);
    if (wasm && from === 'BF16' && to === 'BF16') this.bf16Rows = new WasmBf16Rows(wasm, width);
    if (wasm) this.convRows = WasmConvRows.create(wasm, from, to, width);
  }

  /** Elements [start, start + n) of the output = round(acc[accOff..] + base), or round(base) without `acc`; n ≤ width. */
  finish(acc: Float32Array | undefined, accOff: number, start: number, n: number): void {
    const { sU, sF } = this;
    if (acc && this.from === 'BF16' && this.to === 'BF16') {
      // The WASM kernel takes the leading groups of 8 it can store; the JS loop does the rest and names a bad value.
      const done = this.bf16Rows && n >= 32 ? this.bf16Rows.addRound(this.in16, this.out16, acc, accOff, start, n) : 0;
      const bad = addRoundBf16(this.in16, this.out16, sU, sF, acc, accOff + done, start + done, n - done);
      if (bad >= 0) throw encodeError(sF[bad], 'BF16', this.what, this.first + start + done + bad);
      return;
    }
    if (this.convRows && n >= 32) {
      // A dtype change: the kernel takes the leading groups of 8 it can store, the JS loops below the rest.
      const done = this.convRows.run(this.raw, this.out, acc, accOff, start, n);
      if (done === n) return;
      accOff += done;
      start += done;
      n -= done;
    }
    this.decode(start, n);
    if (acc) for (let i = 0; i < n; i++) sF[i] = acc[accOff + i] + sF[i];
    this.encode(start, n);
  }

  private decode(start: number, n: number): void {
    const { sU, sF } = this;
    switch (this.from) {
      case 'BF16': for (let i = 0; i < n; i++) sU[i] = this.in16[start + i] << 16; break;
      case 'F16': for (let i = 0; i < n; i++) sU[i] = this.half[this.in16[start + i]]; break;
      case 'F32': for (let i = 0; i < n; i++) sU[i] = this.in32[start + i]; break;
      case 'F64': for (let i = 0; i < n; i++) sF[i] = this.in64[start + i]; break;
    }
  }

  private encode(start: number, n: number): void {
    const { sU, sF, to } = this;
    if (to === 'F16') {
      const bad = roundF16(this.out16, sU, start, n);
      if (bad >= 0) throw encodeError(sF[bad], to, this.what, this.first + start + bad);
      return;
    }
    // Magnitude bits at or above `limit`: NaN/Inf, or a value that overflows the output dtype when rounded.
    const limit = to === 'BF16' ? 0x7f7f8000 : 0x7f800000;
    for (let i = 0; i < n; i++) if ((sU[i] & 0x7fffffff) >= limit) throw encodeError(sF[i], to, this.what, this.first + start + i);
    switch (to) {
      case 'BF16':
        for (let i = 0; i < n; i++) {
          const b = sU[i];
          this.out16[start + i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
        }
        break;
      case 'F32': for (let i = 0; i < n; i++) this.out32[start + i] = sU[i]; break;
      case 'F64': for (let i = 0; i < n; i++) this.out64[start + i] = sF[i]; break;
    }
  }

  /**
   * With WASM: finds every Inf/NaN and -0 of the base once, so pass() visits only those. Call it before any pass()
   * (it reads the original values) and before handing out arena views (it allocates its scan chunk).
   */
  scanForPass(): void {
    if (!this.wasm || !this.canPass) return;
    this.specials = this.from === 'F32'
      ? scanSpecials(this.wasm, this.in32, 0)
      : scanSpecials(this.wasm, this.in16, this.from === 'F16' ? 0x7c00 : 0x7f80);
  }

  /** Whether pass() applies: the output overwrites 16- or 32-bit input in place. */
  get canPass(): boolean {
    return this.from === this.to && this.from !== 'F64';
  }

  /**
   * Elements where ΔW is exactly zero (z = +0 when `plusZero`, else -0): z + base is the base value itself, except
   * that +0 + (-0) = +0, so only -0 is rewritten, and non-finite base values are refused, all in place.
   */
  pass(start: number, n: number, plusZero: boolean): void {
    const list = this.specials;
    if (list) {
      // The same passSpecial calls in the same order as the scans below, found by the whole-tensor WASM scan.
      for (let j = lowerBound(list, start); j < list.length && list[j] < start + n; j++) this.passSpecial(list[j], plusZero);
      return;
    }
    if (this.from === 'F32') {
      const v = this.in32;
      for (let i = start; i < start + n; i++) {
        const h = v[i];
        if ((h & 0x7f800000) === 0x7f800000 || h === 0x80000000) this.passSpecial(i, plusZero);
      }
      return;
    }
    // Two 16-bit values per step. Adding 0x80 to the masked exponent field of each half carries into bit 0x8000 only
    // for an all-ones exponent (Inf/NaN); a half equal to 0x8000 is -0.
    const v = this.in16;
    const exp = this.from === 'F16' ? 0x7c00 : 0x7f80;
    const inc = this.from === 'F16' ? 0x0400 : 0x0080;
    let i = start;
    const end = start + n;
    if (i < end && i % 2 === 1) this.passOne(i++, exp, plusZero);
    const pairs = this.in16pairs;
    const maskBoth = exp * 0x10001;
    const incBoth = inc * 0x10001;
    for (; i + 1 < end; i += 2) {
      const w = pairs[i >>> 1];
      if ((((w & maskBoth) + incBoth) & 0x80008000) === 0 && (w & 0xffff) !== 0x8000 && w >>> 16 !== 0x8000) continue;
      this.passOne(i, exp, plusZero);
      this.passOne(i + 1, exp, plusZero);
    }
    if (i < end) this.passOne(i, exp, plusZero);
  }

  private passOne(i: number, exp: number, plusZero: boolean): void {
    const h = this.in16[i];
    if ((h & exp) === exp || h === 0x8000) this.passSpecial(i, plusZero);
  }

  /** A non-finite base value (refused) or -0 (becomes +0 when ΔW's zero is +0). */
  private passSpecial(i: number, plusZero: boolean): void {
    this.decode(i, 1);
    const v = (plusZero ? 0 : -0) + this.sF[0];
    if (v !== v || v === Infinity || v === -Infinity) throw encodeError(v, this.to, this.what, this.first + i);
    if (!plusZero) return;
    if (this.from === 'F32') this.in32[i] = 0;
    else this.in16[i] = 0;
  }
}

/**
 * out16[start + i] = bf16(fround(acc[accOff + i] + bf16 in16[start + i])) for i < n, round to nearest even, in one
 * loop through the float32 scratch. Returns the first i whose sum is NaN/Inf or rounds to Inf (stopping there), else -1.
 */
function addRoundBf16(
  in16: Uint16Array, out16: Uint16Array, sU: Uint32Array, sF: Float32Array, acc: Float32Array, accOff: number, start: number, n: number,
): number {
  for (let i = 0; i < n; i++) {
    sU[i] = in16[start + i] << 16;
    sF[i] = acc[accOff + i] + sF[i];
    const b = sU[i];
    // |b| ≥ 0x7f7f8000: NaN, ±Inf, or a finite value that rounds up to Inf.
    if ((b & 0x7fffffff) >= 0x7f7f8000) return i;
    out16[start + i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return -1;
}

/** float32 bits -> half bits into out16[start..], refusing |x| ≥ 65520 (rounds to Inf) and NaN/Inf: first bad i or -1. */
function roundF16(out16: Uint16Array, sU: Uint32Array, start: number, n: number): number {
  for (let i = 0; i < n; i++) {
    const b = sU[i];
    if ((b & 0x7fffffff) >= 0x477ff000) return i;
    out16[start + i] = halfBits(b);
  }
  return -1;
}
