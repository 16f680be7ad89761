// The JS side of the merge's WASM kernels (mergeWasm.ts): LoRA ΔW rows formed four at a time in the arena, the fused
// bf16 add/round of a row copied through the arena, and a whole-tensor scan for the base values a pass-through must
// look at. Every arena region is allocated when an object is built, before any view is handed out, because growing
// the memory detaches the views made earlier.
import { Mora6Rows, type DeltaRows } from './mergeKernels';
import type { MergeWasm } from './mergeWasm';

/**
 * LoRA rows as LoraRows forms them (float64 sums over k in order from +0, times scaling, rounded to float32), four
 * output rows per kernel call with f64x2 lanes over columns. Only for a finite A: LoraRows skips B[o,k] = 0 terms in
 * that case, which matters only when A holds NaN/Inf (0·Inf), so create() refuses such an A.
 */
export class WasmLoraRows implements DeltaRows {
  private readonly inP: number; // in padded to a multiple of 4 (zero columns)
  private readonly pA: number; // f64 [r, inP]
  private readonly pB: number; // f64 [r, 4]: B of the current four rows, rank-major
  private readonly pOut: number; // f32 [4, inP]
  private quad = -1; // first row of the four in pOut

  static create(w: MergeWasm, A: Float32Array, B: Float32Array, r: number, inF: number, outF: number, scaling: number): WasmLoraRows | undefined {
    if (!(r >= 1)) return undefined; // the kernel's rank loop runs at least once
    for (let i = 0; i < r * inF; i++) if (A[i] - A[i] !== 0) return undefined;
    return new WasmLoraRows(w, A, B, r, inF, outF, scaling);
  }

  private constructor(
    private readonly w: MergeWasm,
    A: Float32Array,
    private readonly B: Float32Array,
    private readonly r: number,
    readonly inF: number,
    readonly outF: number,
    private readonly scaling: number,
  ) {
    const inP = (this.inP = Math.ceil(inF / 4) * 4);
    this.pA = w.arena.alloc(r * inP * 8);
    this.pB = w.arena.alloc(r * 4 * 8);
    this.pOut = w.arena.alloc(4 * inP * 4);
    // The arena is reused between tensors: the padding columns must be written as zeros, not assumed.
    const a = w.f64(this.pA, r * inP);
    for (let k = 0; k < r; k++) {
      for (let i = 0; i < inF; i++) a[k * inP + i] = A[k * inF + i];
      a.fill(0, k * inP + inF, (k + 1) * inP);
    }
  }

  row(o: number): Float32Array {
    const q = o - (o & 3);
    const { w, r, inP } = this;
    if (q !== this.quad) {
      const bq = w.f64(this.pB, r * 4);
      // Rows past the end get B = 0 and land in rows of the scratch nobody reads.
      for (let j = 0; j < 4; j++) {
        const row = q + j;
        for (let k = 0; k < r; k++) bq[k * 4 + j] = row < this.outF ? this.B[row * r + k] : 0;
      }
      w.k.lora4(this.pA, this.pB, r, inP, this.pOut, this.scaling);
      this.quad = q;
    }
    return w.f32(this.pOut + (o - q) * inP * 4, this.inF);
  }
}

/**
 * MoRA type 6 rows as Mora6Rows forms them (a full-width row, zero outside one r̂-wide band), kept in the arena so
 * the bf16 kernel reads them in place. Bands that wrap around the row take Mora6Rows' JS loop; create() refuses an
 * odd r̂ (type 6 pairs columns j and j + r̂/2).
 */
export class WasmMora6Rows extends Mora6Rows {
  private readonly pM: number; // f32 [r̂, r̂]
  private readonly pCos: number; // f32 [chunks, r̂/2]
  private readonly pSin: number;
  private readonly pOut: number; // f32 [in]

  static create(w: MergeWasm, M: Float32Array, rHat: number, inF: number, outF: number): WasmMora6Rows | undefined {
    return rHat % 2 === 0 && rHat > 0 ? new WasmMora6Rows(w, M, rHat, inF, outF) : undefined;
  }

  private constructor(private readonly w: MergeWasm, M: Float32Array, rHat: number, inF: number, outF: number) {
    super(M, rHat, inF, outF);
    this.pM = w.arena.alloc(rHat * rHat * 4);
    this.pCos = w.arena.alloc(this.cos.length * 4);
    this.pSin = w.arena.alloc(this.sin.length * 4);
    this.pOut = w.arena.alloc(inF * 4);
    w.f32(this.pM, rHat * rHat).set(M.subarray(0, rHat * rHat));
    w.f32(this.pCos, this.cos.length).set(this.cos);
    w.f32(this.pSin, this.sin.length).set(this.sin);
    w.f32(this.pOut, inF).fill(0);
  }

  // A fresh view per row: another object's allocation may have grown (and detached) the arena's buffer.
  protected override buffer(): Float32Array {
    return this.w.f32(this.pOut, this.inF);
  }

  /** Pairs of columns in the kernel (f64x2), an odd last pair by the JS loop: the same sums either way. */
  protected override band(out: Float32Array, mo: number, c: number, base: number): void {
    const h = this.rHat / 2;
    const pairs = h >> 1;
    this.w.k.mora6Band(this.pM + 4 * mo, this.pCos + 4 * c * h, this.pSin + 4 * c * h, this.pOut + 4 * base, pairs, 4 * h);
    super.band(out, mo, c, base, 2 * pairs);
  }
}

/** Arena scratch for BF16 rows of up to `width` elements: acc (f32) and base/result (bf16), 8-element padded. */
export class WasmBf16Rows {
  private readonly pIo: number;
  private readonly pAcc: number;

  private io = new Uint16Array(0); // view of pIo, re-made when the memory has grown
  private readonly width: number;

  constructor(private readonly w: MergeWasm, width: number) {
    const w8 = (this.width = Math.ceil(width / 8) * 8);
    this.pIo = w.arena.alloc(w8 * 2);
    this.pAcc = w.arena.alloc(w8 * 4);
  }

  /**
   * out16[start + i] = bf16(acc[accOff + i] + in16[start + i]) for the leading whole groups of 8 of the n elements,
   * stopping before a group with a NaN/Inf sum or one that rounds to Inf. Returns how many leading elements were
   * stored; the caller does the rest (and finds the bad element) with the JS loop. in16 and out16 may be the same.
   */
  addRound(in16: Uint16Array, out16: Uint16Array, acc: Float32Array, accOff: number, start: number, n: number): number {
    const { w } = this;
    const n8 = n & ~7;
    const buf = w.buffer;
    let pAcc = this.pAcc;
    // A view left detached by a later alloc would read as empty: a programming error, not bad input.
    if (acc.length < accOff + n8) throw new RangeError(`addRound: acc holds ${acc.length} values, needs ${accOff + n8}`);
    if (acc.buffer === buf) pAcc = acc.byteOffset + 4 * accOff; // a ΔW row formed in the arena already
    else new Float32Array(buf, pAcc, n8).set(acc.subarray(accOff, accOff + n8));
    if (this.io.buffer !== buf) this.io = new Uint16Array(buf, this.pIo, this.width);
    const io = this.io;
    io.set(in16.subarray(start, start + n8));
    const bad = w.k.bf16AddRound(pAcc, this.pIo, n8);
    const done = bad < 0 ? n8 : bad;
    out16.set(io.subarray(0, done), start);
    return done;
  }
}

// Scan chunk: 32K elements (64 or 128 KB) stays in L2 between the copy and the kernel.
const chunk = 1 << 15;
// More specials than this (an odd tensor full of -0) and the JS scan per range is used instead of a list.
const maxSpecials = 1 << 20;

/**
 * Sorted flat indices of the 16-bit (`exp` = 0x7f80 BF16, 0x7c00 F16) or 32-bit (F32, `exp` 0) base values that are
 * Inf/NaN or -0, or undefined when there are more than maxSpecials. Other values pass through unchanged.
 */
export function scanSpecials(w: MergeWasm, values: Uint16Array | Uint32Array, exp: number): Int32Array | undefined {
  const wide = values instanceof Uint32Array;
  const group = wide ? 16 : 32;
  const p = w.arena.alloc(chunk * (wide ? 4 : 2));
  const view = wide ? w.u32(p, chunk) : w.u16(p, chunk);
  const special = wide
    ? (h: number) => (h & 0x7f800000) === 0x7f800000 || h === 0x80000000
    : (h: number) => (h & exp) === exp || h === 0x8000;
  const found: number[] = [];
  const n = values.length;
  for (let s = 0; s < n; s += chunk) {
    const m = Math.min(chunk, n - s);
    const padded = Math.ceil(m / group) * group;
    view.set(values.subarray(s, s + m));
    view.fill(0, m, padded); // zeros are not special
    let i = 0;
    for (;;) {
      i += wide ? w.k.scan32(p + 4 * i, padded - i) : w.k.scan16(p + 2 * i, padded - i, exp);
      if (i >= padded) break;
      for (let j = i; j < Math.min(i + group, m); j++) if (special(values[s + j])) found.push(s + j);
      if (found.length > maxSpecials) return undefined;
      i += group;
    }
  }
  return Int32Array.from(found);
}

/** First position in the sorted `list` whose value is ≥ x. */
export function lowerBound(list: Int32Array, x: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
